// Conversations live in the browser's localStorage, one JSON document per
// conversation plus an index, so nothing about them is kept on the server.

const INDEX = "pyllama.conversations";
const PREFIX = "pyllama.conversation.";

export function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

export function listConversations() {
  try {
    const ids = JSON.parse(localStorage.getItem(INDEX) || "[]");
    return ids.map(loadConversation).filter(Boolean).sort((a, b) => b.updated - a.updated);
  } catch {
    return [];
  }
}

export function loadConversation(id) {
  try {
    return JSON.parse(localStorage.getItem(PREFIX + id) || "null");
  } catch {
    return null;
  }
}

export function createConversation(model) {
  return {
    id: newId(), title: "New chat", model, system: "", options: {}, messages: [],
    created: Date.now(), updated: Date.now(),
  };
}

// Returns an error message when the browser refuses (quota full), else "".
export function saveConversation(conv) {
  conv.updated = Date.now();
  try {
    localStorage.setItem(PREFIX + conv.id, JSON.stringify(conv));
    const ids = new Set(JSON.parse(localStorage.getItem(INDEX) || "[]"));
    ids.add(conv.id);
    localStorage.setItem(INDEX, JSON.stringify([...ids]));
    return "";
  } catch (err) {
    return "could not save the conversation: " + err.message;
  }
}

export function deleteConversation(id) {
  localStorage.removeItem(PREFIX + id);
  const ids = JSON.parse(localStorage.getItem(INDEX) || "[]").filter((x) => x !== id);
  localStorage.setItem(INDEX, JSON.stringify(ids));
}

export function exportConversation(conv) {
  const blob = new Blob([JSON.stringify(conv, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = (conv.title || "conversation").replace(/[^\w.-]+/g, "_").slice(0, 60) + ".json";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 0);
}
