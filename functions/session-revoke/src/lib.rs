//! `DELETE /v1/users/me/sessions/{session_id}`: revokes one of the user's sessions (its refresh
//! token stops working, and its access tokens can no longer change authenticators). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account_and, revoke_own_session, session_id_param};
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
    let id = session_id_param(req)?;
    let (account, session) = account_and(state, req, now, |store, _| async move {
        Ok(store.get_session(&id).await?)
    })
    .await?;
    account.audit(audit, id.to_string());
    revoke_own_session(&state.store, &account.caller, &id, session, now, audit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "session_id": id, "revoked": true }),
    ))
}
