//! `POST /api/v1/webauthn/authenticate/begin` `{"email"}` → `{success, data: {options}, message}`:
//! starts a passwordless login. The options allow the user's registered credentials and
//! require user verification (this login skips MFA, so the authenticator must verify the
//! user). The state is stored under its challenge, so concurrent logins of one user each work.
//!
//! Without `email` (`{}`) it starts a usernameless login in the tenant `X-Tenant-ID` names:
//! an empty `allowCredentials`, so the browser offers the tenant's passkeys (also as autofill
//! with conditional mediation); `complete` finds the user from the assertion's user handle.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::config::ConfigError;
use shared::device::fingerprint;
use shared::error::{ApiError, ErrorCode};
use shared::http::{
    client_info, json_body, optional_tenant_header, request_id, respond_v1, tenant_header, v1_ok,
    ApiResult,
};
use shared::ids::UserId;
use shared::passwordless::{
    concealed_options, parse_email, resolve_user, tenant_not_found, unknown_user, ConcealmentKey,
    KnownDevice, LoginCeremony,
};
use shared::state::Common;
use shared::store::{ChallengeKind, ChallengeRecord, CredentialRecord};
use shared::tenant::Tenant;
use shared::webauthn::webauthn_rs_proto::PublicKeyCredentialRequestOptions;
use shared::webauthn::{start_authentication, start_discoverable_authentication};
use tracing::{instrument, Span};

pub struct State {
    pub common: Common,
    /// Keys the stand-in options of concealed users (from Secrets Manager).
    pub concealment: ConcealmentKey,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Ok(Self {
            concealment: ConcealmentKey::from_env(&sdk).await?,
            common: Common::without_tokens(&sdk).await?,
        })
    }
}

#[derive(Deserialize)]
struct BeginRequest {
    /// Absent (`{}`): a usernameless login with a discoverable credential.
    #[serde(default)]
    email: Option<String>,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond_v1(begin(state, &req).await)
}

/// What a begun login stores with its challenge and shows the client.
struct Begun {
    tenant: Tenant,
    options: PublicKeyCredentialRequestOptions,
    ceremony: LoginCeremony,
    /// The user the challenge is for: nil for a usernameless or concealed login.
    user_id: UserId,
    /// The user's credentials, kept with the challenge so that `complete` need not read them.
    credentials: Option<Vec<CredentialRecord>>,
}

async fn begin(state: &State, req: &Request) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let body: BeginRequest = json_body(req)?;
    let begun = match body.email {
        Some(email) => for_email(state, req, &parse_email(&email)?).await?,
        None => usernameless(state, req).await?,
    };
    let Begun {
        tenant,
        options,
        ceremony,
        user_id,
        credentials,
    } = begun;
    let state_json = serde_json::to_string(&ceremony)
        .map_err(|e| ApiError::internal(format!("serialize login state: {e}")))?;
    let challenge = URL_SAFE_NO_PAD.encode(&options.challenge);
    common
        .store
        .put_challenge(&ChallengeRecord {
            challenge_key: ChallengeRecord::ceremony_key(ChallengeKind::Login, &challenge),
            kind: ChallengeKind::Login,
            tenant_id: tenant.tenant_id,
            user_id,
            method_type: None,
            state: Some(state_json),
            grant: None,
            credentials,
            groups: None,
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

/// The seed's flow: options allowing the credentials of the user the address names (stand-in
/// options for a user the tenant conceals).
async fn for_email(state: &State, req: &Request, email: &str) -> Result<Begun, ApiError> {
    let header = optional_tenant_header(req)?;
    let store = &state.common.store;
    let login = resolve_user(store, header, email, state.common.now()).await?;
    let tenant = login.tenant();
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(tenant.tenant_id));
    if let Some(user) = login.known() {
        span.record("user_id", tracing::field::display(user.user_id));
    }
    // For a concealed user this reads the (empty) stand-in keys: the same work as a real one.
    // Beside the credentials: whether the user has logged in from this device before.
    let client = client_info(req);
    let device = fingerprint(req, &tenant.tenant_id, client.user_agent.as_deref());
    let user_id = login.user_id();
    let (credentials, trusted) = tokio::try_join!(
        store.list_credentials(&tenant.tenant_id, &user_id),
        store.device_trusted(&tenant.tenant_id, &user_id, &device.hash),
    )?;
    if credentials.is_empty() {
        if !tenant.conceal_unknown_users {
            return Err(ApiError::not_found(
                ErrorCode::NoCredentials,
                "the user has no registered passkey or security key",
            ));
        }
        // A known user without credentials looks exactly like an unknown one.
        return Ok(Begun {
            options: concealed_options(&state.concealment, tenant, email)?,
            ceremony: LoginCeremony {
                auth: None,
                device: None,
            },
            user_id: unknown_user(),
            credentials: None,
            tenant: tenant.clone(),
        });
    }
    let started = start_authentication(tenant, &credentials, true)?;
    Ok(Begun {
        options: started.options,
        ceremony: LoginCeremony {
            auth: Some(started.state),
            device: Some(KnownDevice {
                hash: device.hash,
                trusted,
            }),
        },
        user_id: login.user_id(),
        credentials: Some(credentials),
        tenant: tenant.clone(),
    })
}

/// Usernameless: the tenant `X-Tenant-ID` names (its RP decides which passkeys the browser
/// offers), options with an empty `allowCredentials`. Nobody is looked up, so the answer is
/// the same for every tenant that exists.
async fn usernameless(state: &State, req: &Request) -> Result<Begun, ApiError> {
    let tenant_id = tenant_header(req)?;
    let tenant = state
        .common
        .store
        .tenant(&tenant_id, state.common.now())
        .await?
        .ok_or_else(tenant_not_found)?;
    Span::current().record("tenant_id", tracing::field::display(tenant.tenant_id));
    let started = start_discoverable_authentication(&tenant)?;
    Ok(Begun {
        options: started.options,
        ceremony: LoginCeremony {
            auth: Some(started.state),
            device: None,
        },
        user_id: unknown_user(),
        credentials: None,
        tenant,
    })
}
