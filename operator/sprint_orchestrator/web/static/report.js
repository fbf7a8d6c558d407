// The reporting view: small SVG charts drawn from /api/reports/{id}.
"use strict";
const key = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const esc = (t) => String(t ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function bars(id, entries, format = (v) => v, max = null) {
  const svg = document.getElementById(id);
  if (!entries.length) { svg.innerHTML = `<text x="4" y="20" fill="#6a7380">no data yet</text>`; return; }
  const top = max ?? Math.max(...entries.map((e) => e[1]), 1);
  const w = svg.clientWidth || 400, row = Math.min(28, 170 / entries.length);
  svg.setAttribute("height", String(entries.length * row + 6));
  svg.innerHTML = entries.map(([label, value], i) => {
    const width = Math.max(1, (value / top) * (w - 190));
    return `<g class="bar" data-label="${esc(label)}" data-value="${value}"><text x="0" y="${i * row + row * 0.7}" font-size="12">${esc(label)}</text>
      <rect x="110" y="${i * row + 3}" width="${width}" height="${row - 6}" fill="#1e88e5"></rect>
      <text x="${115 + width}" y="${i * row + row * 0.7}" font-size="12">${esc(format(value))}</text></g>`;
  }).join("");
}

function line(id, points) {
  const svg = document.getElementById(id);
  if (!points.length) { svg.innerHTML = `<text x="4" y="20" fill="#6a7380">no task completed yet</text>`; return; }
  const times = points.map((p) => Date.parse(p.time));
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1000), n = points.length;
  const w = svg.clientWidth || 400, h = 170;
  const xy = points.map((p, i) => [20 + ((times[i] - t0) / (t1 - t0)) * (w - 40), h - 10 - (p.completed / n) * (h - 30)]);
  svg.innerHTML = `<polyline fill="none" stroke="#43a047" stroke-width="2" points="${xy.map((p) => p.join(",")).join(" ")}"></polyline>` +
    xy.map((p, i) => `<circle class="point" cx="${p[0]}" cy="${p[1]}" r="3" fill="#43a047"><title>${esc(points[i].time)}: ${points[i].completed}</title></circle>`).join("") +
    `<text x="4" y="14" font-size="12">${n} done</text>`;
}

fetch(`/api/reports/${encodeURIComponent(key)}`).then((r) => r.json()).then(({ report, charts }) => {
  document.getElementById("title").textContent = `Report: Sprint ${report.sprintId}: ${report.name}`;
  document.getElementById("board-link").href = `/board/${encodeURIComponent(key)}`;
  document.getElementById("summary").innerHTML = `Outcomes: ${esc(outcomeWords(report.outcomes))} · wall ${report.wallSeconds}s · slot utilization ${(report.slotUtilization * 100).toFixed(0)}%`;
  line("velocity", charts.velocity);
  bars("by-category", Object.entries(charts.tokens_by_category));
  bars("by-model", Object.entries(charts.tokens_by_model));
  bars("gates", charts.gates.map((g) => [g.name, g.rate]), (v) => `${Math.round(v * 100)}%`, 1);
  bars("efficiency", charts.efficiency.filter((e) => e.ratio != null).map((e) => [e.task_id, e.ratio]), (v) => v.toFixed(2));
  document.body.dataset.ready = "1";
});

// {"completed": 6, "failed": 1} -> "6 completed, 1 failed" (largest first).
function outcomeWords(outcomes) {
  const entries = Object.entries(outcomes || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.length ? entries.map(([name, count]) => `${count} ${name}`).join(", ") : "no tasks";
}
