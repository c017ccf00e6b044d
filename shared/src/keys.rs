//! Where the system JWT's keys live. One signer interface over two sources: an AWS KMS key
//! (the deployed stack: the private key never leaves KMS, tokens are signed with its `Sign`
//! API) or a PKCS#8 PEM (the local run without KMS, and users without it). The published key
//! set (the JWKS) comes from KMS `GetPublicKey` of every published key, or from a JWKS
//! document. Both are read once per container.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use simple_asn1::{ASN1Block, BigInt, OID};

use crate::config::{
    optional, required, ConfigError, JWT_KMS_KEY_IDS, JWT_KMS_SIGNING_KEY_ID, JWT_SIGNING_KEY,
    JWT_VERIFICATION_JWKS,
};
use crate::jwt::{Claims, TYP};

/// Why a key could not be used. Start-up turns it into a configuration error naming the
/// variable; signing turns it into a retryable 503.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("KMS {operation} on {key_id} failed: {reason}")]
    Kms {
        operation: &'static str,
        key_id: String,
        reason: String,
    },
    #[error("unsupported or malformed key: {0}")]
    Unsupported(String),
    #[error("token encoding failed: {0}")]
    Encoding(String),
}

// ------------------------------------------------------------------------------------------
// DER: the two shapes KMS returns. A public key is an X.509 SubjectPublicKeyInfo; an ECDSA
// signature is a SEQUENCE of two INTEGERs, which JWS wants as r ‖ s, 32 bytes each (RFC 7518
// §3.4).
// ------------------------------------------------------------------------------------------

fn oid(parts: &[u64]) -> OID {
    OID::new(
        parts
            .iter()
            .map(|p| simple_asn1::BigUint::from(*p))
            .collect(),
    )
}

/// The big-endian bytes of a positive INTEGER; `None` for zero or a negative one.
fn positive_be(value: &BigInt) -> Option<Vec<u8>> {
    let (sign, bytes) = value.to_bytes_be();
    (sign == BigInt::from(1).sign()).then_some(bytes)
}

/// A DER ECDSA P-256 signature as JWS wants it: `r ‖ s`, each left-padded to 32 bytes.
pub fn ecdsa_der_to_jws(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let bad = |why: &str| KeyError::Unsupported(format!("ECDSA signature: {why}"));
    let blocks = simple_asn1::from_der(der).map_err(|e| bad(&e.to_string()))?;
    let [ASN1Block::Sequence(_, items)] = blocks.as_slice() else {
        return Err(bad("not one SEQUENCE"));
    };
    let [ASN1Block::Integer(_, r), ASN1Block::Integer(_, s)] = items.as_slice() else {
        return Err(bad("not two INTEGERs"));
    };
    let mut out = Vec::with_capacity(64);
    for part in [r, s] {
        let bytes = positive_be(part).ok_or_else(|| bad("component not positive"))?;
        if bytes.len() > 32 {
            return Err(bad("component longer than 32 bytes"));
        }
        out.extend(std::iter::repeat_n(0u8, 32 - bytes.len()));
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The JWK (with `alg`, `use` and `kid` = RFC 7638 thumbprint) of an X.509
/// SubjectPublicKeyInfo: a P-256 key (ES256) or an RSA key of at least 2048 bits (RS256).
pub fn jwk_from_spki(der: &[u8]) -> Result<Jwk, KeyError> {
    let bad = |why: &str| KeyError::Unsupported(format!("public key: {why}"));
    let blocks = simple_asn1::from_der(der).map_err(|e| bad(&e.to_string()))?;
    let [ASN1Block::Sequence(_, spki)] = blocks.as_slice() else {
        return Err(bad("not a SubjectPublicKeyInfo"));
    };
    let [ASN1Block::Sequence(_, algorithm), ASN1Block::BitString(_, _, key)] = spki.as_slice()
    else {
        return Err(bad("not a SubjectPublicKeyInfo"));
    };
    let (alg, params) = match algorithm.as_slice() {
        [ASN1Block::ObjectIdentifier(_, kind), ASN1Block::ObjectIdentifier(_, curve)]
            if *kind == oid(&[1, 2, 840, 10045, 2, 1])
                && *curve == oid(&[1, 2, 840, 10045, 3, 1, 7]) =>
        {
            // An uncompressed point: 0x04 ‖ x ‖ y.
            if key.len() != 65 || key[0] != 4 {
                return Err(bad("not an uncompressed P-256 point"));
            }
            let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(&key[1..33]),
                y: URL_SAFE_NO_PAD.encode(&key[33..65]),
            });
            (Algorithm::ES256, params)
        }
        [ASN1Block::ObjectIdentifier(_, kind), ..]
            if *kind == oid(&[1, 2, 840, 113549, 1, 1, 1]) =>
        {
            let inner = simple_asn1::from_der(key).map_err(|e| bad(&e.to_string()))?;
            let [ASN1Block::Sequence(_, rsa)] = inner.as_slice() else {
                return Err(bad("not an RSAPublicKey"));
            };
            let [ASN1Block::Integer(_, n), ASN1Block::Integer(_, e)] = rsa.as_slice() else {
                return Err(bad("not an RSAPublicKey"));
            };
            let (Some(n), Some(e)) = (positive_be(n), positive_be(e)) else {
                return Err(bad("RSA modulus and exponent must be positive"));
            };
            if n.len() < 256 {
                return Err(bad("RSA keys must have at least 2048 bits"));
            }
            let params = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(&n),
                e: URL_SAFE_NO_PAD.encode(&e),
            });
            (Algorithm::RS256, params)
        }
        _ => return Err(bad("neither a P-256 nor an RSA key")),
    };
    finish_jwk(alg, params)
}

