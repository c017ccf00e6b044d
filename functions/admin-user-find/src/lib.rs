//! `GET /v1/admin/tenants/{tenant_id}/users?email=…` (IAM): the user with this address in the
//! tenant (the `email-index`), or 404 `user_not_found`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::admin::user_view;
use shared::admin_http::{iam_caller, tenant_param};
use shared::error::{found, ErrorCode};
use shared::http::{json_response, query_param, request_id, respond, ApiResult};
use shared::passwordless::parse_email;
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(find(state, &req).await)
}

async fn find(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let tenant = tenant_param(req)?;
    let email = parse_email(&query_param(req, "email").unwrap_or_default())?;
    let user = state
        .common
        .store
        .find_user_by_email_in_tenant(&tenant, &email)
        .await?;
    let user = found(
        user,
        ErrorCode::UserNotFound,
        "no user of this tenant has this address",
    )?;
    Ok(json_response(StatusCode::OK, &user_view(&user)))
}
