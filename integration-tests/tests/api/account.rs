//! Self-service account management (`/v1/users/me/…`): list, rename and delete authenticators,
//! backup-code status and regeneration, sessions; with real soft authenticators and logins.

use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::store::UserRecord;

use crate::harness::{auth_headers, Authenticator, Reply, TestApp};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";
const CREDENTIALS: &str = "/v1/users/me/mfa/webauthn/credentials";
const CREDENTIAL: &str = "/v1/users/me/mfa/webauthn/credentials/{credential_id}";
const CODES: &str = "/v1/users/me/mfa/backup_codes";
const SESSIONS: &str = "/v1/users/me/sessions";
const SESSION: &str = "/v1/users/me/sessions/{session_id}";

use crate::harness::me;

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The app's user with a passkey and a security key; returns their credential ids in order.
async fn two_authenticators(app: &TestApp) -> (Authenticator, Authenticator, Vec<String>) {
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "YubiKey").await.status,
        StatusCode::OK
    );
    let listed = me(
        app,
        "GET",
        CREDENTIALS,
        &[],
        &app.auth_headers(&app.token()),
        None,
    )
    .await;
    (passkey, key, ids(&listed))
}

fn old_login(app: &TestApp) -> Vec<(String, String)> {
    let mut claims = app.claims_for(&app.user);
    claims.auth_time =
        Some(app.clock_now() - i64::from(app.tenant.reauthentication_window_secs) - 1);
    app.auth_headers(&app.key.sign(&claims).unwrap())
}

#[tokio::test]
async fn the_credential_list_describes_each_authenticator() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let empty = me(&app, "GET", CREDENTIALS, &[], &headers, None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["credentials"], json!([]));

    let (_, _, ids) = two_authenticators(&app).await;
    assert_eq!(ids.len(), 2);
    let listed = me(&app, "GET", CREDENTIALS, &[], &headers, None).await;
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    for (entry, record) in listed.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&stored)
    {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "aaguid",
                "authenticator",
                "backup_eligible",
                "backup_state",
                "created_at",
                "credential_id",
                "device_name",
                "last_used_at",
                "method_type",
                "transports",
                "use_count"
            ]
        );
        assert_eq!(entry["credential_id"], record.credential_id.to_base64url());
        assert_eq!(entry["device_name"], record.device_name.as_str());
        assert_eq!(entry["method_type"], record.method_type.as_str());
        assert_eq!(entry["aaguid"], record.aaguid.to_string());
        assert!(entry["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(entry["last_used_at"], Value::Null);
    }
    // Soft authenticators' model is unknown; a known AAGUID gets its name (the shipped list).
    assert!(listed.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["authenticator"].is_null()));
    let mut yubikey = stored[0].clone();
    yubikey.credential_id = shared::ids::CredentialId::from_bytes(vec![9; 32]);
    yubikey.aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap();
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().credentials)
        .set_item(Some(serde_dynamo::to_item(&yubikey).unwrap()))
        .send()
        .await
        .unwrap();
    let listed = me(&app, "GET", CREDENTIALS, &[], &headers, None).await;
    let named = listed.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["credential_id"] == yubikey.credential_id.to_base64url())
        .unwrap();
    assert_eq!(named["authenticator"]["name"], "YubiKey 5 Series");
    // Another tenant's token sees nothing of this user.
    let other = TestApp::new().await;
    let theirs = me(
        &other,
        "GET",
        CREDENTIALS,
        &[],
        &other.auth_headers(&other.token()),
        None,
    )
    .await;
    assert_eq!(theirs.body["credentials"], json!([]));
}

