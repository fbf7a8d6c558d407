// The live board: renders /api/dashboard/{id}/page, then every WebSocket push of the same data.
"use strict";
const sprintKey = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const $ = (id) => document.getElementById(id);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmtTokens = (n) => (n >= 10000 ? `${(n / 1000).toFixed(0)}k` : String(n ?? 0));
function fmtSeconds(s) {
  if (s == null) return "–";
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
  if (s < 172800) return `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}
let state = null;
let receivedAt = 0;
let logSocket = null;

function token() { return localStorage.getItem("sprintctl-token") || ""; }

async function act(method, url, payload) {
  if (!token()) { askToken(); if (!token()) return; }
  const headers = { Authorization: `Bearer ${token()}` };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) alert(`${response.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
  return response.ok;
}

function askToken() {
  const value = prompt("Action token (kept in this browser only):", token());
  if (value !== null) localStorage.setItem("sprintctl-token", value.trim());
}

function cardHtml(card) {
  const t = card.tokens || {};
  const countdown = card.next_retry_at ? `<div class="countdown" data-at="${esc(card.next_retry_at)}">automatic retry in <span></span></div>` : "";
  const error = card.column === "failed" || card.column === "review"
    ? `<div class="error">${esc(card.error || card.reason || "")}</div>` : "";
  const settled = card.column === "failed" || card.column === "review";
  const retry = !settled ? "" : card.retry_requested ? `<span class="requested">Retry requested</span>`
    : `<button type="button" class="retry" data-task="${esc(card.name)}">Retry</button>`;
  const approve = card.column !== "review" ? "" : card.approve_requested ? ` <span class="requested">Approve requested</span>`
    : ` <button type="button" class="approve" data-task="${esc(card.name)}">Approve</button>`;
  return `<article class="card ${esc(card.priority)} ${esc(card.column)}" data-task="${esc(card.task_id)}" data-name="${esc(card.name)}"
      data-column="${esc(card.column)}" data-attempt="${card.attempt}">
    <h3>${esc(card.title)}</h3>
    <div class="meta"><span>${esc(card.task_id)}</span><span>${esc(card.priority)}</span>
      <span title="tokens actual / estimated">${fmtTokens(t.actual || 0)} / ${fmtTokens(t.estimated || 0)} tok</span>
      <span class="elapsed" data-start="${esc(card.custom_fields.start_time || "")}" data-end="${esc(card.custom_fields.completion_time || "")}">${fmtSeconds(card.elapsed_seconds)}</span>
      <span>attempt ${card.attempt}${card.max_attempts ? "/" + card.max_attempts : ""}</span>
      ${card.auto_fix_rounds ? `<span class="auto-fix" title="gate failures sent back to the team">auto-fix ${card.auto_fix_rounds} (${fmtTokens((card.reviews || []).filter((r) => r.by === "autoFix").reduce((n, r) => n + (r.tokens || 0), 0))} tok)</span>` : ""}
      <span class="health-${esc(card.container_health)}">● ${esc(card.container_health)}</span></div>
    ${error}${countdown}${retry}${approve}</article>`;
}

function render(data, changed) {
  state = data; receivedAt = Date.now();
  const o = data.overview;
  document.title = data.board_name;
  $("title").textContent = data.board_name;
  $("phase").textContent = o.phase + (o.suspended ? " (suspended)" : "");
  $("start").hidden = !o.suspended;
  $("progress").max = Math.max(o.total, 1); $("progress").value = o.completed;
  $("progress-text").textContent = `${o.completed}/${o.total} tasks`;
  const budget = o.tokens_budget || 0;
  $("tokens").max = Math.max(budget, o.tokens_used, 1); $("tokens").value = o.tokens_used;
  $("tokens-text").textContent = `${fmtTokens(o.tokens_used)} / ${budget ? fmtTokens(budget) : "no budget"}` + (o.cost_usd != null ? ` ($${o.cost_usd.toFixed(2)})` : "");
  $("active").textContent = o.active_containers;
  const board = $("board");
  board.innerHTML = data.columns.map((col) => {
    const cards = data.cards.filter((c) => c.column === col.id);
    const over = col.limit != null && cards.length > col.limit;
    const limit = col.limit != null ? ` / ${col.limit}` : "";
    return `<section class="column${over ? " over" : ""}" data-column="${col.id}"><h2>${esc(col.name)} <span class="count">${cards.length}${limit}</span></h2>${cards.map(cardHtml).join("")}</section>`;
  }).join("");
  for (const id of changed || []) board.querySelector(`.card[data-task="${CSS.escape(id)}"]`)?.classList.add("flash");
  drawTimeline(o.timeline);
  board.dataset.version = String(Number(board.dataset.version) + 1);
  tick();
}

function drawTimeline(rows) {
  const svg = $("timeline");
  if (!rows.length) { svg.setAttribute("height", "0"); svg.innerHTML = ""; return; }
  const times = rows.flatMap((r) => [Date.parse(r.start), r.end ? Date.parse(r.end) : Date.now()]);
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1000);
  const w = svg.clientWidth || 800, row = 16;
  svg.setAttribute("height", String(rows.length * row + 4));
  svg.innerHTML = rows.map((r, i) => {
    const x = 90 + ((Date.parse(r.start) - t0) / (t1 - t0)) * (w - 100);
    const end = r.end ? Date.parse(r.end) : Date.now();
    const width = Math.max(2, ((end - Date.parse(r.start)) / (t1 - t0)) * (w - 100));
    const color = { completed: "#43a047", failed: "#e53935", review: "#fb8c00" }[r.column] || "#1e88e5";
    return `<text x="0" y="${i * row + 12}" font-size="11">${esc(r.task_id)}</text><rect x="${x}" y="${i * row + 2}" width="${width}" height="${row - 4}" fill="${color}"><title>${esc(r.task_id)} ${esc(r.start)} → ${esc(r.end || "running")}</title></rect>`;
  }).join("");
}

