//! `GET /v1/users/me/sessions` → `{"sessions": [...]}`: the user's live passwordless sessions,
//! newest first, with device, IP, user agent, times, and which one is the caller's.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account, live_sessions, SessionView};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::state::Common as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(list(state, &req).await)
}

async fn list(state: &State, req: &Request) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    let current = account.caller.session_id();
    let sessions = live_sessions(&state.store, &account.caller, now).await?;
    let sessions: Vec<SessionView> = sessions
        .iter()
        .map(|s| SessionView::of(s, current))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "sessions": sessions }),
    ))
}
