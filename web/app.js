// The demo page: every ceremony of the API in the browser. Plain JS, no build step.
// Settings come from /config.js (written by scripts/dev.sh): window.DEMO_CONFIG.
const cfg = window.DEMO_CONFIG;
const $ = (selector) => document.querySelector(selector);

const state = {
  token: cfg.token, // the bearer token for /v1/users/me/...: the demo token, then the last login's
  tokenSource: "the demo token from scripts/dev.sh",
  conditional: null, // AbortController of the pending autofill (conditional mediation) request
};

// --- errors ---------------------------------------------------------------------------------

/** An answer of the API other than 2xx: `body` is its JSON ({code, message, …}) when it has one. */
class ApiError extends Error {
  constructor(status, body, text) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.text = text;
  }
}

/** A WebAuthn call the browser refused (a DOMException: NotAllowedError, InvalidStateError…). */
class BrowserError extends Error {
  constructor(cause) {
    super(cause?.message ?? String(cause));
    this.browserName = cause?.name ?? "Error";
  }
}

/** Runs a browser WebAuthn step, labelling its failures as the browser's. */
async function browser(step) {
  try {
    return await step();
  } catch (err) {
    throw new BrowserError(err);
  }
}

// --- the API --------------------------------------------------------------------------------

/**
 * Calls the API. `auth`: send the current bearer token; `tenant`: send X-Tenant-ID.
 * Resolves to the JSON body of a 2xx answer, rejects with ApiError otherwise.
 */
async function api(method, path, { body, auth = false, tenant = true } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) headers.Authorization = `Bearer ${state.token}`;
  if (tenant) headers["X-Tenant-ID"] = cfg.tenant_id;
  const response = await fetch(cfg.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: shown as text
  }
  if (!response.ok) throw new ApiError(response.status, json, text);
  return json;
}

const adminUser = `/v1/admin/tenants/${cfg.tenant_id}/users/${cfg.user_id}`;

// --- rendering ------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Shows a success in a result area. */
function ok(area, ...content) {
  area.className = "result ok";
  area.replaceChildren(...content);
}

/** Shows an error in a result area: the API's code and message exactly as sent, or the browser's. */
function fail(area, err) {
  area.className = "result error";
  let content;
  if (err instanceof ApiError) {
    const { code, message } = err.body ?? {};
    content = [
      el("span", { class: "source" }, `API error (HTTP ${err.status})`),
      code !== undefined
        ? el("span", {}, " code: ", el("code", { class: "error-code" }, String(code)))
        : null,
      message !== undefined
        ? el("span", {}, " message: ", el("span", { class: "error-message" }, String(message)))
        : null,
      code === undefined && message === undefined
        ? el("span", { class: "error-message" }, " ", err.text || "(empty body)")
        : null,
    ];
    if (err.body?.details) {
      content.push(el("span", {}, " details: ", el("code", {}, JSON.stringify(err.body.details))));
    }
  } else if (err instanceof BrowserError) {
    content = [
      el("span", { class: "source" }, "Browser (WebAuthn) error"),
      " ",
      el("code", { class: "error-code" }, err.browserName),
      ": ",
      el("span", { class: "error-message" }, err.message),
    ];
  } else {
    // fetch() failing (API down, CORS) or a bug in this page.
    content = [
      el("span", { class: "source" }, "Browser error"),
      " ",
      el("code", { class: "error-code" }, err?.name ?? "Error"),
      ": ",
      el("span", { class: "error-message" }, err?.message ?? String(err)),
    ];
  }
  area.replaceChildren(...content.filter((c) => c !== null));
}

function busy(area, text) {
  area.className = "result busy";
  area.textContent = text;
}

function note(area, text) {
  area.className = "result note";
  area.textContent = text;
}

