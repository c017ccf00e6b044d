//! Self-service account management (`/v1/users/me/…`): a user's authenticators, backup codes
//! and sessions. The same token and tenant rules as registration; changes to authenticators
//! and codes need a live session and a recent login, and are audited with actor and target.

use lambda_http::Request;
use serde::Serialize;
use uuid::Uuid;

use crate::audit::Audit;
use crate::auth::{authenticate, Accepts, Caller};
use crate::clock::rfc3339;
use crate::codes::{self, BackupCodeHasher, BACKUP_CODE_COUNT};
use crate::error::{found, ApiError, ErrorCode};
use crate::http::path_param;
use crate::ids::{CredentialId, SessionId};
use crate::policy::UserFacts;
use crate::state::Common;
use crate::store::{
    BackupCodesRecord, CredentialRecord, DeleteCredentialOutcome, SessionRecord, Store,
};
use crate::tenant::{MethodType, Tenant};
use crate::webauthn::presented_credential_id;

/// Longest device name, after trimming (registration and rename alike).
pub const MAX_DEVICE_NAME_CHARS: usize = 100;
/// Most sessions one listing shows (newest first).
pub const MAX_LISTED_SESSIONS: i32 = 100;
/// Rounds of a last-factor-safe deletion when the credential kept as witness disappears.
const DELETE_ROUNDS: usize = 3;

/// Trimmed, 1 to 100 characters.
pub fn device_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DEVICE_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "device_name",
            format!("device_name must be 1 to {MAX_DEVICE_NAME_CHARS} characters after trimming"),
        ));
    }
    Ok(name.to_owned())
}

/// The caller of a self-service request: token and tenant header checked, the session the
/// token names live, the tenant read.
pub struct Account {
    pub caller: Caller,
    pub tenant: Tenant,
}

pub async fn account(common: &Common, req: &Request, now: i64) -> Result<Account, ApiError> {
    Ok(account_and(common, req, now, |_, _| async { Ok(()) })
        .await?
        .0)
}

/// [`account`], and in the same round trip the read `read` makes for the caller (the records
/// the request is about): a self-service request then needs at most one more round trip.
/// `read`'s result is only returned once the caller's session has been checked.
pub async fn account_and<F, Fut, T>(
    common: &Common,
    req: &Request,
    now: i64,
    read: F,
) -> Result<(Account, T), ApiError>
where
    F: FnOnce(Store, Caller) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let caller = authenticate(req, &common.tokens, now, Accepts::MfaSetup)?;
    let store = &common.store;
    let (tenant, session, extra) = tokio::try_join!(
        async { Ok(store.tenant(&caller.tenant, now).await?) },
        caller.session(store),
        read(store.clone(), caller.clone()),
    )?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    caller.check_session(session.as_ref(), now)?;
    Ok((Account { caller, tenant }, extra))
}

/// What the tenant's policies know of the caller: their credentials and groups.
pub struct Principal {
    pub credentials: Vec<CredentialRecord>,
    pub groups: Vec<String>,
}

impl Principal {
    pub fn facts(&self) -> UserFacts<'_> {
        UserFacts::new(&self.credentials, &self.groups)
    }
}

/// [`account`], and in the same round trip the caller's credentials and groups (for a
/// sensitive change the tenant's policies decide).
pub async fn account_and_principal(
    common: &Common,
    req: &Request,
    now: i64,
) -> Result<(Account, Principal), ApiError> {
    account_and(common, req, now, |store, caller| async move {
        let (credentials, user) = tokio::try_join!(
            store.list_credentials(&caller.tenant, &caller.user),
            store.get_user(&caller.tenant, &caller.user),
        )?;
        let groups = user.map(|u| u.groups).unwrap_or_default();
        Ok(Principal {
            credentials,
            groups,
        })
    })
    .await
}

impl Account {
    /// Fills the audit context of an account change: the token (signed by this service)
    /// establishes the tenant; the user acts on `target`.
    pub fn audit(&self, audit: &mut Audit, target: String) {
        audit.tenant(&self.tenant);
        audit.user = Some(self.caller.user);
        audit.session = self.caller.session_id();
        audit.actor = Some(format!("user:{}", self.caller.user));
        audit.target = Some(target);
    }
}

