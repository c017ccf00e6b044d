//! `PATCH /v1/admin/tenants/{tenant_id}` `{…settings}` (IAM): changes the settings sent; the
//! result is validated as at creation and never stored if invalid → the tenant.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::admin::{tenant_view, update_tenant, TenantSettings};
use shared::admin_http::{iam_caller, tenant_param};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(update(state, &req).await)
}

async fn update(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let id = tenant_param(req)?;
    let settings: TenantSettings = json_body(req)?;
    let tenant = update_tenant(&state.common.store, &id, settings).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, "tenant updated");
    Ok(json_response(StatusCode::OK, &tenant_view(&tenant)))
}
