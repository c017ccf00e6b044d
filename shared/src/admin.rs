//! Operator operations on users, shared by `authctl` and the admin API: one implementation,
//! a domain error that knows no HTTP (each surface maps it).

use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::ids::{ChallengeId, CredentialId, SessionId, TenantId, UserId};
use crate::store::{
    normalise_email, DeleteCredentialOutcome, Erased, SessionRecord, Store, StoreError,
    UserChanges, UserRecord,
};
use crate::tenant::{MethodType, Tenant, UserVerification};

/// Longest display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// Longest e-mail address (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 320;
/// Lifetimes an MFA challenge may be created with.
pub const MFA_CHALLENGE_TTL_RANGE: std::ops::RangeInclusive<i64> = 30..=3600;

/// What an operation did not find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("tenant")]
    Tenant,
    #[error("user")]
    User,
    #[error("credential")]
    Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such {0}")]
    NotFound(Missing),
    /// A field the operator sent is not acceptable: the field and why.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} already exists")]
    Conflict(String),
    /// A policy set that does not parse or validate against the shipped schema: the
    /// parser's or validator's messages.
    #[error("policies: {}", .0.join("; "))]
    InvalidPolicies(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Most groups a user may be in, and the longest group name.
pub const MAX_GROUPS: usize = 32;
pub const MAX_GROUP_CHARS: usize = 64;

/// A user's groups as stored: trimmed, sorted, without duplicates; each 1 to 64 characters of
/// letters, digits and `_ - . : @ /`, at most 32.
pub fn normalise_groups(groups: &[String]) -> Result<Vec<String>, AdminError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:@/".contains(c);
    if groups.len() > MAX_GROUPS {
        return Err(invalid("groups", "at most 32 groups"));
    }
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let group = group.trim();
        if group.is_empty()
            || group.chars().count() > MAX_GROUP_CHARS
            || !group.chars().all(allowed)
        {
            return Err(invalid(
                "groups",
                "each group is 1 to 64 characters of letters, digits and _ - . : @ /",
            ));
        }
        out.push(group.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A new user: what an operator sends to create one.
#[derive(Clone, Copy, Debug)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub groups: &'a [String],
}

/// A new user of `tenant`: the address normalised and unique within the tenant.
pub async fn create_user(
    store: &Store,
    tenant: &TenantId,
    new: &NewUser<'_>,
    now: i64,
    mut audit: Option<&mut Audit>,
) -> Result<UserRecord, AdminError> {
    let NewUser {
        email,
        display_name,
        groups,
    } = *new;
    let email = normalise_email(email);
    if !email.contains('@') || email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid(
            "email",
            "an e-mail address of at most 320 characters is required",
        ));
    }
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(invalid("display_name", "1 to 200 characters are required"));
    }
    let groups = normalise_groups(groups)?;
    let (found, taken) = tokio::try_join!(
        store.tenant(tenant, now),
        store.find_user_by_email_in_tenant(tenant, &email),
    )?;
    if found.is_none() {
        return Err(AdminError::NotFound(Missing::Tenant));
    }
    if taken.is_some() {
        return Err(AdminError::Conflict(format!("a user with {email}")));
    }
    let user = UserRecord {
        tenant_id: *tenant,
        user_id: UserId::new_random(),
        email,
        display_name: display_name.to_owned(),
        created_at: now,
        deleted_at: None,
        groups,
    };
    // The tenant is established; the audit record is written with the user.
    let record = audit.as_mut().and_then(|a| {
        a.tenant = Some(*tenant);
        a.user = Some(user.user_id);
        a.target = Some(format!("user:{}", user.user_id));
        a.success(now)
    });
    store.create_user(&user, record.as_ref()).await?;
    if let Some(audit) = audit {
        audit.committed();
    }
    Ok(user)
}

/// A tenant's settings as an operator sends them: every field optional, absent ones keep the
/// current value (or the default for a new tenant). The admin API's JSON body and `authctl`'s
/// flags both become one of these, so both validate alike ([`Tenant::validate`]).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    pub name: Option<String>,
    pub rp_id: Option<String>,
    pub origins: Option<Vec<String>>,
    pub methods: Option<Vec<MethodType>>,
    pub user_verification: Option<UserVerification>,
    pub challenge_timeout_secs: Option<u32>,
    pub token_ttl_secs: Option<u32>,
    pub min_authenticators: Option<u32>,
    pub required_methods: Option<Vec<MethodType>>,
    pub conceal_unknown_users: Option<bool>,
    pub refresh_token_ttl_secs: Option<u32>,
    pub audit_retention_days: Option<u32>,
    pub reauthentication_window_secs: Option<u32>,
    pub session_max_age_secs: Option<u32>,
    pub allow_removing_last_factor: Option<bool>,
    pub enroll_without_authenticator: Option<bool>,
    pub config_cache_secs: Option<u32>,
    /// The tenant's Cedar policy set (validated against the shipped schema); an empty or
    /// blank text removes it, so the default set rendered from the settings applies again.
    pub policies: Option<String>,
}

