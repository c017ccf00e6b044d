//! The system JWT: ES256 only, with a `kid` so any service can verify it from the JWKS.
//! Verification pins the algorithm, requires a known `kid`, and checks `iss`, `aud` and `exp`
//! (against the injected clock, so tests can expire tokens without sleeping).

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, TokenSettings, JWT_SIGNING_KEY, JWT_VERIFICATION_JWKS};
use crate::error::ApiError;
use crate::ids::{SessionId, TenantId, UserId};

const ALGORITHM: Algorithm = Algorithm::ES256;
/// The `typ` header of every system JWT.
const TYP: &str = "JWT";
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

/// The private key that signs tokens, with its public JWK (kid = RFC 7638 thumbprint).
pub struct SigningKey {
    encoding: EncodingKey,
    public: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid={})", self.kid())
    }
}

impl SigningKey {
    /// A P-256 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: JWT_SIGNING_KEY,
            reason,
        };
        let parsed = pem::parse(pem.trim()).map_err(|e| invalid(e.to_string()))?;
        if parsed.tag() != "PRIVATE KEY" {
            return Err(invalid(
                "expected a PKCS#8 \"PRIVATE KEY\" PEM block".into(),
            ));
        }
        // Refuse anything that is not a P-256 key before jsonwebtoken sees it.
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, parsed.contents())
            .map_err(|e| invalid(format!("not a P-256 PKCS#8 key: {e}")))?;
        let encoding = EncodingKey::from_ec_der(parsed.contents());
        let mut public =
            Jwk::from_encoding_key(&encoding, ALGORITHM).map_err(|e| invalid(e.to_string()))?;
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| invalid(e.to_string()))?;
        public.common.key_id = Some(kid);
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { encoding, public })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_pem(&crate::config::required(JWT_SIGNING_KEY)?)
    }

    /// A fresh P-256 key as PKCS#8 PEM, for development and tests.
    pub fn generate_pem() -> Result<String, aws_lc_rs::error::Unspecified> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())?;
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            doc.as_ref().to_vec(),
        )))
    }

    pub fn kid(&self) -> &str {
        self.public.common.key_id.as_deref().unwrap_or_default()
    }

    /// The public half as a JWKS document.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("sign token: {e}")))
    }
}

/// Verifies system JWTs against a fixed set of public keys.
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(jwks: &JwkSet, settings: &TokenSettings) -> Result<Self, ConfigError> {
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
            if !matches!(
                &jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256
            ) {
                return Err(invalid(format!("key {kid} is not a P-256 EC key")));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(invalid("no keys".into()));
        }
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(Self { keys, validation })
    }

    pub fn from_jwks_json(json: &str, settings: &TokenSettings) -> Result<Self, ConfigError> {
        let jwks: JwkSet = serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason: e.to_string(),
        })?;
        Self::new(&jwks, settings)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_jwks_json(
            &crate::config::required(JWT_VERIFICATION_JWKS)?,
            &TokenSettings::from_env()?,
        )
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthenticated("the bearer token is malformed"))?;
        // RFC 8725 §3.1: the algorithm is pinned; §3.11: explicit typing.
        if header.alg != ALGORITHM {
            return Err(ApiError::unauthenticated(
                "the bearer token must be signed with ES256",
            ));
        }
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
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| {
                ApiError::unauthenticated("the bearer token was signed by an unknown key")
            })?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
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

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "https://auth.test".into(),
            audience: "apps".into(),
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_the_jwks_only() {
        let key = key();
        let verifier = TokenVerifier::from_jwks_json(
            &serde_json::to_string(&key.jwks()).unwrap(),
            &settings(),
        )
        .unwrap();
        let (t, u) = (TenantId::new_random(), UserId::new_random());
        let claims = Claims::new(&settings(), t, u, 1_000, 600);
        let token = key.sign(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(verifier.verify(&token, 1_100).unwrap(), claims);
        assert!(verifier.verify(&token, 1_700).is_err(), "expired");
    }

    #[test]
    fn wrong_issuer_audience_or_key_are_refused() {
        let (a, b) = (key(), key());
        let verifier = TokenVerifier::new(&a.jwks(), &settings()).unwrap();
        let claims = Claims::new(
            &settings(),
            TenantId::new_random(),
            UserId::new_random(),
            0,
            600,
        );
        assert!(verifier.verify(&b.sign(&claims).unwrap(), 10).is_err());
        let mut other = claims.clone();
        other.aud = "someone-else".into();
        assert!(verifier.verify(&a.sign(&other).unwrap(), 10).is_err());
        let mut other = claims;
        other.iss = "https://evil".into();
        assert!(verifier.verify(&a.sign(&other).unwrap(), 10).is_err());
    }

    #[test]
    fn non_p256_or_bad_pem_is_a_config_error() {
        assert!(SigningKey::from_pem("garbage").is_err());
        let not_private = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(SigningKey::from_pem(&not_private).is_err());
    }
}
