//! Tenant policies in Cedar (issue 14): each tenant's authentication rules are a Cedar policy
//! set, validated against the shipped schema (`schema.cedarschema`), and the service's
//! decisions (may this user register this authenticator, does an MFA login get a full token,
//! is a recent login recent enough, may a passwordless login stand alone) are Cedar decisions.
//!
//! A tenant without its own set uses [`default_policies`], rendered from its settings, which
//! reproduces the behaviour from before policies. A decision carries the `@notice("…")`
//! annotations of the policies that determined it ([`Decision::notices`]); in a decision about
//! an authenticator, `{authenticator}` in a notice names its model (AAGUID list).
//!
//! Sets are parsed on a tenant's first decision in a container and cached ([`engine`]); the
//! schema is parsed only to validate a set (operators' writes), never on a decision.

mod default;
mod engine;
mod sample;

use std::net::IpAddr;

use uuid::Uuid;

use crate::ids::{TenantId, UserId};
use crate::store::CredentialRecord;
use crate::tenant::{MethodType, Tenant};

pub use default::default_policies;
pub use engine::{decide_with_text, validate_policies};
pub use sample::{SampleAuthenticator, SampleRequest, SampleUser};

/// The Cedar schema tenant policy sets are validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// The namespace of the schema's entity types and actions.
pub const NAMESPACE: &str = "Passkey";

/// Longest policy set a tenant may store (the Tenants item must stay far below 400 KB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// A policy decision and the notices of the policies that determined it: the permits of an
/// Allow, the forbids of a Deny (sorted, without duplicates or empty ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub notices: Vec<String>,
}

/// Why a decision could not be made. The caller fails closed (an internal error, nothing
/// allowed).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The stored set does not parse (it was validated when stored, so this is a fault).
    #[error("the tenant's policy set does not parse: {0}")]
    Parse(String),
    /// The request could not be expressed in Cedar.
    #[error("the policy request could not be built: {0}")]
    Request(String),
}

impl From<PolicyError> for crate::error::ApiError {
    fn from(err: PolicyError) -> Self {
        crate::error::ApiError::internal(err.to_string())
    }
}

/// The actions of the schema: one per decision the service asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Register,
    FullAccess,
    WaiveMethod,
    BypassMfa,
    AddAuthenticator,
    DeleteAuthenticator,
    RegenerateBackupCodes,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Register,
        Action::FullAccess,
        Action::WaiveMethod,
        Action::BypassMfa,
        Action::AddAuthenticator,
        Action::DeleteAuthenticator,
        Action::RegenerateBackupCodes,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::FullAccess => "full_access",
            Action::WaiveMethod => "waive_method",
            Action::BypassMfa => "bypass_mfa",
            Action::AddAuthenticator => "add_authenticator",
            Action::DeleteAuthenticator => "delete_authenticator",
            Action::RegenerateBackupCodes => "regenerate_backup_codes",
        }
    }
}

/// What the service knows about an authenticator: registered, or being registered (only
/// `method_type` at the options step).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthenticatorFacts {
    /// The entity id: the credential id (base64url), or empty while being registered.
    pub id: String,
    pub method_type: Option<MethodType>,
    pub aaguid: Option<Uuid>,
    pub attestation_format: Option<String>,
    pub backup_eligible: Option<bool>,
    pub user_verified: Option<bool>,
}

impl AuthenticatorFacts {
    /// An authenticator about to be registered, of which only the method type is known.
    pub fn planned(method: MethodType) -> Self {
        Self {
            method_type: Some(method),
            ..Self::default()
        }
    }

    /// A stored credential.
    pub fn of(record: &CredentialRecord) -> Self {
        Self {
            id: record.credential_id.to_base64url(),
            method_type: Some(record.method_type),
            aaguid: Some(record.aaguid),
            attestation_format: None,
            backup_eligible: Some(record.backup_eligible),
            user_verified: Some(record.user_verified),
        }
    }
}

/// The user a decision is about.
#[derive(Clone, Debug)]
pub struct Subject {
    pub tenant: TenantId,
    pub user: UserId,
    /// The method type of each of the user's authenticators.
    pub authenticators: Vec<MethodType>,
    pub has_backup_codes: Option<bool>,
    /// Not stored by the service yet; `authctl tenant policy test` can set it.
    pub groups: Option<Vec<String>>,
}

impl Subject {
    pub fn new(tenant: TenantId, user: UserId, credentials: &[CredentialRecord]) -> Self {
        Self {
            tenant,
            user,
            authenticators: credentials.iter().map(|c| c.method_type).collect(),
            has_backup_codes: None,
            groups: None,
        }
    }

