//! Configuration read once at cold start. A missing or malformed setting stops start-up with a
//! message that names the variable, instead of failing the first request.

use std::env;

use crate::error::ApiError;

/// Environment variables that name the tables; `template.yaml` sets them on every function.
pub const TENANTS_TABLE: &str = "TENANTS_TABLE";
pub const USERS_TABLE: &str = "USERS_TABLE";
pub const CREDENTIALS_TABLE: &str = "CREDENTIALS_TABLE";
pub const CHALLENGES_TABLE: &str = "CHALLENGES_TABLE";
pub const BACKUP_CODES_TABLE: &str = "BACKUP_CODES_TABLE";
pub const SESSIONS_TABLE: &str = "SESSIONS_TABLE";
pub const DEVICES_TABLE: &str = "DEVICES_TABLE";
pub const AUDIT_TABLE: &str = "AUDIT_TABLE";

/// JWT settings: the issuer every token carries (empty: `https://<the API's domain>`, taken
/// from each request) and the audience every token carries and every verifier checks.
pub const JWT_ISSUER: &str = "JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
/// KMS keys (ids or ARNs, comma-separated) whose public halves are published in the JWKS and
/// accepted by the verifiers: the deployed stack's key source.
pub const JWT_KMS_KEY_IDS: &str = "JWT_KMS_KEY_IDS";
/// The KMS key that signs tokens (issuing functions only); one of `JWT_KMS_KEY_IDS`.
pub const JWT_KMS_SIGNING_KEY_ID: &str = "JWT_KMS_SIGNING_KEY_ID";
/// Without KMS: JWKS document (JSON) of the public keys tokens are accepted from…
pub const JWT_VERIFICATION_JWKS: &str = "JWT_VERIFICATION_JWKS";
/// …and the PKCS#8 PEM of the P-256 private key that signs them (issuing functions only).
pub const JWT_SIGNING_KEY: &str = "JWT_SIGNING_KEY";
/// Secrets Manager secret holding the key of the backup codes' keyed hashes (the pepper).
pub const BACKUP_CODE_PEPPER_SECRET_ID: &str = "BACKUP_CODE_PEPPER_SECRET_ID";
/// Secrets Manager secret from which each tenant's concealment key is derived.
pub const CONCEALMENT_SECRET_ID: &str = "CONCEALMENT_SECRET_ID";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The variable's value, or `None` when it is unset or blank.
pub fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub tenants: String,
    pub users: String,
    pub credentials: String,
    pub challenges: String,
    pub backup_codes: String,
    pub sessions: String,
    pub devices: String,
    pub audit: String,
}

impl TableNames {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tenants: required(TENANTS_TABLE)?,
            users: required(USERS_TABLE)?,
            credentials: required(CREDENTIALS_TABLE)?,
            challenges: required(CHALLENGES_TABLE)?,
            backup_codes: required(BACKUP_CODES_TABLE)?,
            sessions: required(SESSIONS_TABLE)?,
            devices: required(DEVICES_TABLE)?,
            audit: required(AUDIT_TABLE)?,
        })
    }

    /// Names for a local or test deployment: `<prefix>-tenants`, `<prefix>-users`, …
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tenants: format!("{prefix}-tenants"),
            users: format!("{prefix}-users"),
            credentials: format!("{prefix}-credentials"),
            challenges: format!("{prefix}-challenges"),
            backup_codes: format!("{prefix}-backup-codes"),
            sessions: format!("{prefix}-sessions"),
            devices: format!("{prefix}-devices"),
            audit: format!("{prefix}-audit"),
        }
    }

    /// `<prefix>-…` names, each overridden by its environment variable when that is set.
    pub fn with_prefix_and_env(prefix: &str) -> Self {
        let mut names = Self::with_prefix(prefix);
        for var in Self::VARS {
            if let Some(value) = env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                if let Some(slot) = names.slot(var) {
                    *slot = value;
                }
            }
        }
        names
    }

    /// Every table variable `template.yaml` sets.
    pub const VARS: [&'static str; 8] = [
        TENANTS_TABLE,
        USERS_TABLE,
        CREDENTIALS_TABLE,
        CHALLENGES_TABLE,
        BACKUP_CODES_TABLE,
        SESSIONS_TABLE,
        DEVICES_TABLE,
        AUDIT_TABLE,
    ];

    fn slot(&mut self, var: &str) -> Option<&mut String> {
        match var {
            TENANTS_TABLE => Some(&mut self.tenants),
            USERS_TABLE => Some(&mut self.users),
            CREDENTIALS_TABLE => Some(&mut self.credentials),
            CHALLENGES_TABLE => Some(&mut self.challenges),
            BACKUP_CODES_TABLE => Some(&mut self.backup_codes),
            SESSIONS_TABLE => Some(&mut self.sessions),
            DEVICES_TABLE => Some(&mut self.devices),
            AUDIT_TABLE => Some(&mut self.audit),
            _ => None,
        }
    }

    /// The table an environment variable of `template.yaml` names.
    pub fn by_env_var(&self, var: &str) -> Option<&str> {
        self.env_vars()
            .into_iter()
            .find(|(v, _)| *v == var)
            .map(|(_, name)| name)
    }

    pub fn env_vars(&self) -> Vec<(&'static str, &str)> {
        vec![
            (TENANTS_TABLE, &self.tenants),
            (USERS_TABLE, &self.users),
            (CREDENTIALS_TABLE, &self.credentials),
            (CHALLENGES_TABLE, &self.challenges),
            (BACKUP_CODES_TABLE, &self.backup_codes),
            (SESSIONS_TABLE, &self.sessions),
            (DEVICES_TABLE, &self.devices),
            (AUDIT_TABLE, &self.audit),
        ]
    }
}

