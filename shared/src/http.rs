//! Request parsing and response building shared by every handler.

use lambda_http::http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
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

/// The two API surfaces. They share one error type and differ in how it is written: the seed
/// surface (`/v1/…`) answers `{code, message, details?, notices?}` with lower-case codes, the
/// `/api/v1` surface wraps successes in `{success, data, message}` and adds `success: false`
/// to the same error body, with upper-case codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Seed,
    V1,
}

impl Surface {
    /// The code as this surface writes it.
    pub fn code(&self, code: ErrorCode) -> String {
        match self {
            Surface::Seed => code.as_str().to_owned(),
            Surface::V1 => code.as_str().to_ascii_uppercase(),
        }
    }

    /// Turns a handler outcome into a response; refusals and faults are logged here, once.
    pub fn respond(&self, result: ApiResult) -> Response<Body> {
        let err = match result {
            Ok(response) => return response,
            Err(err) => err,
        };
        log_refusal(&err);
        let mut error = err.body();
        error.code = self.code(err.code());
        let mut response = match self {
            Surface::Seed => json_response(err.status(), &error),
            Surface::V1 => json_response(
                err.status(),
                &V1ErrorBody {
                    success: false,
                    error,
                },
            ),
        };
        if err.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if let ApiError::MethodNotAllowed { allow } = err {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Seconds a client should wait before retrying after a 503 (`Retry-After`).
const RETRY_AFTER_SECS: &str = "1";

/// `respond` for the seed surface.
pub fn respond(result: ApiResult) -> Response<Body> {
    Surface::Seed.respond(result)
}

/// `respond` for the `/api/v1` surface.
pub fn respond_v1(result: ApiResult) -> Response<Body> {
    Surface::V1.respond(result)
}

fn log_refusal(err: &ApiError) {
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(code = err.code().as_str(), error = %err, source = ?std::error::Error::source(err), "request failed");
    } else {
        tracing::info!(
            code = err.code().as_str(),
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

/// The `/api/v1` surface's error body: the product's error body plus `success: false`.
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

/// Longest user agent kept in sessions, devices and audit records.
const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest source address kept (an IPv6 address with a zone is well under this).
const MAX_IP_CHARS: usize = 64;
/// Longest request id kept in logs.
const MAX_REQUEST_ID_CHARS: usize = 128;

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
        ip: ip
            .map(|ip| ip.chars().take(MAX_IP_CHARS).collect())
            .and_then(clean),
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
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        _ => req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default(),
    };
    id.chars().take(MAX_REQUEST_ID_CHARS).collect()
}

/// Largest request body any endpoint accepts. The largest legitimate body, a registration with
/// a full attestation certificate chain, is a few kilobytes; the bound keeps every item this
/// service writes far below DynamoDB's 400 KB item limit.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a JSON object body, with a message that says what is wrong and where.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: format!("the request body must be at most {MAX_BODY_BYTES} bytes").into(),
            details: Some(serde_json::json!({ "max_bytes": MAX_BODY_BYTES })),
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "a JSON request body is required",
        ));
    }
    // Every body of this API is an object; serde would also read a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "the request body must be a JSON object",
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
            code: ErrorCode::InvalidRequest,
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

/// Refuses any method but `GET` and `HEAD` (405 with `Allow`), for the public documents
/// (`/.well-known/…`): API Gateway routes only `GET` to them, but a route deployed as `ANY`, or
/// an invoked event, must not be answered as if it were a read.
pub fn read_only(req: &Request) -> Result<(), ApiError> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
    }
}

/// A path parameter (`{name}` in the route), if present.
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// A query string parameter, if present.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}
