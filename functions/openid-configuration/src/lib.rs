//! `GET /.well-known/openid-configuration`: the discovery document of the system JWT's issuer.
//! A verifier configured with only the issuer (API Gateway's HTTP API JWT authorizer, PyJWT,
//! `jose`) finds the keys here: `jwks_uri` and the algorithms of the published keys. This is a
//! discovery document for verifying our tokens, not a full OpenID provider (there is no
//! authorization endpoint).

use lambda_http::http::header::{HeaderValue, CACHE_CONTROL};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::config::{ConfigError, TokenConfig};
use shared::http::{json_response, read_only, request_id, respond, ApiResult};
use shared::keys::PublishedKeys;
use tracing::instrument;

pub struct State {
    config: TokenConfig,
    /// `id_token_signing_alg_values_supported`: the algorithms of the published keys.
    algorithms: Vec<String>,
}

impl State {
    pub fn new(keys: &PublishedKeys, config: TokenConfig) -> Self {
        let algorithms = keys
            .algorithms()
            .into_iter()
            .map(|alg| format!("{alg:?}"))
            .collect();
        Self { config, algorithms }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Ok(Self::new(
            &PublishedKeys::from_env(&sdk).await?,
            TokenConfig::from_env()?,
        ))
    }
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(document(state, &req))
}

fn document(state: &State, req: &Request) -> ApiResult {
    read_only(req)?;
    // The issuer tokens of this request's API carry: configured, or this API's own URL.
    let issuer = state.config.for_request(req)?.issuer;
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": state.algorithms,
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "jti", "auth_time", "amr", "sid",
                "tenant_id", "scope"
            ],
        }),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
