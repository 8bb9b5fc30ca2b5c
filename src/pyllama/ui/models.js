// The models view: installed models with /api/ps state, pull with progress,
// create from Modelfile text, delete and unload.

import { del, getJSON, postJSON, stream } from "./api.js";
import { ModelfileError, parseModelfile } from "./modelfile.js";
import { $, formatBytes, notify } from "./ui.js";

let onChange = async () => {};

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function button(label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await action(); } catch (err) { notify(err.message); } finally { b.disabled = false; }
  });
  return b;
}

export async function refreshModels() {
  const [tags, ps] = await Promise.all([getJSON("/api/tags"), getJSON("/api/ps")]);
  const loaded = new Map((ps.models || []).map((m) => [m.name, m]));
  const body = $("#model-table tbody");
  body.replaceChildren();
  for (const m of tags.models || []) {
    const tr = document.createElement("tr");
    tr.dataset.model = m.name;
    const d = m.details || {};
    const run = loaded.get(m.name);
    let state = "-";
    if (run) {
      const until = run.expires_at ? new Date(run.expires_at) : null;
      state = until && until.getFullYear() < 2200 ? `loaded, until ${until.toLocaleTimeString()}` : "loaded";
    }
    tr.append(cell(m.name), cell(formatBytes(m.size)), cell(d.family || "-"), cell(d.parameter_size || "-"),
      cell(d.quantization_level || "-"), cell((m.capabilities || []).join(", ") || "-"), cell(state));
    const actions = document.createElement("td");
    actions.className = "actions";
    if (run) {
      actions.append(button("Unload", async () => {
        await postJSON("/api/generate", { model: m.name, keep_alive: 0 });
        await refreshModels();
      }));
    }
    actions.append(button("Delete", async () => {
      if (!confirm(`Delete ${m.name}?`)) return;
      await del("/api/delete", { model: m.name });
      await changed();
    }));
    tr.append(actions);
    body.append(tr);
  }
  if (!tags.models?.length) {
    const tr = document.createElement("tr");
    const td = cell("No models yet: pull one, or create one from a Modelfile.");
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
  }
}

async function changed() {
  await refreshModels();
  await onChange();
}

async function pull(e) {
  e.preventDefault();
  const name = $("#pull-name").value.trim();
  if (!name) return;
  const bar = $("#pull-progress");
  const status = $("#pull-status");
  const layers = new Map(); // digest -> {total, completed}
  bar.hidden = false;
  bar.value = 0;
  $("#pull-go").disabled = true;
  status.textContent = "starting";
  try {
    await stream("/api/pull", { model: name, insecure: $("#pull-insecure").checked, stream: true }, (rec) => {
      if (rec.digest && rec.total) {
        layers.set(rec.digest, { total: rec.total, completed: rec.completed || 0 });
        let total = 0;
        let done = 0;
        for (const l of layers.values()) { total += l.total; done += l.completed; }
        bar.value = total ? Math.floor((100 * done) / total) : 0;
        status.textContent = `${rec.status}: ${formatBytes(done)} of ${formatBytes(total)} (${bar.value}%)`;
      } else {
        status.textContent = rec.status;
      }
    });
    await changed();
  } catch (err) {
    status.textContent = "error: " + err.message;
  } finally {
    $("#pull-go").disabled = false;
  }
}

async function create(e) {
  e.preventDefault();
  const status = $("#create-status");
  let body;
  try {
    body = parseModelfile($("#create-modelfile").value);
  } catch (err) {
    if (!(err instanceof ModelfileError)) throw err;
    status.textContent = "error: " + err.message;
    return;
  }
  body.model = $("#create-name").value.trim();
  body.stream = true;
  $("#create-go").disabled = true;
  try {
    await stream("/api/create", body, (rec) => { status.textContent = rec.status; });
    await changed();
  } catch (err) {
    status.textContent = "error: " + err.message;
  } finally {
    $("#create-go").disabled = false;
  }
}

export function initModels(afterChange) {
  onChange = afterChange;
  $("#refresh-models").addEventListener("click", () => refreshModels().catch((err) => notify(err.message)));
  $("#pull-form").addEventListener("submit", pull);
  $("#create-form").addEventListener("submit", create);
}
