//! `POST /v1/auth/mfa/webauthn/complete` (seed 000): verifies the assertion against the MFA
//! challenge (consumed atomically), records the credential's use and issues the system JWT —
//! or, per tenant policy, a setup-only token or an enrollment grant.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{Audit, AuditEvent};
use shared::error::ApiError;
use shared::http::{
    json_body, json_response, optional_tenant_header, request_id, respond, ApiResult,
};
use shared::ids::CredentialId;
use shared::mfa::{
    challenge_not_found, check_optional_tenant_header, conclude, parse_challenge_id, MfaCeremony,
};
use shared::store::{ChallengeKind, ChallengeRecord, ConsumeChallenge, CredentialRecord, Store};
use shared::webauthn::webauthn_rs_proto::PublicKeyCredential;
use shared::webauthn::{credential_use, finish_authentication, key_amr};
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
    audit.tenant = optional_tenant_header(req).ok().flatten();
    let body: CompleteRequest = json_body(req)?;
    let key = ChallengeKind::Mfa.key(&parse_challenge_id(&body.challenge_id)?);
    let presented = CredentialId::from_bytes(body.credential.raw_id.clone());
    audit.credential = Some(presented.clone());
    let store = &common.store;

    let challenge = store
        .consume_challenge(ConsumeChallenge {
            key: &key,
            kind: ChallengeKind::Mfa,
            tenant: None,
            user: None,
            method_type: None,
            require_state: true,
            now,
        })
        .await?
        .ok_or_else(challenge_not_found)?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(challenge.tenant_id));
    span.record("user_id", tracing::field::display(challenge.user_id));
    span.record("credential_id", tracing::field::display(&presented));
    audit.tenant = Some(challenge.tenant_id);
    audit.user = Some(challenge.user_id);
    check_optional_tenant_header(req, &challenge.tenant_id)?;

    let ceremony: MfaCeremony =
        serde_json::from_str(challenge.state.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::internal(format!("stored MFA state: {e}")))?;
    let tenant = &ceremony.tenant;
    audit.tenant(tenant);
    let result = match finish_authentication(tenant, &ceremony.auth, &body.credential) {
        Ok(result) => result,
        Err(err) => return Err(explain_failure(store, &challenge, &presented, err).await),
    };
    let record = ceremony
        .credentials
        .iter()
        .find(|c| c.credential_id.as_bytes() == result.cred_id().as_slice())
        .ok_or_else(|| ApiError::internal("verified credential is not in the MFA state"))?;
    audit.method = Some(record.method_type.as_str().to_owned());

    let used = credential_use(record, &result, now);
    // The credential must still exist (it may have been removed since the options call).
    if !store.record_credential_use(record, &used).await? {
        return Err(invalid_credential());
    }
    let amr = amr(record, result.backup_eligible(), result.user_verified());
    let response = conclude(
        store,
        &state.issuer,
        tenant,
        challenge.user_id,
        &ceremony.credentials,
        &amr,
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
fn amr(record: &CredentialRecord, backup_eligible: bool, user_verified: bool) -> Vec<&'static str> {
    let mut amr = vec![key_amr(record, backup_eligible)];
    if user_verified {
        amr.push("user");
    }
    amr.push("mfa");
    amr
}

fn invalid_credential() -> ApiError {
    ApiError::InvalidCredential {
        code: "invalid_credential",
        message: "the credential could not be verified".into(),
    }
}

/// A credential of another tenant is reported as a tenant mismatch; everything else keeps the
/// verification error.
async fn explain_failure(
    store: &Store,
    challenge: &ChallengeRecord,
    presented: &CredentialId,
    err: ApiError,
) -> ApiError {
    if err.code() != "invalid_credential" {
        return err;
    }
    match store.find_credentials_by_id(presented).await {
        Ok(records) if records.iter().any(|r| r.tenant_id != challenge.tenant_id) => {
            tracing::warn!(
                event = "cross_tenant_credential",
                "credential of another tenant presented"
            );
            ApiError::TenantMismatch
        }
        Ok(_) => err,
        Err(lookup) => {
            tracing::warn!(error = %lookup, "credential lookup after failed assertion");
            err
        }
    }
}
