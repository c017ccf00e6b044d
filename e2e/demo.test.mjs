// End-to-end test of the demo page (web/) against the local run (scripts/dev.sh), in Chromium
// with CDP virtual authenticators. Run by scripts/e2e.sh, which starts dev.sh and exports
// .local/demo.env (WEB, API, TENANT_ID, USER_ID, TOKEN); plain Node, no test runner.
//
//   node e2e/demo.test.mjs      (E2E_SCREENSHOTS=<dir> to choose where screenshots go)
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/e2e.sh (or source .local/demo.env)`);
  return value;
};
const WEB = env("WEB").replace(/\/$/, "");
const API = env("API").replace(/\/$/, "");
const TENANT_ID = env("TENANT_ID");
const USER_ID = env("USER_ID");
const TOKEN = env("TOKEN");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const run = new Date().toISOString().replace(/[:.]/g, "-");
const shots = process.env.E2E_SCREENSHOTS ?? path.join(root, "target", "e2e-screenshots", run);
mkdirSync(shots, { recursive: true });

// A result area of the page once the action it shows has finished (class ok or error).
const RESULT_TIMEOUT = 120_000; // a function's first request in the local run may wait for cargo

// Authenticators (CDP WebAuthn.VirtualAuthenticatorOptions).
const PASSKEY = { protocol: "ctap2", transport: "internal", hasResidentKey: true,
  hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true };
const USB_KEY_NO_UV = { protocol: "ctap2", transport: "usb", hasResidentKey: false,
  hasUserVerification: false, automaticPresenceSimulation: true };
// CDP has no PIN option: a key that verifies the user (PIN or built-in) is hasUserVerification.
const USB_KEY_UV = { protocol: "ctap2", transport: "usb", hasResidentKey: false,
  hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true };
const PLATFORM_NO_UV = { protocol: "ctap2", transport: "internal", hasResidentKey: true,
  hasUserVerification: false, automaticPresenceSimulation: true };

// --- the API, read directly (what the page shows must be what the API holds) -----------------

async function apiCredentials() {
  const response = await fetch(`${API}/v1/users/me/mfa/webauthn/credentials`, {
    headers: { Authorization: `Bearer ${TOKEN}`, "X-Tenant-ID": TENANT_ID },
  });
  assert.equal(response.status, 200, `credentials list: ${await response.clone().text()}`);
  return (await response.json()).credentials;
}

// --- browser --------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
const pageErrors = [];
page.on("pageerror", (err) => pageErrors.push(err.message));
// Everything the page loads comes from this machine: the page's origin or the API's. The bearer
// token the page sent last is kept for the one step that plays a misbehaving client.
const foreign = [];
let pageBearer = null;
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith("data:") && !url.startsWith(`${WEB}/`) && !url.startsWith(`${API}/`)) foreign.push(url);
  const authorization = request.headers().authorization;
  if (url.startsWith(`${API}/`) && authorization) pageBearer = authorization;
});
const cdp = await page.context().newCDPSession(page);
await cdp.send("WebAuthn.enable");

let authenticator = null;
async function useAuthenticator(options) {
  if (authenticator) await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: authenticator });
  authenticator = options
    ? (await cdp.send("WebAuthn.addVirtualAuthenticator", { options })).authenticatorId
    : null;
}

/**
 * Waits until a result area shows `kind` ("ok" or "error") with text matching `pattern`, or the
 * other kind (a failure, reported at once); returns its kind and text. Areas are updated after
 * each action, so waiting for the expected text (not just any result) avoids reading an old one.
 */
async function settle(id, kind, pattern) {
  const read = () => page.evaluate((id) => {
    const area = document.getElementById(id);
    return { kind: area.classList.contains("ok") ? "ok" : area.classList.contains("error") ? "error" : "busy",
      text: area.innerText.trim() };
  }, id);
  try {
    await page.waitForFunction(([id, kind, source, flags]) => {
      const area = document.getElementById(id);
      const other = kind === "ok" ? "error" : "ok";
      return area.classList.contains(other)
        || (area.classList.contains(kind) && new RegExp(source, flags).test(area.innerText.trim()));
    }, [id, kind, pattern.source, pattern.flags], { timeout: RESULT_TIMEOUT });
  } catch (err) {
    const now = await read();
    assert.fail(`#${id} did not show ${kind} ${pattern} within ${RESULT_TIMEOUT} ms; it shows (${now.kind}) ${now.text}`);
  }
  const now = await read();
  assert.equal(now.kind, kind, `#${id} shows ${now.kind} instead of ${kind}: ${now.text}`);
  assert.match(now.text, pattern);
  return now.text;
}
const expectOk = (id, pattern) => settle(id, "ok", pattern);
const expectError = (id, pattern) => settle(id, "error", pattern);

