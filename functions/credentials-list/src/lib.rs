//! `GET /v1/users/me/mfa/webauthn/credentials` → `{"credentials": [...]}`: the user's passkeys
//! and security keys with their names, models and use.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account, CredentialView};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::{instrument, Span};

pub use shared::state::Common as State;

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(list(state, &req).await)
}

async fn list(state: &State, req: &Request) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    let caller = &account.caller;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(caller.tenant));
    span.record("user_id", tracing::field::display(caller.user));
    let records = state
        .store
        .list_credentials(&caller.tenant, &caller.user)
        .await?;
    let credentials: Vec<CredentialView> = records.iter().map(CredentialView::from).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "credentials": credentials }),
    ))
}
