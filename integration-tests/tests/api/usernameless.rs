//! Usernameless passwordless login: `begin` with `{}` and `X-Tenant-ID`, `complete` without
//! `email`, the user found from the assertion's user handle. Real ceremonies with a resident
//! software passkey; JSON between every step.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::ids::UserId;
use shared::passwordless::unknown_user;
use shared::store::{ChallengeKind, ChallengeRecord, UserRecord};

use crate::harness::{Authenticator, Reply, TestApp, ORIGIN};

const PASSKEY: &str = "webauthn_passkey";

async fn begin(app: &TestApp, headers: &[(String, String)], body: &str) -> Reply {
    app.login_begin_raw(headers, body.to_owned()).await
}

async fn complete(app: &TestApp, headers: &[(String, String)], body: &Value) -> Reply {
    app.login_complete_raw(headers, body.to_string()).await
}

/// `complete` without `email`, with `app`'s tenant in `X-Tenant-ID`.
async fn complete_here(app: &TestApp, credential: &Value) -> Reply {
    complete(
        app,
        &app.tenant_headers(),
        &json!({ "credential": credential }),
    )
    .await
}

/// A new user of the app's tenant with an enrolled resident passkey.
async fn resident_user(app: &TestApp, authenticator: &mut Authenticator) -> UserRecord {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4());
    let user = app.add_user(&email).await;
    let reply = app.enroll_user(&user, authenticator, PASSKEY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    user
}

/// `begin` with `{}` in the app's tenant → the passkey's assertion for those options.
async fn usernameless_assertion(app: &TestApp, authenticator: &mut Authenticator) -> Value {
    let begun = begin(app, &app.tenant_headers(), "{}").await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    authenticator
        .authenticate(&begun.body["data"]["options"], ORIGIN)
        .expect("the passkey signs")
}

fn login_key(credential: &Value) -> String {
    let client_data = credential["response"]["clientDataJSON"].as_str().unwrap();
    let client_data = URL_SAFE_NO_PAD
        .decode(client_data.trim_end_matches('='))
        .expect("base64url clientDataJSON");
    let challenge = shared::webauthn::challenge_from_client_data(&client_data).unwrap();
    ChallengeRecord::ceremony_key(ChallengeKind::Login, &challenge)
}

#[tokio::test]
async fn begin_without_email_lists_no_credentials_and_stores_a_usernameless_challenge() {
    let app = TestApp::new().await;
    let begun = begin(&app, &app.tenant_headers(), "{}").await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    assert_eq!(begun.body["success"], true);
    let options = &begun.body["data"]["options"];
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "required");
    let listed = options
        .get("allowCredentials")
        .cloned()
        .unwrap_or(json!([]));
    assert_eq!(listed, json!([]), "{options}");

    let challenge = options["challenge"].as_str().unwrap();
    let key = ChallengeRecord::ceremony_key(ChallengeKind::Login, challenge);
    let stored = app
        .store
        .read_challenge(&key)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.tenant_id, app.tenant.tenant_id);
    assert_eq!(stored.user_id, unknown_user());
    assert!(stored.state.unwrap().contains("discoverable"));
    assert!(stored.expires_at > app.clock_now());

    // A body with `"email": null` is the same request.
    let begun = begin(&app, &app.tenant_headers(), r#"{"email": null}"#).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
}

