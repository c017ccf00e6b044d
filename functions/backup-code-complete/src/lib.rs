//! `POST /v1/auth/mfa/backup_code/complete` `{"challenge_id", "code"}`: a backup code as the
//! second factor. Same response as the WebAuthn completion. A code works once (conditional
//! update); wrong codes count toward a per-user lockout.
//!
//! Two sequential store round trips on success (README, Performance shape): the challenge is
//! consumed (it carries the user's credentials); then one transaction redeems the code in the
//! slot its keyed hash names (no read of the codes) and writes the audit record. A refused code
//! takes a third: the lockout count (judged against the record the refusal returned) with the
//! failure's audit record.

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
use shared::ids::{TenantId, UserId};
use shared::mfa::{conclude, consume_mfa_challenge, parse_challenge_id, SecondFactor, TokenIssuer};
use shared::policy::Facts;
use shared::state::Common;
use shared::store::{slot_for, BackupCodesRecord, FailedCode, Redemption, Store};
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
    // Round trip 1: the challenge (it carries the user's credentials, read when it was made).
    let challenge = consume_mfa_challenge(store, &id, header, false, now).await?;
    let (tenant_id, user_id) = (challenge.tenant_id, challenge.user_id);
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(tenant_id));
    span.record("user_id", tracing::field::display(user_id));
    // The consumed challenge establishes the tenant: from here on the attempt is filed.
    audit.tenant = Some(tenant_id);
    audit.user = Some(user_id);
    // The tenant's settings, cached per container (README, Tenants): no round trip when warm.
    let tenant = found(
        store.tenant(&tenant_id, now).await?,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    audit.tenant(&tenant);
    let groups = challenge.groups;
    let credentials = match challenge.credentials {
        Some(credentials) => credentials,
        // A challenge made before challenges kept the credentials.
        None => store.list_credentials(&tenant_id, &user_id).await?,
    };

    // Round trip 2: the redemption and its audit record, one transaction.
    redeem(state, &body.code, (&tenant_id, &user_id), audit, now).await?;
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
            groups: groups.as_deref(),
        },
        now,
    )
    .await?;
    tracing::info!(
        event = "mfa_succeeded",
        method = "backup_code",
        "MFA completed with a backup code"
    );
    Ok(json_response(StatusCode::OK, &response))
}

/// Redeems the code: a conditional write on the slot its hash names, with the success audit
/// record. A refusal is counted toward the lockout, with the failure's audit record, in one
/// more write.
async fn redeem(
    state: &State,
    code: &str,
    (tenant, user): (&TenantId, &UserId),
    audit: &mut Audit,
    now: i64,
) -> Result<(), ApiError> {
    let store = &state.common.store;
    let hash = state.backup_codes.hash(tenant, user, code);
    let success = audit
        .success(now)
        .ok_or_else(|| ApiError::internal("audit record without a tenant"))?;
    let refused = match store
        .redeem_backup_code_audited(tenant, user, &slot_for(&hash), &hash, &success, now)
        .await?
    {
        Redemption::Redeemed => {
            audit.committed();
            return Ok(());
        }
        Redemption::Refused(None) => return Err(wrong_code()),
        Redemption::Refused(Some(seen)) => seen,
    };
    if let Some(until) = refused.locked_until(now) {
        return Err(locked(until));
    }
    // Codes stored before slots were named after hashes: find the slot, one more write.
    if !refused.keyed_by_hash() {
        let slot = state
            .backup_codes
            .find_slot(tenant, user, code, &refused.codes);
        if let Some(slot) = slot {
            let redeemed = store
                .redeem_backup_code_audited(tenant, user, &slot, &hash, &success, now)
                .await?;
            if redeemed == Redemption::Redeemed {
                audit.committed();
                return Ok(());
            }
        }
    }
    Err(count_failure(store, &refused, audit, now).await?)
}

/// Counts a wrong or used code and returns its answer: with the audit record in the same
/// write, or (when a concurrent attempt changed the count) the plain counting write.
async fn count_failure(
    store: &Store,
    seen: &BackupCodesRecord,
    audit: &mut Audit,
    now: i64,
) -> Result<ApiError, ApiError> {
    let outcome = seen.next_failure(now, MAX_FAILED_ATTEMPTS, LOCKOUT_SECS);
    let answer = failure_answer(&outcome);
    let record = audit
        .record(Err(&answer), now)
        .ok_or_else(|| ApiError::internal("audit record without a tenant"))?;
    let outcome = if store
        .count_backup_code_failure_audited(seen, &outcome, &record, now)
        .await?
    {
        audit.failure_committed();
        outcome
    } else {
        let (tenant, user) = (&seen.tenant_id, &seen.user_id);
        store
            .record_backup_code_failure(tenant, user, now, MAX_FAILED_ATTEMPTS, LOCKOUT_SECS)
            .await?
    };
    tracing::info!(event = "backup_code_rejected", outcome = ?outcome, "wrong or used backup code");
    Ok(failure_answer(&outcome))
}

fn failure_answer(outcome: &FailedCode) -> ApiError {
    match outcome {
        FailedCode::AttemptsLeft(_) => wrong_code(),
        FailedCode::LockedUntil(until) => locked(*until),
    }
}
