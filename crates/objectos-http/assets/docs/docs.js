// Starts Swagger UI on this server's OpenAPI document (served by objectos-http, docs.rs).
// Nothing here names another host: the document is read from this origin (relative to the page,
// so the docs keep working behind a proxy that mounts the API under a prefix), and the online
// validator, which would send the document's URL to a third party, is off.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "../openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    // The base layout has no "Explore" bar: the page shows this server's document only.
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  });
});
