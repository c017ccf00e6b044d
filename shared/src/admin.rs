//! Operator operations on users, shared by `authctl` and the admin API: one implementation,
//! a domain error that knows no HTTP (each surface maps it).

use crate::ids::{CredentialId, SessionId, TenantId, UserId};
use crate::store::{DeleteCredentialOutcome, Erased, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
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
        return Err(AdminError::NotFound("user"));
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
) -> Result<(), AdminError> {
    let record = store
        .get_credential(tenant, user, credential)
        .await?
        .ok_or(AdminError::NotFound("credential"))?;
    match store.delete_credential(&record, None).await? {
        DeleteCredentialOutcome::Deleted => Ok(()),
        DeleteCredentialOutcome::NotFound | DeleteCredentialOutcome::WitnessGone => {
            Err(AdminError::NotFound("credential"))
        }
    }
}

/// Revokes every live session of a user; returns their ids.
pub async fn revoke_sessions(
    store: &Store,
    tenant: &TenantId,
    user: &UserId,
    keep: Option<SessionId>,
    now: i64,
) -> Result<Vec<SessionId>, AdminError> {
    let sessions = store
        .list_sessions(tenant, user, crate::account::MAX_LISTED_SESSIONS)
        .await?;
    let revoked: Vec<SessionId> = sessions
        .iter()
        .filter(|s| s.is_live(now) && Some(s.session_id) != keep)
        .map(|s| s.session_id)
        .collect();
    futures::future::try_join_all(
        revoked
            .iter()
            .map(|id| store.revoke_session(id, "revoked", now)),
    )
    .await?;
    Ok(revoked)
}
