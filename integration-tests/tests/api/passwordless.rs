//! Passwordless login (seed 003) and its sessions: real passkey ceremonies, JSON between every
//! step, the real handlers against the test server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::crypto::sha256_hex;
use shared::ids::{CredentialId, SessionId};
use shared::jwt::TokenVerifier;
use shared::store::{AuditRecord, CredentialRecord, DeviceRecord, SessionRecord, UserRecord};

use crate::harness::{settings, Authenticator, Reply, TestApp, ORIGIN};

const PASSKEY: &str = "webauthn_passkey";
const SEED_DATA_KEYS: [&str; 8] = [
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "user_id",
    "email",
    "display_name",
    "message",
];

fn header(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.into(), value.into())]
}

fn fingerprint(value: &str) -> Vec<(String, String)> {
    header("x-device-fingerprint", value)
}

/// A new user of the app's tenant with a unique address and an enrolled passkey.
async fn passkey_user(app: &TestApp) -> (UserRecord, Authenticator) {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4());
    let user = app.add_user(&email).await;
    let mut passkey = Authenticator::passkey();
    let reply = app.enroll_user(&user, &mut passkey, PASSKEY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (user, passkey)
}

async fn credential_of(app: &TestApp, user: &UserRecord) -> CredentialRecord {
    let mut records = app
        .store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    records.remove(0)
}

async fn sessions_of(app: &TestApp, user: &UserRecord) -> Vec<SessionRecord> {
    let out = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().sessions)
        .filter_expression("user_id = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::S(user.user_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    serde_dynamo::from_items(out.items.unwrap_or_default()).unwrap()
}

async fn session(app: &TestApp, id: &Value) -> SessionRecord {
    let id: SessionId = id.as_str().unwrap().parse().unwrap();
    app.store.get_session(&id).await.unwrap().expect("session")
}

