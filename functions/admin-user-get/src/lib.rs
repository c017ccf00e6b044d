//! `GET /v1/admin/tenants/{tenant_id}/users/{user_id}` (IAM): the user, or 404.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::admin::user_view;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::error::{found, ErrorCode};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(get(state, &req).await)
}

async fn get(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let user = state.common.store.get_user(&tenant, &user).await?;
    let user = found(user, ErrorCode::UserNotFound, "the user does not exist")?;
    Ok(json_response(StatusCode::OK, &user_view(&user)))
}
