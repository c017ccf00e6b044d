//! The one error type every handler returns, and its mapping to the seeds' error body
//! `{code, message, details?, notices?}` and HTTP status.

use std::borrow::Cow;

use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::store::StoreError;

type Text = Cow<'static, str>;

macro_rules! error_codes {
    ($($(#[$meta:meta])* $variant:ident => $text:literal,)*) => {
        /// Every machine-readable code an error body can carry. The seed surface writes them in
        /// lower case (`invalid_request`), the `/api/v1` surface in upper case
        /// (`INVALID_REQUEST`); see [`crate::http::Surface`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[$meta])* $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the seed surface writes it.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest => "invalid_request",
    Unauthenticated => "unauthenticated",
    /// A token of a session that was revoked or has ended.
    SessionRevoked => "session_revoked",
    /// Adding or removing an authenticator needs a recent login (`auth_time`).
    ReauthenticationRequired => "reauthentication_required",
    InvalidCredential => "invalid_credential",
    InvalidAssertion => "invalid_assertion",
    InvalidAttestation => "invalid_attestation",
    UserVerificationRequired => "user_verification_required",
    PossibleClonedAuthenticator => "possible_cloned_authenticator",
    TenantMismatch => "tenant_mismatch",
    /// The tenant's Cedar policies refused the request (the body's `notices` say why).
    PolicyDenied => "policy_denied",
    InsufficientScope => "insufficient_scope",
    /// An admin request without the IAM identity API Gateway's `AWS_IAM` authorizer adds.
    IamRequired => "iam_required",
    /// A method the route does not serve (`Allow` lists the ones it does).
    MethodNotAllowed => "method_not_allowed",
    TenantNotFound => "tenant_not_found",
    UserNotFound => "user_not_found",
    ChallengeNotFound => "challenge_not_found",
    EnrollmentNotFound => "enrollment_not_found",
    NoCredentials => "no_credentials",
    /// No such credential of this user.
    CredentialNotFound => "credential_not_found",
    /// No such session of this user.
    SessionNotFound => "session_not_found",
    /// Removing the user's last authenticator, which the tenant does not allow.
    LastFactor => "last_factor",
    /// Creating something that exists already (a user with this e-mail in the tenant).
    AlreadyExists => "already_exists",
    CredentialAlreadyRegistered => "credential_already_registered",
    InvalidBackupCode => "invalid_backup_code",
    BackupCodesLocked => "backup_codes_locked",
    MethodNotEnabled => "method_not_enabled",
    AuthenticationCompletionFailed => "authentication_completion_failed",
    AmbiguousEmail => "ambiguous_email",
    InvalidRefreshToken => "invalid_refresh_token",
    RefreshTokenReused => "refresh_token_reused",
    StoreUnavailable => "store_unavailable",
    SigningUnavailable => "signing_unavailable",
    InternalError => "internal_error",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, missing or out-of-range fields, bad UUIDs, unknown enum values.
    #[error("{message}")]
    BadRequest {
        code: ErrorCode,
        message: Text,
        details: Option<Value>,
    },
    /// Missing, malformed, expired or badly signed token.
    #[error("{message}")]
    Unauthenticated { code: ErrorCode, message: Text },
    /// The assertion or attestation did not verify.
    #[error("{message}")]
    InvalidCredential { code: ErrorCode, message: Text },
    /// `X-Tenant-ID` names another tenant than the token or the stored record.
    #[error("the X-Tenant-ID header does not match the tenant of the token or record")]
    TenantMismatch,
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: Text },
    #[error("{message}")]
    NotFound { code: ErrorCode, message: Text },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: Text },
    /// Too many failed attempts; retry after the lockout ends.
    #[error("{message}")]
    Locked {
        code: ErrorCode,
        message: Text,
        details: Option<Value>,
    },
    /// A method the route does not serve; `allow` is the `Allow` header's value.
    #[error("this route answers {allow} only")]
    MethodNotAllowed { allow: &'static str },
    /// The seeds' "Not implemented": e.g. a method type the tenant has not enabled.
    #[error("{message}")]
    NotImplemented { code: ErrorCode, message: Text },
    /// Throttled or unreachable store: the client may retry.
    #[error("the credential store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// The token-signing key (KMS) failed or is unreachable: the client may retry.
    #[error("token signing is unavailable: {0}")]
    SigningUnavailable(String),
    /// Anything else: logged in full, reported to the client without internals.
    #[error("internal error: {0}")]
    Internal(String),
    /// The tenant's policies refused the request; `notices` are the determining policies'
    /// `@notice` annotations.
    #[error("{message}")]
    PolicyDenied {
        refusal: Refusal,
        message: Text,
        notices: Vec<String>,
    },
}

/// How a policy denial is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403 `policy_denied`.
    Forbidden,
    /// 401 `reauthentication_required`: the change needs a more recent login.
    Reauthenticate,
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
    pub fn bad_request(code: ErrorCode, message: impl Into<Text>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: Cow::Owned(message.into()),
            details: Some(serde_json::json!({ "field": field })),
        }
    }

    pub fn unauthenticated(message: impl Into<Text>) -> Self {
        Self::Unauthenticated {
            code: ErrorCode::Unauthenticated,
            message: message.into(),
        }
    }

    pub fn unauthenticated_with(code: ErrorCode, message: impl Into<Text>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<Text>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<Text>) -> Self {
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
    pub fn code(&self) -> ErrorCode {
        self.parts().1
    }

    /// The single place where errors become statuses and codes.
    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            ApiError::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, *code),
            ApiError::InvalidCredential { code, .. } => (StatusCode::UNAUTHORIZED, *code),
            ApiError::TenantMismatch => (StatusCode::FORBIDDEN, ErrorCode::TenantMismatch),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, *code),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, *code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::Locked { code, .. } => (StatusCode::TOO_MANY_REQUESTS, *code),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::NotImplemented { code, .. } => (StatusCode::NOT_IMPLEMENTED, *code),
            ApiError::StoreUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StoreUnavailable)
            }
            ApiError::SigningUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::SigningUnavailable,
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError),
            ApiError::PolicyDenied { refusal, .. } => match refusal {
                Refusal::Forbidden => (StatusCode::FORBIDDEN, ErrorCode::PolicyDenied),
                Refusal::Reauthenticate => (
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::ReauthenticationRequired,
                ),
            },
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
            | ApiError::NotImplemented { message, .. }
            | ApiError::PolicyDenied { message, .. } => (message.to_string(), None),
            ApiError::TenantMismatch | ApiError::MethodNotAllowed { .. } => {
                (self.to_string(), None)
            }
            ApiError::StoreUnavailable(_) | ApiError::SigningUnavailable(_) => (
                "the service is temporarily unavailable, retry shortly".to_owned(),
                None,
            ),
            ApiError::Internal(_) => ("an internal error occurred".to_owned(), None),
        };
        ErrorBody {
            code: self.code().as_str().to_owned(),
            message,
            details,
            notices: self.notices(),
        }
    }

    /// The `notices` of the body: a policy denial's, even when empty; nothing otherwise.
    fn notices(&self) -> Option<Vec<String>> {
        if let ApiError::PolicyDenied { notices, .. } = self {
            return Some(notices.clone());
        }
        None
    }

    /// A policy denial answered as `refusal`.
    pub fn policy_denied(refusal: Refusal, message: impl Into<Text>, notices: Vec<String>) -> Self {
        ApiError::PolicyDenied {
            refusal,
            message: message.into(),
            notices,
        }
    }
}

