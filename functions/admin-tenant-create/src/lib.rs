//! `POST /v1/admin/tenants` `{name, rp_id, origins, …settings}` (IAM): creates a tenant with
//! the same validation as `authctl tenant create` → the tenant (never its secret).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::admin::{create_tenant, tenant_view, TenantSettings};
use shared::admin_http::iam_caller;
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(create(state, &req).await)
}

async fn create(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let settings: TenantSettings = json_body(req)?;
    let tenant = create_tenant(&state.common.store, settings, state.common.now()).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, "tenant created");
    Ok(json_response(StatusCode::OK, &tenant_view(&tenant)))
}
