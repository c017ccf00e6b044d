//! `PATCH /v1/users/me/mfa/webauthn/credentials/{credential_id}` `{"device_name"}`: renames one
//! of the user's credentials (the same limits as registration). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::account::{account, credential_id_param, credential_of, device_name, CredentialView};
use shared::audit::{Audit, AuditEvent};
use shared::error::{ApiError, ErrorCode};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::state::Common as State;

#[derive(Deserialize)]
struct RenameRequest {
    device_name: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::CredentialRenamed, &req);
    let result = rename(state, &req, &mut audit).await;
    audit.conclude(state, &result).await;
    respond(result)
}

async fn rename(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    let id = credential_id_param(req)?;
    account.audit(audit, id.to_base64url());
    let body: RenameRequest = json_body(req)?;
    let name = device_name(&body.device_name)?;
    let mut record = credential_of(&state.store, &account.caller, &id).await?;
    audit.credential = Some(id);
    if !state.store.rename_credential(&record, &name).await? {
        return Err(ApiError::not_found(
            ErrorCode::CredentialNotFound,
            "the user has no credential with this id",
        ));
    }
    record.device_name = name;
    Ok(json_response(
        StatusCode::OK,
        &CredentialView::from(&record),
    ))
}
