// The chat view: model picker, streaming /api/chat, Stop, thinking, images,
// per-conversation system prompt and options, stats, and the conversation list.

import { getJSON, postJSON, stream } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import * as store from "./store.js";
import { $, el, notify } from "./ui.js";

const OPTION_FIELDS = ["temperature", "num_ctx", "seed"];
let models = new Map(); // name -> capabilities[]
let conv = null;
let controller = null;
let attachments = []; // {data (base64), url (data URL)}

export async function loadModels() {
  const tags = await getJSON("/api/tags");
  models = new Map();
  for (const m of tags.models || []) {
    let caps = m.capabilities;
    if (!caps) { // servers that leave capabilities out of /api/tags
      try { caps = (await postJSON("/api/show", { model: m.name })).capabilities || []; } catch { caps = []; }
    }
    if (caps.includes("embedding") && !caps.includes("completion")) continue; // cannot chat
    models.set(m.name, caps);
  }
  const select = $("#model-select");
  select.replaceChildren();
  for (const name of models.keys()) select.append(new Option(name, name));
  if (!models.size) select.append(new Option("no chat models: pull one under Models", ""));
  if (conv && models.has(conv.model)) select.value = conv.model;
  else if (conv && select.value) conv.model = select.value;
  showCaps();
  return models;
}

function caps() { return models.get($("#model-select").value) || []; }

function showCaps() {
  const box = $("#model-caps");
  box.replaceChildren();
  for (const cap of caps()) {
    if (cap === "completion") continue;
    const span = document.createElement("span");
    span.className = "cap";
    span.textContent = cap;
    box.append(span);
  }
  $("#think-box").hidden = !caps().includes("thinking");
  const vision = caps().includes("vision");
  $("#attach").hidden = !vision;
  if (!vision) setAttachments([]);
}

// -- conversations -----------------------------------------------------------

function save() {
  const err = store.saveConversation(conv);
  if (err) notify(err);
}

function renderList() {
  const list = $("#conv-list");
  list.replaceChildren();
  for (const c of store.listConversations()) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = c.title || "New chat";
    b.title = c.title || "New chat";
    b.setAttribute("aria-current", String(conv && c.id === conv.id));
    b.addEventListener("click", () => open(store.loadConversation(c.id)));
    li.append(b);
    list.append(li);
  }
}

function open(c) {
  if (controller) return; // finish or stop the running answer first
  conv = c || store.createConversation($("#model-select").value);
  if (models.has(conv.model)) $("#model-select").value = conv.model;
  $("#system-prompt").value = conv.system || "";
  for (const f of OPTION_FIELDS) $("#opt-" + f).value = conv.options?.[f] ?? "";
  $("#think").checked = conv.think !== false;
  showCaps();
  const box = $("#messages");
  box.replaceChildren();
  for (const msg of conv.messages) box.append(msg.role === "user" ? userNode(msg) : assistantNode(msg).node);
  renderList();
  box.scrollTop = box.scrollHeight;
}

function readSettings() {
  conv.model = $("#model-select").value;
  conv.system = $("#system-prompt").value;
  conv.think = $("#think").checked;
  conv.options = {};
  for (const f of OPTION_FIELDS) {
    const raw = $("#opt-" + f).value.trim();
    if (raw !== "") conv.options[f] = Number(raw);
  }
}

// -- messages ----------------------------------------------------------------

function userNode(msg) {
  const node = document.createElement("div");
  node.className = "msg user";
  if (msg.images?.length) {
    const row = document.createElement("div");
    row.className = "images";
    for (const data of msg.images) {
      const img = document.createElement("img");
      img.alt = "attached image";
      img.src = "data:image/png;base64," + data;
      row.append(img);
    }
    node.append(row);
  }
  node.append(document.createTextNode(msg.content));
  return node;
}

function assistantNode(msg) {
  const node = el("div", "msg assistant");
  const thinking = el("details", "thinking");
  const summary = el("summary");
  summary.textContent = "Thinking";
  const thought = el("div");
  thinking.append(summary, thought);
  const [body, stats, state] = ["body", "stats", "state"].map((name) => el("div", name));
  node.append(thinking, body, stats, state);
  const view = {
    node,
    update() {
      thinking.hidden = !msg.thinking;
      thought.textContent = msg.thinking || "";
      body.replaceChildren(renderMarkdown(msg.content || ""));
      stats.textContent = msg.stats ? formatStats(msg.stats) : "";
      stats.hidden = !msg.stats;
      state.textContent = msg.state || "";
      state.classList.toggle("error", !!msg.error);
      state.hidden = !msg.state;
    },
  };
  view.update();
  return view;
}

