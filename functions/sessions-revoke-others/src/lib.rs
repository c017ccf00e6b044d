//! `DELETE /v1/users/me/sessions`: revokes every live session of the user except the caller's
//! own (all of them when the token belongs to no session). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account, revoke_other_sessions};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::state::Common as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::SessionRevoked, &req);
    let result = revoke(state, &req, &mut audit).await;
    audit.conclude(state, &result).await;
    respond(result)
}

async fn revoke(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    account.audit(audit, "other_sessions".to_owned());
    let current = account.caller.session_id();
    let revoked = revoke_other_sessions(&state.store, &account.caller, current, now, audit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "revoked": revoked, "kept": current }),
    ))
}
