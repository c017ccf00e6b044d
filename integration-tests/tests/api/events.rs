//! Every sample event in `events/<function>/<status>-<what>.json` replays through its function's
//! handler with the status its name promises (and, for a refusal, the code its `<what>` names).
//!
//! Placeholders (`{{token}}`, `{{challenge_id}}`, …; events/README.md) are filled here as
//! `scripts/fill_events.py` fills them from the local run: each event gets a fresh tenant and
//! user with one enrolled passkey, and whatever else its placeholders ask for, made with the
//! harness's software authenticators. Adding a function's events takes one line in [`dispatch`] (the harness).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lambda_http::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::{dispatch, settings, Authenticator, Reply, TestApp};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The code a refusal's `<what>` promises (compared case-insensitively: the `/api/v1` surface
/// writes codes in upper case). A 4xx event whose `<what>` is not here fails the test.
const CODES: &[(&str, &str)] = &[
    ("no-token", "unauthenticated"),
    ("missing-tenant-header", "invalid_request"),
    ("unknown-method-type", "invalid_request"),
    ("no-pending-enrollment", "enrollment_not_found"),
    ("empty-device-name", "invalid_request"),
    ("unknown-challenge", "challenge_not_found"),
    ("malformed-challenge-id", "invalid_request"),
    ("missing-credential", "invalid_request"),
    ("wrong-code", "invalid_backup_code"),
    ("wrong-method", "method_not_allowed"),
    ("not-behind-authorizer", "unauthenticated"),
    ("unknown-user", "user_not_found"),
    ("unknown-email", "user_not_found"),
    ("invalid-email", "invalid_request"),
    ("malformed-credential", "authentication_completion_failed"),
    ("unknown-refresh-token", "invalid_refresh_token"),
    ("missing-refresh-token", "invalid_request"),
    ("unknown-credential", "credential_not_found"),
    ("unknown-session", "session_not_found"),
    ("malformed-session-id", "invalid_request"),
    ("unknown-tenant", "tenant_not_found"),
    ("existing-email", "already_exists"),
    ("ttl-out-of-range", "invalid_request"),
    ("missing-origins", "invalid_request"),
    ("unknown-field", "invalid_request"),
    ("invalid-setting", "invalid_request"),
    ("invalid-limit", "invalid_request"),
    ("malformed-cursor", "invalid_request"),
    ("empty-display-name", "invalid_request"),
    ("invalid-group", "invalid_request"),
];

/// Every placeholder an event may carry; events/README.md says what each is.
const PLACEHOLDERS: &[&str] = &[
    "tenant_id",
    "user_id",
    "email",
    "token",
    "credential_id",
    "challenge_id",
    "backup_code",
    "session_id",
    "refresh_token",
    "registration_credential",
    "mfa_assertion",
    "login_assertion",
];

/// One event file: `events/<function>/<status>-<what>.json`.
pub struct EventFile {
    pub function: String,
    pub status: StatusCode,
    what: String,
    path: PathBuf,
}

impl EventFile {
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.function,
            self.path
                .file_name()
                .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
        )
    }
}

/// `<status>-<what>.json` → status and what, if the name has that shape.
fn parse_name(name: &str) -> Option<(StatusCode, String)> {
    let stem = name.strip_suffix(".json")?;
    let (status, what) = stem.split_once('-')?;
    let well_formed = status.len() == 3
        && !what.is_empty()
        && what
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let status = StatusCode::from_bytes(status.as_bytes()).ok()?;
    well_formed.then(|| (status, what.to_owned()))
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("a readable directory")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().expect("file type").is_dir())
        .map(|e| e.file_name().into_string().expect("UTF-8 name"))
        .collect()
}

/// Every event file, in a stable order; panics on a file whose name has not the shape.
pub fn event_files() -> Vec<EventFile> {
    let mut files = Vec::new();
    for function in dir_names(&events_dir()) {
        let dir = events_dir().join(&function);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("an events directory")
            .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
            .collect();
        names.sort();
        for name in names {
            let (status, what) = parse_name(&name).unwrap_or_else(|| {
                panic!("events/{function}/{name}: expected <status>-<what>.json")
            });
            files.push(EventFile {
                function: function.clone(),
                status,
                what,
                path: dir.join(name),
            });
        }
    }
    files
}

