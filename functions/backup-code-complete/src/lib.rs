//! `POST /v1/auth/mfa/backup_code/complete` `{"challenge_id", "code"}`: a backup code as the
//! second factor. Same response as the WebAuthn completion. A code works once (conditional
//! update); wrong codes count toward a per-user lockout.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::audit::{Audit, AuditEvent};
use shared::clock::rfc3339;
use shared::codes::{BackupCodeHasher, LOCKOUT_SECS, MAX_FAILED_ATTEMPTS};
use shared::config::ConfigError;
use shared::error::{found, ApiError, ErrorCode};
use shared::http::{
    json_body, json_response, optional_tenant_header, request_id, respond, ApiResult,
};
use shared::mfa::{conclude, consume_mfa_challenge, parse_challenge_id, SecondFactor, TokenIssuer};
use shared::policy::Facts;
use shared::state::Common;
use shared::store::FailedCode;
use tracing::{instrument, Span};

/// Longer input is not a code; refuse it before hashing.
const MAX_CODE_CHARS: usize = 64;

pub struct State {
    pub common: Common,
    pub issuer: TokenIssuer,
    pub backup_codes: BackupCodeHasher,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Ok(Self {
            issuer: TokenIssuer::from_env(&sdk).await?,
            backup_codes: BackupCodeHasher::from_env(&sdk).await?,
            common: Common::without_tokens(&sdk).await?,
        })
    }
}

#[derive(Deserialize)]
struct CompleteRequest {
    challenge_id: String,
    code: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::MfaBackupCode, &req);
    audit.method = Some("backup_code".into());
    let result = backup_code_complete(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

fn wrong_code() -> ApiError {
    ApiError::InvalidCredential {
        code: ErrorCode::InvalidBackupCode,
        message: "the backup code is not valid".into(),
    }
}

fn locked(until: i64) -> ApiError {
    ApiError::Locked {
        code: ErrorCode::BackupCodesLocked,
        message: "too many wrong backup codes; try again later".into(),
        details: Some(json!({ "locked_until": rfc3339(until) })),
    }
}

async fn backup_code_complete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let header = optional_tenant_header(req)?;
    let body: CompleteRequest = json_body(req)?;
    let id = parse_challenge_id(&body.challenge_id)?;
    let code_chars = body.code.trim().chars().count();
    if code_chars == 0 || code_chars > MAX_CODE_CHARS {
        return Err(ApiError::invalid_field(
            "code",
            "code must be a backup code",
        ));
    }
    let store = &common.store;
    let challenge = consume_mfa_challenge(store, &id, header, false, now).await?;
    let (tenant_id, user_id) = (challenge.tenant_id, challenge.user_id);
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(tenant_id));
    span.record("user_id", tracing::field::display(user_id));
    // The consumed challenge establishes the tenant: from here on the attempt is filed.
    audit.tenant = Some(tenant_id);
    audit.user = Some(user_id);

    let (tenant, codes, credentials) = tokio::try_join!(
        store.tenant(&tenant_id, now),
        store.get_backup_codes(&tenant_id, &user_id),
        store.list_credentials(&tenant_id, &user_id),
    )?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    audit.tenant(&tenant);
    let codes = codes.ok_or_else(wrong_code)?;
    if let Some(until) = codes.locked_until(now) {
        return Err(locked(until));
    }

    let slot = state
        .backup_codes
        .find_slot(&tenant_id, &user_id, &body.code, &codes.codes);
    let redeemed = match &slot {
        Some(slot) => {
            store
                .redeem_backup_code(&tenant_id, &user_id, slot, now)
                .await?
        }
        None => false,
    };
    if !redeemed {
        let outcome = store
            .record_backup_code_failure(
                &tenant_id,
                &user_id,
                now,
                MAX_FAILED_ATTEMPTS,
                LOCKOUT_SECS,
            )
            .await?;
        tracing::info!(event = "backup_code_rejected", outcome = ?outcome, "wrong or used backup code");
        return Err(match outcome {
            FailedCode::AttemptsLeft(_) => wrong_code(),
            FailedCode::LockedUntil(until) => locked(until),
        });
    }
    let response = conclude(
        store,
        &state.issuer.for_request(req)?,
        &tenant,
        user_id,
        &credentials,
        &SecondFactor {
            amr: &["otp", "mfa"],
            facts: Facts::of_request(req),
            has_backup_codes: Some(true),
        },
        now,
    )
    .await?;
    tracing::info!(
        event = "mfa_succeeded",
        method = "backup_code",
        remaining = codes.remaining().saturating_sub(1),
        "MFA completed with a backup code"
    );
    Ok(json_response(StatusCode::OK, &response))
}
