//! Every sample event in `events/` replays through its handler with the documented status.

use lambda_http::http::StatusCode;
use serde_json::Value;

use crate::harness::{Reply, TestApp};

fn load(name: &str, app: &TestApp) -> lambda_http::Request {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("JSON");
    // The samples carry placeholders for the token and tenant of a live deployment.
    event["headers"]["authorization"] = Value::String(format!("Bearer {}", app.token()));
    event["headers"]["x-tenant-id"] = Value::String(app.tenant.tenant_id.to_string());
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