/// Adds `alg`, `use` and the thumbprint `kid` to a public key's parameters.
fn finish_jwk(alg: Algorithm, params: AlgorithmParameters) -> Result<Jwk, KeyError> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(alg.into()),
            ..Default::default()
        },
        algorithm: params,
    };
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyError::Unsupported(e.to_string()))?;
    jwk.common.key_id = Some(kid);
    Ok(jwk)
}

/// The algorithm a published JWK is for, from its key type (never from a token).
pub fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------
// KMS
// ------------------------------------------------------------------------------------------

/// The KMS client with short timeouts: signing is on the login path.
pub fn kms_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    let timeouts = aws_sdk_kms::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_secs(4))
        .build();
    let config = aws_sdk_kms::config::Builder::from(sdk_config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

fn kms_error(
    operation: &'static str,
    key_id: &str,
    err: impl std::error::Error + 'static,
) -> KeyError {
    KeyError::Kms {
        operation,
        key_id: key_id.to_owned(),
        reason: aws_sdk_kms::error::DisplayErrorContext(&err).to_string(),
    }
}

/// The public JWK of a KMS key (`GetPublicKey`).
pub async fn kms_public_jwk(client: &aws_sdk_kms::Client, key_id: &str) -> Result<Jwk, KeyError> {
    let out = client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| kms_error("GetPublicKey", key_id, e))?;
    let der = out
        .public_key()
        .ok_or_else(|| KeyError::Unsupported(format!("KMS returned no public key for {key_id}")))?;
    jwk_from_spki(der.as_ref())
}

/// The key ids of a comma-separated list, without blanks.
pub fn key_id_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------------------------------------
// The signer
// ------------------------------------------------------------------------------------------

enum Backend {
    Pem(EncodingKey),
    Kms {
        client: aws_sdk_kms::Client,
        key_id: String,
    },
}

