//! `GET /v1/users/me/mfa/backup_codes` → `{"remaining", "created_at"}`: how many of the user's
//! backup codes are unused (never the codes themselves, which are stored only as hashes).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::account::{account, BackupCodesStatus};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::state::Common as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(status(state, &req).await)
}

async fn status(state: &State, req: &Request) -> ApiResult {
    let now = state.now();
    let account = account(state, req, now).await?;
    let caller = &account.caller;
    let codes = state
        .store
        .get_backup_codes(&caller.tenant, &caller.user)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &BackupCodesStatus::from(codes.as_ref()),
    ))
}
