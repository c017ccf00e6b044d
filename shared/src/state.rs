//! What every function builds once per cold start.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{dynamodb_client, ConfigError, TableNames};
use crate::jwt::TokenVerifier;
use crate::mfa::TokenIssuer;
use crate::store::Store;

/// Store, token verifier and clock: the part of the state every endpoint needs.
#[derive(Clone, Debug)]
pub struct Common {
    pub store: Store,
    pub tokens: Arc<TokenVerifier>,
    pub clock: Arc<dyn Clock>,
}

impl Common {
    /// Reads configuration from the environment `template.yaml` sets and builds the clients.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let tables = TableNames::from_env()?;
        let tokens = TokenVerifier::from_env()?;
        Ok(Self {
            store: Store::new(dynamodb_client().await, tables),
            tokens: Arc::new(tokens),
            clock: Arc::new(SystemClock),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// `Common` plus the signing key: the state of the functions that issue tokens.
#[derive(Debug)]
pub struct Issuing {
    pub common: Common,
    pub issuer: TokenIssuer,
}

impl Issuing {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            issuer: TokenIssuer::from_env()?,
            common: Common::from_env().await?,
        })
    }
}
