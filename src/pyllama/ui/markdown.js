// A small Markdown renderer for model output that builds DOM nodes directly.
// Text only ever goes into text nodes (textContent), never into innerHTML, so
// whatever a model writes — tags, attributes, script — shows as the characters
// it is. Links are kept only for http(s) and mailto URLs.
//
// Blocks: fenced code (an unclosed fence, as while streaming, runs to the end),
// ATX headings, block quotes, bullet and numbered lists, rules, paragraphs
// (single newlines kept as line breaks). Inline: code spans, **strong**,
// *emphasis*, [links](url).

import { el } from "./ui.js";

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const ITEM = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|\*(?=[^\s*])([\s\S]*?[^\s*])\*|\[([^\]\n]+)\]\(([^)\s]+)\)/g;
const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

export function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, "\n").split("\n"), root);
  return root;
}

function renderBlocks(lines, parent) {
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) {
      const p = el("p");
      para.forEach((line, n) => {
        if (n) p.append(el("br"));
        renderInline(line.trim(), p);
      });
      parent.append(p);
      para = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      flush();
      const fence = m[1];
      const body = [];
      i++;
      const closing = new RegExp(`^\\s{0,3}\\${fence[0]}{${fence.length},}\\s*$`);
      while (i < lines.length && !closing.test(lines[i])) {
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (or past the end)
      parent.append(codeBlock(body.join("\n"), m[2]));
    } else if (!line.trim()) {
      flush();
      i++;
    } else if ((m = HEADING.exec(line))) {
      flush();
      const h = el("h" + Math.min(6, m[1].length + 2)); // h3..h6: the page owns h1/h2
      renderInline(m[2], h);
      parent.append(h);
      i++;
    } else if (RULE.test(line)) {
      flush();
      parent.append(el("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
      const quote = el("blockquote");
      renderBlocks(inner, quote);
      parent.append(quote);
    } else if ((m = ITEM.exec(line))) {
      flush();
      const ordered = /\d/.test(m[1]);
      const list = el(ordered ? "ol" : "ul");
      if (ordered && parseInt(m[1], 10) !== 1) list.start = parseInt(m[1], 10);
      while (i < lines.length && (m = ITEM.exec(lines[i])) && /\d/.test(m[1]) === ordered) {
        const li = el("li");
        renderInline(m[2], li);
        i++;
        // Indented continuation lines belong to the item.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !ITEM.exec(lines[i])) {
          li.append(el("br"));
          renderInline(lines[i].trim(), li);
          i++;
        }
        list.append(li);
      }
      parent.append(list);
    } else {
      para.push(line);
      i++;
    }
  }
  flush();
}

function codeBlock(code, lang) {
  const wrap = el("div", "code");
  const bar = el("div", "code-bar");
  const label = el("span");
  label.textContent = lang || "text";
  const copy = el("button", "copy");
  copy.type = "button";
  copy.textContent = "Copy";
  copy.addEventListener("click", () => {
    navigator.clipboard?.writeText(code).then(() => { copy.textContent = "Copied"; }, () => {});
  });
  bar.append(label, copy);
  const pre = el("pre");
  const codeEl = el("code");
  if (lang) codeEl.dataset.lang = lang;
  codeEl.textContent = code;
  pre.append(codeEl);
  wrap.append(bar, pre);
  return wrap;
}

export function safeHref(href) {
  try {
    const parsed = new URL(href, document.baseURI);
    return SAFE_SCHEMES.has(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function renderInline(text, parent) {
  let last = 0;
  const re = new RegExp(INLINE.source, "g");
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    last = re.lastIndex;
    if (m[1] !== undefined) {
      const code = el("code");
      code.textContent = m[2].length > 2 && m[2].startsWith(" ") && m[2].endsWith(" ") ? m[2].slice(1, -1) : m[2];
      parent.append(code);
    } else if (m[3] !== undefined) {
      const strong = el("strong");
      renderInline(m[3], strong);
      parent.append(strong);
    } else if (m[4] !== undefined) {
      const em = el("em");
      renderInline(m[4], em);
      parent.append(em);
    } else {
      const href = safeHref(m[6]);
      if (href) {
        const a = el("a");
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        renderInline(m[5], a);
        parent.append(a);
      } else {
        parent.append(document.createTextNode(m[0]));
      }
    }
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}
