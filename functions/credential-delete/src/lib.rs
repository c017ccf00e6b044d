//! `DELETE /v1/users/me/mfa/webauthn/credentials/{credential_id}`: removes one of the user's
//! credentials. Needs a recent login; refuses the last one (409 `last_factor`) unless the
//! tenant allows it. Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account, credential_id_param, delete_credential};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::state::Common as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::CredentialDeleted, &req);
    let result = delete(state, &req, &mut audit).await;
    audit.conclude(state, &result).await;
    respond(result)
}

async fn delete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    let id = credential_id_param(req)?;
    account.audit(audit, id.to_base64url());
    audit.credential = Some(id.clone());
    account.caller.check_recent_login(&account.tenant, now)?;
    let deleted = delete_credential(&state.store, &account, &id).await?;
    audit.method = Some(deleted.method_type.as_str().to_owned());
    Ok(json_response(
        StatusCode::OK,
        &json!({ "credential_id": deleted.credential_id, "deleted": true }),
    ))
}