/** The JWT's payload, decoded (display only: the page does not verify tokens). */
function claims(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function showToken() {
  $("#token-source").textContent = state.tokenSource;
  try {
    const c = claims(state.token);
    const times = ["iat", "exp", "auth_time", "nbf"]
      .filter((k) => typeof c[k] === "number")
      .map((k) => `// ${k}: ${new Date(c[k] * 1000).toISOString()}`);
    $("#token-claims").textContent = [JSON.stringify(c, null, 2), ...times].join("\n");
  } catch (err) {
    $("#token-claims").textContent = `(not a JWT: ${err.message})`;
  }
}

function useToken(token, source) {
  state.token = token;
  state.tokenSource = `${source} (${new Date().toLocaleTimeString()})`;
  showToken();
}

const when = (time) => (time ? new Date(time).toLocaleString() : "never");

// --- credentials ----------------------------------------------------------------------------

async function loadCredentials() {
  const area = $("#credentials-result");
  try {
    const { credentials } = await api("GET", "/v1/users/me/mfa/webauthn/credentials", { auth: true });
    $("#credentials tbody").replaceChildren(...credentials.map(credentialRow));
    if (credentials.length === 0) {
      ok(area, "No credentials yet: register a passkey or a security key above.");
    } else {
      ok(area, `${credentials.length} credential${credentials.length === 1 ? "" : "s"}.`);
    }
  } catch (err) {
    fail(area, err);
  }
}

function credentialRow(c) {
  const id = c.credential_id;
  const model = c.authenticator
    ? el("span", {},
        c.authenticator.icon
          ? el("img", { src: c.authenticator.icon, alt: "", class: "icon", width: "20", height: "20" })
          : null,
        c.authenticator.name)
    : el("span", { class: "muted" }, "unknown model");
  const rename = el("input", {
    "aria-label": `New name for ${c.device_name}`, class: "rename", value: c.device_name, maxlength: "100",
  });
  return el("tr", { "data-credential-id": id },
    el("td", { class: "device-name" }, c.device_name),
    el("td", { class: "authenticator", title: `AAGUID ${c.aaguid ?? "none"}` }, model),
    el("td", {}, c.method_type === "webauthn_passkey" ? "passkey" : "security key",
      c.backup_eligible ? el("span", { class: "muted" }, " (synced)") : null),
    el("td", {}, when(c.created_at)),
    el("td", {}, when(c.last_used_at)),
    el("td", { class: "use-count" }, String(c.use_count ?? 0)),
    el("td", { class: "actions" },
      rename,
      el("button", { type: "button", class: "rename-button", onclick: () => renameCredential(id, rename.value) },
        "Rename"),
      el("button", { type: "button", class: "delete-button", "aria-label": `Delete ${c.device_name}`,
        onclick: () => deleteCredential(id) }, "Delete")));
}

async function renameCredential(id, name) {
  const area = $("#credentials-result");
  busy(area, "Renaming…");
  try {
    const renamed = await api("PATCH", `/v1/users/me/mfa/webauthn/credentials/${id}`,
      { auth: true, body: { device_name: name } });
    await loadCredentials();
    ok(area, `Renamed to “${renamed.device_name}”.`);
  } catch (err) {
    fail(area, err);
  }
  loadAudit();
}

async function deleteCredential(id) {
  const area = $("#credentials-result");
  busy(area, "Deleting…");
  try {
    await api("DELETE", `/v1/users/me/mfa/webauthn/credentials/${id}`, { auth: true });
    await loadCredentials();
    ok(area, "Credential deleted.");
  } catch (err) {
    fail(area, err);
  }
  loadAudit();
}

// --- audit ----------------------------------------------------------------------------------

async function loadAudit() {
  const area = $("#audit-result");
  try {
    const { records } = await api("GET", `/v1/admin/tenants/${cfg.tenant_id}/audit?limit=15`, { tenant: false });
    $("#audit tbody").replaceChildren(...records.map((r) =>
      el("tr", { class: r.outcome },
        el("td", {}, new Date(r.time).toLocaleTimeString()),
        el("td", { class: "event" }, r.event),
        el("td", { class: "outcome" }, r.outcome),
        el("td", {}, r.code ? el("code", {}, r.code) : ""),
        el("td", {}, r.method ?? ""),
        el("td", { class: "actor" }, r.actor ?? ""),
        el("td", { class: "target" }, r.target ?? r.credential_id ?? r.session_id ?? ""))));
    ok(area, records.length === 0 ? "No records yet."
      : records.length === 1 ? "The latest record." : `The latest ${records.length} records, newest first.`);
  } catch (err) {
    fail(area, err);
  }
}

// --- registration ---------------------------------------------------------------------------

async function register(methodType) {
  const area = $("#register-result");
  busy(area, "Waiting for the authenticator…");
  stopAutofill();
  try {
    const { options } = await api("POST",
      `/v1/users/me/mfa/webauthn/register?method_type=${methodType}`, { auth: true });
    const credential = await browser(() => navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    }));
    const result = await api("POST", "/v1/users/me/mfa/webauthn/register/complete", {
      auth: true,
      body: { credential: credential.toJSON(), device_name: $("#device-name").value, method_type: methodType },
    });
    const kind = methodType === "webauthn_passkey" ? "Passkey" : "Security key";
    if (result.codes.length > 0) {
      ok(area,
        el("p", {}, `${kind} registered. Your backup codes — shown this once, keep them safe:`),
        el("ol", { id: "backup-codes", "aria-label": "Backup codes" },
          ...result.codes.map((code) => el("li", {}, el("code", {}, code)))));
    } else {
      ok(area, el("p", {}, `${kind} registered. Backup codes unused: ${result.remaining}.`));
    }
  } catch (err) {
    fail(area, err);
  }
  loadCredentials();
  loadAudit();
}

// --- MFA login ------------------------------------------------------------------------------

