//! `POST /api/v1/webauthn/authenticate/begin` `{"email"}` → `{success, data: {options}, message}`:
//! starts a passwordless login. The options allow the user's registered credentials and
//! require user verification (this login skips MFA, so the authenticator must verify the
//! user). The state is stored under its challenge, so concurrent logins of one user each work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::config::ConfigError;
use shared::error::{ApiError, ErrorCode};
use shared::http::{json_body, optional_tenant_header, request_id, respond_v1, v1_ok, ApiResult};
use shared::passwordless::{
    concealed_options, parse_email, resolve_user, unknown_user, ConcealmentKey, LoginCeremony,
};
use shared::state::Common;
use shared::store::{ChallengeKind, ChallengeRecord};
use shared::webauthn::start_authentication;
use tracing::{instrument, Span};

pub struct State {
    pub common: Common,
    /// Keys the stand-in options of concealed users (from Secrets Manager).
    pub concealment: ConcealmentKey,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await;
        Ok(Self {
            concealment: ConcealmentKey::from_env(&sdk).await?,
            common: Common::without_tokens(&sdk)?,
        })
    }
}

#[derive(Deserialize)]
struct BeginRequest {
    email: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond_v1(begin(state, &req).await)
}

async fn begin(state: &State, req: &Request) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let body: BeginRequest = json_body(req)?;
    let email = parse_email(&body.email)?;
    let header = optional_tenant_header(req)?;
    let store = &common.store;
    let login = resolve_user(store, header, &email).await?;
    let tenant = login.tenant();
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(tenant.tenant_id));

    if let Some(user) = login.known() {
        span.record("user_id", tracing::field::display(user.user_id));
    }
    // For a concealed user this reads the (empty) stand-in key: the same work as a real one.
    let credentials = store
        .list_credentials(&tenant.tenant_id, &login.user_id())
        .await?;
    let (options, ceremony, user_id) = if credentials.is_empty() {
        if !tenant.conceal_unknown_users {
            return Err(ApiError::not_found(
                ErrorCode::NoCredentials,
                "the user has no registered passkey or security key",
            ));
        }
        // A known user without credentials looks exactly like an unknown one.
        let options = concealed_options(&state.concealment, tenant, &email)?;
        (options, LoginCeremony { auth: None }, unknown_user())
    } else {
        let started = start_authentication(tenant, &credentials, true)?;
        let ceremony = LoginCeremony {
            auth: Some(started.state),
        };
        (started.options, ceremony, login.user_id())
    };

    let state_json = serde_json::to_string(&ceremony)
        .map_err(|e| ApiError::internal(format!("serialize login state: {e}")))?;
    let challenge = URL_SAFE_NO_PAD.encode(&options.challenge);
    store
        .put_challenge(&ChallengeRecord {
            challenge_key: ChallengeRecord::ceremony_key(ChallengeKind::Login, &challenge),
            kind: ChallengeKind::Login,
            tenant_id: tenant.tenant_id,
            user_id,
            method_type: None,
            state: Some(state_json),
            grant: None,
            created_at: now,
            expires_at: now + i64::from(tenant.challenge_timeout_secs),
        })
        .await?;
    tracing::info!(event = "passwordless_begun", "passwordless login started");
    Ok(v1_ok(
        &json!({ "options": options }),
        "WebAuthn authentication options generated",
    ))
}
