//! The end of a second-factor login: tenant policy decides between a full token, a token that
//! only allows enrolling more authenticators, and no token but a grant to enroll a missing
//! method type. Shared by the WebAuthn and backup-code completions.

use serde::{Deserialize, Serialize};

use crate::auth::MFA_SETUP_SCOPE;
use crate::clock::rfc3339;
use crate::config::{ConfigError, TokenConfig, TokenSettings};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ChallengeId, TenantId, UserId};
use crate::jwt::Claims;
use crate::keys::TokenSigner;
use crate::policy::{self, Facts, Question, Subject, UserFacts};
use crate::store::{ChallengeKind, ChallengeRecord, ConsumeChallenge, CredentialRecord, Store};
use crate::tenant::{MethodType, Tenant};
use crate::webauthn::AuthenticationState;

/// Default lifetime of an MFA challenge created by the primary login.
pub const MFA_CHALLENGE_TTL_SECS: i64 = 300;

/// What `/v1/auth/mfa/webauthn/options` attaches to the MFA challenge: the webauthn-rs state,
/// and the credentials it was built from, so completion reads nothing but the tenant's
/// settings (cached per container). The credentials' counters here are a snapshot: completion
/// judges the counter against the live value when it writes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MfaCeremony {
    pub auth: AuthenticationState,
    pub credentials: Vec<CredentialRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A token for everything.
    Full,
    /// Fewer authenticators than the tenant requires: a token limited to MFA enrollment.
    SetupOnly,
    /// A required method type is missing: no token, a grant to enroll it.
    Enroll(MethodType),
}

/// The tenant's policies on a successful second factor: for each method type the user has no
/// authenticator of (the tenant's `required_methods` order first), `waive_method`; the first
/// refused is to be enrolled. Then `full_access`: refused gives a token limited to enrollment.
/// The notices are those of the decision that shaped the outcome.
pub fn decide(
    tenant: &Tenant,
    subject: &Subject,
    facts: &Facts,
) -> Result<(Outcome, Vec<String>), ApiError> {
    let missing = tenant
        .required_methods
        .iter()
        .chain(MethodType::ALL.iter())
        .filter(|m| !subject.authenticators.contains(m));
    let mut asked = Vec::with_capacity(MethodType::ALL.len());
    for method in missing {
        if asked.contains(method) {
            continue;
        }
        asked.push(*method);
        let waived = policy::decide(tenant, subject, &Question::WaiveMethod(*method), facts)?;
        if !waived.allowed {
            return Ok((Outcome::Enroll(*method), waived.notices));
        }
    }
    let full = policy::decide(tenant, subject, &Question::FullAccess, facts)?;
    let outcome = match full.allowed {
        true => Outcome::Full,
        false => Outcome::SetupOnly,
    };
    Ok((outcome, full.notices))
}

/// How the second factor was proven: its RFC 8176 methods and the request's circumstances.
pub struct SecondFactor<'a> {
    pub amr: &'a [&'a str],
    pub facts: Facts,
    /// Whether the user has backup codes, where the completion read them.
    pub has_backup_codes: Option<bool>,
    /// The user's groups as the MFA challenge kept them (`None` on a challenge from before
    /// challenges kept them).
    pub groups: Option<&'a [String]>,
}

/// The seed 000 response body.
#[derive(Debug, Serialize)]
pub struct MfaResponse {
    pub token: Option<String>,
    /// When the token expires; with `enrollment_required`, when the enrollment grant does.
    pub expires_at: String,
    pub mfa_setup_required: bool,
    pub enrollment_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<ChallengeId>,
    /// The `@notice`s of the tenant policies that shaped the outcome (issue 14).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// Signs system JWTs; built once per cold start by the functions that issue them.
#[derive(Debug)]
pub struct TokenIssuer {
    pub signer: TokenSigner,
    pub config: TokenConfig,
}

impl TokenIssuer {
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            signer: TokenSigner::from_env(sdk_config).await?,
            config: TokenConfig::from_env()?,
        })
    }

    /// The issuer of one request: its `iss` is the configured issuer or the API's URL.
    pub fn for_request(&self, req: &lambda_http::Request) -> Result<Minter<'_>, ApiError> {
        Ok(Minter {
            signer: &self.signer,
            settings: self.config.for_request(req)?,
        })
    }
}