    /// The subject as `read` describes the user.
    pub fn of(tenant: TenantId, user: UserId, read: &UserFacts<'_>) -> Self {
        Self {
            has_backup_codes: read.has_backup_codes,
            groups: read.groups.map(<[String]>::to_vec),
            ..Self::new(tenant, user, read.credentials)
        }
    }
}

/// What an endpoint read of the user a decision is about: their credentials, and where it
/// read them, their groups (the user record) and whether they have backup codes. `None`
/// leaves the attribute out of the principal.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserFacts<'a> {
    pub credentials: &'a [CredentialRecord],
    pub groups: Option<&'a [String]>,
    pub has_backup_codes: Option<bool>,
}

impl<'a> UserFacts<'a> {
    pub fn new(credentials: &'a [CredentialRecord], groups: &'a [String]) -> Self {
        Self {
            credentials,
            groups: Some(groups),
            has_backup_codes: None,
        }
    }
}

/// The request's circumstances (the schema's `Facts` context). `None` leaves an attribute
/// out; policies test it with `has`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub uv: Option<bool>,
    pub device_trusted: Option<bool>,
    pub auth_age_secs: Option<i64>,
    pub enrollment_grant: Option<bool>,
    pub source_ip: Option<IpAddr>,
}

impl Facts {
    /// What every request tells: its source IP (API Gateway's view, not a header).
    pub fn of_request(req: &lambda_http::Request) -> Self {
        Self {
            source_ip: crate::http::client_info(req)
                .ip
                .and_then(|ip| ip.parse().ok()),
            ..Self::default()
        }
    }
}

/// One question to the tenant's policies: the action and its resource.
#[derive(Clone, Copy, Debug)]
pub enum Question<'a> {
    /// May the user enroll this authenticator? `context.method_type`, `aaguid` and
    /// `attestation_format` repeat the authenticator's.
    Register(&'a AuthenticatorFacts),
    FullAccess,
    /// May the user go without an authenticator of this method type?
    WaiveMethod(MethodType),
    BypassMfa(&'a AuthenticatorFacts),
    AddAuthenticator(&'a AuthenticatorFacts),
    DeleteAuthenticator(&'a AuthenticatorFacts),
    RegenerateBackupCodes,
}

impl Question<'_> {
    pub fn action(&self) -> Action {
        match self {
            Question::Register(_) => Action::Register,
            Question::FullAccess => Action::FullAccess,
            Question::WaiveMethod(_) => Action::WaiveMethod,
            Question::BypassMfa(_) => Action::BypassMfa,
            Question::AddAuthenticator(_) => Action::AddAuthenticator,
            Question::DeleteAuthenticator(_) => Action::DeleteAuthenticator,
            Question::RegenerateBackupCodes => Action::RegenerateBackupCodes,
        }
    }

    /// The authenticator the question is about; `None` when the resource is the tenant.
    pub fn authenticator(&self) -> Option<&AuthenticatorFacts> {
        match self {
            Question::Register(a)
            | Question::BypassMfa(a)
            | Question::AddAuthenticator(a)
            | Question::DeleteAuthenticator(a) => Some(a),
            Question::FullAccess | Question::WaiveMethod(_) | Question::RegenerateBackupCodes => {
                None
            }
        }
    }
}

impl Tenant {
    /// The tenant's policy set: the stored one, or the default rendered from its settings.
    pub fn policy_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.policies {
            Some(text) => std::borrow::Cow::Borrowed(text.as_str()),
            None => std::borrow::Cow::Owned(default_policies(self)),
        }
    }
}

/// Passwordless (`bypass_mfa`): may a login with `used` (one of the user's `credentials`)
/// stand alone, without a second factor? `user` holds `used`; `facts` carry `uv`, `device_trusted` and the source
/// IP.
pub fn may_bypass_mfa(
    tenant: &Tenant,
    user: &UserFacts<'_>,
    used: &CredentialRecord,
    facts: &Facts,
) -> Result<Decision, PolicyError> {
    let subject = Subject::of(tenant.tenant_id, used.user_id, user);
    let authenticator = AuthenticatorFacts::of(used);
    decide(
        tenant,
        &subject,
        &Question::BypassMfa(&authenticator),
        facts,
    )
}

/// Asks the tenant's policies (parsed on first use in this container, then cached).
pub fn decide(
    tenant: &Tenant,
    subject: &Subject,
    question: &Question<'_>,
    facts: &Facts,
) -> Result<Decision, PolicyError> {
    let set = engine::cached_set(tenant)?;
    engine::evaluate(&set, subject, question, facts)
}

#[cfg(test)]
mod tests;