/// `{credential_id}` of the path (base64url).
pub fn credential_id_param(req: &Request) -> Result<CredentialId, ApiError> {
    let raw = path_param(req, "credential_id")
        .and_then(|v| CredentialId::from_base64url(v.trim_end_matches('=')).ok())
        .ok_or_else(|| {
            ApiError::invalid_field("credential_id", "credential_id must be base64url")
        })?;
    presented_credential_id(raw.as_bytes()).map_err(|_| {
        ApiError::invalid_field("credential_id", "credential_id is not a credential id")
    })
}

/// `{session_id}` of the path (a UUID).
pub fn session_id_param(req: &Request) -> Result<SessionId, ApiError> {
    path_param(req, "session_id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid_field("session_id", "session_id must be a UUID"))
}

/// An authenticator as the user sees it.
#[derive(Debug, Serialize)]
pub struct CredentialView {
    pub credential_id: CredentialId,
    pub device_name: String,
    pub method_type: MethodType,
    pub aaguid: Uuid,
    /// The authenticator model's name and icon, when its AAGUID is known (`authenticators`).
    pub authenticator: Option<authenticators::Authenticator>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub use_count: u64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
}

impl From<&CredentialRecord> for CredentialView {
    fn from(r: &CredentialRecord) -> Self {
        Self {
            credential_id: r.credential_id.clone(),
            device_name: r.device_name.clone(),
            method_type: r.method_type,
            aaguid: r.aaguid,
            authenticator: authenticators::lookup(&r.aaguid),
            created_at: rfc3339(r.created_at),
            last_used_at: r.last_used_at.map(rfc3339),
            use_count: r.use_count,
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            transports: r.transports.clone(),
        }
    }
}

/// The user's credential `id`, or 404 `credential_not_found`.
pub async fn credential_of(
    store: &Store,
    caller: &Caller,
    id: &CredentialId,
) -> Result<CredentialRecord, ApiError> {
    let record = store
        .get_credential(&caller.tenant, &caller.user, id)
        .await?;
    found(
        record,
        ErrorCode::CredentialNotFound,
        "the user has no credential with this id",
    )
}

/// Deletes one of the user's credentials. The last one only when the tenant allows it; two
/// concurrent deletions of the last two leave one (the other is kept as a condition).
/// `listed` is the user's credentials as read with the account ([`account_and`]); the audit
/// record of the success is written with the deletion.
pub async fn delete_credential(
    store: &Store,
    account: &Account,
    id: &CredentialId,
    listed: Vec<CredentialRecord>,
    now: i64,
    audit: &mut Audit,
) -> Result<CredentialRecord, ApiError> {
    let caller = &account.caller;
    let mut listed = Some(listed);
    for _ in 0..DELETE_ROUNDS {
        let credentials = match listed.take() {
            Some(credentials) => credentials,
            None => store.list_credentials(&caller.tenant, &caller.user).await?,
        };
        if let Some(target) = credentials.iter().find(|c| &c.credential_id == id) {
            audit.method = Some(target.method_type.as_str().to_owned());
        }
        let target = credentials
            .iter()
            .find(|c| &c.credential_id == id)
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::CredentialNotFound,
                    "the user has no credential with this id",
                )
            })?;
        let keep = credentials.iter().find(|c| &c.credential_id != id);
        if keep.is_none() && !account.tenant.allow_removing_last_factor {
            return Err(ApiError::conflict(
                ErrorCode::LastFactor,
                "this is the user's last authenticator; add another one before removing it",
            ));
        }
        let success = audit.success(now);
        match store
            .delete_credential(target, keep, success.as_ref())
            .await?
        {
            DeleteCredentialOutcome::Deleted => {
                audit.committed();
                return Ok(target.clone());
            }
            DeleteCredentialOutcome::NotFound => {
                return Err(ApiError::not_found(
                    ErrorCode::CredentialNotFound,
                    "the user has no credential with this id",
                ))
            }
            DeleteCredentialOutcome::WitnessGone => continue,
        }
    }
    Err(ApiError::StoreUnavailable(
        crate::store::StoreError::Unavailable("credentials kept changing".into()),
    ))
}

/// `GET …/backup_codes`.
#[derive(Debug, Serialize)]
pub struct BackupCodesStatus {
    pub remaining: usize,
    pub created_at: Option<String>,
}

impl From<Option<&BackupCodesRecord>> for BackupCodesStatus {
    fn from(record: Option<&BackupCodesRecord>) -> Self {
        Self {
            remaining: record.map_or(0, BackupCodesRecord::remaining),
            created_at: record.map(|r| rfc3339(r.created_at)),
        }
    }
}