impl TenantSettings {
    /// Applies the fields that are set.
    pub fn apply(self, tenant: &mut Tenant) {
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { tenant.$field = v; })* };
        }
        set!(
            name,
            rp_id,
            origins,
            methods,
            user_verification,
            challenge_timeout_secs,
            token_ttl_secs,
            min_authenticators,
            required_methods,
            conceal_unknown_users,
            refresh_token_ttl_secs,
            audit_retention_days,
            reauthentication_window_secs,
            session_max_age_secs,
            allow_removing_last_factor,
            enroll_without_authenticator,
            config_cache_secs
        );
        if let Some(text) = self.policies {
            tenant.policies = (!text.trim().is_empty()).then_some(text);
        }
    }

    /// The policy set sent, checked against the schema before anything else is.
    fn check_policies(&self) -> Result<(), AdminError> {
        match self.policies.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(text) => {
                crate::policy::validate_policies(text).map_err(AdminError::InvalidPolicies)
            }
            None => Ok(()),
        }
    }
}

/// A tenant as operators see it: every setting (a tenant holds no secret: its concealment
/// key is derived from a deployment secret in Secrets Manager).
pub fn tenant_view(tenant: &Tenant) -> serde_json::Value {
    serde_json::to_value(tenant).unwrap_or_default()
}

/// Creates a tenant from `settings` (name, RP id and origins required).
pub async fn create_tenant(
    store: &Store,
    settings: TenantSettings,
    now: i64,
) -> Result<Tenant, AdminError> {
    let (Some(name), Some(rp_id), Some(origins)) = (
        settings.name.clone(),
        settings.rp_id.clone(),
        settings.origins.clone(),
    ) else {
        return Err(invalid("tenant", "name, rp_id and origins are required"));
    };
    settings.check_policies()?;
    let mut tenant = Tenant::new(&name, &rp_id, origins, now);
    settings.apply(&mut tenant);
    tenant
        .validate()
        .map_err(|reason| invalid("tenant", reason))?;
    store.create_tenant(&tenant).await?;
    Ok(tenant)
}

/// Changes the settings that are set; the result is validated before it is stored, and the
/// write is conditional on the tenant still existing.
pub async fn update_tenant(
    store: &Store,
    tenant_id: &TenantId,
    settings: TenantSettings,
) -> Result<Tenant, AdminError> {
    settings.check_policies()?;
    let mut tenant = store
        .get_tenant(tenant_id)
        .await?
        .ok_or(AdminError::NotFound(Missing::Tenant))?;
    settings.apply(&mut tenant);
    tenant
        .validate()
        .map_err(|reason| invalid("tenant", reason))?;
    if !store.replace_tenant(&tenant).await? {
        return Err(AdminError::NotFound(Missing::Tenant));
    }
    Ok(tenant)
}

/// A user as operators see it.
pub fn user_view(user: &UserRecord) -> serde_json::Value {
    serde_json::json!({
        "tenant_id": user.tenant_id,
        "user_id": user.user_id,
        "email": user.email,
        "display_name": user.display_name,
        "created_at": crate::clock::rfc3339(user.created_at),
        "groups": user.groups,
    })
}

