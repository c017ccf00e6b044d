//! `GET /.well-known/jwks.json`: the public keys of the system JWT, for API Gateway's JWT
//! authorizer and any service that verifies our tokens. Any other method is 405.

use lambda_http::http::header::{HeaderValue, CACHE_CONTROL};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::config::{required, ConfigError, TokenSettings, JWT_VERIFICATION_JWKS};
use shared::http::{json_response, read_only, request_id, respond};
use shared::jwt::{JwkSet, TokenVerifier};
use tracing::instrument;

pub struct State {
    /// The JWKS document as served: validated once at start-up.
    jwks: serde_json::Value,
}

impl State {
    /// Refuses to start on a document that the verifiers would not accept either.
    pub fn new(jwks_json: &str, settings: &TokenSettings) -> Result<Self, ConfigError> {
        TokenVerifier::from_jwks_json(jwks_json, settings)?;
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason: e.to_string(),
        };
        // Re-serialised through the typed JWK set, so only public parameters are ever served
        // (a private `d` pasted in by mistake is dropped).
        let set: JwkSet = serde_json::from_str(jwks_json).map_err(invalid)?;
        let jwks = serde_json::to_value(&set).map_err(invalid)?;
        Ok(Self { jwks })
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::new(
            &required(JWT_VERIFICATION_JWKS)?,
            &TokenSettings::from_env()?,
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
