//! `GET /v1/admin/tenants?limit=&cursor=` (IAM): tenants a page at a time →
//! `{"tenants": [...], "next_cursor": "…" | null}` (never their secrets).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::admin::tenant_view;
use shared::admin_http::{cursor_param, encode_cursor, iam_caller, page_limit};
use shared::http::{json_response, request_id, respond, ApiResult};
use shared::ids::TenantId;
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(list(state, &req).await)
}

async fn list(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let limit = page_limit(req)?;
    let start = cursor_param(req, &["tenant_id"], |_, id| id.parse::<TenantId>().is_ok())?;
    let (tenants, next) = state.common.store.list_tenants(limit, start).await?;
    let tenants: Vec<_> = tenants.iter().map(tenant_view).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "tenants": tenants, "next_cursor": next.as_ref().map(encode_cursor) }),
    ))
}
