// Entry point: the two views, the API-key dialog, then the chat.

import { onKeyNeeded } from "./api.js";
import { initChat, loadModels } from "./chat.js";
import { initModels, refreshModels } from "./models.js";
import { $, notify } from "./ui.js";

function showView(name) {
  for (const v of ["chat", "models"]) {
    $("#view-" + v).hidden = v !== name;
    $("#tab-" + v).setAttribute("aria-pressed", String(v === name));
  }
  if (name === "models") refreshModels().catch((err) => notify(err.message));
}

// One dialog for any 401: resolves with the key typed, or null on cancel.
let asking = null;
function askForKey(message) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = $("#key-dialog");
    $("#key-message").textContent = message;
    $("#key-input").value = "";
    const finish = (value) => {
      dialog.close();
      $("#key-form").removeEventListener("submit", ok);
      $("#key-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      asking = null;
      resolve(value);
    };
    const ok = (e) => { e.preventDefault(); finish($("#key-input").value.trim() || null); };
    const cancel = (e) => { e.preventDefault(); finish(null); };
    $("#key-form").addEventListener("submit", ok);
    $("#key-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    $("#key-input").focus();
  });
  return asking;
}

onKeyNeeded(askForKey);
$("#tab-chat").addEventListener("click", () => showView("chat"));
$("#tab-models").addEventListener("click", () => showView("models"));
initModels(() => loadModels().catch((err) => notify(err.message)));
initChat();