/// Issues the tokens of one request.
pub struct Minter<'a> {
    signer: &'a TokenSigner,
    pub settings: TokenSettings,
}

impl Minter<'_> {
    /// A token for a login that just happened, with its RFC 8176 methods.
    pub async fn issue(
        &self,
        tenant: &Tenant,
        user: UserId,
        amr: &[&str],
        scope: Option<&str>,
        now: i64,
    ) -> Result<(String, Claims), ApiError> {
        let mut claims = self.claims(tenant, user, now);
        claims.auth_time = Some(now);
        claims.amr = amr.iter().map(|m| (*m).to_owned()).collect();
        claims.scope = scope.map(str::to_owned);
        Ok((self.sign(&claims).await?, claims))
    }

    /// Claims for `user` with the tenant's token lifetime.
    pub fn claims(&self, tenant: &Tenant, user: UserId, now: i64) -> Claims {
        Claims::new(
            &self.settings,
            tenant.tenant_id,
            user,
            now,
            i64::from(tenant.token_ttl_secs),
        )
    }

    pub async fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        Ok(self.signer.sign(claims).await?)
    }
}

/// Applies the tenant's policies to a successful second factor and builds the response.
pub async fn conclude(
    store: &Store,
    issuer: &Minter<'_>,
    tenant: &Tenant,
    user: UserId,
    credentials: &[CredentialRecord],
    factor: &SecondFactor<'_>,
    now: i64,
) -> Result<MfaResponse, ApiError> {
    let read = UserFacts {
        credentials,
        groups: factor.groups,
        has_backup_codes: factor.has_backup_codes,
    };
    let subject = Subject::of(tenant.tenant_id, user, &read);
    let (outcome, notices) = decide(tenant, &subject, &factor.facts)?;
    let mut response = match outcome {
        Outcome::Enroll(method) => grant_enrollment(store, tenant, user, Some(method), now).await?,
        Outcome::SetupOnly | Outcome::Full => {
            let setup_only = outcome == Outcome::SetupOnly;
            let scope = setup_only.then_some(MFA_SETUP_SCOPE);
            let (token, claims) = issuer.issue(tenant, user, factor.amr, scope, now).await?;
            MfaResponse {
                token: Some(token),
                expires_at: rfc3339(claims.exp),
                mfa_setup_required: setup_only,
                enrollment_required: false,
                challenge_id: None,
                notices: Vec::new(),
            }
        }
    };
    response.notices = notices;
    Ok(response)
}

/// No token, but an enrollment grant (`enrollment_required`): for `method`, or for any method
/// type the tenant enables when `None` (a user with no authenticator at MFA options). It lasts
/// the tenant's challenge timeout and is consumed by the registration it authorises.
pub async fn grant_enrollment(
    store: &Store,
    tenant: &Tenant,
    user: UserId,
    method: Option<MethodType>,
    now: i64,
) -> Result<MfaResponse, ApiError> {
    let (id, grant) = store
        .create_challenge(
            ChallengeKind::Enrollment,
            &tenant.tenant_id,
            &user,
            method,
            now,
            i64::from(tenant.challenge_timeout_secs),
        )
        .await?;
    Ok(MfaResponse {
        token: None,
        expires_at: rfc3339(grant.expires_at),
        mfa_setup_required: false,
        enrollment_required: true,
        challenge_id: Some(id),
        notices: Vec::new(),
    })
}

/// `challenge_id` from a request body.
pub fn parse_challenge_id(raw: &str) -> Result<ChallengeId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid_field("challenge_id", "challenge_id must be a UUID"))
}