/// Signs system JWTs. Nothing outside this module knows whether KMS or a PEM key does it.
pub struct TokenSigner {
    public: Jwk,
    alg: Algorithm,
    backend: Backend,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.backend {
            Backend::Pem(_) => "pem",
            Backend::Kms { .. } => "kms",
        };
        write!(
            f,
            "TokenSigner({source}, {:?}, kid={})",
            self.alg,
            self.kid()
        )
    }
}

impl TokenSigner {
    /// A P-256 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): ES256.
    pub fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
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
        let public = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|e| invalid(e.to_string()))?;
        let public =
            finish_jwk(Algorithm::ES256, public.algorithm).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            public,
            alg: Algorithm::ES256,
            backend: Backend::Pem(encoding),
        })
    }

    /// A KMS asymmetric signing key (ECC_NIST_P256 → ES256, RSA_2048 or larger → RS256).
    pub async fn from_kms(client: aws_sdk_kms::Client, key_id: &str) -> Result<Self, KeyError> {
        let public = kms_public_jwk(&client, key_id).await?;
        let alg = jwk_algorithm(&public)
            .ok_or_else(|| KeyError::Unsupported(format!("KMS key {key_id}")))?;
        Ok(Self {
            public,
            alg,
            backend: Backend::Kms {
                client,
                key_id: key_id.to_owned(),
            },
        })
    }

    /// `JWT_KMS_SIGNING_KEY_ID` (which must be one of `JWT_KMS_KEY_IDS`: a key signs only
    /// once it is published), or else `JWT_SIGNING_KEY`.
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let Some(key_id) = optional(JWT_KMS_SIGNING_KEY_ID) else {
            return Self::from_pem(&required(JWT_SIGNING_KEY)?);
        };
        let published = key_id_list(&required(JWT_KMS_KEY_IDS)?);
        Self::from_kms_published(kms_client(sdk_config), &key_id, &published)
            .await
            .map_err(|e| ConfigError::Invalid {
                name: JWT_KMS_SIGNING_KEY_ID,
                reason: e.to_string(),
            })
    }

    /// A KMS signer for `key_id`, which must be one of the `published` keys: a key signs
    /// only once verifiers can know it (the first step of a rotation publishes it).
    pub async fn from_kms_published(
        client: aws_sdk_kms::Client,
        key_id: &str,
        published: &[String],
    ) -> Result<Self, KeyError> {
        if !published.iter().any(|id| id == key_id) {
            return Err(KeyError::Unsupported(format!(
                "{key_id} is not published in {JWT_KMS_KEY_IDS}"
            )));
        }
        Self::from_kms(client, key_id).await
    }

    /// A fresh P-256 key as PKCS#8 PEM, for development and tests.
    pub fn generate_pem() -> Result<String, aws_lc_rs::error::Unspecified> {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
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

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// The public half as a JWKS document.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.typ = Some(TYP.to_owned());
        header.kid = Some(self.kid().to_owned());
        header
    }

    pub async fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let header = self.header();
        match &self.backend {
            Backend::Pem(key) => jsonwebtoken::encode(&header, claims, key)
                .map_err(|e| KeyError::Encoding(e.to_string())),
            Backend::Kms { client, key_id } => {
                let input = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
                let spec = match self.alg {
                    Algorithm::ES256 => SigningAlgorithmSpec::EcdsaSha256,
                    _ => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                };
                let out = client
                    .sign()
                    .key_id(key_id)
                    .message(Blob::new(input.as_bytes()))
                    .message_type(MessageType::Raw)
                    .signing_algorithm(spec)
                    .send()
                    .await
                    .map_err(|e| kms_error("Sign", key_id, e))?;
                let signature = out.signature().map(Blob::as_ref).unwrap_or_default();
                let signature = match self.alg {
                    Algorithm::ES256 => ecdsa_der_to_jws(signature)?,
                    _ => signature.to_vec(),
                };
                Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
            }
        }
    }
}

/// A JWS part (header or claims): base64url of its JSON.
fn b64_json<T: serde::Serialize>(value: &T) -> Result<String, KeyError> {
    serde_json::to_vec(value)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| KeyError::Encoding(e.to_string()))
}