function tick() {
  for (const el of document.querySelectorAll(".countdown")) {
    const left = (Date.parse(el.dataset.at) - Date.now()) / 1000;
    el.querySelector("span").textContent = left > 0 ? fmtSeconds(left) : "now";
  }
  for (const el of document.querySelectorAll(".elapsed")) {
    if (el.dataset.start && !el.dataset.end) el.textContent = fmtSeconds((Date.now() - Date.parse(el.dataset.start)) / 1000);
  }
}

async function openDrill(name) {
  const card = state.cards.find((c) => c.name === name);
  if (!card) return;
  $("drill-title").textContent = `${card.task_id}: ${card.title}`;
  $("drill-meta").innerHTML = `<p>${esc(card.description)}</p><p>Column <b>${esc(card.column)}</b>, phase ${esc(card.phase)}, attempt ${card.attempt}${card.limits ? ` (${esc(card.limits)})` : ""}, container ${esc(card.custom_fields.container_id || "–")} (${esc(card.container_health)})${card.error ? `<br><span class="fail">${esc(card.error)}</span>` : ""}${card.recovery_action ? `<br>Recovery: ${esc(card.recovery_action)}` : ""}</p>`;
  const t = card.tokens || {};
  const rows = [["estimated", t.estimated], ["actual", t.actual], ["input", t.input], ["output", t.output], ["cache read", t.cacheRead], ["cache creation", t.cacheCreation], ["cost (USD)", t.costUsd], ["efficiency", t.efficiency]]
    .concat(Object.entries(t.byCategory || {}).map(([k, v]) => [`category ${k}`, v]))
    .concat(Object.entries(t.byModel || {}).map(([k, v]) => [`model ${k}`, v]));
  $("drill-tokens").innerHTML = rows.filter((r) => r[1] != null).map((r) => `<tr><th>${esc(r[0])}</th><td>${esc(r[1])}</td></tr>`).join("");
  $("drill-gates").innerHTML = card.gates.length ? "<tr><th>gate</th><th>result</th><th>exit</th><th>seconds</th></tr>" + card.gates.map((g) => `<tr><td>${esc(g.name)}</td><td class="${g.passed ? "pass" : "fail"}">${g.passed ? "passed" : "failed"}</td><td>${esc(g.exitCode)}</td><td>${esc(g.durationSeconds)}</td></tr>`).join("") : "<tr><td>no gate run yet</td></tr>";
  $("drill-results").textContent = card.results.summary || "(no RESULTS.md yet)";
  openReview(card);
  // Protected and out-of-scope changes: text written by the agent, so textContent only.
  const audit = card.audit || [];
  $("drill-scrutiny").hidden = !audit.length && !(card.protected_paths || []).length;
  $("drill-audit").innerHTML = audit.map((a) => `<li><b>${esc(a.event)}</b> ${esc(a.detail)}</li>`).join("");
  $("drill-protected-diff").textContent = card.protected_diff || "";
  const artifacts = await fetch(`/api/tasks/${encodeURIComponent(name)}/artifacts`).then((r) => (r.ok ? r.json() : { files: [] }));
  $("drill-artifacts").innerHTML = artifacts.files.map((f) => `<li><a href="/api/tasks/${encodeURIComponent(name)}/artifacts/${f.path.split("/").map(encodeURIComponent).join("/")}" target="_blank">${esc(f.path)}</a> (${f.size} B)</li>`).join("") || "<li>none</li>";
  $("drill-log").textContent = "";
  logSocket?.close();
  logSocket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/tasks/${encodeURIComponent(name)}/logs`);
  logSocket.onmessage = (event) => { $("drill-log").textContent += event.data; };
  $("drill").showModal();
}

// --- review: the diff, line comments, Request changes, Approve this commit ---------------------------
let review = { name: null, diff: null, comments: [] };
const anchorOf = (c) => (c.path ? `${c.path}${c.line ? ":" + c.line : ""}` : "the task");

function renderHistory(reviews) {
  $("review-history-box").hidden = !reviews.length;
  $("review-history").innerHTML = reviews.map((r) => `<li>attempt ${esc(r.attempt)}${r.tokens != null ? ` (${fmtTokens(r.tokens)} tok)` : ""}: <b>${esc(r.by)}</b> requested changes ${esc(r.time)} on ${esc(String(r.commit || "").slice(0, 12))}`
    + (r.message ? `<blockquote>${esc(r.message)}</blockquote>` : "")
    + `<ul>${(r.comments || []).map((c) => `<li><code>${esc(anchorOf(c))}</code> ${esc(c.body)}</li>`).join("")}</ul></li>`).join("");
}

function renderDraft() {
  $("review-draft").innerHTML = review.comments.map((c) => `<li><code>${esc(anchorOf(c))}</code> ${esc(c.body)}</li>`).join("");
}

function lineComment(path, line, row) {
  if (row.nextSibling?.classList?.contains("comment-form")) return;
  const { el } = window.SprintReview;
  const form = el("tr", "comment-form");
  const cell = el("td");
  cell.colSpan = 4;
  const text = el("textarea");
  text.rows = 2;
  text.placeholder = `Comment on ${path}:${line}`;
  const add = el("button", "add-comment", "Add comment");
  add.type = "button";
  add.addEventListener("click", () => {
    const body = text.value.trim();
    if (!body) return;
    review.comments.push({ path, line, body });
    const shown = el("tr", "comment");
    const note = el("td", null, `${path}:${line}: ${body}`);
    note.colSpan = 4;
    shown.append(note);
    form.replaceWith(shown);
    renderDraft();
  });
  cell.append(text, add);
  form.append(cell);
  row.after(form);
  text.focus();
}

async function openReview(card) {
  renderHistory(card.reviews || []);
  const shown = card.column === "review" || card.column === "completed";
  $("drill-review").hidden = !shown;
  review = { name: card.name, diff: null, comments: [] };
  renderDraft();
  $("review-message").value = "";
  $("diff-view").replaceChildren();
  if (!shown) return;
  const acting = card.column === "review";
  for (const id of ["request-changes", "approve-reviewed", "review-message"]) $(id).hidden = !acting;
  $("review-state").textContent = card.changes_requested ? "Changes requested" : card.approve_requested ? "Approve requested" : "";
  const response = await fetch(`/api/tasks/${encodeURIComponent(card.name)}/diff`);
  const body = await response.json().catch(() => ({}));
  if (review.name !== card.name) return;  // another card was opened meanwhile
  if (!response.ok) { $("diff-view").textContent = `No diff: ${typeof body.detail === "string" ? body.detail : response.status}`; return; }
  review.diff = body;
  window.SprintReview.renderDiff($("diff-view"), body, acting ? lineComment : () => {});
  $("diff-view").dataset.head = body.head;
}

async function requestChanges() {
  const message = $("review-message").value.trim();
  if (!review.diff || (!message && !review.comments.length)) { alert("Write a comment on a line or on the task first."); return; }
  const body = { message, comments: review.comments, commit: review.diff.head };
  if (await act("POST", `/api/tasks/${encodeURIComponent(review.name)}/request-changes`, body)) {
    $("review-state").textContent = "Changes requested";
    review.comments = [];
  }
}

async function approveReviewed() {
  if (!review.diff) return;
  if (await act("POST", `/api/tasks/${encodeURIComponent(review.name)}/approve`, { commit: review.diff.head })) $("review-state").textContent = "Approve requested";
}

function connect() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sprints/${encodeURIComponent(sprintKey)}`);
  socket.onopen = () => { $("live").className = "live on"; };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "board") render(message.board, message.changed);
    if (message.type === "deleted") $("title").textContent += " (deleted)";
  };
  socket.onclose = () => { $("live").className = "live off"; setTimeout(connect, 1000); };
}

