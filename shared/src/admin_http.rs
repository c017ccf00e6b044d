//! The admin API's HTTP side (`/v1/admin/…`): who may call it, and the path parameters. The
//! operations themselves are [`crate::admin`]'s, shared with `authctl`.
//!
//! Every admin route uses API Gateway's `AWS_IAM` authorization (SigV4): API Gateway has
//! verified the caller before the function runs and puts the principal in the request
//! context. The handlers refuse a request without that identity, so a route deployed without
//! the authorizer fails closed. The local run, which has no API Gateway, sets
//! `ADMIN_API_WITHOUT_IAM=1` and says so in its banner.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::config::ConfigError;
use crate::error::{ApiError, ErrorCode};
use crate::http::{path_param, query_param};
use crate::ids::{TenantId, UserId};
use crate::state::Common;
use crate::store::Item;

/// Set to `1` by the local run only: admin requests without an IAM identity are accepted.
pub const ADMIN_API_WITHOUT_IAM: &str = "ADMIN_API_WITHOUT_IAM";

/// What every admin function builds once per cold start.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub common: Common,
    /// Only the local run: accept requests that carry no IAM identity.
    pub without_iam: bool,
}

impl AdminState {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let without_iam = std::env::var(ADMIN_API_WITHOUT_IAM).is_ok_and(|v| v == "1");
        if without_iam {
            tracing::warn!(
                "{ADMIN_API_WITHOUT_IAM}=1: admin requests are not authorized (local run only)"
            );
        }
        Ok(Self {
            common: Common::without_tokens_from_env().await?,
            without_iam,
        })
    }
}

/// The IAM principal API Gateway verified, as the audit's actor (`iam:<arn>`).
pub fn iam_caller(state: &AdminState, req: &Request) -> Result<String, ApiError> {
    let arn = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone())),
        _ => None,
    };
    match arn {
        Some(arn) => Ok(format!("iam:{}", arn.chars().take(256).collect::<String>())),
        None if state.without_iam => Ok("local:unauthenticated".to_owned()),
        None => Err(ApiError::Forbidden {
            code: ErrorCode::IamRequired,
            message: "the admin API needs a SigV4-signed request (AWS_IAM authorization)".into(),
        }),
    }
}

/// `{tenant_id}` of the path.
pub fn tenant_param(req: &Request) -> Result<TenantId, ApiError> {
    path_param(req, "tenant_id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid_field("tenant_id", "tenant_id must be a UUID"))
}

/// `{user_id}` of the path.
pub fn user_param(req: &Request) -> Result<UserId, ApiError> {
    path_param(req, "user_id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid_field("user_id", "user_id must be a UUID"))
}

/// Longest cursor accepted (a page key is a few hundred bytes).
const MAX_CURSOR_CHARS: usize = 2048;
/// Page sizes: `?limit=`, 1 to 1000, 50 by default.
pub const DEFAULT_PAGE: i32 = 50;
pub const MAX_PAGE: i32 = 1000;

/// `?limit=` of a listing.
pub fn page_limit(req: &Request) -> Result<i32, ApiError> {
    match query_param(req, "limit") {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid_field("limit", "limit must be 1 to 1000")),
    }
}

/// An opaque cursor for the page after `key`: its string attributes, base64url JSON.
pub fn encode_cursor(key: &Item) -> String {
    encode_cursor_of(
        key.iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str()))),
    )
}

/// An opaque cursor of named strings (attribute, value), as [`encode_cursor`] writes one and
/// [`cursor_param`] reads it back.
pub fn encode_cursor_of<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let map: std::collections::BTreeMap<&str, &str> = attributes.into_iter().collect();
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&map).unwrap_or_default())
}

/// `?cursor=` back into a page key. A cursor this API returned holds exactly the listing's key
/// attributes, each with a value `valid` accepts (`valid(attribute, value)`); anything else —
/// fewer or other attributes, an empty value, another tenant's key — is refused here, as DynamoDB
/// would refuse it as an `ExclusiveStartKey` (a server error, not the client's 400).
pub fn cursor_param(
    req: &Request,
    attributes: &[&str],
    valid: impl Fn(&str, &str) -> bool,
) -> Result<Option<Item>, ApiError> {
    let Some(raw) = query_param(req, "cursor") else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid_field("cursor", "cursor is not one this API returned");
    if raw.len() > MAX_CURSOR_CHARS {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let exact = map.len() == attributes.len()
        && attributes
            .iter()
            .all(|a| map.get(*a).is_some_and(|v| valid(a, v)));
    if !exact {
        return Err(invalid());
    }
    Ok(Some(
        map.into_iter()
            .map(|(k, v)| (k, aws_sdk_dynamodb::types::AttributeValue::S(v)))
            .collect(),
    ))
}
