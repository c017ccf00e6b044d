//! `POST /v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges` `{"ttl_secs"?}` (IAM):
//! the primary login's one call before MFA → `{"challenge_id", "expires_at"}`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::admin::create_mfa_challenge;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::clock::rfc3339;
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use shared::mfa::MFA_CHALLENGE_TTL_SECS;
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[derive(Default, Deserialize)]
struct CreateRequest {
    #[serde(default)]
    ttl_secs: Option<i64>,
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(create(state, &req).await)
}

async fn create(state: &State, req: &Request) -> ApiResult {
    let now = state.common.now();
    iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    // The body is optional: none means the default lifetime.
    let body: CreateRequest = if req.body().is_empty() {
        CreateRequest::default()
    } else {
        json_body(req)?
    };
    let ttl = body.ttl_secs.unwrap_or(MFA_CHALLENGE_TTL_SECS);
    let (id, expires_at) =
        create_mfa_challenge(&state.common.store, &tenant, &user, ttl, now).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "challenge_id": id, "expires_at": rfc3339(expires_at) }),
    ))
}
