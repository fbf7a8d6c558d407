fetch("/api/sprints").then((r) => r.json()).then((rows) => {
  const esc = (t) => String(t ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  document.getElementById("sprints").innerHTML += rows.map((s) => `<tr><td>${esc(s.title)} (${esc(s.sprint_id)})</td><td>${esc(s.phase)}</td><td>${s.completed}/${s.total}</td><td>${s.tokens_used}</td><td><a href="/board/${encodeURIComponent(s.name)}">board</a> · <a href="/report/${encodeURIComponent(s.name)}">report</a> · <a href="/kaiban/${encodeURIComponent(s.name)}">Kaiban</a></td></tr>`).join("");
});