/// The `{{name}}`s in a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        found.insert(rest[..end].to_owned());
        rest = &rest[end + 2..];
    }
    found
}

/// Replaces placeholders in every string of the event (its body is a JSON string too).
fn substitute(value: &mut Value, values: &BTreeMap<&str, String>) {
    match value {
        Value::String(text) => {
            for (name, v) in values {
                *text = text.replace(&format!("{{{{{name}}}}}"), v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, values)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, values)),
        _ => {}
    }
}

/// The placeholders' values for an event: made in the app's tenant for its user, who has one
/// passkey (`primary`) when the event has any placeholder. Mirrors `World.values` in
/// scripts/fill_events.py.
async fn values(app: &TestApp, names: &BTreeSet<String>) -> BTreeMap<&'static str, String> {
    let needs = |n: &str| names.contains(n);
    let mut values = BTreeMap::new();
    if names.is_empty() {
        return values;
    }
    let mut primary = Authenticator::passkey();
    let enrolled = app.enroll(&mut primary, "webauthn_passkey", "Laptop").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    values.insert("tenant_id", app.tenant.tenant_id.to_string());
    values.insert("user_id", app.user.user_id.to_string());
    values.insert("email", app.user.email.clone());
    values.insert("token", app.token());
    let code = enrolled.body["codes"][0].as_str().expect("backup codes");
    values.insert("backup_code", code.to_owned());
    if needs("credential_id") {
        let mut spare = Authenticator::passkey();
        let headers = app.auth_headers(&app.token());
        let credential = app
            .registration_credential(&headers, "webauthn_passkey", &mut spare)
            .await;
        let body = json!({ "credential": credential, "device_name": "Spare key",
                           "method_type": "webauthn_passkey" });
        let done = app.register_complete(&headers, &body).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let id = credential["id"].as_str().expect("credential id");
        values.insert("credential_id", id.to_owned());
    }
    if needs("session_id") || needs("refresh_token") {
        let login = app.passwordless_login(&app.user, &mut primary, &[]).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let data = &login.body["data"];
        let access = data["access_token"].as_str().expect("access token");
        let claims = app
            .common
            .tokens
            .verify(access, &settings(), app.clock_now())
            .expect("a valid access token");
        values.insert("session_id", claims.sid.expect("sid").to_string());
        let refresh = data["refresh_token"].as_str().expect("refresh token");
        values.insert("refresh_token", refresh.to_owned());
    }
    if needs("challenge_id") || needs("mfa_assertion") {
        let challenge = app.mfa_challenge(&app.user).await;
        values.insert("challenge_id", challenge.to_string());
        if needs("mfa_assertion") {
            let options = app
                .mfa_options(&[], &json!({ "challenge_id": challenge }))
                .await;
            assert_eq!(options.status, StatusCode::OK, "{}", options.body);
            let assertion = primary
                .authenticate(&options.body["options"], crate::harness::ORIGIN)
                .expect("the passkey signs");
            values.insert("mfa_assertion", assertion.to_string());
        }
    }
    if needs("login_assertion") {
        let assertion = app.login_assertion(&app.user.email, &mut primary).await;
        values.insert("login_assertion", assertion.to_string());
    }
    if needs("registration_credential") {
        let headers = app.auth_headers(&app.token());
        let credential = app
            .registration_credential(&headers, "webauthn_passkey", &mut Authenticator::passkey())
            .await;
        values.insert("registration_credential", credential.to_string());
    }
    values
}

/// Replays one event in a fresh app; `Err` says how its answer broke the promise of its name.
async fn replay(event: &EventFile) -> Result<(), String> {
    let app = TestApp::new().await;
    let req = prepare(event, &app).await?;
    let reply = dispatch(&app, &event.function, req)
        .await
        .ok_or_else(|| format!("no dispatch line for function {}", event.function))??;
    check(event, &reply)
}

