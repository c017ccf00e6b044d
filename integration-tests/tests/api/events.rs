//! Every sample event in `events/` replays through its handler with the documented status.

use lambda_http::http::StatusCode;
use serde_json::Value;

use crate::harness::{Reply, TestApp};

fn load(name: &str, app: &TestApp) -> lambda_http::Request {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("JSON");
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