async fn devices_of(app: &TestApp, user: &UserRecord) -> Vec<DeviceRecord> {
    app.store
        .list_devices(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
}

async fn audit_of(app: &TestApp, user: Option<&UserRecord>) -> Vec<AuditRecord> {
    app.store
        .list_audit_records(&app.tenant.tenant_id, user.map(|u| &u.user_id), 100)
        .await
        .unwrap()
        // Authentication outcomes only: enrollments are audited too.
        .into_iter()
        .filter(|r| r.event != "credential_registered")
        .collect::<Vec<_>>()
}

fn verifier(app: &TestApp) -> TokenVerifier {
    TokenVerifier::new(&app.key.jwks(), settings()).unwrap()
}

/// Points the options at another authenticator's credential, as an attacker holding that
/// authenticator would, so it will sign this challenge.
fn allow_only(options: &Value, credential: &CredentialRecord) -> Value {
    let mut options = options.clone();
    options["allowCredentials"] = json!([{ "type": "public-key", "id": credential.credential_id }]);
    options
}

#[tokio::test]
async fn a_passkey_login_returns_the_seed_body_and_records_session_device_credential_and_audit() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let credential = credential_of(&app, &user).await;

    let begun = app.login_begin(&app.tenant_headers(), &user.email).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    assert_eq!(begun.body["success"], true);
    let options = &begun.body["data"]["options"];
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(
        options["allowCredentials"][0]["id"],
        json!(credential.credential_id)
    );
    let assertion = passkey.authenticate(options, ORIGIN).unwrap();
    let mut headers = app.tenant_headers();
    headers.extend(fingerprint(r#"{"screen":"1920x1080","timezone":"UTC"}"#));
    let reply = app.login_complete(&headers, &user.email, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Exactly the seed's body.
    let mut top: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // Sorted: serde_json keeps insertion order (cedar-policy turns on `preserve_order`).
    top.sort_unstable();
    assert_eq!(top, ["data", "message", "success"]);
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["message"], "WebAuthn authentication successful");
    let data = reply.body["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = SEED_DATA_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(data["token_type"], "bearer");
    assert_eq!(data["expires_in"], app.tenant.token_ttl_secs);
    assert_eq!(data["user_id"], json!(user.user_id));
    assert_eq!(data["email"], json!(user.email));
    assert_eq!(data["display_name"], json!(user.display_name));
    assert_eq!(data["message"], "WebAuthn authentication successful");

    // The access token is the system JWT, verifiable with the published keys.
    let now = app.clock_now();
    let claims = verifier(&app)
        .verify(data["access_token"].as_str().unwrap(), &settings(), now)
        .unwrap();
    assert_eq!(claims.sub, user.user_id);
    assert_eq!(claims.tenant_id, app.tenant.tenant_id);
    assert_eq!(claims.amr, ["hwk", "user", "mfa"]);
    assert_eq!(claims.auth_time, Some(now));
    let sid = claims.sid.expect("sid");

    // Session: hashed refresh token, request context IP and user agent, TTL = refresh lifetime.
    let refresh_token = data["refresh_token"].as_str().unwrap();
    assert!(refresh_token.len() >= 43, "at least 256 bits");
    let stored = app.store.get_session(&sid).await.unwrap().expect("session");
    assert_eq!(stored.user_id, user.user_id);
    assert_eq!(
        stored.refresh_token_hash,
        sha256_hex(refresh_token.as_bytes())
    );
    assert_eq!(stored.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(stored.user_agent.as_deref(), Some("integration-tests"));
    assert_eq!(
        stored.expires_at,
        now + i64::from(app.tenant.refresh_token_ttl_secs)
    );
    assert_eq!(stored.credential_id, credential.credential_id);
    let raw = serde_json::to_string(&stored).unwrap();
    assert!(!raw.contains(refresh_token));

    // Device trusted, credential used.
    let devices = devices_of(&app, &user).await;
    assert_eq!(devices.len(), 1);
    let device = &devices[0];
    assert!(device.trusted);
    assert_eq!(device.fingerprint_source, "header");
    assert_eq!((device.seen_count, device.first_seen_at), (1, now));
    assert_eq!(
        stored.device_hash.as_deref(),
        Some(device.device_hash.as_str())
    );
    let used = credential_of(&app, &user).await;
    assert_eq!((used.use_count, used.last_used_at), (1, Some(now)));

    // Audit: one success record with the login's context and no secrets.
    let audit = audit_of(&app, Some(&user)).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let record = &audit[0];
    assert_eq!(record.event, "passwordless_login");
    assert_eq!(record.outcome, "success");
    assert_eq!(record.code, None);
    assert_eq!(record.method.as_deref(), Some(PASSKEY));
    assert_eq!(
        record.credential_id.as_ref(),
        Some(&credential.credential_id)
    );
    assert_eq!(
        record.device_hash.as_deref(),
        Some(device.device_hash.as_str())
    );
    assert_eq!(record.session_id, Some(sid));
    assert_eq!(record.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.user_agent.as_deref(), Some("integration-tests"));
    assert_eq!(
        record.expires_at,
        now + i64::from(app.tenant.audit_retention_days) * 86_400
    );
    let raw = serde_json::to_string(record).unwrap();
    for secret in [refresh_token, data["access_token"].as_str().unwrap()] {
        assert!(!raw.contains(secret));
    }
    let signature = assertion["response"]["signature"].as_str().unwrap();
    assert!(!raw.contains(signature));

    // The same device again, its JSON keys in another order: one device, seen twice.
    app.clock.advance(60);
    let again = app
        .passwordless_login(
            &user,
            &mut passkey,
            &fingerprint(r#"{ "timezone": "UTC", "screen": "1920x1080" }"#),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let devices = devices_of(&app, &user).await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].seen_count, 2);
    assert_eq!(devices[0].first_seen_at, now);
    assert_eq!(devices[0].last_seen_at, now + 60);
    assert_eq!(credential_of(&app, &user).await.use_count, 2);
}

#[tokio::test]
async fn a_replayed_completion_is_challenge_not_found_and_opens_no_second_session() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    let headers = app.tenant_headers();
    let first = app.login_complete(&headers, &user.email, &assertion).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    app.login_complete(&headers, &user.email, &assertion)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
    // Ten concurrent replays of a fresh assertion: exactly one session.
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    let replies = futures::future::join_all(
        (0..10).map(|_| app.login_complete(&headers, &user.email, &assertion)),
    )
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        reply.assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
    }
    assert_eq!(sessions_of(&app, &user).await.len(), 2);
    assert_eq!(credential_of(&app, &user).await.use_count, 2);
}

#[tokio::test]
async fn an_expired_challenge_is_challenge_not_found() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    app.clock
        .advance(i64::from(app.tenant.challenge_timeout_secs) + 1);
    let reply = app
        .login_complete(&app.tenant_headers(), &user.email, &assertion)
        .await;
    reply.assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
    assert!(sessions_of(&app, &user).await.is_empty());
    let audit = audit_of(&app, Some(&user)).await;
    assert_eq!(audit[0].outcome, "failure");
    assert_eq!(audit[0].code.as_deref(), Some("CHALLENGE_NOT_FOUND"));
}

#[tokio::test]
async fn two_concurrent_logins_of_one_user_both_succeed() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    // Two tabs: both begin before either completes.
    let first = app.login_assertion(&user.email, &mut passkey).await;
    let second = app.login_assertion(&user.email, &mut passkey).await;
    let headers = app.tenant_headers();
    let (a, b) = tokio::join!(
        app.login_complete(&headers, &user.email, &first),
        app.login_complete(&headers, &user.email, &second),
    );
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    assert_ne!(
        a.body["data"]["refresh_token"],
        b.body["data"]["refresh_token"]
    );
    assert_eq!(sessions_of(&app, &user).await.len(), 2);
    assert_eq!(credential_of(&app, &user).await.use_count, 2);
    assert_eq!(devices_of(&app, &user).await[0].seen_count, 2);
}

#[tokio::test]
async fn an_assertion_by_another_users_credential_is_invalid_credential() {
    let app = TestApp::new().await;
    let (alice, mut alice_key) = passkey_user(&app).await;
    let (bob, mut bob_key) = passkey_user(&app).await;
    let bob_credential = credential_of(&app, &bob).await;

    let begun = app.login_begin(&app.tenant_headers(), &alice.email).await;
    let options = &begun.body["data"]["options"];
    let forged = bob_key
        .authenticate(&allow_only(options, &bob_credential), ORIGIN)
        .unwrap();
    app.login_complete(&app.tenant_headers(), &alice.email, &forged)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
    assert!(sessions_of(&app, &alice).await.is_empty());
    let audit = audit_of(&app, Some(&alice)).await;
    assert_eq!(audit[0].code.as_deref(), Some("INVALID_CREDENTIAL"));
    assert_eq!(
        audit[0].credential_id.as_ref(),
        Some(&bob_credential.credential_id)
    );

    // The failed attempt used the challenge up: alice's own assertion for it is refused.
    let genuine = alice_key.authenticate(options, ORIGIN).unwrap();
    app.login_complete(&app.tenant_headers(), &alice.email, &genuine)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
}

#[tokio::test]
async fn a_user_handle_naming_another_user_or_a_bad_signature_is_invalid_assertion() {
    let app = TestApp::new().await;
    let (alice, mut passkey) = passkey_user(&app).await;
    let (bob, _) = passkey_user(&app).await;

    let mut assertion = app.login_assertion(&alice.email, &mut passkey).await;
    assertion["response"]["userHandle"] = json!(CredentialId::from_bytes(
        bob.user_id.as_uuid().as_bytes().to_vec()
    ));
    app.login_complete(&app.tenant_headers(), &alice.email, &assertion)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_ASSERTION");

    // The right user handle is accepted.
    let mut assertion = app.login_assertion(&alice.email, &mut passkey).await;
    assertion["response"]["userHandle"] = json!(CredentialId::from_bytes(
        alice.user_id.as_uuid().as_bytes().to_vec()
    ));
    let ok = app
        .login_complete(&app.tenant_headers(), &alice.email, &assertion)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    let mut assertion = app.login_assertion(&alice.email, &mut passkey).await;
    let signature = assertion["response"]["signature"].as_str().unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assertion["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(bytes));
    app.login_complete(&app.tenant_headers(), &alice.email, &assertion)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_ASSERTION");
}

#[tokio::test]
async fn an_assertion_without_user_verification_is_refused() {
    let app = TestApp::new().await;
    let user = app
        .add_user(&format!("key-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    // A security key enrolled without UV (the tenant only prefers it), though it has a PIN.
    let mut key = Authenticator::security_key_with_uv();
    let enrolled = app.enroll_user(&user, &mut key, "webauthn_fido").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);

    let begun = app.login_begin(&app.tenant_headers(), &user.email).await;
    let options = &begun.body["data"]["options"];
    assert_eq!(options["userVerification"], "required");
    // A client that drops the requirement gets an assertion without UV.
    let mut weakened = options.clone();
    weakened["userVerification"] = json!("discouraged");
    let assertion = key.authenticate(&weakened, ORIGIN).unwrap();
    let reply = app
        .login_complete(&app.tenant_headers(), &user.email, &assertion)
        .await;
    reply.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_ASSERTION");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("verify the user"));

    // With UV, as asked, the same key logs in.
    let assertion = app.login_assertion(&user.email, &mut key).await;
    let ok = app
        .login_complete(&app.tenant_headers(), &user.email, &assertion)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn an_unknown_email_is_user_not_found_by_default() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4());
    for headers in [app.tenant_headers(), vec![]] {
        app.login_begin(&headers, &ghost)
            .await
            .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    }
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    app.login_complete(&app.tenant_headers(), &ghost, &assertion)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    // The header names a tenant, but no record of this service establishes it: the attempt
    // is logged, not filed under the tenant.
    let audit = audit_of(&app, None).await;
    assert!(audit
        .iter()
        .all(|r| r.code.as_deref() != Some("USER_NOT_FOUND")));
}

#[tokio::test]
async fn a_concealing_tenant_answers_an_unknown_email_like_a_wrong_credential() {
    let app = TestApp::with_tenant(|t| t.conceal_unknown_users = true).await;
    let (alice, _) = passkey_user(&app).await;
    let (mallory, mut mallory_key) = passkey_user(&app).await;
    let mallory_credential = credential_of(&app, &mallory).await;
    let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4());

    // Begin: the same shape for a real and an unknown address.
    let real = app.login_begin(&app.tenant_headers(), &alice.email).await;
    let fake = app.login_begin(&app.tenant_headers(), &ghost).await;
    assert_eq!(real.status, StatusCode::OK, "{}", real.body);
    assert_eq!(fake.status, StatusCode::OK, "{}", fake.body);
    let shape = |r: &Reply| -> Vec<String> {
        let mut keys: Vec<String> = r.body["data"]["options"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(shape(&real), shape(&fake));
    for field in ["rpId", "userVerification", "timeout"] {
        assert_eq!(
            real.body["data"]["options"][field],
            fake.body["data"]["options"][field]
        );
    }
    assert_eq!(real.body["message"], fake.body["message"]);
    // Asking again shows the same stand-in credential, as it would for a real user.
    let fake_again = app.login_begin(&app.tenant_headers(), &ghost).await;
    assert_eq!(
        fake.body["data"]["options"]["allowCredentials"],
        fake_again.body["data"]["options"]["allowCredentials"]
    );

    // Complete: an attacker's own passkey answering each challenge gets one answer for both.
    let mut answers = Vec::new();
    for (email, begun) in [(&alice.email, &real), (&ghost, &fake)] {
        let forged = mallory_key
            .authenticate(
                &allow_only(&begun.body["data"]["options"], &mallory_credential),
                ORIGIN,
            )
            .unwrap();
        let reply = app
            .login_complete(&app.tenant_headers(), email, &forged)
            .await;
        reply.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
        answers.push(reply.body);
    }
    assert_eq!(answers[0], answers[1]);

    // Without X-Tenant-ID the tenant's users cannot be found at all.
    app.login_begin(&[], &alice.email)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
}

#[tokio::test]
async fn an_address_in_several_tenants_needs_the_tenant_header() {
    let app = TestApp::new().await;
    let other = TestApp::build(app.store.clone(), |_| {}).await;
    let email = format!("shared-{}@example.com", uuid::Uuid::new_v4());
    let here = app.add_user(&email).await;
    other.add_user(&email).await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll_user(&here, &mut passkey, PASSKEY).await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);

    let reply = app.login_begin(&[], &email).await;
    reply.assert_v1_error(StatusCode::BAD_REQUEST, "AMBIGUOUS_EMAIL");
    assert_eq!(reply.body["details"]["header"], "X-Tenant-ID");
    let ok = app.passwordless_login(&here, &mut passkey, &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn a_unique_address_needs_no_tenant_header() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let begun = app.login_begin(&[], &user.email.to_uppercase()).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let assertion = passkey
        .authenticate(&begun.body["data"]["options"], ORIGIN)
        .unwrap();
    let reply = app.login_complete(&[], &user.email, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A header naming another tenant does not find the user there.
    let stranger = TestApp::build(app.store.clone(), |_| {}).await;
    app.login_begin(&stranger.tenant_headers(), &user.email)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
}

#[tokio::test]
async fn a_fingerprint_that_is_not_json_still_identifies_the_device() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    for _ in 0..2 {
        let reply = app
            .passwordless_login(
                &user,
                &mut passkey,
                &fingerprint("screen=1920x1080; tz=UTC"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let reply = app.passwordless_login(&user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut devices = devices_of(&app, &user).await;
    devices.sort_by_key(|d| d.seen_count);
    let sources: Vec<(&str, u64)> = devices
        .iter()
        .map(|d| (d.fingerprint_source.as_str(), d.seen_count))
        .collect();
    assert_eq!(sources, [("user_agent", 1), ("opaque_header", 2)]);
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let app = TestApp::new().await;
    let headers = app.tenant_headers();
    for body in [
        "",
        "not json",
        "{}",
        r#"{"email":"a@b.c"}"#,
        r#"{"email":"a@b.c","credential":{}}"#,
    ] {
        let reply = app.login_complete_raw(&headers, body.to_owned()).await;
        reply.assert_v1_error(StatusCode::BAD_REQUEST, "AUTHENTICATION_COMPLETION_FAILED");
    }
    app.login_begin(&headers, "not-an-address")
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    app.login_begin(&header("x-tenant-id", "nope"), "a@b.c")
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    app.refresh(&[], "rt1_garbage")
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    app.logout(&[], "")
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
}

#[tokio::test]
async fn a_user_without_credentials_cannot_begin() {
    let app = TestApp::new().await;
    let user = app
        .add_user(&format!("none-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    app.login_begin(&app.tenant_headers(), &user.email)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "NO_CREDENTIALS");
}

async fn logged_in(app: &TestApp) -> (UserRecord, Value) {
    let (user, mut passkey) = passkey_user(app).await;
    let reply = app.passwordless_login(&user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (user, reply.body["data"].clone())
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = TestApp::new().await;
    let (user, login) = logged_in(&app).await;
    let first = login["refresh_token"].as_str().unwrap();
    let sid = verifier(&app)
        .verify(
            login["access_token"].as_str().unwrap(),
            &settings(),
            app.clock_now(),
        )
        .unwrap()
        .sid
        .unwrap();

    app.clock.advance(600);
    let refreshed = app.refresh(&app.tenant_headers(), first).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["success"], true);
    let data = &refreshed.body["data"];
    let second = data["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(data["token_type"], "bearer");
    let claims = verifier(&app)
        .verify(
            data["access_token"].as_str().unwrap(),
            &settings(),
            app.clock_now(),
        )
        .unwrap();
    assert_eq!((claims.sid, claims.sub), (Some(sid), user.user_id));
    // auth_time stays the time of the login.
    assert_eq!(claims.auth_time, Some(app.clock_now() - 600));
    let stored = session(&app, &json!(sid)).await;
    assert_eq!(stored.rotations, 1);
    assert_eq!(stored.refresh_token_hash, sha256_hex(second.as_bytes()));
    // The refresh lifetime slides, capped by the session's absolute age.
    assert_eq!(
        stored.expires_at,
        (app.clock_now() + i64::from(app.tenant.refresh_token_ttl_secs))
            .min(stored.created_at + i64::from(app.tenant.session_max_age_secs))
    );

    let third = app.refresh(&[], second).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    let third = third.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first token again: someone kept a copy. The whole session ends.
    app.refresh(&[], first)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED");
    let stored = session(&app, &json!(sid)).await;
    assert_eq!(
        stored.revoked_reason.as_deref(),
        Some("refresh_token_reuse")
    );
    app.refresh(&[], &third)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    let audit = audit_of(&app, Some(&user)).await;
    let events: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .map(|r| (r.event.as_str(), r.outcome.as_str(), r.code.as_deref()))
        .collect();
    assert_eq!(
        events,
        [
            ("token_refresh", "failure", Some("INVALID_REFRESH_TOKEN")),
            ("token_refresh", "failure", Some("REFRESH_TOKEN_REUSED")),
            ("token_refresh", "success", None),
            ("token_refresh", "success", None),
            ("passwordless_login", "success", None),
        ]
    );
}

#[tokio::test]
async fn two_concurrent_refreshes_with_one_token_are_treated_as_reuse() {
    let app = TestApp::new().await;
    let (_, login) = logged_in(&app).await;
    let token = login["refresh_token"].as_str().unwrap();
    let (a, b) = tokio::join!(app.refresh(&[], token), app.refresh(&[], token));
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED), "{statuses:?}");
    // Whichever won, the session is over: its new token no longer works.
    for reply in [a, b] {
        if reply.status == StatusCode::OK {
            let next = reply.body["data"]["refresh_token"].as_str().unwrap();
            app.refresh(&[], next)
                .await
                .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
        } else {
            reply.assert_v1_error(StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED");
        }
    }
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestApp::new().await;
    let (_, login) = logged_in(&app).await;
    let token = login["refresh_token"].as_str().unwrap();

    let stranger = TestApp::build(app.store.clone(), |_| {}).await;
    app.logout(&stranger.tenant_headers(), token)
        .await
        .assert_v1_error(StatusCode::FORBIDDEN, "TENANT_MISMATCH");

    let reply = app.logout(&app.tenant_headers(), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["data"]["revoked"], true);
    let stored = session(&app, &reply.body["data"]["session_id"]).await;
    assert_eq!(stored.revoked_reason.as_deref(), Some("logout"));
    app.refresh(&[], token)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    // Logging out again is harmless.
    assert_eq!(app.logout(&[], token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_session_cannot_be_refreshed() {
    let app = TestApp::new().await;
    let (_, login) = logged_in(&app).await;
    app.clock
        .advance(i64::from(app.tenant.refresh_token_ttl_secs) + 1);
    app.refresh(&[], login["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
}

#[tokio::test]
async fn a_deleted_user_cannot_refresh_and_the_session_ends() {
    let app = TestApp::new().await;
    let (user, login) = logged_in(&app).await;
    app.store
        .client()
        .delete_item()
        .table_name(&app.store.tables().users)
        .key(
            "tenant_id",
            aws_sdk_dynamodb::types::AttributeValue::S(user.tenant_id.to_string()),
        )
        .key(
            "user_id",
            aws_sdk_dynamodb::types::AttributeValue::S(user.user_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    app.refresh(&[], login["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    let sessions = sessions_of(&app, &user).await;
    assert_eq!(
        sessions[0].revoked_reason.as_deref(),
        Some("account_deleted")
    );
}

#[tokio::test]
async fn a_concealing_tenant_hides_a_user_without_credentials_too() {
    let app = TestApp::with_tenant(|t| t.conceal_unknown_users = true).await;
    let bare = app
        .add_user(&format!("bare-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let begun = app.login_begin(&app.tenant_headers(), &bare.email).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let stand_ins = begun.body["data"]["options"]["allowCredentials"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert!((1..=2).contains(&stand_ins), "{}", begun.body);
}

#[tokio::test]
async fn a_tenant_named_twice_in_the_lookup_is_read_once() {
    // Two users with one address in one tenant (a race of two creations) name the tenant twice;
    // DynamoDB refuses a batch read with a duplicate key, so the lookup must not send one.
    let app = TestApp::new().await;
    let id = app.tenant.tenant_id;
    let tenants = app.store.get_tenants(&[id, id]).await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].tenant_id, id);
}