async function mfaLogin() {
  const area = $("#mfa-result");
  busy(area, "Creating an MFA challenge…");
  stopAutofill();
  try {
    // What the product's primary login does once it has decided a second factor is needed.
    const { challenge_id } = await api("POST", `${adminUser}/mfa-challenges`, { body: {}, tenant: false });
    const answer = await api("POST", "/v1/auth/mfa/webauthn/options", { body: { challenge_id } });
    if (answer.enrollment_required) {
      ok(area, "The user has no authenticator yet: the API traded the challenge for an enrollment " +
        "grant (enrollment_required). Register a passkey or security key first.");
    } else {
      busy(area, "Waiting for the authenticator…");
      const credential = await browser(() => navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(answer.options),
      }));
      const result = await api("POST", "/v1/auth/mfa/webauthn/complete",
        { body: { challenge_id, credential: credential.toJSON() } });
      if (result.token) {
        useToken(result.token, "the token from the MFA login");
        ok(area, `Logged in with MFA. amr: ${claims(result.token).amr?.join(", ")}; ` +
          `expires ${result.expires_at}` +
          (result.mfa_setup_required ? " — restricted (mfa_setup_required)" : ""));
      } else {
        ok(area, `No token: enrollment_required=${result.enrollment_required}, ` +
          `mfa_setup_required=${result.mfa_setup_required}.`);
      }
    }
  } catch (err) {
    fail(area, err);
  }
  loadCredentials();
  loadAudit();
}

// --- passwordless ---------------------------------------------------------------------------

function loggedIn(area, data, how) {
  useToken(data.access_token, `the access token from the passwordless login (${how})`);
  ok(area, `Logged in as ${data.display_name} <${data.email}> (${how}); ` +
    `the access token expires in ${data.expires_in} s.`);
}

async function passwordlessLogin(event) {
  event.preventDefault();
  const area = $("#passwordless-result");
  busy(area, "Waiting for the authenticator…");
  stopAutofill();
  const email = $("#email").value;
  try {
    const begun = await api("POST", "/api/v1/webauthn/authenticate/begin", { body: { email } });
    const credential = await browser(() => navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begun.data.options),
    }));
    const done = await api("POST", "/api/v1/webauthn/authenticate/complete",
      { body: { credential: credential.toJSON(), email } });
    loggedIn(area, done.data, "e-mail");
  } catch (err) {
    fail(area, err);
  }
  loadCredentials();
  loadAudit();
}

/**
 * Usernameless login through the browser's autofill: a conditional-mediation request, started on
 * page load and pending while the page is open, answered when the person picks a passkey in the
 * autofill field's menu. `begin` without an e-mail gives options with no allowCredentials;
 * `complete` without one: the server finds the user from the credential. A button's ceremony
 * stops the request (one WebAuthn request at a time); focusing or clicking the field starts it
 * again.
 */
async function startAutofill() {
  if (state.conditional) return;
  const area = $("#autofill-result");
  if (!(await PublicKeyCredential.isConditionalMediationAvailable?.())) {
    note(area, "Passkeys in autofill are not available in this browser (no platform authenticator?).");
    return;
  }
  const controller = new AbortController();
  state.conditional = controller;
  try {
    const begun = await api("POST", "/api/v1/webauthn/authenticate/begin", { body: {} });
    if (controller.signal.aborted) return;
    const credential = await browser(() => navigator.credentials.get({
      mediation: "conditional",
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begun.data.options),
      signal: controller.signal,
    }));
    const body = { credential: credential.toJSON() };
    if (begun.data.challenge_id) body.challenge_id = begun.data.challenge_id;
    const done = await api("POST", "/api/v1/webauthn/authenticate/complete", { body });
    loggedIn(area, done.data, "autofill");
    loadCredentials();
    loadAudit();
  } catch (err) {
    if (controller.signal.aborted) return; // stopped for a modal ceremony: not an error
    fail(area, err);
  } finally {
    if (state.conditional === controller) state.conditional = null;
  }
}

/** Browsers allow one WebAuthn request at a time: the autofill one yields to a button's. */
function stopAutofill() {
  state.conditional?.abort();
  state.conditional = null;
}

// --- start ----------------------------------------------------------------------------------

$("#api-url").textContent = cfg.api;
$("#tenant-id").textContent = cfg.tenant_id;
$("#user-id").textContent = cfg.user_id;
$("#user-email").textContent = `(${cfg.email})`;
$("#email").value = cfg.email;
$("#register-passkey").addEventListener("click", () => register("webauthn_passkey"));
$("#register-security-key").addEventListener("click", () => register("webauthn_fido"));
$("#mfa-login").addEventListener("click", mfaLogin);
$("#passwordless-form").addEventListener("submit", passwordlessLogin);
$("#autofill").addEventListener("focus", () => startAutofill());
$("#autofill").addEventListener("click", () => startAutofill());
$("#refresh-credentials").addEventListener("click", loadCredentials);
$("#refresh-audit").addEventListener("click", loadAudit);
$("#use-demo-token").addEventListener("click", () => {
  state.token = cfg.token;
  state.tokenSource = "the demo token from scripts/dev.sh";
  showToken();
  loadCredentials();
});
showToken();
loadCredentials();
loadAudit();
startAutofill();
