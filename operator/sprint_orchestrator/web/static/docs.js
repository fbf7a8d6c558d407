// Swagger UI from the swagger-ui-bundle Python package, on this origin (no CDN, no inline script).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
