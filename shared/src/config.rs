//! Configuration read once at cold start. A missing or malformed setting stops start-up with a
//! message that names the variable, instead of failing the first request.

use std::env;

/// Environment variables that name the tables; `template.yaml` sets them on every function.
pub const TENANTS_TABLE: &str = "TENANTS_TABLE";
pub const USERS_TABLE: &str = "USERS_TABLE";
pub const CREDENTIALS_TABLE: &str = "CREDENTIALS_TABLE";
pub const CHALLENGES_TABLE: &str = "CHALLENGES_TABLE";
pub const BACKUP_CODES_TABLE: &str = "BACKUP_CODES_TABLE";

/// JWT settings: issuer and audience every token carries and every verifier checks.
pub const JWT_ISSUER: &str = "JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
/// JWKS document (JSON) of the public keys tokens are accepted from.
pub const JWT_VERIFICATION_JWKS: &str = "JWT_VERIFICATION_JWKS";
/// PKCS#8 PEM of the P-256 private key that signs tokens (issuing functions only).
pub const JWT_SIGNING_KEY: &str = "JWT_SIGNING_KEY";
/// Secret key for the keyed hashes of backup codes; never stored in the database.
pub const BACKUP_CODE_PEPPER: &str = "BACKUP_CODE_PEPPER";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub tenants: String,
    pub users: String,
    pub credentials: String,
    pub challenges: String,
    pub backup_codes: String,
}

impl TableNames {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tenants: required(TENANTS_TABLE)?,
            users: required(USERS_TABLE)?,
            credentials: required(CREDENTIALS_TABLE)?,
            challenges: required(CHALLENGES_TABLE)?,
            backup_codes: required(BACKUP_CODES_TABLE)?,
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
        }
    }

    /// The table an environment variable of `template.yaml` names.
    pub fn by_env_var(&self, var: &str) -> Option<&str> {
        match var {
            TENANTS_TABLE => Some(&self.tenants),
            USERS_TABLE => Some(&self.users),
            CREDENTIALS_TABLE => Some(&self.credentials),
            CHALLENGES_TABLE => Some(&self.challenges),
            BACKUP_CODES_TABLE => Some(&self.backup_codes),
            _ => None,
        }
    }

    pub fn env_vars(&self) -> Vec<(&'static str, &str)> {
        vec![
            (TENANTS_TABLE, &self.tenants),
            (USERS_TABLE, &self.users),
            (CREDENTIALS_TABLE, &self.credentials),
            (CHALLENGES_TABLE, &self.challenges),
            (BACKUP_CODES_TABLE, &self.backup_codes),
        ]
    }
}

/// Issuer and audience of the system JWT.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

impl TokenSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            issuer: required(JWT_ISSUER)?,
            audience: required(JWT_AUDIENCE)?,
        })
    }
}

/// Loads the AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`) and builds the
/// DynamoDB client once.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let sdk_config = aws_config::load_from_env().await;
    aws_sdk_dynamodb::Client::new(&sdk_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_env_var_maps_to_its_name() {
        let names = TableNames::with_prefix("t");
        for (var, name) in names.env_vars() {
            assert_eq!(names.by_env_var(var), Some(name));
        }
        assert_eq!(names.by_env_var("OTHER"), None);
    }
}
