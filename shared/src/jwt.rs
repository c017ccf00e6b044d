//! The system JWT: ES256 or RS256, with a `kid` so any service can verify it from the JWKS.
//! Verification takes the algorithm from the published key the `kid` names, never from the
//! token, and checks `typ`, `iss`, `aud` and `exp` (against the injected clock, so tests can
//! expire tokens without sleeping). Signing is in [`crate::keys`].

use std::collections::HashMap;

pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, TokenConfig, TokenSettings, JWT_VERIFICATION_JWKS};
use crate::error::ApiError;
use crate::ids::{SessionId, TenantId, UserId};
use crate::keys::{jwk_algorithm, PublishedKeys};

/// The `typ` header of every system JWT.
pub const TYP: &str = "JWT";
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: i64 = 30;

/// Claims of the system JWT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: UserId,
    /// The tenant the token is valid for; `X-Tenant-ID` must match it.
    pub tenant_id: TenantId,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// When the user authenticated (OIDC `auth_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Authentication methods (RFC 8176), e.g. `hwk`, `user`, `mfa`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Absent for a full-access token; `mfa_setup` limits it to the MFA enrollment endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The passwordless session the token belongs to (OIDC `sid`); logout revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// Not valid before (never set by this service; honoured when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl Claims {
    pub fn new(
        settings: &TokenSettings,
        tenant: TenantId,
        user: UserId,
        now: i64,
        ttl_secs: i64,
    ) -> Self {
        Self {
            sub: user,
            tenant_id: tenant,
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            iat: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            auth_time: None,
            amr: Vec::new(),
            scope: None,
            sid: None,
            nbf: None,
        }
    }
}

/// Verifies system JWTs against the published keys.
pub struct TokenVerifier {
    /// kid → the key and the one algorithm it verifies.
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    config: TokenConfig,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(jwks: &JwkSet, config: impl Into<TokenConfig>) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason,
        };
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| invalid("every key needs a kid".into()))?;
            let alg = jwk_algorithm(jwk)
                .ok_or_else(|| invalid(format!("key {kid} is neither P-256 nor RSA")))?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
            keys.insert(kid, (alg, key));
        }
        if keys.is_empty() {
            return Err(invalid("no keys".into()));
        }
        Ok(Self {
            keys,
            config: config.into(),
        })
    }

    /// A verifier for a function that accepts no bearer token: it refuses every one.
    pub fn refusing_all(audience: &str) -> Self {
        Self {
            keys: HashMap::new(),
            config: TokenConfig {
                issuer: None,
                audience: audience.to_owned(),
            },
        }
    }

    pub fn from_jwks_json(json: &str, config: impl Into<TokenConfig>) -> Result<Self, ConfigError> {
        let jwks: JwkSet = serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason: e.to_string(),
        })?;
        Self::new(&jwks, config)
    }

    /// The published keys (KMS or JWKS document) and the configured issuer and audience.
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let keys = PublishedKeys::from_env(sdk_config).await?;
        Self::new(keys.jwks(), TokenConfig::from_env()?)
    }

    /// Verifies a token presented with `req`, for the issuer of that request.
    pub fn verify_for(&self, req: &Request, token: &str, now: i64) -> Result<Claims, ApiError> {
        let settings = self.config.for_request(req)?;
        self.verify(token, &settings, now)
    }

    pub fn verify(
        &self,
        token: &str,
        settings: &TokenSettings,
        now: i64,
    ) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthenticated("the bearer token is malformed"))?;
        // RFC 8725 §3.11: explicit typing.
        if header.typ.as_deref() != Some(TYP) {
            return Err(ApiError::unauthenticated(
                "the bearer token must have the header typ \"JWT\"",
            ));
        }
        // Keys come from configuration only: a token that names where to fetch a key, or
        // carries one, is refused rather than having those headers ignored.
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(ApiError::unauthenticated(
                "the bearer token carries key-location headers (jku, jwk, x5u, x5c, crit)",
            ));
        }
        let (alg, key) = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| {
                ApiError::unauthenticated("the bearer token was signed by an unknown key")
            })?;
        // RFC 8725 §3.1: the algorithm is the key's, pinned; the token's `alg` must agree.
        if header.alg != *alg {
            return Err(ApiError::unauthenticated(
                "the bearer token's algorithm is not its key's",
            ));
        }
        let mut validation = Validation::new(*alg);
        validation.algorithms = vec![*alg];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            tracing::info!(error = %e, "token rejected");
            ApiError::unauthenticated("the bearer token is invalid")
        })?;
        let claims = data.claims;
        if now >= claims.exp + LEEWAY_SECS {
            return Err(ApiError::unauthenticated("the bearer token has expired"));
        }
        if claims.iat > now + LEEWAY_SECS || claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(ApiError::unauthenticated(
                "the bearer token is not valid yet",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::TokenSigner;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "https://auth.test".into(),
            audience: "apps".into(),
        }
    }

    fn key() -> TokenSigner {
        TokenSigner::from_pem(&TokenSigner::generate_pem().unwrap()).unwrap()
    }

    fn sign(key: &TokenSigner, claims: &Claims) -> String {
        futures::executor::block_on(key.sign(claims)).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_the_jwks_only() {
        let key = key();
        let verifier =
            TokenVerifier::from_jwks_json(&serde_json::to_string(&key.jwks()).unwrap(), settings())
                .unwrap();
        let (t, u) = (TenantId::new_random(), UserId::new_random());
        let claims = Claims::new(&settings(), t, u, 1_000, 600);
        let token = sign(&key, &claims);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(header.typ.as_deref(), Some(TYP));
        assert_eq!(verifier.verify(&token, &settings(), 1_100).unwrap(), claims);
        assert!(
            verifier.verify(&token, &settings(), 1_700).is_err(),
            "expired"
        );
    }

    #[test]
    fn wrong_issuer_audience_or_key_are_refused() {
        let (a, b) = (key(), key());
        let verifier = TokenVerifier::new(&a.jwks(), settings()).unwrap();
        let claims = Claims::new(
            &settings(),
            TenantId::new_random(),
            UserId::new_random(),
            0,
            600,
        );
        assert!(verifier
            .verify(&sign(&b, &claims), &settings(), 10)
            .is_err());
        let mut other = claims.clone();
        other.aud = "someone-else".into();
        assert!(verifier.verify(&sign(&a, &other), &settings(), 10).is_err());
        let mut other = claims.clone();
        other.iss = "https://evil".into();
        assert!(verifier.verify(&sign(&a, &other), &settings(), 10).is_err());
        // The same token, checked for another request's issuer.
        let elsewhere = TokenSettings {
            issuer: "https://other.test".into(),
            ..settings()
        };
        assert!(verifier.verify(&sign(&a, &claims), &elsewhere, 10).is_err());
    }

    #[test]
    fn a_verifier_for_no_tokens_refuses_every_token() {
        let key = key();
        let claims = Claims::new(
            &settings(),
            TenantId::new_random(),
            UserId::new_random(),
            0,
            600,
        );
        let verifier = TokenVerifier::refusing_all("apps");
        assert!(verifier
            .verify(&sign(&key, &claims), &settings(), 10)
            .is_err());
    }

    #[test]
    fn non_p256_or_bad_pem_is_a_config_error() {
        assert!(TokenSigner::from_pem("garbage").is_err());
        let not_private = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(TokenSigner::from_pem(&not_private).is_err());
    }
}
