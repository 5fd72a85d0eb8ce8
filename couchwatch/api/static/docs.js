// Starts Swagger UI on /docs (only served with COUCHWATCH_API_DOCS=true; see docs_page.py).
// A file, not an inline script, so the page keeps the CSP `script-src 'self'`.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