/// Changes a user's display name and groups (the same limits as at creation); `None` keeps
/// the current value, and at least one must be sent. With `audit`, a change is filed (its
/// record written with it).
pub async fn update_user(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    changes: &UserChanges<'_>,
    now: i64,
    audit: Option<&mut Audit>,
) -> Result<UserRecord, AdminError> {
    let display_name = changes.display_name.map(str::trim);
    if display_name
        .is_some_and(|name| name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS)
    {
        return Err(invalid("display_name", "1 to 200 characters are required"));
    }
    if display_name.is_none() && changes.groups.is_none() {
        return Err(invalid("display_name", "send display_name, groups or both"));
    }
    let groups = changes.groups.map(normalise_groups).transpose()?;
    let changes = UserChanges {
        display_name,
        groups: groups.as_deref(),
    };
    // The filed record names the tenant and user only once the change is made.
    let mut filed = audit.as_deref().cloned();
    let record = filed.as_mut().and_then(|a| {
        a.tenant = Some(*tenant);
        a.user = Some(*user);
        a.target = Some(format!("user:{user}"));
        a.success(now)
    });
    if !store
        .update_user(tenant, user, &changes, record.as_ref())
        .await?
    {
        return Err(AdminError::NotFound(Missing::User));
    }
    if let (Some(audit), Some(mut filed)) = (audit, filed) {
        filed.committed();
        *audit = filed;
    }
    store
        .get_user(tenant, user)
        .await?
        .ok_or(AdminError::NotFound(Missing::User))
}

/// The primary login's hand-off: an MFA challenge for an existing user, valid `ttl_secs`.
pub async fn create_mfa_challenge(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    ttl_secs: i64,
    now: i64,
) -> Result<(ChallengeId, i64), AdminError> {
    if !MFA_CHALLENGE_TTL_RANGE.contains(&ttl_secs) {
        return Err(invalid("ttl", "between 30 and 3600 seconds"));
    }
    // The credentials are read beside the user and kept in the challenge for MFA options.
    let (found, credentials) = tokio::try_join!(
        store.get_user(tenant, user),
        store.list_credentials(tenant, user),
    )?;
    let Some(found) = found else {
        return Err(AdminError::NotFound(Missing::User));
    };
    let id = store
        .create_mfa_challenge(tenant, user, credentials, found.groups, now, ttl_secs)
        .await?;
    Ok((id, now + ttl_secs))
}

/// Erases a user: marks them deleted (every lookup then treats them as gone), removes their
/// credentials, backup codes, sessions, devices and pending challenges, then the user record.
/// Audit records are kept. Safe to run again after an interruption: it finishes the job.
pub async fn delete_user(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    now: i64,
) -> Result<Erased, AdminError> {
    if !store.mark_user_deleted(tenant, user, now).await? {
        return Err(AdminError::NotFound(Missing::User));
    }
    Ok(store.erase_user(tenant, user).await?)
}

/// Removes one credential of a user. Unlike the user's own deletion, an operator may remove
/// the last one (e.g. a lost key); the user then enrolls again through an MFA challenge.
pub async fn delete_credential(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    credential: &CredentialId,
    now: i64,
    audit: Option<&mut Audit>,
) -> Result<(), AdminError> {
    let record = store
        .get_credential(tenant, user, credential)
        .await?
        .ok_or(AdminError::NotFound(Missing::Credential))?;
    let success = audit.as_ref().and_then(|a| a.success(now));
    let outcome = store
        .delete_credential(&record, None, success.as_ref())
        .await?;
    if let (DeleteCredentialOutcome::Deleted, Some(audit)) = (&outcome, audit) {
        audit.committed();
    }
    match outcome {
        DeleteCredentialOutcome::Deleted => Ok(()),
        DeleteCredentialOutcome::NotFound | DeleteCredentialOutcome::WitnessGone => {
            Err(AdminError::NotFound(Missing::Credential))
        }
    }
}

/// Revokes the live ones of a user's `sessions` (as listed) but `keep`, and writes the audit
/// record in the same round trip; returns their ids.
pub async fn revoke_listed_sessions(
    store: &Store,
    sessions: &[SessionRecord],
    keep: Option<SessionId>,
    now: i64,
    mut audit: Option<&mut Audit>,
) -> Result<Vec<SessionId>, AdminError> {
    let revoked: Vec<SessionId> = sessions
        .iter()
        .filter(|s| s.is_live(now) && Some(s.session_id) != keep)
        .map(|s| s.session_id)
        .collect();
    let record = audit.as_ref().and_then(|a| a.success(now));
    store
        .revoke_sessions_audited(&revoked, "revoked", now, record.as_ref())
        .await?;
    if let Some(audit) = audit.as_mut() {
        audit.committed();
    }
    Ok(revoked)
}

/// Revokes every live session of a user (`authctl`, which keeps no audit trail); returns
/// their ids.
pub async fn revoke_sessions(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    now: i64,
) -> Result<Vec<SessionId>, AdminError> {
    let sessions = store
        .list_sessions(tenant, user, crate::account::MAX_LISTED_SESSIONS)
        .await?;
    revoke_listed_sessions(store, &sessions, None, now, None).await
}
