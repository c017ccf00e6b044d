//! `DELETE /v1/users/me/mfa/webauthn/credentials/{credential_id}`: removes one of the user's
//! credentials. Needs a recent login; refuses the last one (409 `last_factor`) unless the
//! tenant allows it. Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::{account_and_principal, credential_id_param, delete_credential};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_response, request_id, respond, ApiResult};
use shared::policy::{AuthenticatorFacts, Question};
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
    let id = credential_id_param(req)?;
    let (account, principal) = account_and_principal(state, req, now).await?;
    account.audit(audit, id.to_base64url());
    audit.credential = Some(id.clone());
    let target = principal
        .credentials
        .iter()
        .find(|c| c.credential_id == id)
        .map_or_else(AuthenticatorFacts::default, AuthenticatorFacts::of);
    account.caller.check_change(
        &account.tenant,
        &principal.facts(),
        &Question::DeleteAuthenticator(&target),
        &account.caller.facts(req, now),
    )?;
    let deleted = delete_credential(
        &state.store,
        &account,
        &id,
        principal.credentials,
        now,
        audit,
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "credential_id": deleted.credential_id, "deleted": true }),
    ))
}
