//! `DELETE /v1/admin/tenants/{tenant_id}/users/{user_id}/sessions` (IAM): revokes every live
//! session of the user → `{"revoked": [...]}`. Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::MAX_LISTED_SESSIONS;
use shared::admin::revoke_listed_sessions;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::SessionRevoked, &req);
    let result = revoke(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn revoke(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.common.now();
    let actor = iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let store = &state.common.store;
    // Only an existing user's: the record establishes the tenant for the audit.
    let (found, sessions) = tokio::try_join!(
        store.get_user(&tenant, &user),
        store.list_sessions(&tenant, &user, MAX_LISTED_SESSIONS),
    )?;
    if found.is_none() {
        return Err(shared::admin::AdminError::NotFound(shared::admin::Missing::User).into());
    }
    audit.tenant = Some(tenant);
    audit.user = Some(user);
    audit.actor = Some(actor);
    audit.target = Some("all_sessions".to_owned());
    let revoked = revoke_listed_sessions(store, &sessions, None, now, Some(audit)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "revoked": revoked }),
    ))
}
