//! Passwordless login (seed 003): which user an e-mail address names, the ceremony state kept
//! with the challenge, and the stand-in options a tenant that conceals unknown users shows.
//!
//! Users of a tenant with `conceal_unknown_users` can only be found when the request names the
//! tenant in `X-Tenant-ID`; otherwise an address of theirs and an address nobody has would get
//! different answers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_proto::{
    AllowCredentials, AuthenticatorTransport, PublicKeyCredentialRequestOptions,
    UserVerificationPolicy,
};

use crate::config::{ConfigError, CONCEALMENT_SECRET_ID};
use crate::crypto::{hmac_sha256, random_bytes};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{TenantId, UserId};
use crate::store::{normalise_email, Store, UserRecord};
use crate::tenant::Tenant;
use crate::webauthn::AuthenticationState;

/// Longest address accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 320;
/// How many users one address may have across tenants before the lookup stops looking.
const MAX_TENANTS_PER_EMAIL: i32 = 25;

/// The user id a concealed (unknown) user's challenge is stored under.
pub fn unknown_user() -> UserId {
    UserId::from(Uuid::nil())
}

/// Stored with a login challenge. `auth` is `None` for the stand-in ceremony of a concealed
/// unknown user, which can never complete.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginCeremony {
    pub auth: Option<AuthenticationState>,
    /// The device `begin` was asked from and whether the user had logged in from it before
    /// (e-mail logins): a completion from the same device is from a trusted device (the
    /// `device_trusted` fact of the tenant's `bypass_mfa` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<KnownDevice>,
}

/// A device fingerprint hash and whether the user had a trusted device record for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub hash: String,
    pub trusted: bool,
}

impl LoginCeremony {
    /// Whether a completion from the device hashed `hash` is from a device the user had
    /// logged in from before `begin`.
    pub fn device_trusted(&self, hash: &str) -> bool {
        self.device
            .as_ref()
            .is_some_and(|d| d.trusted && d.hash == hash)
    }
}

/// Whom an e-mail address names.
#[derive(Debug)]
pub enum LoginUser {
    Known {
        tenant: Tenant,
        user: UserRecord,
    },
    /// No such user in a tenant that conceals it: answered like a wrong credential.
    Concealed {
        tenant: Tenant,
    },
}

impl LoginUser {
    pub fn tenant(&self) -> &Tenant {
        match self {
            LoginUser::Known { tenant, .. } | LoginUser::Concealed { tenant } => tenant,
        }
    }

    /// The id the user's challenges and credentials are keyed by (nil when concealed).
    pub fn user_id(&self) -> UserId {
        match self {
            LoginUser::Known { user, .. } => user.user_id,
            LoginUser::Concealed { .. } => unknown_user(),
        }
    }

    pub fn known(&self) -> Option<&UserRecord> {
        match self {
            LoginUser::Known { user, .. } => Some(user),
            LoginUser::Concealed { .. } => None,
        }
    }
}

/// The address as stored (trimmed, lower-case), if it looks like one.
pub fn parse_email(email: &str) -> Result<String, ApiError> {
    let email = normalise_email(email);
    if email.is_empty() || email.chars().count() > MAX_EMAIL_CHARS || !email.contains('@') {
        return Err(ApiError::invalid_field(
            "email",
            "email must be an e-mail address",
        ));
    }
    Ok(email)
}

pub fn tenant_not_found() -> ApiError {
    ApiError::not_found(
        ErrorCode::TenantNotFound,
        "the X-Tenant-ID tenant does not exist",
    )
}

pub fn user_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::UserNotFound, "no user has this e-mail address")
}

/// Finds the user by e-mail through the `email-index` GSI: in the tenant `X-Tenant-ID` names,
/// or across tenants when it is absent (ambiguous if several tenants have the address).
pub async fn resolve_user(
    store: &Store,
    tenant_header: Option<TenantId>,
    email: &str,
    now: i64,
) -> Result<LoginUser, ApiError> {
    match tenant_header {
        Some(tenant_id) => {
            let (tenant, user) = tokio::try_join!(
                store.tenant(&tenant_id, now),
                store.find_user_by_email_in_tenant(&tenant_id, email),
            )?;
            let tenant = tenant.ok_or_else(tenant_not_found)?;
            match user {
                Some(user) => Ok(LoginUser::Known { tenant, user }),
                None if tenant.conceal_unknown_users => Ok(LoginUser::Concealed { tenant }),
                None => Err(user_not_found()),
            }
        }
        None => {
            let users = store
                .find_users_by_email(email, MAX_TENANTS_PER_EMAIL)
                .await?;
            // One batch read whether the address has users or not: a lookup that found none
            // costs the same round trip as one that found a concealing tenant's user.
            let ids: Vec<TenantId> = users.iter().map(|u| u.tenant_id).collect();
            let tenants = store.get_tenants(&ids).await?;
            let mut visible: Vec<(Tenant, UserRecord)> = users
                .into_iter()
                .filter_map(|user| {
                    let tenant = tenants.iter().find(|t| t.tenant_id == user.tenant_id)?;
                    (!tenant.conceal_unknown_users).then(|| (tenant.clone(), user))
                })
                .collect();
            match visible.len() {
                0 => Err(user_not_found()),
                1 => {
                    let (tenant, user) = visible.remove(0);
                    Ok(LoginUser::Known { tenant, user })
                }
                _ => Err(ApiError::BadRequest {
                    code: ErrorCode::AmbiguousEmail,
                    message: "this e-mail address exists in several tenants; send X-Tenant-ID"
                        .into(),
                    details: Some(serde_json::json!({ "header": "X-Tenant-ID" })),
                }),
            }
        }
    }
}

