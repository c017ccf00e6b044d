//! `GET /.well-known/jwks.json`: the public keys of the system JWT, for API Gateway's JWT
//! authorizer and any service that verifies our tokens. The discovery document
//! (`/.well-known/openid-configuration`) points here. Any other method is 405.

use lambda_http::http::header::{HeaderValue, CACHE_CONTROL};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::config::{ConfigError, TokenConfig, JWT_VERIFICATION_JWKS};
use shared::http::{json_response, read_only, request_id, respond};
use shared::jwt::TokenVerifier;
use shared::keys::PublishedKeys;
use tracing::instrument;

pub struct State {
    /// The JWKS document as served: validated once at start-up.
    jwks: serde_json::Value,
}

impl State {
    /// Refuses to start on a key set that the verifiers would not accept either.
    pub fn new(keys: &PublishedKeys, config: &TokenConfig) -> Result<Self, ConfigError> {
        TokenVerifier::new(keys.jwks(), config.clone())?;
        // Re-serialised through the typed JWK set, so only public parameters are ever served
        // (a private `d` pasted into a JWKS document by mistake is dropped).
        let jwks = serde_json::to_value(keys.jwks()).map_err(|e| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason: e.to_string(),
        })?;
        Ok(Self { jwks })
    }

    /// The published keys: from KMS (`JWT_KMS_KEY_IDS`) or a JWKS document.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Self::new(
            &PublishedKeys::from_env(&sdk).await?,
            &TokenConfig::from_env()?,
        )
    }
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    if let Err(refused) = read_only(&req) {
        return respond(Err(refused));
    }
    let mut response = json_response(StatusCode::OK, &state.jwks);
    // Verifiers cache it; rotation publishes the new key before signing with it.
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
