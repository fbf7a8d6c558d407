// The read-token login of the dashboard (web/readauth.py): the token goes once to /api/session, which
// sets an HttpOnly cookie; then the page the user asked for is loaded again.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  const response = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (response.ok) { location.reload(); return; }
  document.getElementById("login-error").textContent = "That token is not valid here.";
});
