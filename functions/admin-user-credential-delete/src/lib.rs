//! `DELETE /v1/admin/tenants/{tenant_id}/users/{user_id}/credentials/{credential_id}` (IAM):
//! removes a credential — the last one too (e.g. a lost key). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::credential_id_param;
use shared::admin::delete_credential;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::CredentialDeleted, &req);
    let result = delete(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn delete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let actor = iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let id = credential_id_param(req)?;
    // The credential, read under the user's key, establishes the tenant (nothing is audited
    // if there is none).
    let mut filed = audit.clone();
    filed.tenant = Some(tenant);
    filed.user = Some(user);
    filed.actor = Some(actor);
    filed.target = Some(id.to_base64url());
    filed.credential = Some(id.clone());
    let now = state.common.now();
    delete_credential(
        &state.common.store,
        &tenant,
        &user,
        &id,
        now,
        Some(&mut filed),
    )
    .await?;
    *audit = filed;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "credential_id": id, "deleted": true }),
    ))
}
