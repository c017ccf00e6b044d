//! `DELETE /v1/admin/tenants/{tenant_id}/users/{user_id}` (IAM): erases the user — credentials,
//! backup codes, sessions, devices, pending challenges, then the record; audit records stay.
//! Resumable: a failed erasure leaves a user who can do nothing, and calling again finishes.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::admin::delete_user;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::UserDeleted, &req);
    let result = delete(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn delete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.common.now();
    let actor = iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let erased = delete_user(&state.common.store, &tenant, &user, now).await?;
    // The user record (read and marked by the erasure) established the tenant.
    audit.tenant = Some(tenant);
    audit.user = Some(user);
    audit.actor = Some(actor);
    audit.target = Some(format!("user:{user}"));
    Ok(json_response(
        StatusCode::OK,
        &json!({ "user_id": user, "deleted": true, "erased": erased }),
    ))
}