document.addEventListener("click", async (event) => {
  const target = event.target;
  if (target.matches("button.retry")) { event.stopPropagation(); if (await act("POST", `/api/tasks/${encodeURIComponent(target.dataset.task)}/retry`)) target.outerHTML = `<span class="requested">Retry requested</span>`; return; }
  if (target.matches("button.approve")) { event.stopPropagation(); if (await act("POST", `/api/tasks/${encodeURIComponent(target.dataset.task)}/approve`)) target.outerHTML = `<span class="requested">Approve requested</span>`; return; }
  const card = target.closest(".card");
  if (card) openDrill(card.dataset.name);
});
$("drill").addEventListener("close", () => logSocket?.close());
$("token-button").addEventListener("click", askToken);
$("request-changes").addEventListener("click", requestChanges);
$("approve-reviewed").addEventListener("click", approveReviewed);
$("start").addEventListener("click", () => act("PUT", `/api/sprints/${encodeURIComponent(sprintKey)}/start`));
$("report-link").href = `/report/${encodeURIComponent(sprintKey)}`;
$("kaiban-link").href = `/kaiban/${encodeURIComponent(sprintKey)}`;
setInterval(tick, 1000);
fetch(`/api/dashboard/${encodeURIComponent(sprintKey)}/page`).then(async (r) => {
  if (r.ok) render(await r.json(), []); else $("title").textContent = `Sprint ${sprintKey}: ${(await r.json()).detail}`;
});
connect();
