// Swagger UI over the repository's api/openapi.yaml (served next to this page).
window.ui = SwaggerUIBundle({
  url: "openapi.yaml",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  // No online validator badge: it would send the spec to validator.swagger.io.
  validatorUrl: null,
});