/// The deployment secret each tenant's concealment key is derived from. It lives in Secrets
/// Manager, not in the tenants table beside the data it protects: a copy of the tables alone
/// cannot tell stand-in options from real ones.
pub struct ConcealmentKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for ConcealmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConcealmentKey(..)")
    }
}

/// A concealment secret shorter than this is refused at start-up.
const MIN_CONCEALMENT_SECRET_BYTES: usize = 32;

impl ConcealmentKey {
    pub fn new(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < MIN_CONCEALMENT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: CONCEALMENT_SECRET_ID,
                reason: format!("must be at least {MIN_CONCEALMENT_SECRET_BYTES} bytes"),
            });
        }
        Ok(Self {
            secret: secret.to_vec(),
        })
    }

    /// The secret from the Secrets Manager secret `CONCEALMENT_SECRET_ID` names.
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let client = crate::secrets::secrets_client(sdk_config);
        Self::new(&crate::secrets::secret_named_by(&client, CONCEALMENT_SECRET_ID).await?)
    }

    /// The tenant's key: HMAC of its id under the deployment secret.
    fn for_tenant(&self, tenant: &TenantId) -> Vec<u8> {
        hmac_sha256(&self.secret, format!("tenant:{tenant}").as_bytes())
    }
}

/// Lengths real credential ids have (16 to 64 bytes); stand-ins pick among them.
const STAND_IN_ID_LENGTHS: [usize; 4] = [16, 32, 48, 64];
/// Transports real credentials list (none, when the client did not report them); stand-ins
/// pick among them.
const STAND_IN_TRANSPORTS: [Option<&[AuthenticatorTransport]>; 4] = [
    None,
    Some(&[AuthenticatorTransport::Internal]),
    Some(&[
        AuthenticatorTransport::Hybrid,
        AuthenticatorTransport::Internal,
    ]),
    Some(&[AuthenticatorTransport::Usb]),
];

/// Options for a user the tenant conceals: the shape real options have, a fresh challenge,
/// and one or two stand-in credentials whose ids (16–64 bytes) and transports are derived
/// from the tenant's concealment key and the address, so asking twice shows the same ones, as
/// it would for a real user, and nobody without the key can tell them from real ones.
pub fn concealed_options(
    key: &ConcealmentKey,
    tenant: &Tenant,
    email: &str,
) -> Result<PublicKeyCredentialRequestOptions, ApiError> {
    let tenant_key = key.for_tenant(&tenant.tenant_id);
    let derive = |label: &str| {
        hmac_sha256(
            &tenant_key,
            format!("conceal:{label}:{}", normalise_email(email)).as_bytes(),
        )
    };
    let shape = derive("shape");
    let count = 1 + usize::from(shape[0] % 2);
    let allow_credentials = (0..count)
        .map(|i| {
            let len = STAND_IN_ID_LENGTHS[usize::from(shape[1 + i]) % STAND_IN_ID_LENGTHS.len()];
            let mut id = derive(&format!("id{i}a")).to_vec();
            id.extend_from_slice(&derive(&format!("id{i}b")));
            id.truncate(len);
            let transports =
                STAND_IN_TRANSPORTS[usize::from(shape[3 + i]) % STAND_IN_TRANSPORTS.len()];
            AllowCredentials {
                type_: "public-key".into(),
                id,
                transports: transports.map(|t| t.to_vec()),
            }
        })
        .collect();
    Ok(PublicKeyCredentialRequestOptions {
        challenge: random_bytes::<32>()?.to_vec(),
        timeout: Some(tenant.challenge_timeout_secs.saturating_mul(1000)),
        rp_id: tenant.rp_id.clone(),
        allow_credentials,
        user_verification: UserVerificationPolicy::Required,
        hints: None,
        extensions: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_normalised() {
        assert_eq!(parse_email(" Bob@Example.com ").unwrap(), "bob@example.com");
        assert_eq!(
            parse_email("").unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
        assert!(parse_email("nobody").is_err());
        assert!(parse_email(&format!("{}@x.io", "a".repeat(400))).is_err());
    }

    #[test]
    fn stand_in_ids_are_stable_per_address_tenant_and_secret() {
        let key = ConcealmentKey::new(&[7u8; 32]).unwrap();
        let tenant = Tenant::new("t", "localhost", vec!["http://localhost".into()], 0);
        let a = concealed_options(&key, &tenant, "x@example.com").unwrap();
        let b = concealed_options(&key, &tenant, "X@example.com ").unwrap();
        let ids = |o: &PublicKeyCredentialRequestOptions| {
            o.allow_credentials
                .iter()
                .map(|c| c.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(a.challenge, b.challenge);
        // Across addresses, stand-ins vary in number and length as real credentials do.
        let shapes: std::collections::BTreeSet<Vec<usize>> = (0..64)
            .map(|i| concealed_options(&key, &tenant, &format!("u{i}@example.com")).unwrap())
            .map(|o| o.allow_credentials.iter().map(|c| c.id.len()).collect())
            .collect();
        assert!(shapes.iter().any(|s| s.len() == 1) && shapes.iter().any(|s| s.len() == 2));
        assert!(shapes.iter().flatten().any(|len| *len == 16));
        assert!(shapes.iter().flatten().any(|len| *len == 64));
        let other = Tenant::new("t", "localhost", vec!["http://localhost".into()], 0);
        let c = concealed_options(&key, &other, "x@example.com").unwrap();
        assert_ne!(a.allow_credentials[0].id, c.allow_credentials[0].id);
        let other_key = ConcealmentKey::new(&[8u8; 32]).unwrap();
        let d = concealed_options(&other_key, &tenant, "x@example.com").unwrap();
        assert_ne!(a.allow_credentials[0].id, d.allow_credentials[0].id);
        assert!(ConcealmentKey::new(&[1u8; 31]).is_err());
    }
}