/** The claims the page shows for the current token (the JSON before the time comments). */
async function shownClaims() {
  const text = await page.locator("#token-claims").innerText();
  return JSON.parse(text.split("\n// ")[0]);
}

/** The latest audit record the page shows, once its event is `event`. */
async function latestAudit(event) {
  await page.waitForFunction(
    (e) => document.querySelector("#audit tbody tr .event")?.textContent === e, event,
    { timeout: RESULT_TIMEOUT });
  const row = page.locator("#audit tbody tr").first();
  return { event, outcome: await row.locator(".outcome").innerText() };
}

const rows = () => page.locator("#credentials tbody tr");
const row = (name) => rows().filter({ has: page.locator(".device-name", { hasText: new RegExp(`^${name}$`) }) });

let n = 0;
const timings = [];
async function step(name, body) {
  n += 1;
  const file = `${String(n).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`;
  const started = Date.now();
  process.stdout.write(`[e2e] ${n}. ${name} ... `);
  try {
    await body();
  } catch (err) {
    await page.screenshot({ path: path.join(shots, `${file}-FAILED.png`), fullPage: true }).catch(() => {});
    console.log("FAILED");
    throw err;
  }
  await page.screenshot({ path: path.join(shots, `${file}.png`), fullPage: true });
  const ms = Date.now() - started;
  timings.push([name, ms]);
  console.log(`ok (${(ms / 1000).toFixed(1)} s)`);
}

// --- the scenario ---------------------------------------------------------------------------