// ------------------------------------------------------------------------------------------
// The published keys
// ------------------------------------------------------------------------------------------

/// The public keys tokens are accepted from, as served at `/.well-known/jwks.json`.
#[derive(Clone, Debug)]
pub struct PublishedKeys {
    jwks: JwkSet,
}

impl PublishedKeys {
    pub fn new(jwks: JwkSet) -> Self {
        Self { jwks }
    }

    /// Every key of `key_ids`, fetched concurrently.
    pub async fn from_kms(
        client: &aws_sdk_kms::Client,
        key_ids: &[String],
    ) -> Result<Self, KeyError> {
        let keys =
            futures::future::try_join_all(key_ids.iter().map(|id| kms_public_jwk(client, id)))
                .await?;
        Ok(Self {
            jwks: JwkSet { keys },
        })
    }

    /// `JWT_KMS_KEY_IDS` when set, else the `JWT_VERIFICATION_JWKS` document.
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        if let Some(ids) = optional(JWT_KMS_KEY_IDS) {
            return Self::from_kms(&kms_client(sdk_config), &key_id_list(&ids))
                .await
                .map_err(|e| ConfigError::Invalid {
                    name: JWT_KMS_KEY_IDS,
                    reason: e.to_string(),
                });
        }
        let json = required(JWT_VERIFICATION_JWKS)?;
        let jwks: JwkSet = serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
            name: JWT_VERIFICATION_JWKS,
            reason: e.to_string(),
        })?;
        Ok(Self { jwks })
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The algorithms of the published keys, each once.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for alg in self.jwks.keys.iter().filter_map(jwk_algorithm) {
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P256_SHA256_FIXED,
    };

    #[test]
    fn der_signatures_become_verifiable_fixed_signatures() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        // Many signatures, so r or s with a high bit (a leading 0x00 in DER) and short
        // components (fewer than 32 bytes) both occur.
        for i in 0..200u32 {
            let message = i.to_be_bytes();
            let der = pair.sign(&rng, &message).unwrap();
            let fixed = ecdsa_der_to_jws(der.as_ref()).unwrap();
            assert_eq!(fixed.len(), 64);
            public.verify(&message, &fixed).unwrap();
        }
    }

    #[test]
    fn malformed_signatures_are_refused() {
        assert!(ecdsa_der_to_jws(b"").is_err());
        assert!(ecdsa_der_to_jws(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        // A 33-byte component that is not a sign-padding byte.
        let mut der = vec![0x30, 0x26, 0x02, 0x21];
        der.extend([0x01; 33]);
        der.extend([0x02, 0x01, 0x01]);
        assert!(ecdsa_der_to_jws(&der).is_err());
    }

    #[test]
    fn a_p256_spki_gives_the_same_jwk_as_the_private_key() {
        let pem = TokenSigner::generate_pem().unwrap();
        let signer = TokenSigner::from_pem(&pem).unwrap();
        let parsed = pem::parse(pem.trim()).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, parsed.contents()).unwrap();
        // SubjectPublicKeyInfo of a P-256 key: fixed 26-byte prefix, then the point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let jwk = jwk_from_spki(&spki).unwrap();
        assert_eq!(&jwk, signer.public_jwk());
        assert_eq!(jwk_algorithm(&jwk), Some(Algorithm::ES256));
    }

    #[test]
    fn other_keys_are_refused() {
        assert!(jwk_from_spki(b"garbage").is_err());
        // An Ed25519 SubjectPublicKeyInfo.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend([7u8; 32]);
        assert!(jwk_from_spki(&spki).is_err());
    }

    #[test]
    fn key_id_lists_skip_blanks() {
        assert_eq!(key_id_list(" a, ,b,"), vec!["a".to_owned(), "b".to_owned()]);
        assert!(key_id_list("").is_empty());
    }
}
