// The page's only way to the server: fetch against the public Ollama API, with the
// optional API key (asked for once on a 401, kept in localStorage) and NDJSON streaming.

const KEY_STORE = "pyllama.apiKey";
let askKey = null; // set by the page: async (message) => key or null

export function onKeyNeeded(fn) { askKey = fn; }
export function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }
export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Resolves relative to the page, so /ui/ behind a path prefix still reaches ../api/...
function url(path) { return new URL("../" + path.replace(/^\//, ""), document.baseURI).href; }

async function send(method, path, body, signal) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = apiKey();
    if (key) headers["Authorization"] = "Bearer " + key;
    const resp = await fetch(url(path), {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401 && askKey && attempt < 3) {
      const given = await askKey(key ? "That API key was refused." : "This server needs an API key.");
      if (given) { setApiKey(given); continue; }
    }
    if (!resp.ok) throw new ApiError(resp.status, await errorText(resp));
    return resp;
  }
}

async function errorText(resp) {
  const text = await resp.text();
  try {
    const obj = JSON.parse(text);
    if (typeof obj.error === "string") return obj.error;
    if (obj.error && typeof obj.error.message === "string") return obj.error.message;
  } catch { /* not JSON */ }
  return text || `${resp.status} ${resp.statusText}`;
}

export async function getJSON(path) { return (await send("GET", path)).json(); }
export async function postJSON(path, body) {
  const resp = await send("POST", path, body);
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}
export async function del(path, body) { await send("DELETE", path, body); }

// POST and call onRecord for every NDJSON line as it arrives; a record with an
// "error" field (Ollama's way of failing mid-stream) becomes an ApiError.
export async function stream(path, body, onRecord, signal) {
  const resp = await send("POST", path, body, signal);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) deliver(line, onRecord);
    }
  }
  buffered += decoder.decode();
  if (buffered.trim()) deliver(buffered.trim(), onRecord);
}

function deliver(line, onRecord) {
  const record = JSON.parse(line);
  if (record.error) throw new ApiError(500, typeof record.error === "string" ? record.error : JSON.stringify(record.error));
  onRecord(record);
}