#[tokio::test]
async fn begin_without_email_needs_an_existing_tenant_in_the_header() {
    let app = TestApp::new().await;
    begin(&app, &[], "{}")
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    let unknown = vec![("x-tenant-id".into(), uuid::Uuid::new_v4().to_string())];
    begin(&app, &unknown, "{}")
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn a_usernameless_login_finds_the_user_by_user_handle_and_returns_the_seed_body() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    let user = resident_user(&app, &mut passkey).await;
    let credential = usernameless_assertion(&app, &mut passkey).await;
    assert!(credential["response"]["userHandle"].is_string());

    let reply = complete_here(&app, &credential).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let data = &reply.body["data"];
    assert_eq!(data["user_id"], user.user_id.to_string());
    assert_eq!(data["email"], user.email);
    assert_eq!(data["display_name"], user.display_name);
    assert_eq!(data["token_type"], "bearer");
    assert!(data["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    // The challenge is consumed, a session is open, and the login is audited under the user.
    assert!(app
        .store
        .read_challenge(&login_key(&credential))
        .await
        .unwrap()
        .is_none());
    let audit = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&user.user_id), 10)
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|r| r.event == "passwordless_login" && r.outcome == "success"));

    // Replaying the completion finds no challenge.
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");

    // The same passkey also logs in the seed's way, by e-mail (its user handle matches).
    let reply = app.passwordless_login(&user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn usernameless_complete_needs_the_tenant_header() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    resident_user(&app, &mut passkey).await;
    let credential = usernameless_assertion(&app, &mut passkey).await;
    complete(&app, &[], &json!({ "credential": credential }))
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "AUTHENTICATION_COMPLETION_FAILED");
    // Nothing was consumed: with the header the same assertion still logs in.
    let reply = complete_here(&app, &credential).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn an_assertion_without_user_handle_is_invalid_credential_and_burns_the_challenge() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    resident_user(&app, &mut passkey).await;
    let mut credential = usernameless_assertion(&app, &mut passkey).await;
    credential["response"]["userHandle"] = Value::Null;
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
    assert!(app
        .store
        .read_challenge(&login_key(&credential))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_user_handle_naming_another_user_does_not_log_in_as_either() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    resident_user(&app, &mut passkey).await;
    let mut other_key = Authenticator::resident_passkey();
    let other = resident_user(&app, &mut other_key).await;

    // The assertion is the first user's; the handle (unsigned) claims the other user.
    let mut credential = usernameless_assertion(&app, &mut passkey).await;
    credential["response"]["userHandle"] = json!(URL_SAFE_NO_PAD.encode(other.user_id.as_uuid()));
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");

    // A handle naming nobody is the same answer.
    let mut credential = usernameless_assertion(&app, &mut passkey).await;
    credential["response"]["userHandle"] =
        json!(URL_SAFE_NO_PAD.encode(UserId::new_random().as_uuid()));
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
}

#[tokio::test]
async fn an_assertion_without_user_verification_is_refused_usernameless() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    resident_user(&app, &mut passkey).await;
    let begun = begin(&app, &app.tenant_headers(), "{}").await;
    let options = &begun.body["data"]["options"];
    assert_eq!(options["userVerification"], "required");
    // A client that drops the requirement gets an assertion without UV.
    let mut weakened = options.clone();
    weakened["userVerification"] = json!("discouraged");
    let credential = passkey.authenticate(&weakened, ORIGIN).unwrap();
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_ASSERTION");
}

#[tokio::test]
async fn the_two_flows_do_not_take_each_others_challenges() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    let user = resident_user(&app, &mut passkey).await;

    // A usernameless challenge completed as an e-mail login.
    let credential = usernameless_assertion(&app, &mut passkey).await;
    app.login_complete(&app.tenant_headers(), &user.email, &credential)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");

    // An e-mail login's challenge completed usernameless.
    let credential = app.login_assertion(&user.email, &mut passkey).await;
    complete_here(&app, &credential)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
}

#[tokio::test]
async fn another_tenants_header_cannot_complete_a_usernameless_login() {
    let app = TestApp::new().await;
    let other = TestApp::new().await;
    let mut passkey = Authenticator::resident_passkey();
    resident_user(&app, &mut passkey).await;
    let credential = usernameless_assertion(&app, &mut passkey).await;
    complete_here(&other, &credential)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
}

#[tokio::test]
async fn a_concealing_tenant_gives_every_usernameless_failure_one_answer() {
    let app = TestApp::with_tenant(|t| t.conceal_unknown_users = true).await;
    let mut passkey = Authenticator::resident_passkey();
    let user = resident_user(&app, &mut passkey).await;

    let mut no_handle = usernameless_assertion(&app, &mut passkey).await;
    no_handle["response"]["userHandle"] = Value::Null;
    complete_here(&app, &no_handle)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");

    let replayed = usernameless_assertion(&app, &mut passkey).await;
    let reply = complete_here(&app, &replayed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    complete_here(&app, &replayed)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");

    // A usernameless challenge offered to the e-mail flow is refused with the same answer.
    let credential = usernameless_assertion(&app, &mut passkey).await;
    app.login_complete(&app.tenant_headers(), &user.email, &credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
}