#[tokio::test]
async fn renaming_applies_the_registration_limits_and_only_to_own_credentials() {
    let app = TestApp::new().await;
    let (_, _, ids) = two_authenticators(&app).await;
    let headers = app.auth_headers(&app.token());
    let id = ids[0].as_str();
    let renamed = me(
        &app,
        "PATCH",
        CREDENTIAL,
        &[("credential_id", id)],
        &headers,
        Some(json!({ "device_name": "  Work phone  " })),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["device_name"], "Work phone");
    let listed = me(&app, "GET", CREDENTIALS, &[], &headers, None).await;
    assert!(listed.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["device_name"] == "Work phone"));

    me(
        &app,
        "PATCH",
        CREDENTIAL,
        &[("credential_id", id)],
        &headers,
        Some(json!({ "device_name": "x".repeat(101) })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    me(
        &app,
        "PATCH",
        CREDENTIAL,
        &[("credential_id", "not base64!")],
        &headers,
        Some(json!({ "device_name": "x" })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // Bob cannot rename alice's credential: it is not under his key.
    let bob = app.add_user("bob@example.com").await;
    let bobs = auth_headers(&app.token_for(&bob), &bob.tenant_id);
    me(
        &app,
        "PATCH",
        CREDENTIAL,
        &[("credential_id", id)],
        &bobs,
        Some(json!({ "device_name": "mine now" })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
}

#[tokio::test]
async fn deleting_needs_a_recent_login_and_never_removes_the_last_factor() {
    let app = TestApp::new().await;
    let (_, _, ids) = two_authenticators(&app).await;
    let headers = app.auth_headers(&app.token());
    me(
        &app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", &ids[0])],
        &old_login(&app),
        None,
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    let deleted = me(
        &app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", &ids[0])],
        &headers,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["credential_id"], ids[0].as_str());
    me(
        &app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", &ids[0])],
        &headers,
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
    me(
        &app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", &ids[1])],
        &headers,
        None,
    )
    .await
    .assert_error(StatusCode::CONFLICT, "last_factor");
    let left = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    // Audited with actor and target.
    let audit = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 20)
        .await
        .unwrap();
    let record = audit
        .iter()
        .find(|r| r.event == "credential_deleted" && r.outcome == "success")
        .expect("audited");
    assert_eq!(
        record.actor.as_deref(),
        Some(format!("user:{}", app.user.user_id).as_str())
    );
    assert_eq!(record.target.as_deref(), Some(ids[0].as_str()));
}

#[tokio::test]
async fn a_tenant_may_allow_removing_the_last_authenticator() {
    let app = TestApp::with_tenant(|t| t.allow_removing_last_factor = true).await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let headers = app.auth_headers(&app.token());
    let listed = me(&app, "GET", CREDENTIALS, &[], &headers, None).await;
    let id = ids(&listed).remove(0);
    let deleted = me(
        &app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", &id)],
        &headers,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let left = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert!(left.is_empty());
}

/// Two deletions of the last two authenticators at once: the condition on the one kept makes
/// one of them fail, so the user is never left without an authenticator.
#[tokio::test]
async fn concurrent_deletions_of_the_last_two_leave_one() {
    let app = TestApp::new().await;
    let (_, _, ids) = two_authenticators(&app).await;
    let headers = app.auth_headers(&app.token());
    let replies = futures::future::join_all(ids.iter().map(|id| {
        let (app, headers) = (&app, &headers);
        async move {
            let params = [("credential_id", id.as_str())];
            me(app, "DELETE", CREDENTIAL, &params, headers, None).await
        }
    }))
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{replies:?}");
    let refused = replies.iter().find(|r| r.status != StatusCode::OK).unwrap();
    refused.assert_error(StatusCode::CONFLICT, "last_factor");
    let left = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn regenerated_backup_codes_replace_the_old_set() {
    let app = TestApp::new().await;
    let first = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    let old_code = first.body["codes"][0].as_str().unwrap().to_owned();
    let headers = app.auth_headers(&app.token());
    let status = me(&app, "GET", CODES, &[], &headers, None).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["remaining"], 10);
    assert!(status.body["created_at"].is_string());

    me(&app, "POST", CODES, &[], &old_login(&app), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    let fresh = me(&app, "POST", CODES, &[], &headers, None).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let codes = fresh.body["codes"].as_array().unwrap();
    assert_eq!((codes.len(), &fresh.body["remaining"]), (10, &json!(10)));
    assert!(!codes.iter().any(|c| c == old_code.as_str()));

    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, &old_code)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    let challenge = app.mfa_challenge(&app.user).await;
    let ok = app
        .backup_code(&challenge, codes[0].as_str().unwrap())
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let status = me(&app, "GET", CODES, &[], &headers, None).await;
    assert_eq!(status.body["remaining"], 9);
}

async fn passwordless(app: &TestApp, user: &UserRecord, passkey: &mut Authenticator) -> Value {
    let reply = app.passwordless_login(user, passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["data"].clone()
}

#[tokio::test]
async fn users_list_and_revoke_their_sessions() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let laptop = passwordless(&app, &app.user, &mut passkey).await;
    let phone = passwordless(&app, &app.user, &mut passkey).await;
    let tablet = passwordless(&app, &app.user, &mut passkey).await;
    let headers = auth_headers(
        laptop["access_token"].as_str().unwrap(),
        &app.tenant.tenant_id,
    );

    let listed = me(&app, "GET", SESSIONS, &[], &headers, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let sessions = listed.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["ip"] == "127.0.0.1"));

    // Revoke the phone's session by id: its refresh token stops working.
    let phone_sid = shared::session::session_of(phone["refresh_token"].as_str().unwrap())
        .unwrap()
        .to_string();
    let revoked = me(
        &app,
        "DELETE",
        SESSION,
        &[("session_id", &phone_sid)],
        &headers,
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    app.refresh(&[], phone["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    // Someone else's session id is not found.
    let bob = app.add_user("bob@example.com").await;
    let bobs = auth_headers(&app.token_for(&bob), &bob.tenant_id);
    let laptop_sid = shared::session::session_of(laptop["refresh_token"].as_str().unwrap())
        .unwrap()
        .to_string();
    me(
        &app,
        "DELETE",
        SESSION,
        &[("session_id", &laptop_sid)],
        &bobs,
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "session_not_found");

    // Revoke all the others: the tablet's ends, the laptop's (the caller's) stays.
    let others = me(&app, "DELETE", SESSIONS, &[], &headers, None).await;
    assert_eq!(others.status, StatusCode::OK, "{}", others.body);
    assert_eq!(others.body["revoked"].as_array().unwrap().len(), 1);
    app.refresh(&[], tablet["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    let listed = me(&app, "GET", SESSIONS, &[], &headers, None).await;
    let sessions = listed.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    let refreshed = app
        .refresh(&[], laptop["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[tokio::test]
async fn the_token_of_a_revoked_session_manages_nothing() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let login = passwordless(&app, &app.user, &mut passkey).await;
    let headers = auth_headers(
        login["access_token"].as_str().unwrap(),
        &app.tenant.tenant_id,
    );
    let logout = app
        .logout(&[], login["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    for (method, route) in [
        ("GET", CREDENTIALS),
        ("GET", CODES),
        ("POST", CODES),
        ("GET", SESSIONS),
        ("DELETE", SESSIONS),
    ] {
        me(&app, method, route, &[], &headers, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session_revoked");
    }
    // No token, another tenant's header: the usual refusals.
    me(&app, "GET", CREDENTIALS, &[], &app.tenant_headers(), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}
