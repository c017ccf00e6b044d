//! Request parsing and response building shared by every handler.

use lambda_http::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::ids::TenantId;

pub const TENANT_HEADER: &str = "x-tenant-id";

/// Outcome of a handler: the response, or the error that becomes one.
pub type ApiResult = Result<Response<Body>, ApiError>;

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Turns any handler outcome into a response; server-side faults are logged here, once.
pub fn respond(result: ApiResult) -> Response<Body> {
    match result {
        Ok(response) => response,
        Err(err) => {
            let status = err.status();
            if status.is_server_error() {
                tracing::error!(code = err.code(), error = %err, source = ?std::error::Error::source(&err), "request failed");
            } else {
                tracing::info!(
                    code = err.code(),
                    status = status.as_u16(),
                    "request refused"
                );
            }
            json_response(status, &err.body())
        }
    }
}

/// The API Gateway request id (or the Lambda one), for logs.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default(),
    }
}

/// Parses a JSON body, with a message that says what is wrong and where.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a JSON request body is required",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                "invalid request body"
            }
        };
        ApiError::BadRequest {
            code: "invalid_request",
            message: format!("{kind}: {e}").into(),
            details: Some(serde_json::json!({ "line": e.line(), "column": e.column() })),
        }
    })
}

/// The `X-Tenant-ID` header as a tenant id.
pub fn tenant_header(req: &Request) -> Result<TenantId, ApiError> {
    let value = req.headers().get(TENANT_HEADER).ok_or_else(|| {
        ApiError::invalid_field("X-Tenant-ID", "the X-Tenant-ID header is required")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid_field("X-Tenant-ID", "the X-Tenant-ID header must be a UUID")
        })
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("an Authorization: Bearer token is required"))?
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is malformed"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthenticated(
            "the Authorization header must be 'Bearer <token>'",
        )),
    }
}

/// A query string parameter, if present.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}
