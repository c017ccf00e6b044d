//! `POST /v1/auth/mfa/webauthn/options` `{"challenge_id"}` → `{"options"}`: request options for
//! the second factor of a login, allowing the user's registered authenticators. The state is
//! attached to the MFA challenge and expires with it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::config::ConfigError;
use shared::error::{found, ApiError, ErrorCode};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use shared::mfa::{
    challenge_not_found, check_optional_tenant_header, parse_challenge_id, MfaCeremony,
};
use shared::state::Common;
use shared::store::ChallengeKind;
use shared::webauthn::start_authentication;
use tracing::{instrument, Span};

pub struct State {
    pub common: Common,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::from_env().await?,
        })
    }
}

#[derive(Deserialize)]
struct OptionsRequest {
    challenge_id: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(mfa_options(state, &req).await)
}

async fn mfa_options(state: &State, req: &Request) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let body: OptionsRequest = json_body(req)?;
    let key = ChallengeKind::Mfa.key(&parse_challenge_id(&body.challenge_id)?);
    let store = &common.store;
    let challenge = store
        .get_challenge(&key, now)
        .await?
        .ok_or_else(challenge_not_found)?;
    check_optional_tenant_header(req, &challenge.tenant_id)?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(challenge.tenant_id));
    span.record("user_id", tracing::field::display(challenge.user_id));

    let (tenant, credentials) = tokio::try_join!(
        store.get_tenant(&challenge.tenant_id),
        store.list_credentials(&challenge.tenant_id, &challenge.user_id),
    )?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    if credentials.is_empty() {
        return Err(ApiError::not_found(
            ErrorCode::NoCredentials,
            "the user has no registered authenticator; complete MFA with a backup code",
        ));
    }
    let started = start_authentication(&tenant, &credentials, false)?;
    let ceremony = MfaCeremony {
        auth: started.state,
        tenant: tenant.without_secret(),
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