function formatStats(s) {
  const parts = [];
  if (s.eval_count != null) {
    parts.push(`${s.eval_count} tokens`);
    if (s.eval_duration) parts.push(`${(s.eval_count / (s.eval_duration / 1e9)).toFixed(1)} tokens/s`);
  }
  if (s.prompt_eval_count != null) parts.push(`prompt ${s.prompt_eval_count} tokens`);
  if (s.total_duration) parts.push(`${(s.total_duration / 1e9).toFixed(2)} s total`);
  if (s.done_reason) parts.push(s.done_reason);
  return parts.join(" · ");
}

async function send() {
  if (controller) return;
  const text = $("#prompt").value;
  if (!text.trim() && !attachments.length) return;
  if (!$("#model-select").value) { notify("no model to chat with: pull or create one under Models"); return; }
  readSettings();
  const user = { role: "user", content: text };
  if (attachments.length) user.images = attachments.map((a) => a.data);
  conv.messages.push(user);
  if (conv.title === "New chat") conv.title = text.trim().slice(0, 48) || "Image";
  $("#prompt").value = "";
  setAttachments([]);
  const box = $("#messages");
  box.append(userNode(user));
  const answer = { role: "assistant", content: "", thinking: "", state: "" };
  conv.messages.push(answer);
  const view = assistantNode(answer);
  box.append(view.node);
  save();
  renderList();

  const history = conv.messages.slice(0, -1).filter((m) => !m.error).map((m) => {
    const out = { role: m.role, content: m.content };
    if (m.images) out.images = m.images;
    return out;
  });
  if (conv.system.trim()) history.unshift({ role: "system", content: conv.system });
  const body = { model: conv.model, messages: history, stream: true };
  if (Object.keys(conv.options).length) body.options = conv.options;
  // Only a model that can think takes the field (others answer 400 to it).
  if (caps().includes("thinking")) body.think = conv.think;

  controller = new AbortController();
  setBusy(true);
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; view.update(); box.scrollTop = box.scrollHeight; });
  };
  try {
    await stream("/api/chat", body, (rec) => {
      if (rec.message) {
        answer.content += rec.message.content || "";
        answer.thinking += rec.message.thinking || "";
      }
      if (rec.done) {
        answer.stats = {};
        for (const k of ["eval_count", "eval_duration", "prompt_eval_count", "prompt_eval_duration", "total_duration", "load_duration", "done_reason"]) {
          if (rec[k] !== undefined) answer.stats[k] = rec[k];
        }
      }
      redraw();
    }, controller.signal);
  } catch (err) {
    if (err.name === "AbortError") answer.state = "stopped";
    else { answer.state = "error: " + err.message; answer.error = true; }
  } finally {
    controller = null;
    setBusy(false);
    view.update();
    box.scrollTop = box.scrollHeight;
    save();
    $("#prompt").focus();
  }
}

export function stop() {
  if (controller) controller.abort();
}

function setBusy(busy) {
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
  $("#messages").setAttribute("aria-busy", String(busy));
}

// -- images ------------------------------------------------------------------

function setAttachments(list) {
  attachments = list;
  const box = $("#attachments");
  box.replaceChildren();
  attachments.forEach((a, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = a.url;
    img.alt = "image to send";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", "remove image");
    remove.addEventListener("click", () => setAttachments(attachments.filter((_, j) => j !== i)));
    fig.append(img, remove);
    box.append(fig);
  });
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ url: reader.result, data: String(reader.result).split(",", 2)[1] });
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addImages(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/"));
  if (!images.length) return;
  if (!caps().includes("vision")) { notify("this model does not take images"); return; }
  setAttachments([...attachments, ...(await Promise.all(images.map(readImage)))]);
}

// -- wiring ------------------------------------------------------------------

export async function initChat() {
  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("#prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && controller) { e.preventDefault(); stop(); } });
  $("#stop").addEventListener("click", stop);
  $("#new-chat").addEventListener("click", () => open(null));
  $("#model-select").addEventListener("change", () => { showCaps(); if (conv) { conv.model = $("#model-select").value; save(); } });
  for (const box of ["#settings", "#think-box"]) {
    $(box).addEventListener("change", () => { if (conv) { readSettings(); save(); } });
  }
  $("#rename-chat").addEventListener("click", () => {
    const title = prompt("Name of this conversation", conv.title);
    if (title !== null && title.trim()) { conv.title = title.trim(); save(); renderList(); }
  });
  $("#delete-chat").addEventListener("click", () => {
    if (controller || !confirm(`Delete "${conv.title}"?`)) return;
    store.deleteConversation(conv.id);
    const rest = store.listConversations();
    open(rest[0] || null);
  });
  $("#export-chat").addEventListener("click", () => store.exportConversation(conv));
  $("#attach").addEventListener("click", () => $("#file-input").click());
  $("#file-input").addEventListener("change", async (e) => { await addImages(e.target.files); e.target.value = ""; });
  $("#prompt").addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.some((f) => f.type.startsWith("image/"))) { e.preventDefault(); addImages(files); }
  });
  try { await loadModels(); } catch (err) { notify("could not list models: " + err.message); }
  open(store.listConversations()[0] || null);
}