/// `Some(value)`, or a 404 naming what is missing.
pub fn found<T>(value: Option<T>, code: ErrorCode, message: &'static str) -> Result<T, ApiError> {
    value.ok_or(ApiError::NotFound {
        code,
        message: message.into(),
    })
}

impl From<crate::keys::KeyError> for ApiError {
    fn from(err: crate::keys::KeyError) -> Self {
        ApiError::SigningUnavailable(err.to_string())
    }
}

impl From<crate::admin::AdminError> for ApiError {
    /// The HTTP surfaces' answer to an operator operation's refusal.
    fn from(err: crate::admin::AdminError) -> Self {
        use crate::admin::{AdminError, Missing};
        match err {
            AdminError::NotFound(Missing::Tenant) => {
                ApiError::not_found(ErrorCode::TenantNotFound, "the tenant does not exist")
            }
            AdminError::NotFound(Missing::User) => {
                ApiError::not_found(ErrorCode::UserNotFound, "the user does not exist")
            }
            AdminError::NotFound(Missing::Credential) => ApiError::not_found(
                ErrorCode::CredentialNotFound,
                "the user has no credential with this id",
            ),
            AdminError::Invalid { field, reason } => ApiError::invalid_field(field, reason),
            AdminError::Conflict(what) => {
                ApiError::conflict(ErrorCode::AlreadyExists, format!("{what} already exists"))
            }
            AdminError::InvalidPolicies(errors) => ApiError::BadRequest {
                code: ErrorCode::InvalidRequest,
                message: "the policy set does not validate against the schema".into(),
                details: Some(serde_json::json!({ "field": "policies", "errors": errors })),
            },
            AdminError::Store(err) => ApiError::from(err),
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

    /// The backticked codes in the `code` column of every Markdown table.
    fn table_codes(markdown: &str) -> Vec<String> {
        let mut codes = Vec::new();
        let mut column = None;
        let lines: Vec<&str> = markdown.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if !line.trim_start().starts_with('|') {
                column = None;
                continue;
            }
            let is_header = lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("| ---"));
            if is_header {
                column = cells.iter().position(|c| *c == "code");
                continue;
            }
            let Some(cell) = column.and_then(|c| cells.get(c)) else {
                continue;
            };
            for token in cell.split('`').skip(1).step_by(2) {
                codes.push(token.to_ascii_lowercase());
            }
        }
        codes
    }

    #[test]
    fn the_readme_tables_name_exactly_the_error_codes() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let documented = table_codes(readme);
        let known: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
        for code in &documented {
            assert!(
                known.contains(&code.as_str()),
                "README names unknown code {code}"
            );
        }
        let summary = &readme[readme
            .find("## Error codes")
            .expect("an error-code section")..];
        let summary = &summary[..summary[3..].find("\n## ").map_or(summary.len(), |i| i + 3)];
        let listed = table_codes(summary);
        for code in &known {
            assert!(
                listed.iter().any(|c| c == code),
                "{code} is not in the README's table"
            );
        }
        assert_eq!(listed.len(), known.len(), "each code once: {listed:?}");
    }

    #[test]
    fn policy_denials_carry_their_notices() {
        let notices = vec!["a".to_owned(), "b".to_owned()];
        let forbidden = ApiError::policy_denied(Refusal::Forbidden, "no", notices.clone());
        assert_eq!(
            (forbidden.status(), forbidden.code()),
            (StatusCode::FORBIDDEN, ErrorCode::PolicyDenied)
        );
        assert_eq!(forbidden.body().notices, Some(notices));
        let stale = ApiError::policy_denied(Refusal::Reauthenticate, "sign in", vec![]);
        assert_eq!(
            (stale.status(), stale.code()),
            (
                StatusCode::UNAUTHORIZED,
                ErrorCode::ReauthenticationRequired
            )
        );
        let body = serde_json::to_value(stale.body()).unwrap();
        assert_eq!(body["notices"], serde_json::json!([]));
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