/// The event as a request, its placeholders filled with values made in `app`.
pub async fn prepare(event: &EventFile, app: &TestApp) -> Result<lambda_http::Request, String> {
    let text = std::fs::read_to_string(&event.path).map_err(|e| e.to_string())?;
    let names = placeholders(&text);
    let unknown: Vec<_> = names
        .iter()
        .filter(|n| !PLACEHOLDERS.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("unknown placeholders {unknown:?}"));
    }
    let mut value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    substitute(&mut value, &values(app, &names).await);
    let filled = value.to_string();
    let left = placeholders(&filled);
    if !left.is_empty() {
        return Err(format!("placeholders left after filling: {left:?}"));
    }
    lambda_http::request::from_str(&filled)
        .map_err(|e| format!("not an API Gateway HTTP API (2.0) event: {e}"))
}

/// `Err` says how `reply` broke the promise of the event's name.
pub fn check(event: &EventFile, reply: &Reply) -> Result<(), String> {
    if reply.status != event.status {
        return Err(format!("answered {}: {}", reply.status, reply.body));
    }
    if event.status.is_client_error() {
        let expected = CODES
            .iter()
            .find(|(what, _)| *what == event.what)
            .map(|(_, code)| *code)
            .ok_or_else(|| format!("no code for '{}' in events.rs CODES", event.what))?;
        let code = reply.body["code"].as_str().unwrap_or_default();
        if !code.eq_ignore_ascii_case(expected) {
            return Err(format!(
                "answered code {code}, not {expected}: {}",
                reply.body
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_event_replays_with_the_status_its_name_promises() {
    let files = event_files();
    assert!(files.len() >= 64, "only {} events found", files.len());
    let mut failures = Vec::new();
    for event in &files {
        if let Err(why) = replay(event).await {
            failures.push(format!("{}: {why}", event.label()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} events broke their promise:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// `events/` has one directory per crate in `functions/` and nothing else, and each has a
/// success and a refusal.
#[test]
fn every_function_has_a_success_and_an_error_event() {
    let functions = dir_names(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions"));
    let dirs = dir_names(&events_dir());
    let missing: Vec<_> = functions.difference(&dirs).collect();
    assert!(missing.is_empty(), "functions without events/: {missing:?}");
    let orphans: Vec<_> = dirs.difference(&functions).collect();
    assert!(orphans.is_empty(), "events/ of no function: {orphans:?}");
    let loose: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().expect("file type").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "README.md")
        .collect();
    assert!(
        loose.is_empty(),
        "files outside a function's directory: {loose:?}"
    );
    let files = event_files();
    for function in &functions {
        let statuses: Vec<StatusCode> = files
            .iter()
            .filter(|f| &f.function == function)
            .map(|f| f.status)
            .collect();
        assert!(
            statuses.iter().any(StatusCode::is_success),
            "events/{function}/ has no 2xx event"
        );
        assert!(
            statuses.iter().any(StatusCode::is_client_error),
            "events/{function}/ has no 4xx event"
        );
    }
}

#[test]
fn event_names_and_placeholders_parse() {
    assert_eq!(
        parse_name("404-unknown-challenge.json"),
        Some((StatusCode::NOT_FOUND, "unknown-challenge".into()))
    );
    for bad in [
        "404.json",
        "404-.json",
        "4o4-x.json",
        "200-Options.json",
        "200-x.txt",
    ] {
        assert_eq!(parse_name(bad), None, "{bad}");
    }
    let text = r#"{"a": "Bearer {{token}}", "body": "{\"c\": {{mfa_assertion}}}"}"#;
    let names = placeholders(text);
    assert_eq!(
        names,
        BTreeSet::from(["token".to_owned(), "mfa_assertion".to_owned()])
    );
    let mut value: Value = serde_json::from_str(text).expect("JSON");
    let values = BTreeMap::from([
        ("token", "t0k".to_owned()),
        ("mfa_assertion", r#"{"id":"x"}"#.to_owned()),
    ]);
    substitute(&mut value, &values);
    assert_eq!(value["a"], "Bearer t0k");
    let body: Value = serde_json::from_str(value["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(body, json!({ "c": { "id": "x" } }));
}
