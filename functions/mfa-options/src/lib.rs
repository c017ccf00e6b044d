//! `POST /v1/auth/mfa/webauthn/options` `{"challenge_id"}` → `{"options"}`: request options for
//! the second factor of a login, allowing the user's registered authenticators. The state is
//! attached to the MFA challenge and expires with it.
//!
//! A user with no authenticator at all cannot present a second factor. Where the tenant allows
//! it (`enroll_without_authenticator`, Cognito's MFA_SETUP), the MFA challenge — the proof of
//! the primary login — is consumed instead and traded for an enrollment grant for any enabled
//! method type: the completion's `enrollment_required` answer, with no token.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::audit::{Audit, AuditEvent};
use shared::config::ConfigError;
use shared::error::{found, ApiError, ErrorCode};
use shared::http::{
    json_body, json_response, optional_tenant_header, request_id, respond, ApiResult,
};
use shared::ids::ChallengeId;
use shared::mfa::{
    challenge_not_found, check_optional_tenant_header, consume_mfa_challenge, grant_enrollment,
    parse_challenge_id, MfaCeremony,
};
use shared::state::Common;
use shared::store::ChallengeKind;
use shared::tenant::Tenant;
use shared::webauthn::start_authentication;
use tracing::{instrument, Span};

pub struct State {
    pub common: Common,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::without_tokens_from_env().await?,
        })
    }
}

#[derive(Deserialize)]
struct OptionsRequest {
    challenge_id: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    // Issuing options is not an MFA outcome; spending the challenge on a first enrollment is,
    // and is audited from the moment the challenge is consumed.
    let mut audit = None;
    let result = mfa_options(state, &req, &mut audit).await;
    if let Some(audit) = &audit {
        audit.conclude(&state.common, &result).await;
    }
    respond(result)
}

async fn mfa_options(state: &State, req: &Request, audit: &mut Option<Audit>) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let body: OptionsRequest = json_body(req)?;
    let id = parse_challenge_id(&body.challenge_id)?;
    let key = ChallengeKind::Mfa.key(&id);
    let store = &common.store;
    let challenge = store
        .get_challenge(&key, now)
        .await?
        .ok_or_else(challenge_not_found)?;
    check_optional_tenant_header(req, &challenge.tenant_id)?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(challenge.tenant_id));
    span.record("user_id", tracing::field::display(challenge.user_id));

    // The credentials as the challenge's creation read them (a challenge written before
    // they were kept there reads them now).
    let snapshot = challenge.credentials.clone();
    let (tenant, credentials) = tokio::try_join!(store.tenant(&challenge.tenant_id, now), async {
        match snapshot {
            Some(credentials) => Ok(credentials),
            None => {
                store
                    .list_credentials(&challenge.tenant_id, &challenge.user_id)
                    .await
            }
        }
    })?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    if credentials.is_empty() {
        if tenant.allows_first_enrollment_from_mfa() {
            return first_enrollment(state, req, &id, &tenant, audit).await;
        }
        return Err(ApiError::not_found(
            ErrorCode::NoCredentials,
            "the user has no registered authenticator; complete MFA with a backup code",
        ));
    }
    let started = start_authentication(&tenant, &credentials, false)?;
    let ceremony = MfaCeremony {
        auth: started.state,
        credentials,
    };
    let serialized = serde_json::to_string(&ceremony)
        .map_err(|e| ApiError::internal(format!("serialize MFA state: {e}")))?;
    if !store
        .attach_challenge_state(&key, ChallengeKind::Mfa, &serialized, now)
        .await?
    {
        return Err(challenge_not_found());
    }
    tracing::info!(allowed = ceremony.credentials.len(), "MFA options issued");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "options": started.options }),
    ))
}

/// The user has nothing to sign with: the MFA challenge is consumed (atomically, and with an
/// `X-Tenant-ID` header in the condition, so a mismatched header leaves it untouched) and
/// traded for a grant to enroll any method type the tenant enables. If the grant cannot be
/// written after that, the user starts the login again.
async fn first_enrollment(
    state: &State,
    req: &Request,
    id: &ChallengeId,
    tenant: &Tenant,
    audit: &mut Option<Audit>,
) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let header = optional_tenant_header(req)?;
    let challenge = consume_mfa_challenge(&common.store, id, header, false, now).await?;
    // The consumed challenge establishes tenant and user: from here on the outcome is filed.
    let mut record = Audit::new(AuditEvent::MfaFirstEnrollment, req);
    record.tenant(tenant);
    record.user = Some(challenge.user_id);
    *audit = Some(record);
    let response = grant_enrollment(&common.store, tenant, challenge.user_id, None, now).await?;
    tracing::info!(
        event = "mfa_first_enrollment_granted",
        "no authenticator: MFA challenge traded for an enrollment grant"
    );
    Ok(json_response(StatusCode::OK, &response))
}
