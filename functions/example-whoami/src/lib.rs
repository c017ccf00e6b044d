//! `GET /whoami` on the optional example API (`CreateExampleApi`): a route protected by an API
//! Gateway HTTP API JWT authorizer configured against this service's issuer. API Gateway has
//! verified the token (signature from our JWKS, `iss`, `aud`, `exp`) before this runs; the
//! function only echoes the verified claims it was given, to show the wiring.

use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use shared::config::ConfigError;
use shared::error::ApiError;
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

/// Nothing to build: the authorizer did the work.
pub struct State;

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self)
    }
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(_state: &State, req: Request) -> Response<Body> {
    respond(whoami(&req))
}

fn whoami(req: &Request) -> ApiResult {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| jwt.claims.clone()),
        _ => None,
    }
    .ok_or_else(|| ApiError::unauthenticated("this route is served behind a JWT authorizer"))?;
    let field = |name: &str| claims.get(name).cloned();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sub": field("sub"),
            "tenant_id": field("tenant_id"),
            "iss": field("iss"),
            "amr": field("amr"),
        }),
    ))
}
