//! Passwordless login (seed 003): which user an e-mail address names, the ceremony state kept
//! with the challenge, and the stand-in options a tenant that conceals unknown users shows.
//!
//! Users of a tenant with `conceal_unknown_users` can only be found when the request names the
//! tenant in `X-Tenant-ID`; otherwise an address of theirs and an address nobody has would get
//! different answers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_proto::{
    AllowCredentials, PublicKeyCredentialRequestOptions, UserVerificationPolicy,
};

use crate::crypto::{hmac_sha256, random_bytes};
use crate::error::ApiError;
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

pub fn user_not_found() -> ApiError {
    ApiError::not_found("user_not_found", "no user has this e-mail address")
}

/// Finds the user by e-mail through the `email-index` GSI: in the tenant `X-Tenant-ID` names,
/// or across tenants when it is absent (ambiguous if several tenants have the address).
pub async fn resolve_user(
    store: &Store,
    tenant_header: Option<TenantId>,
    email: &str,
) -> Result<LoginUser, ApiError> {
    match tenant_header {
        Some(tenant_id) => {
            let (tenant, user) = tokio::try_join!(
                store.get_tenant(&tenant_id),
                store.find_user_by_email_in_tenant(&tenant_id, email),
            )?;
            let tenant = tenant.ok_or_else(|| {
                ApiError::not_found("tenant_not_found", "the X-Tenant-ID tenant does not exist")
            })?;
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
            let tenants =
                futures::future::try_join_all(users.iter().map(|u| store.get_tenant(&u.tenant_id)))
                    .await?;
            let mut visible: Vec<(Tenant, UserRecord)> = tenants
                .into_iter()
                .zip(users)
                .filter_map(|(tenant, user)| tenant.map(|t| (t, user)))
                .filter(|(tenant, _)| !tenant.conceal_unknown_users)
                .collect();
            match visible.len() {
                0 => Err(user_not_found()),
                1 => {
                    let (tenant, user) = visible.remove(0);
                    Ok(LoginUser::Known { tenant, user })
                }
                _ => Err(ApiError::BadRequest {
                    code: "ambiguous_email",
                    message: "this e-mail address exists in several tenants; send X-Tenant-ID"
                        .into(),
                    details: Some(serde_json::json!({ "header": "X-Tenant-ID" })),
                }),
            }
        }
    }
}

/// Options for a user the tenant conceals: the shape real options have, a fresh challenge,
/// and stand-in credential ids derived from the tenant's secret and the address, so asking
/// twice shows the same ids, as it would for a real user.
pub fn concealed_options(
    tenant: &Tenant,
    email: &str,
) -> Result<PublicKeyCredentialRequestOptions, ApiError> {
    let mac = hmac_sha256(
        tenant.secret.as_bytes(),
        format!("conceal:{}", normalise_email(email)).as_bytes(),
    );
    Ok(PublicKeyCredentialRequestOptions {
        challenge: random_bytes::<32>()?.to_vec(),
        timeout: Some(tenant.challenge_timeout_secs.saturating_mul(1000)),
        rp_id: tenant.rp_id.clone(),
        allow_credentials: vec![AllowCredentials {
            type_: "public-key".into(),
            id: mac[..16].to_vec(),
            transports: None,
        }],
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
        assert_eq!(parse_email("").unwrap_err().code(), "invalid_request");
        assert!(parse_email("nobody").is_err());
        assert!(parse_email(&format!("{}@x.io", "a".repeat(400))).is_err());
    }

    #[test]
    fn stand_in_ids_are_stable_per_address_and_secret() {
        let tenant = Tenant::new("t", "localhost", vec!["http://localhost".into()], 0);
        let a = concealed_options(&tenant, "x@example.com").unwrap();
        let b = concealed_options(&tenant, "X@example.com ").unwrap();
        assert_eq!(a.allow_credentials[0].id, b.allow_credentials[0].id);
        assert_ne!(a.challenge, b.challenge);
        let other = Tenant::new("t", "localhost", vec!["http://localhost".into()], 0);
        let c = concealed_options(&other, "x@example.com").unwrap();
        assert_ne!(a.allow_credentials[0].id, c.allow_credentials[0].id);
    }
}
