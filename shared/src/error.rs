//! The one error type every handler returns, and its mapping to the seeds' error body
//! `{code, message, details?, notices?}` and HTTP status.

use std::borrow::Cow;

use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::store::StoreError;

type Text = Cow<'static, str>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, missing or out-of-range fields, bad UUIDs, unknown enum values.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: Text,
        details: Option<Value>,
    },
    /// Missing, malformed, expired or badly signed token.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: Text },
    /// The assertion or attestation did not verify.
    #[error("{message}")]
    InvalidCredential { code: &'static str, message: Text },
    /// `X-Tenant-ID` names another tenant than the token or the stored record.
    #[error("the X-Tenant-ID header does not match the tenant of the token or record")]
    TenantMismatch,
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: Text },
    #[error("{message}")]
    NotFound { code: &'static str, message: Text },
    #[error("{message}")]
    Conflict { code: &'static str, message: Text },
    /// Too many failed attempts; retry after the lockout ends.
    #[error("{message}")]
    Locked {
        code: &'static str,
        message: Text,
        details: Option<Value>,
    },
    /// The seeds' "Not implemented": e.g. a method type the tenant has not enabled.
    #[error("{message}")]
    NotImplemented { code: &'static str, message: Text },
    /// Throttled or unreachable store: the client may retry.
    #[error("the credential store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// Anything else: logged in full, reported to the client without internals.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices: Option<Vec<String>>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<Text>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "invalid_request",
            message: Cow::Owned(message.into()),
            details: Some(serde_json::json!({ "field": field })),
        }
    }

    pub fn unauthenticated(message: impl Into<Text>) -> Self {
        Self::Unauthenticated {
            code: "unauthenticated",
            message: message.into(),
        }
    }

    pub fn unauthenticated_with(code: &'static str, message: impl Into<Text>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<Text>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<Text>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(context: impl Into<String>) -> Self {
        Self::Internal(context.into())
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The single place where errors become statuses and codes.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::InvalidCredential { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::TenantMismatch => (StatusCode::FORBIDDEN, "tenant_mismatch"),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Locked { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::NotImplemented { code, .. } => (StatusCode::NOT_IMPLEMENTED, code),
            ApiError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The client-facing body. Server faults carry a fixed message; their detail goes to the log.
    pub fn body(&self) -> ErrorBody {
        let (message, details) = match self {
            ApiError::BadRequest {
                message, details, ..
            }
            | ApiError::Locked {
                message, details, ..
            } => (message.to_string(), details.clone()),
            ApiError::Unauthenticated { message, .. }
            | ApiError::InvalidCredential { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::NotImplemented { message, .. } => (message.to_string(), None),
            ApiError::TenantMismatch => (self.to_string(), None),
            ApiError::StoreUnavailable(_) => (
                "the service is temporarily unavailable, retry shortly".to_owned(),
                None,
            ),
            ApiError::Internal(_) => ("an internal error occurred".to_owned(), None),
        };
        ErrorBody {
            code: self.code().to_owned(),
            message,
            details,
            notices: None,
        }
    }
}

impl From<StoreError> for ApiError {
    /// Store faults the caller did not turn into a client outcome (e.g. a failed condition
    /// meaning "not found") are server-side: throttling and outages are retryable 503s.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => ApiError::StoreUnavailable(err),
            StoreError::ConditionFailed
            | StoreError::TransactionCanceled(_)
            | StoreError::Corrupt(_)
            | StoreError::Rejected(_) => ApiError::Internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_never_leak_their_text() {
        let err = ApiError::internal("dynamodb said: secret table arn");
        let body = serde_json::to_value(err.body()).unwrap();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("arn"));
    }

    #[test]
    fn unavailable_store_is_a_retryable_503() {
        let err: ApiError = StoreError::Unavailable("throttled".into()).into();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!serde_json::to_string(&err.body())
            .unwrap()
            .contains("throttled"));
    }

    #[test]
    fn body_has_the_seed_shape() {
        let body = serde_json::to_value(ApiError::TenantMismatch.body()).unwrap();
        assert_eq!(body["code"], "tenant_mismatch");
        assert!(body["message"].is_string());
        assert!(body.get("details").is_none());
        assert!(body.get("notices").is_none());
    }
}