/// The MFA endpoints are authenticated by their challenge; an `X-Tenant-ID` header is optional
/// but, when sent, must name the challenge's tenant.
pub fn check_optional_tenant_header(
    req: &lambda_http::Request,
    tenant: &TenantId,
) -> Result<(), ApiError> {
    match crate::http::optional_tenant_header(req)? {
        Some(header) => crate::tenant::ensure_same_tenant(&header, tenant),
        None => Ok(()),
    }
}

/// Consumes an MFA challenge for a completion. An `X-Tenant-ID` header, when sent, is part of
/// the consuming condition: a request naming another tenant gets 403 `tenant_mismatch` and
/// leaves the challenge for its rightful use (whoever holds the id could use it anyway).
pub async fn consume_mfa_challenge(
    store: &Store,
    id: &ChallengeId,
    header: Option<TenantId>,
    require_state: bool,
    now: i64,
) -> Result<ChallengeRecord, ApiError> {
    let key = ChallengeKind::Mfa.key(id);
    let consumed = store
        .consume_challenge(ConsumeChallenge {
            key: &key,
            kind: ChallengeKind::Mfa,
            tenant: header.as_ref(),
            user: None,
            method_type: None,
            any_method_if_unset: false,
            require_state,
            now,
        })
        .await?;
    if let Some(challenge) = consumed {
        return Ok(challenge);
    }
    if let Some(header) = header {
        // Only on this failure path: was it the header?
        if let Some(live) = store.get_challenge(&key, now).await? {
            if live.kind == ChallengeKind::Mfa {
                crate::tenant::ensure_same_tenant(&header, &live.tenant_id)?;
            }
        }
    }
    Err(challenge_not_found())
}

pub fn challenge_not_found() -> ApiError {
    ApiError::not_found(
        ErrorCode::ChallengeNotFound,
        "the MFA challenge does not exist, has expired or was already used",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: MethodType) -> CredentialRecord {
        CredentialRecord {
            tenant_user: String::new(),
            credential_id: crate::ids::CredentialId::from_bytes(vec![1]),
            tenant_id: TenantId::new_random(),
            user_id: UserId::new_random(),
            method_type: method,
            device_name: String::new(),
            aaguid: uuid::Uuid::nil(),
            backup_eligible: false,
            backup_state: false,
            transports: vec![],
            sign_count: 0,
            registration_sign_count: 0,
            counter_regressions: 0,
            user_verified: true,
            created_at: 0,
            last_used_at: None,
            use_count: 0,
            webauthn_credential: String::new(),
        }
    }

    #[test]
    fn policy_prefers_missing_methods_then_counts() {
        let mut tenant = Tenant::new("t", "localhost", vec!["http://localhost".into()], 0);
        let key = record(MethodType::WebauthnFido);
        let passkey = record(MethodType::WebauthnPasskey);
        let outcome = |tenant: &Tenant, creds: &[CredentialRecord]| {
            let subject = Subject::new(tenant.tenant_id, UserId::new_random(), creds);
            decide(tenant, &subject, &Facts::default()).unwrap().0
        };
        assert_eq!(outcome(&tenant, std::slice::from_ref(&key)), Outcome::Full);
        tenant.min_authenticators = 2;
        assert_eq!(
            outcome(&tenant, std::slice::from_ref(&key)),
            Outcome::SetupOnly
        );
        tenant.required_methods = vec![MethodType::WebauthnPasskey];
        assert_eq!(
            outcome(&tenant, std::slice::from_ref(&key)),
            Outcome::Enroll(MethodType::WebauthnPasskey)
        );
        assert_eq!(outcome(&tenant, &[key, passkey]), Outcome::Full);
        // The tenant's order of required methods decides which is enrolled first.
        tenant.required_methods = vec![MethodType::WebauthnFido, MethodType::WebauthnPasskey];
        assert_eq!(
            outcome(&tenant, &[]),
            Outcome::Enroll(MethodType::WebauthnFido)
        );
    }
}