/// Issuer and audience of the system JWTs of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

/// Issuer and audience as configured: a fixed issuer, or none, and then each request's
/// issuer is `https://<domain>` of the API Gateway domain it came through, so a stack
/// deployed without settings issues tokens whose `iss` is its own URL, where it serves the
/// OpenID discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    pub issuer: Option<String>,
    pub audience: String,
}

impl TokenConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let issuer = optional(JWT_ISSUER);
        if let Some(issuer) = &issuer {
            let url = url::Url::parse(issuer).map_err(|e| ConfigError::Invalid {
                name: JWT_ISSUER,
                reason: e.to_string(),
            })?;
            if !matches!(url.scheme(), "https" | "http") || issuer.ends_with('/') {
                return Err(ConfigError::Invalid {
                    name: JWT_ISSUER,
                    reason: "must be an http(s) URL without a trailing slash".into(),
                });
            }
        }
        Ok(Self {
            issuer,
            audience: required(JWT_AUDIENCE)?,
        })
    }

    /// The settings of the request: the fixed issuer, or the API's domain.
    pub fn for_request(&self, req: &lambda_http::Request) -> Result<TokenSettings, ApiError> {
        let issuer = match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!("https://{}", api_domain(req)?),
        };
        Ok(TokenSettings {
            issuer,
            audience: self.audience.clone(),
        })
    }
}

impl From<&TokenSettings> for TokenConfig {
    fn from(settings: &TokenSettings) -> Self {
        settings.clone().into()
    }
}

impl From<TokenSettings> for TokenConfig {
    fn from(settings: TokenSettings) -> Self {
        Self {
            issuer: Some(settings.issuer),
            audience: settings.audience,
        }
    }
}

/// The domain API Gateway received the request on (`requestContext.domainName`): set by API
/// Gateway, not by the client. Checked to be a plain host name all the same.
fn api_domain(req: &lambda_http::Request) -> Result<String, ApiError> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let domain = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    domain
        .filter(|d| {
            !d.is_empty()
                && d.len() <= 253
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        })
        .ok_or_else(|| {
            ApiError::internal(format!(
                "{JWT_ISSUER} is not set and the request names no API domain"
            ))
        })
}

/// The DynamoDB client of an SDK configuration (region, credentials, `AWS_ENDPOINT_URL`) loaded
/// once at cold start, with the store's explicit retries and timeouts ([`crate::store::client`]).
pub fn dynamodb_client_from(sdk_config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let builder = aws_sdk_dynamodb::config::Builder::from(sdk_config);
    aws_sdk_dynamodb::Client::from_conf(crate::store::configure_client(builder).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_env_var_maps_to_its_name() {
        let names = TableNames::with_prefix("t");
        assert_eq!(names.env_vars().len(), TableNames::VARS.len());
        for (var, name) in names.env_vars() {
            assert_eq!(names.by_env_var(var), Some(name));
        }
        assert_eq!(names.by_env_var("OTHER"), None);
    }
}
