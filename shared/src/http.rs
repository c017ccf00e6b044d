//! Request parsing and response building shared by every handler.

use lambda_http::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
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
            log_refusal(&err);
            error_response(&err, &err.body())
        }
    }
}

/// Seconds a client is told to wait (`Retry-After`) before retrying a request the store could
/// not serve: throttling and outages of DynamoDB usually pass within a second or two.
pub const STORE_RETRY_AFTER_SECS: u32 = 1;

/// An error's response with `body`; a 503 for an unavailable store says when to retry.
fn error_response<T: Serialize>(err: &ApiError, body: &T) -> Response<Body> {
    let mut response = json_response(err.status(), body);
    if matches!(err, ApiError::StoreUnavailable(_)) {
        response.headers_mut().insert(
            lambda_http::http::header::RETRY_AFTER,
            HeaderValue::from(STORE_RETRY_AFTER_SECS),
        );
    }
    response
}

fn log_refusal(err: &ApiError) {
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(code = err.code(), error = %err, source = ?std::error::Error::source(err), "request failed");
    } else {
        tracing::info!(
            code = err.code(),
            status = status.as_u16(),
            "request refused"
        );
    }
}

/// The `/api/v1` surface's success envelope.
#[derive(Debug, Serialize)]
struct Envelope<'a, T> {
    success: bool,
    data: &'a T,
    message: &'a str,
}

/// The `/api/v1` surface's error body: the product's error body plus `success: false`, with
/// the code in that surface's upper-case style (`INVALID_ASSERTION`).
#[derive(Debug, Serialize)]
struct V1ErrorBody {
    success: bool,
    #[serde(flatten)]
    error: crate::error::ErrorBody,
}

/// A 200 in the `/api/v1` envelope `{success, data, message}`.
pub fn v1_ok<T: Serialize>(data: &T, message: &str) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &Envelope {
            success: true,
            data,
            message,
        },
    )
}

/// The code a client of the `/api/v1` surface sees for an error.
pub fn v1_code(err: &ApiError) -> String {
    err.code().to_ascii_uppercase()
}

/// `respond` for the `/api/v1` surface.
pub fn respond_v1(result: ApiResult) -> Response<Body> {
    match result {
        Ok(response) => response,
        Err(err) => {
            log_refusal(&err);
            let mut error = err.body();
            error.code = v1_code(&err);
            error_response(
                &err,
                &V1ErrorBody {
                    success: false,
                    error,
                },
            )
        }
    }
}

/// Longest user agent kept in sessions, devices and audit records.
const MAX_USER_AGENT_CHARS: usize = 512;

/// Who is calling, as API Gateway saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Source IP and user agent from the request context (API Gateway's view, not headers a
/// client could forge), falling back to the `User-Agent` header.
pub fn client_info(req: &Request) -> ClientInfo {
    let (ip, agent) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            (ctx.http.source_ip.clone(), ctx.http.user_agent.clone())
        }
        _ => (None, None),
    };
    let agent = agent.or_else(|| {
        req.headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let clean = |v: String| Some(v).filter(|v| !v.trim().is_empty());
    ClientInfo {
        ip: ip.and_then(clean),
        user_agent: agent
            .map(|a| a.chars().take(MAX_USER_AGENT_CHARS).collect())
            .and_then(clean),
    }
}

/// `X-Tenant-ID` when sent (it must then be a UUID), `None` when absent.
pub fn optional_tenant_header(req: &Request) -> Result<Option<TenantId>, ApiError> {
    if req.headers().contains_key(TENANT_HEADER) {
        tenant_header(req).map(Some)
    } else {
        Ok(None)
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