console.log(`[e2e] ${WEB}/ against ${API}; screenshots: ${shots}`);
try {
  await step("page loads with the demo tenant and user", async () => {
    await page.goto(`${WEB}/`);
    await expectOk("credentials-result", /No credentials yet/);
    assert.equal(await page.locator("#tenant-id").innerText(), TENANT_ID);
    assert.equal(await page.locator("#user-id").innerText(), USER_ID);
    assert.match(await page.locator("#token-source").innerText(), /demo token/);
    assert.equal((await shownClaims()).sub, USER_ID);
    assert.equal(await page.locator("#autofill").getAttribute("autocomplete"), "username webauthn");
    assert.deepEqual(await apiCredentials(), []);
  });

  // 1. A platform passkey with user verification.
  await useAuthenticator(PASSKEY);
  await step("passkey: register", async () => {
    await page.fill("#device-name", "Laptop passkey");
    await page.click("#register-passkey");
    await expectOk("register-result", /Passkey registered\. Your backup codes/);
    const codes = await page.locator("#backup-codes li").allInnerTexts();
    assert.equal(codes.length, 10);
    for (const code of codes) assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    await expectOk("credentials-result", /^1 credential\.$/);
    assert.equal(await row("Laptop passkey").locator("td").nth(2).innerText(), "passkey");
    const stored = await apiCredentials();
    assert.deepEqual(stored.map((c) => [c.device_name, c.method_type]), [["Laptop passkey", "webauthn_passkey"]]);
    assert.equal(await latestAudit("credential_registered").then((a) => a.outcome), "success");
  });

  await step("passkey: MFA login", async () => {
    await page.click("#mfa-login");
    await expectOk("mfa-result", /^Logged in with MFA\. amr: hwk, user, mfa/);
    const claims = await shownClaims();
    assert.equal(claims.sub, USER_ID);
    assert.equal(claims.tenant_id, TENANT_ID);
    assert.deepEqual(claims.amr, ["hwk", "user", "mfa"]);
    assert.match(await page.locator("#token-source").innerText(), /MFA login/);
    assert.equal((await latestAudit("mfa_webauthn")).outcome, "success");
  });

  await step("passkey: passwordless login by e-mail", async () => {
    assert.equal(await page.inputValue("#email"), "demo@example.com");
    await page.click("#passwordless-login");
    await expectOk("passwordless-result", /^Logged in as Demo User <demo@example\.com> \(e-mail\)/);
    const claims = await shownClaims();
    assert.equal(claims.sub, USER_ID);
    assert.ok(claims.sid, "a passwordless access token names its session");
    assert.equal((await latestAudit("passwordless_login")).outcome, "success");
  });

  await step("passkey: usernameless login through autofill (conditional mediation)", async () => {
    // The page starts the conditional request on load. Chromium's virtual authenticator answers
    // a pending conditional request with its discoverable credential at once: there is no
    // autofill menu to pick from in this environment.
    await page.reload();
    await page.click("#autofill");
    await expectOk("autofill-result", /^Logged in as Demo User <demo@example\.com> \(autofill\)/);
    assert.match(await page.locator("#token-source").innerText(), /autofill/);
    const claims = await shownClaims();
    assert.equal(claims.sub, USER_ID);
    assert.ok(claims.sid);
    assert.equal((await latestAudit("passwordless_login")).outcome, "success");
  });

  // 2. Security keys: USB, CTAP2, first without then with user verification.
  await useAuthenticator(USB_KEY_NO_UV);
  await step("security key without UV: register", async () => {
    await page.fill("#device-name", "USB key");
    await page.click("#register-security-key");
    await expectOk("register-result", /^Security key registered\. Backup codes unused: 10\.$/);
    await expectOk("credentials-result", /^2 credentials\.$/);
    assert.equal(await row("USB key").locator("td").nth(2).innerText(), "security key");
    const stored = await apiCredentials();
    assert.deepEqual(stored.map((c) => c.method_type).sort(), ["webauthn_fido", "webauthn_passkey"]);
  });

  await step("security key without UV: MFA login", async () => {
    await page.click("#mfa-login");
    // The key did not verify the user: no `user` in amr.
    await expectOk("mfa-result", /^Logged in with MFA\. amr: hwk, mfa;/);
    assert.deepEqual((await shownClaims()).amr, ["hwk", "mfa"]);
    const used = (await apiCredentials()).find((c) => c.device_name === "USB key");
    assert.equal(used.use_count, 1);
  });

  await useAuthenticator(USB_KEY_UV);
  await step("security key with PIN (UV): register", async () => {
    await page.fill("#device-name", "USB key with PIN");
    await page.click("#register-security-key");
    await expectOk("register-result", /^Security key registered\. Backup codes unused: 10\.$/);
    await expectOk("credentials-result", /^3 credentials\.$/);
  });

  await step("security key with PIN (UV): MFA login", async () => {
    await page.click("#mfa-login");
    await expectOk("mfa-result", /^Logged in with MFA\. amr: hwk, user, mfa;/);
    const used = (await apiCredentials()).find((c) => c.device_name === "USB key with PIN");
    assert.equal(used.use_count, 1);
  });

  // 3. An authenticator that cannot verify the user cannot become a passkey.
  await useAuthenticator(PLATFORM_NO_UV);
  await step("no UV: a passkey cannot be registered", async () => {
    const before = (await apiCredentials()).length;
    const started = Date.now();
    await page.fill("#device-name", "No-UV authenticator");
    await page.click("#register-passkey");
    // Chromium refuses userVerification "required" itself, at once: NotAllowedError, and the
    // API never receives a credential (no register/complete call).
    const text = await expectError("register-result", /^Browser \(WebAuthn\) error NotAllowedError: /);
    console.log(`\n[e2e]    Chromium refused in ${Date.now() - started} ms (incl. the options call): ${text}`);
    assert.equal((await apiCredentials()).length, before);
    assert.equal(await rows().count(), before);
  });

  await step("no UV: a client that drops the UV requirement is refused by the API", async () => {
    // Not something the page does: a client that edits the options to get a credential without
    // user verification, and sends it anyway. The API verifies the UV flag itself.
    // The page's current token (from the last MFA login): adding an authenticator needs a recent login.
    const answer = await page.evaluate(async ({ api, tenant, bearer }) => {
      const headers = { Authorization: bearer, "X-Tenant-ID": tenant, "Content-Type": "application/json" };
      const options = (await (await fetch(`${api}/v1/users/me/mfa/webauthn/register?method_type=webauthn_passkey`,
        { method: "POST", headers })).json()).options;
      options.authenticatorSelection.userVerification = "discouraged";
      delete options.extensions.credentialProtectionPolicy;
      delete options.extensions.enforceCredentialProtectionPolicy;
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
      const response = await fetch(`${api}/v1/users/me/mfa/webauthn/register/complete`, {
        method: "POST", headers,
        body: JSON.stringify({ credential: credential.toJSON(), device_name: "No UV", method_type: "webauthn_passkey" }),
      });
      return { status: response.status, body: await response.json() };
    }, { api: API, tenant: TENANT_ID, bearer: pageBearer });
    assert.equal(answer.status, 400, JSON.stringify(answer));
    assert.equal(answer.body.code, "invalid_attestation");
    assert.equal(answer.body.message, "the authenticator did not verify the user, which this enrollment requires");
    console.log(`\n[e2e]    the API answered ${answer.status} ${JSON.stringify(answer.body)}`);
    assert.equal((await apiCredentials()).length, 3);
  });
  await useAuthenticator(null);

  // 4. Managing credentials from the page.
  await step("rename a credential", async () => {
    await row("USB key").locator("input.rename").fill("Spare USB key");
    await row("USB key").locator("button.rename-button").click();
    await expectOk("credentials-result", /^Renamed to “Spare USB key”\.$/);
    assert.equal(await row("Spare USB key").count(), 1);
    assert.ok((await apiCredentials()).some((c) => c.device_name === "Spare USB key"));
    assert.equal((await latestAudit("credential_renamed")).outcome, "success");
  });

  await step("delete a credential", async () => {
    await row("Spare USB key").locator("button.delete-button").click();
    await expectOk("credentials-result", /^Credential deleted\.$/);
    await page.waitForFunction(() => document.querySelectorAll("#credentials tbody tr").length === 2);
    const names = (await apiCredentials()).map((c) => c.device_name).sort();
    assert.deepEqual(names, ["Laptop passkey", "USB key with PIN"]);
    assert.equal((await latestAudit("credential_deleted")).outcome, "success");
  });

  await step("an API error is shown with its code and message", async () => {
    // The demo token is older than the re-authentication window only in a long session; an
    // empty name is refused whatever the token.
    await row("USB key with PIN").locator("input.rename").fill("   ");
    await row("USB key with PIN").locator("button.rename-button").click();
    await expectError("credentials-result", /^API error \(HTTP 400\) code: invalid_request message: /);
    assert.equal(await page.locator("#credentials-result .error-code").innerText(), "invalid_request");
  });

  await step("audit trail", async () => {
    await page.click("#refresh-audit");
    await expectOk("audit-result", /newest first/);
    const events = await page.locator("#audit tbody .event").allInnerTexts();
    for (const e of ["credential_deleted", "credential_renamed", "mfa_webauthn", "credential_registered"]) {
      assert.ok(events.includes(e), `${e} in ${events}`);
    }
  });

  await step("API docs page", async () => {
    await page.goto(`${WEB}/docs/`);
    await page.waitForSelector(".swagger-ui", { timeout: 30_000 });
    const spec = await fetch(`${WEB}/docs/openapi.yaml`);
    if (spec.status === 200) {
      await page.waitForSelector(".swagger-ui .info .title", { timeout: 30_000 });
      console.log(`\n[e2e]    docs: ${(await page.locator(".swagger-ui .info .title").innerText()).split("\n")[0]}`);
    } else {
      console.log("\n[e2e]    docs: api/openapi.yaml is not in this checkout; Swagger UI loads, without a spec");
    }
  });

  assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  assert.deepEqual(foreign, [], "requests to other hosts than the page's and the API's");
  console.log(`[e2e] passed: ${n} steps; screenshots in ${shots}`);
} finally {
  await browser.close();
}
