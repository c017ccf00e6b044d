//! Every sample event in `events/` replays through its handler with the documented status.

use lambda_http::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Authenticator, Reply, TestApp};

fn load_json(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("JSON")
}

fn load(name: &str, app: &TestApp) -> lambda_http::Request {
    let mut event = load_json(name);
    // Token-authenticated samples carry placeholders for a live deployment's token and tenant.
    if event["headers"].get("authorization").is_some() {
        event["headers"]["authorization"] = Value::String(format!("Bearer {}", app.token()));
        event["headers"]["x-tenant-id"] = Value::String(app.tenant.tenant_id.to_string());
    }
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

#[tokio::test]
async fn register_options_event_returns_options() {
    let app = TestApp::new().await;
    let reply = Reply::from(
        register_options::handler(&app.register_options, load("register-options", &app)).await,
    );
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["options"]["challenge"].is_string());
}

#[tokio::test]
async fn register_complete_event_finds_no_pending_enrollment() {
    let app = TestApp::new().await;
    let reply = Reply::from(
        register_complete::handler(&app.register_complete, load("register-complete", &app)).await,
    );
    reply.assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
}

#[tokio::test]
async fn mfa_options_event_finds_no_challenge() {
    let app = TestApp::new().await;
    let reply =
        Reply::from(mfa_options::handler(&app.mfa_options, load("mfa-options", &app)).await);
    reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

#[tokio::test]
async fn mfa_complete_event_finds_no_challenge() {
    let app = TestApp::new().await;
    let reply =
        Reply::from(mfa_complete::handler(&app.mfa_complete, load("mfa-complete", &app)).await);
    reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

#[tokio::test]
async fn backup_code_complete_event_finds_no_challenge() {
    let app = TestApp::new().await;
    let reply = Reply::from(
        backup_code_complete::handler(
            &app.backup_code_complete,
            load("backup-code-complete", &app),
        )
        .await,
    );
    reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

#[tokio::test]
async fn jwks_event_returns_the_keys() {
    let app = TestApp::new().await;
    let reply = Reply::from(jwks::handler(&app.jwks, load("jwks", &app)).await);
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["keys"][0]["kid"], app.key.kid());
}

#[tokio::test]
async fn authenticate_begin_event_returns_options_for_an_enrolled_user() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, "webauthn_passkey", "laptop").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let mut event = load_json("authenticate-begin");
    // The sample's address, replaced by this test's user (in this test's tenant).
    event["body"] = Value::String(json!({ "email": app.user.email }).to_string());
    event["headers"]["x-tenant-id"] = Value::String(app.tenant.tenant_id.to_string());
    let req = lambda_http::request::from_str(&event.to_string()).expect("event");
    let reply = Reply::from(authenticate_begin::handler(&app.authenticate_begin, req).await);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
    assert_eq!(
        reply.body["data"]["options"]["userVerification"],
        "required"
    );
}

#[tokio::test]
async fn authenticate_complete_event_finds_no_user() {
    let app = TestApp::new().await;
    let reply = Reply::from(
        authenticate_complete::handler(
            &app.authenticate_complete,
            load("authenticate-complete", &app),
        )
        .await,
    );
    reply.assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
}

#[tokio::test]
async fn refresh_and_logout_events_refuse_the_sample_token() {
    let app = TestApp::new().await;
    let refresh =
        Reply::from(auth_refresh::handler(&app.auth_refresh, load("auth-refresh", &app)).await);
    refresh.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    let logout =
        Reply::from(auth_logout::handler(&app.auth_logout, load("auth-logout", &app)).await);
    logout.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
}

#[test]
fn every_function_has_an_event() {
    let dir = format!("{}/../functions", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).expect("functions/") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        let event = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&event).exists(),
            "no events/{name}.json"
        );
    }
}

/// The self-service samples replay through their handlers with the documented answers: the
/// sample ids name nothing of the test user.
#[tokio::test]
async fn self_service_events_replay() {
    let app = TestApp::new().await;
    let c = &app.common;
    let list = Reply::from(credentials_list::handler(c, load("credentials-list", &app)).await);
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["credentials"], json!([]));
    Reply::from(credential_rename::handler(c, load("credential-rename", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
    Reply::from(credential_delete::handler(c, load("credential-delete", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
    let codes =
        Reply::from(backup_codes_status::handler(c, load("backup-codes-status", &app)).await);
    assert_eq!(codes.body, json!({ "remaining": 0, "created_at": null }));
    let fresh = Reply::from(
        backup_codes_regenerate::handler(
            &app.backup_codes_regenerate,
            load("backup-codes-regenerate", &app),
        )
        .await,
    );
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let sessions = Reply::from(sessions_list::handler(c, load("sessions-list", &app)).await);
    assert_eq!(sessions.body["sessions"], json!([]));
    Reply::from(session_revoke::handler(c, load("session-revoke", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "session_not_found");
    let others =
        Reply::from(sessions_revoke_others::handler(c, load("sessions-revoke-others", &app)).await);
    assert_eq!(others.status, StatusCode::OK, "{}", others.body);
}

/// The admin samples carry the IAM identity API Gateway adds; their ids name nothing here.
#[tokio::test]
async fn admin_events_replay() {
    let app = TestApp::new().await;
    let s = &app.admin;
    Reply::from(admin_user_create::handler(s, load("admin-user-create", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "tenant_not_found");
    Reply::from(admin_user_find::handler(s, load("admin-user-find", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    Reply::from(admin_user_delete::handler(s, load("admin-user-delete", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    Reply::from(
        admin_mfa_challenge_create::handler(s, load("admin-mfa-challenge-create", &app)).await,
    )
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    Reply::from(
        admin_user_sessions_revoke::handler(s, load("admin-user-sessions-revoke", &app)).await,
    )
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    let created =
        Reply::from(admin_tenant_create::handler(s, load("admin-tenant-create", &app)).await);
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    Reply::from(admin_tenant_get::handler(s, load("admin-tenant-get", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "tenant_not_found");
    Reply::from(admin_tenant_update::handler(s, load("admin-tenant-update", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "tenant_not_found");
    Reply::from(
        admin_user_credentials_list::handler(s, load("admin-user-credentials-list", &app)).await,
    )
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    Reply::from(
        admin_user_credential_delete::handler(s, load("admin-user-credential-delete", &app)).await,
    )
    .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
    let tenants =
        Reply::from(admin_tenants_list::handler(s, load("admin-tenants-list", &app)).await);
    assert_eq!(tenants.status, StatusCode::OK, "{}", tenants.body);
    Reply::from(admin_user_get::handler(s, load("admin-user-get", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    Reply::from(admin_user_update::handler(s, load("admin-user-update", &app)).await)
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    let audit = Reply::from(admin_audit_query::handler(s, load("admin-audit-query", &app)).await);
    assert_eq!(audit.body["records"], json!([]), "{}", audit.body);
}
