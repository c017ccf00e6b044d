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

use crate::config::ConfigError;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{TenantId, UserId};
use crate::state::Common;

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
            common: Common::from_env().await?,
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

fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
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
