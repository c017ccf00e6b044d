//! `POST /v1/users/me/mfa/backup_codes` → `{"codes", "remaining", "created_at"}`: ten new backup
//! codes, shown this once; the old set stops working. Needs a recent login. Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::account::{account_and_principal, regenerate_backup_codes};
use shared::audit::{Audit, AuditEvent};
use shared::codes::BackupCodeHasher;
use shared::config::ConfigError;
use shared::http::{json_response, request_id, respond, ApiResult};
use shared::policy::Question;
use shared::state::Common;
use tracing::instrument;

pub struct State {
    pub common: Common,
    pub backup_codes: BackupCodeHasher,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Ok(Self {
            backup_codes: BackupCodeHasher::from_env(&sdk).await?,
            common: Common::verifying(&sdk).await?,
        })
    }
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::BackupCodesRegenerated, &req);
    let result = regenerate(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn regenerate(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let (account, principal) = account_and_principal(common, req, now).await?;
    account.audit(audit, "backup_codes".to_owned());
    account.caller.check_change(
        &account.tenant,
        &principal.facts(),
        &Question::RegenerateBackupCodes,
        &account.caller.facts(req, now),
    )?;
    let codes = regenerate_backup_codes(
        &common.store,
        &state.backup_codes,
        &account.caller,
        now,
        audit,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &codes))
}
