//! Secrets from AWS Secrets Manager, read once per container: the backup-code pepper and the
//! deployment secret the tenants' concealment keys are derived from. The template generates
//! both (`GenerateSecretString`); no person, parameter or environment variable ever holds them.

use std::time::Duration;

use crate::config::{required, ConfigError};

/// The Secrets Manager client with short timeouts (cold start waits for it).
pub fn secrets_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk_config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The value of the secret the environment variable `var` names (its id or ARN): the
/// secret string's bytes, or the binary secret.
pub async fn secret_named_by(
    client: &aws_sdk_secretsmanager::Client,
    var: &'static str,
) -> Result<Vec<u8>, ConfigError> {
    secret_value(client, &required(var)?, var).await
}

/// The value of secret `id`; errors name `var`, the setting that pointed at it.
pub async fn secret_value(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    var: &'static str,
) -> Result<Vec<u8>, ConfigError> {
    let unreadable = |reason: String| ConfigError::Invalid { name: var, reason };
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            unreadable(format!(
                "secret {id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    match (out.secret_string(), out.secret_binary()) {
        (Some(text), _) => Ok(text.as_bytes().to_vec()),
        (None, Some(blob)) => Ok(blob.as_ref().to_vec()),
        (None, None) => Err(unreadable(format!("secret {id} has no value"))),
    }
}
