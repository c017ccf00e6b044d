//! What every function builds once per cold start.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{
    dynamodb_client_from, optional, required, AwsSettings, ConfigError, TableNames,
    DYNAMODB_WARM_UP, JWT_AUDIENCE,
};
use crate::jwt::TokenVerifier;
use crate::mfa::TokenIssuer;
use crate::store::Store;

/// The AWS SDK configuration of a function, built once per cold start from what Lambda sets:
/// region (`AWS_REGION`), the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and, for the local run and the tests,
/// `AWS_ENDPOINT_URL`. A missing region or credential stops start-up with a message naming the
/// variable ([`crate::config::AwsSettings`]).
///
/// Not `aws_config::load_from_env()`: its default chain (profile files, web identity and STS,
/// SSO, ECS, IMDS) is code and start-up work a Lambda function never needs, and its HTTPS client
/// parses the system certificate bundle; here the HTTP client trusts the Amazon roots that
/// every AWS endpoint chains to ([`crate::config::https_client`]). authctl keeps the default
/// chain.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    Ok(AwsSettings::from_env()?.sdk_config())
}

/// Opens the DynamoDB connection (TCP and TLS) during Init, so the first request reuses it
/// instead of paying the handshake: Init runs with a full CPU burst and before any caller
/// waits. One `GET /` through the store's own client (the endpoint's health
/// check; no DynamoDB action, so no IAM permission), bounded to
/// [`WARM_UP_TIMEOUT`]; whatever it answers is ignored. `DYNAMODB_WARM_UP=off` skips it
/// (bench/: to measure what it costs and saves).
pub async fn warm_up(store: &Store) {
    if optional(DYNAMODB_WARM_UP).is_some_and(|v| v.eq_ignore_ascii_case("off")) {
        return;
    }
    crate::config::warm_up_connection(store.client()).await;
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
        Self::verifying(&sdk_config().await?).await
    }

    /// The state of a function that accepts no bearer token (challenge-, refresh-token- or
    /// IAM-authenticated): no key is fetched, and any token is refused.
    pub async fn without_tokens_from_env() -> Result<Self, ConfigError> {
        Self::without_tokens(&sdk_config().await?).await
    }

    /// Fetches the published keys and opens the store's connection at the same time.
    pub async fn verifying(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let store = store_from(sdk_config)?;
        let (tokens, ()) = tokio::join!(TokenVerifier::from_env(sdk_config), warm_up(&store));
        Ok(Self::with_verifier(store, tokens?))
    }

    pub async fn without_tokens(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let tokens = TokenVerifier::refusing_all(&required(JWT_AUDIENCE)?);
        let store = store_from(sdk_config)?;
        warm_up(&store).await;
        Ok(Self::with_verifier(store, tokens))
    }

    fn with_verifier(store: Store, tokens: TokenVerifier) -> Self {
        Self {
            store,
            tokens: Arc::new(tokens),
            clock: Arc::new(SystemClock),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// The store of the tables `template.yaml` names, on the DynamoDB client of `sdk_config`.
fn store_from(sdk_config: &aws_config::SdkConfig) -> Result<Store, ConfigError> {
    Ok(Store::new(
        dynamodb_client_from(sdk_config),
        TableNames::from_env()?,
    ))
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
        Self::new(&sdk_config().await?).await
    }

    /// Fetches the signing key and opens the store's connection at the same time.
    pub async fn new(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let (issuer, common) = tokio::join!(
            TokenIssuer::from_env(sdk_config),
            Common::without_tokens(sdk_config)
        );
        Ok(Self {
            issuer: issuer?,
            common: common?,
        })
    }
}
