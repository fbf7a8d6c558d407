// The board's diff view: a task's change (GET /api/tasks/{id}/diff JSON) as files of hunks, each line
// highlighted by highlight.js (npm, pinned in package-lock.json). Everything shown was written by a task
// team: text goes in through textContent, and only highlight.js's own output (which escapes the source)
// through innerHTML. Bundled by build.mjs into ../static/kaiban/review.js as window.SprintReview.
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import dockerfile from "highlight.js/lib/languages/dockerfile";
import go from "highlight.js/lib/languages/go";
import ini from "highlight.js/lib/languages/ini";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import makefile from "highlight.js/lib/languages/makefile";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import "highlight.js/styles/github.css";

const LANGUAGES = { bash, c, cpp, css, dockerfile, go, ini, java, javascript, json, makefile, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
const BY_EXTENSION = {
  py: "python", pyi: "python", js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  ts: "typescript", tsx: "typescript", json: "json", yaml: "yaml", yml: "yaml", sh: "bash", bash: "bash",
  md: "markdown", go: "go", rs: "rust", c: "c", h: "c", cc: "cpp", cpp: "cpp", hpp: "cpp", java: "java",
  css: "css", html: "xml", xml: "xml", svg: "xml", toml: "ini", ini: "ini", cfg: "ini", sql: "sql", mk: "makefile",
};

function languageOf(path) {
  const name = path.split("/").pop();
  if (name === "Makefile" || name === "GNUmakefile") return "makefile";
  if (name === "Dockerfile" || name === "Containerfile") return "dockerfile";
  const dot = name.lastIndexOf(".");
  return dot > 0 ? BY_EXTENSION[name.slice(dot + 1).toLowerCase()] || null : null;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

function codeCell(text, language) {
  const cell = el("td", "code");
  const code = el("code", language ? `hljs language-${language}` : "hljs");
  if (language) code.innerHTML = hljs.highlight(text, { language, ignoreIllegals: true }).value;
  else code.textContent = text;
  cell.append(code);
  return cell;
}

function badges(file) {
  const out = [];
  if (file.protected) out.push(["protected", "protected path: merging it needs a human"]);
  if (file.outOfScope) out.push(["out-of-scope", "outside the task's filesToModify"]);
  if (file.binary) out.push(["binary", `binary file, ${file.oldSize} → ${file.newSize} bytes`]);
  if (file.oversized) out.push(["oversized", `too large to show, ${file.oldSize} → ${file.newSize} bytes`]);
  return out.map(([name, title]) => { const b = el("span", `badge ${name}`, name); b.title = title; return b; });
}

// diff: the JSON of /api/tasks/{id}/diff. onLine(path, line, row) is called when a line is clicked
// (only lines of the new side can take a comment: an added or an unchanged line).
function renderDiff(container, diff, onLine) {
  container.replaceChildren();
  const summary = el("p", "diff-summary", `${diff.files.length} file(s), +${diff.additions} −${diff.deletions}, ${diff.base.slice(0, 12)}..${diff.head.slice(0, 12)}`);
  container.append(summary);
  if (diff.truncated) container.append(el("p", "fail", "The diff is too long: later files are listed without their lines."));
  for (const file of diff.files) {
    const box = el("section", "diff-file");
    box.dataset.path = file.path;
    const header = el("header", "diff-file-header");
    const name = file.oldPath !== file.path ? `${file.oldPath} → ${file.path}` : file.path;
    header.append(el("span", `status ${file.status}`, file.status), el("span", "path", name), el("span", "adds", `+${file.additions}`), el("span", "dels", `−${file.deletions}`), ...badges(file));
    box.append(header);
    if (!file.hunks.length) {
      const why = file.binary ? "Binary file: not shown." : file.oversized ? "Too large to show." : "Not shown.";
      box.append(el("p", "diff-note", why));
    }
    const language = languageOf(file.path);
    const table = el("table", "diff-lines");
    for (const hunk of file.hunks) {
      const head = el("tr", "hunk");
      const cell = el("td", null, hunk.header);
      cell.colSpan = 4;
      head.append(cell);
      table.append(head);
      for (const line of hunk.lines) {
        const kind = line.origin === "+" ? "add" : line.origin === "-" ? "del" : "ctx";
        const row = el("tr", `line ${kind}`);
        row.append(el("td", "num", line.old ?? ""), el("td", "num", line.new ?? ""), el("td", "sign", line.origin), codeCell(line.text, language));
        if (line.new != null) {
          row.dataset.path = file.path;
          row.dataset.line = String(line.new);
          row.title = "click to comment on this line";
          row.addEventListener("click", () => onLine(file.path, line.new, row));
        }
        table.append(row);
      }
    }
    box.append(table);
    container.append(box);
  }
}

window.SprintReview = { renderDiff, languageOf, el };
