//! `PATCH /v1/users/me/mfa/webauthn/credentials/{credential_id}` `{"device_name"}`: renames one
//! of the user's credentials (the same limits as registration). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::account::{
    account_and, credential_id_param, credential_of, device_name, CredentialView,
};
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
    let id = credential_id_param(req)?;
    let read = id.clone();
    let (account, record) = account_and(state, req, now, |store, caller| async move {
        Ok(credential_of(&store, &caller, &read).await)
    })
    .await?;
    account.audit(audit, id.to_base64url());
    let body: RenameRequest = json_body(req)?;
    let name = device_name(&body.device_name)?;
    let mut record = record?;
    audit.credential = Some(id);
    let success = audit.success(now);
    if state
        .store
        .rename_credential(&record, &name, success.as_ref())
        .await?
    {
        audit.committed();
    } else {
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
