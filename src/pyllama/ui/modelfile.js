// Modelfile text -> the JSON body of POST /api/create (the API takes no Modelfile
// text itself). The page cannot upload local files, so FROM must name a model
// that the server already has or can pull, and ADAPTER is refused.

const KNOWN = new Set(["from", "parameter", "template", "system", "message", "license", "adapter", "requires", "renderer", "parser"]);

export class ModelfileError extends Error {}

function readValue(text, pos) {
  // Returns [value, nextPos]; the value may be """multi-line""", "quoted", or the rest of the line.
  while (pos < text.length && (text[pos] === " " || text[pos] === "\t")) pos++;
  if (text.startsWith('"""', pos)) {
    const end = text.indexOf('"""', pos + 3);
    if (end < 0) throw new ModelfileError('unterminated """ string');
    return [text.slice(pos + 3, end), end + 3];
  }
  if (text[pos] === '"') {
    let out = "";
    let i = pos + 1;
    for (; i < text.length && text[i] !== '"'; i++) {
      if (text[i] === "\n") throw new ModelfileError("unterminated quoted string");
      if (text[i] === "\\" && i + 1 < text.length) i++;
      out += text[i];
    }
    if (i >= text.length) throw new ModelfileError("unterminated quoted string");
    return [out, i + 1];
  }
  let end = text.indexOf("\n", pos);
  if (end < 0) end = text.length;
  return [text.slice(pos, end).trim(), end];
}

function typed(value) {
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value)) return Number(value);
  if (/^(true|false)$/i.test(value)) return value.toLowerCase() === "true";
  return value;
}

export function parseModelfile(text) {
  const body = {};
  const parameters = {};
  const messages = [];
  let pos = 0;
  text = text.replace(/\r\n?/g, "\n");
  while (pos < text.length) {
    const lineMatch = /[ \t]*(#.*)?(?:\n|$)/y;
    lineMatch.lastIndex = pos;
    const blank = lineMatch.exec(text);
    if (blank && blank[0].length) { pos += blank[0].length; continue; }
    const word = /[ \t]*([A-Za-z]+)[ \t]+/y;
    word.lastIndex = pos;
    const m = word.exec(text);
    if (!m) throw new ModelfileError(`cannot read line: ${text.slice(pos).split("\n")[0]}`);
    const command = m[1].toLowerCase();
    if (!KNOWN.has(command)) throw new ModelfileError(`unknown command ${m[1]}`);
    pos = word.lastIndex;
    if (command === "parameter" || command === "message") {
      const head = /([^\s]+)[ \t]+/y;
      head.lastIndex = pos;
      const h = head.exec(text);
      if (!h) throw new ModelfileError(`${m[1]} needs a name and a value`);
      pos = head.lastIndex;
      const [value, next] = readValue(text, pos);
      pos = next;
      if (command === "parameter") {
        const name = h[1].toLowerCase();
        if (name === "stop") (parameters.stop ||= []).push(value);
        else parameters[name] = typed(value);
      } else {
        messages.push({ role: h[1].toLowerCase(), content: value });
      }
      continue;
    }
    const [value, next] = readValue(text, pos);
    pos = next;
    if (command === "from") {
      if (/^[./~]|\.gguf$|^[A-Za-z]:\\/i.test(value)) {
        throw new ModelfileError("FROM a local file needs the command line (pyllama create -f); here FROM names a model");
      }
      body.from = value;
    } else if (command === "adapter") {
      throw new ModelfileError("ADAPTER needs the command line (pyllama create -f): the page cannot upload files");
    } else {
      body[command] = value;
    }
  }
  if (!body.from) throw new ModelfileError("a Modelfile needs a FROM line");
  if (Object.keys(parameters).length) body.parameters = parameters;
  if (messages.length) body.messages = messages;
  return body;
}