/// `POST …/backup_codes`: ten new codes, shown this once.
#[derive(Debug, Serialize)]
pub struct NewBackupCodes {
    pub codes: Vec<String>,
    pub remaining: usize,
    pub created_at: String,
}

/// Replaces the user's backup codes with ten new ones; the old set stops working.
pub async fn regenerate_backup_codes(
    store: &Store,
    hasher: &BackupCodeHasher,
    caller: &Caller,
    now: i64,
    audit: &mut Audit,
) -> Result<NewBackupCodes, ApiError> {
    let plain = codes::generate(BACKUP_CODE_COUNT)
        .map_err(|_| ApiError::internal("random number generator failed"))?;
    let hashes = plain
        .iter()
        .map(|code| hasher.hash(&caller.tenant, &caller.user, code))
        .collect();
    let record = BackupCodesRecord::new(&caller.tenant, &caller.user, hashes, now);
    store
        .replace_backup_codes(&record, audit.success(now).as_ref())
        .await?;
    audit.committed();
    Ok(NewBackupCodes {
        remaining: plain.len(),
        codes: plain,
        created_at: rfc3339(now),
    })
}

/// A session as the user sees it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub session_id: SessionId,
    pub current: bool,
    pub device_hash: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: String,
    pub last_refreshed_at: Option<String>,
    pub expires_at: String,
}

impl SessionView {
    pub fn of(record: &SessionRecord, current: Option<SessionId>) -> Self {
        Self {
            session_id: record.session_id,
            current: current == Some(record.session_id),
            device_hash: record.device_hash.clone(),
            ip: record.source_ip.clone(),
            user_agent: record.user_agent.clone(),
            created_at: rfc3339(record.created_at),
            last_refreshed_at: record.last_refreshed_at.map(rfc3339),
            expires_at: rfc3339(record.expires_at),
        }
    }
}

/// The user's live sessions, newest first.
pub async fn live_sessions(
    store: &Store,
    caller: &Caller,
    now: i64,
) -> Result<Vec<SessionRecord>, ApiError> {
    let sessions = store
        .list_sessions(&caller.tenant, &caller.user, MAX_LISTED_SESSIONS)
        .await?;
    Ok(sessions.into_iter().filter(|s| s.is_live(now)).collect())
}

/// Revokes one of the user's sessions; 404 `session_not_found` for anyone else's.
/// `session` is the record `id` names, as read with the account ([`account_and`]).
pub async fn revoke_own_session(
    store: &Store,
    caller: &Caller,
    id: &SessionId,
    session: Option<SessionRecord>,
    now: i64,
    audit: &mut Audit,
) -> Result<(), ApiError> {
    let ours = session
        .as_ref()
        .is_some_and(|s| s.tenant_id == caller.tenant && s.user_id == caller.user);
    if !ours {
        return Err(ApiError::not_found(
            ErrorCode::SessionNotFound,
            "the user has no session with this id",
        ));
    }
    // Revoked already (or meanwhile) is no error: the session is revoked either way.
    if store
        .revoke_session(id, "user_revoked", now, audit.success(now).as_ref())
        .await?
    {
        audit.committed();
    }
    Ok(())
}

/// Revokes every live session of the user but `keep` (the caller's own), audited in the same
/// round trip; returns their ids.
pub async fn revoke_other_sessions(
    store: &Store,
    caller: &Caller,
    keep: Option<SessionId>,
    now: i64,
    audit: &mut Audit,
) -> Result<Vec<SessionId>, ApiError> {
    let sessions = store
        .list_sessions(&caller.tenant, &caller.user, MAX_LISTED_SESSIONS)
        .await?;
    Ok(crate::admin::revoke_listed_sessions(store, &sessions, keep, now, Some(audit)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_trimmed_and_bounded() {
        assert_eq!(device_name("  YubiKey  ").unwrap(), "YubiKey");
        assert!(device_name("").is_err());
        assert!(device_name("   ").is_err());
        assert!(device_name(&"x".repeat(100)).is_ok());
        assert!(device_name(&"x".repeat(101)).is_err());
        // Characters, not bytes: 100 two-byte characters are allowed.
        assert!(device_name(&"é".repeat(100)).is_ok());
    }
}
