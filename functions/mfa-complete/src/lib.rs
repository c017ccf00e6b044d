//! `POST /v1/auth/mfa/webauthn/complete` (seed 000): verifies the assertion against the MFA
//! challenge (consumed atomically), records the credential's use and issues the system JWT —
//! or, per tenant policy, a setup-only token or an enrollment grant.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{Audit, AuditEvent};
use shared::error::{ApiError, ErrorCode};
use shared::http::{
    json_body, json_response, optional_tenant_header, request_id, respond, ApiResult,
};
use shared::ids::CredentialId;
use shared::mfa::{conclude, consume_mfa_challenge, parse_challenge_id, MfaCeremony, SecondFactor};
use shared::policy::Facts;
use shared::store::{ChallengeRecord, CredentialRecord, Store, UseOutcome};
use shared::webauthn::webauthn_rs_proto::PublicKeyCredential;
use shared::webauthn::{
    credential_use, finish_authentication, key_amr, presented_credential_id, AssertionRejected,
};
use tracing::{instrument, Span};

/// Store, verifier, clock and the signing key, built once per cold start.
pub type State = shared::state::Issuing;

#[derive(Deserialize)]
struct CompleteRequest {
    challenge_id: String,
    credential: PublicKeyCredential,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id, credential_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::MfaWebauthn, &req);
    let result = mfa_complete(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn mfa_complete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let header = optional_tenant_header(req)?;
    let body: CompleteRequest = json_body(req)?;
    let id = parse_challenge_id(&body.challenge_id)?;
    let presented = presented_credential_id(&body.credential.raw_id)?;
    let store = &common.store;

    let challenge = consume_mfa_challenge(store, &id, header, true, now).await?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(challenge.tenant_id));
    span.record("user_id", tracing::field::display(challenge.user_id));
    span.record("credential_id", tracing::field::display(&presented));
    // The consumed challenge establishes the tenant: from here on the attempt is filed.
    audit.tenant = Some(challenge.tenant_id);
    audit.user = Some(challenge.user_id);
    audit.credential = Some(presented.clone());

    let ceremony: MfaCeremony =
        serde_json::from_str(challenge.state.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::internal(format!("stored MFA state: {e}")))?;
    // The tenant's settings, cached per container (README, Tenants): no round trip when warm.
    let tenant = store
        .tenant(&challenge.tenant_id, now)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::TenantNotFound, "the tenant does not exist")
        })?;
    let tenant = &tenant;
    audit.tenant(tenant);
    let verified = finish_authentication(
        tenant,
        &ceremony.auth,
        &body.credential,
        &ceremony.credentials,
    )?;
    let result = match verified {
        Ok(result) => result,
        Err(rejected) => return Err(refusal(store, &challenge, &presented, rejected).await),
    };
    let record = ceremony
        .credentials
        .iter()
        .find(|c| c.credential_id.as_bytes() == result.cred_id().as_slice())
        .ok_or_else(|| ApiError::internal("verified credential is not in the MFA state"))?;
    audit.method = Some(record.method_type.as_str().to_owned());

    // The counter is judged against the live stored value here, not the snapshot.
    let used = credential_use(record, &result, now);
    // The audit record of the success is written with it (one round trip).
    let success = audit.success(now);
    match store
        .record_credential_use(record, &used, success.as_ref())
        .await?
    {
        UseOutcome::Recorded => audit.committed(),
        UseOutcome::CredentialGone => return Err(invalid_credential()),
        UseOutcome::CounterNotAdvanced => {
            return Err(seed_rejection(AssertionRejected::CounterNotAdvanced))
        }
    }
    let amr = amr(record, result.user_verified());
    let response = conclude(
        store,
        &state.issuer.for_request(req)?,
        tenant,
        challenge.user_id,
        &ceremony.credentials,
        &SecondFactor {
            amr: &amr,
            facts: Facts {
                uv: Some(result.user_verified()),
                ..Facts::of_request(req)
            },
            has_backup_codes: None,
            groups: challenge.groups.as_deref(),
        },
        now,
    )
    .await?;
    tracing::info!(
        event = "mfa_succeeded",
        method = record.method_type.as_str(),
        mfa_setup_required = response.mfa_setup_required,
        enrollment_required = response.enrollment_required,
        "MFA completed"
    );
    Ok(json_response(StatusCode::OK, &response))
}

/// RFC 8176 methods: a hardware- or software-secured key, user verification, multiple factors.
fn amr(record: &CredentialRecord, user_verified: bool) -> Vec<&'static str> {
    let mut amr = vec![key_amr(record)];
    if user_verified {
        amr.push("user");
    }
    amr.push("mfa");
    amr
}

fn invalid_credential() -> ApiError {
    ApiError::InvalidCredential {
        code: ErrorCode::InvalidCredential,
        message: "the credential could not be verified".into(),
    }
}

/// The seed surface's answer to a refused assertion.
fn seed_rejection(rejected: AssertionRejected) -> ApiError {
    let (code, message) = match rejected {
        AssertionRejected::CounterNotAdvanced => (
            ErrorCode::PossibleClonedAuthenticator,
            "the authenticator's signature counter did not advance; it may be cloned",
        ),
        AssertionRejected::BackupEligibilityChanged => (
            ErrorCode::PossibleClonedAuthenticator,
            "the authenticator reports another backup eligibility than at registration; it may be cloned or tampered with",
        ),
        AssertionRejected::UserNotVerified => (
            ErrorCode::UserVerificationRequired,
            "the authenticator did not verify the user, which this login requires",
        ),
        AssertionRejected::UnknownCredential
        | AssertionRejected::UserHandleMismatch
        | AssertionRejected::Invalid => (
            ErrorCode::InvalidCredential,
            "the credential could not be verified",
        ),
    };
    ApiError::InvalidCredential {
        code,
        message: message.into(),
    }
}

/// A credential of another tenant is reported as a tenant mismatch; everything else keeps the
/// verification error.
async fn refusal(
    store: &Store,
    challenge: &ChallengeRecord,
    presented: &CredentialId,
    rejected: AssertionRejected,
) -> ApiError {
    if rejected != AssertionRejected::UnknownCredential {
        return seed_rejection(rejected);
    }
    match store.find_credentials_by_id(presented).await {
        Ok(records) if records.iter().any(|r| r.tenant_id != challenge.tenant_id) => {
            tracing::warn!(
                event = "cross_tenant_credential",
                "credential of another tenant presented"
            );
            ApiError::TenantMismatch
        }
        Ok(_) => seed_rejection(rejected),
        Err(lookup) => {
            tracing::warn!(error = %lookup, "credential lookup after failed assertion");
            seed_rejection(rejected)
        }
    }
}
