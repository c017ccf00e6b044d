//! `POST /v1/users/me/mfa/webauthn/register?method_type=…` (seed 002): creation options for
//! enrolling a passkey or security key, with the pending state stored until it expires.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::{authenticate, enrollment_grant, has_authorization, Accepts};
use shared::config::ConfigError;
use shared::error::{found, ApiError, ErrorCode};
use shared::http::{json_response, query_param, request_id, respond, ApiResult};
use shared::policy::{AuthenticatorFacts, UserFacts};
use shared::state::Common;
use shared::store::{ChallengeKind, ChallengeRecord};
use shared::tenant::MethodType;
use shared::webauthn::start_registration;
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

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id, method_type))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(register_options(state, &req).await)
}

/// `method_type` from the query; passkey when absent.
fn method_type(req: &Request) -> Result<MethodType, ApiError> {
    match query_param(req, "method_type") {
        Some(value) => value.parse(),
        None => Ok(MethodType::WebauthnPasskey),
    }
}

async fn register_options(state: &State, req: &Request) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let grant = query_param(req, "challenge_id");
    let caller = match &grant {
        Some(grant) if !has_authorization(req) => {
            let method = method_type(req)?;
            enrollment_grant(req, &common.store, grant, method, false, now).await?
        }
        _ => authenticate(req, &common.tokens, now, Accepts::MfaSetup)?,
    };
    let method = method_type(req)?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(caller.tenant));
    span.record("user_id", tracing::field::display(caller.user));
    span.record("method_type", method.as_str());

    let store = &common.store;
    let (tenant, user, existing, session) = tokio::try_join!(
        async { Ok(store.tenant(&caller.tenant, now).await?) },
        async { Ok(store.get_user(&caller.tenant, &caller.user).await?) },
        async { Ok(store.list_credentials(&caller.tenant, &caller.user).await?) },
        caller.session(store),
    )?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    let user = found(user, ErrorCode::UserNotFound, "the user does not exist")?;
    let adding = AuthenticatorFacts::planned(method);
    let facts = caller.facts(req, now);
    let read = UserFacts::new(&existing, &user.groups);
    caller.check_enrollment(&tenant, session.as_ref(), &read, &adding, &facts, now)?;
    if !tenant.allows(method) {
        return Err(ApiError::NotImplemented {
            code: ErrorCode::MethodNotEnabled,
            message: format!("{method} is not enabled for this tenant").into(),
        });
    }
    caller.check_registration(&tenant, &read, &adding, &facts)?;

    let started = start_registration(&tenant, &user, method, &existing)?;
    let pending = ChallengeRecord {
        challenge_key: ChallengeRecord::ceremony_key(
            ChallengeKind::Registration,
            &started.challenge,
        ),
        kind: ChallengeKind::Registration,
        tenant_id: tenant.tenant_id,
        user_id: user.user_id,
        method_type: Some(method),
        state: Some(
            serde_json::to_string(&started.state)
                .map_err(|e| ApiError::internal(format!("serialize registration state: {e}")))?,
        ),
        grant: None,
        credentials: None,
        groups: None,
        created_at: now,
        expires_at: now + i64::from(tenant.challenge_timeout_secs),
    };
    store.put_challenge(&pending).await?;
    tracing::info!(excluded = existing.len(), "registration options issued");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "options": started.options }),
    ))
}
