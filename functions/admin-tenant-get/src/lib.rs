//! `GET /v1/admin/tenants/{tenant_id}` (IAM): the tenant's settings (never its secret).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::admin::tenant_view;
use shared::admin_http::{iam_caller, tenant_param};
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
    let id = tenant_param(req)?;
    let tenant = state.common.store.get_tenant(&id).await?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    Ok(json_response(StatusCode::OK, &tenant_view(&tenant)))
}
