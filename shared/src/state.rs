//! What every function builds once per cold start.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{dynamodb_client_from, required, ConfigError, TableNames, JWT_AUDIENCE};
use crate::jwt::TokenVerifier;
use crate::mfa::TokenIssuer;
use crate::store::Store;

/// The AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`), loaded once.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// Store, token verifier and clock: the part of the state every endpoint needs.
#[derive(Clone, Debug)]
pub struct Common {
    pub store: Store,
    pub tokens: Arc<TokenVerifier>,
    pub clock: Arc<dyn Clock>,
}

impl Common {
    /// The state of a function that accepts bearer tokens: reads configuration from the
    /// environment `template.yaml` sets, builds the clients and fetches the published keys.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::verifying(&sdk_config().await).await
    }

    /// The state of a function that accepts no bearer token (challenge-, refresh-token- or
    /// IAM-authenticated): no key is fetched, and any token is refused.
    pub async fn without_tokens_from_env() -> Result<Self, ConfigError> {
        Self::without_tokens(&sdk_config().await)
    }

    pub async fn verifying(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let tokens = TokenVerifier::from_env(sdk_config).await?;
        Self::with_verifier(sdk_config, tokens)
    }

    pub fn without_tokens(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let tokens = TokenVerifier::refusing_all(&required(JWT_AUDIENCE)?);
        Self::with_verifier(sdk_config, tokens)
    }

    fn with_verifier(
        sdk_config: &aws_config::SdkConfig,
        tokens: TokenVerifier,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            store: Store::new(dynamodb_client_from(sdk_config), TableNames::from_env()?),
            tokens: Arc::new(tokens),
            clock: Arc::new(SystemClock),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// `Common` plus the signing key: the state of the functions that issue tokens (they accept
/// no bearer token themselves).
#[derive(Debug)]
pub struct Issuing {
    pub common: Common,
    pub issuer: TokenIssuer,
}

impl Issuing {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::new(&sdk_config().await).await
    }

    pub async fn new(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            issuer: TokenIssuer::from_env(sdk_config).await?,
            common: Common::without_tokens(sdk_config)?,
        })
    }
}
