//! Passwordless sessions. The refresh token itself is never stored: only its SHA-256, plus the
//! hashes of the tokens it replaced, so that a replaced token coming back is recognised as
//! stolen. `expires_at` (TTL) is the end of the current refresh token's lifetime and is also
//! checked on every read.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{
    classify, from_item, from_items, n, s, tenant_user_key, AuditRecord, Item, Store, StoreError,
    Write,
};
use crate::ids::{CredentialId, SessionId, TenantId, UserId};

/// Replaced refresh-token hashes kept per session for reuse detection; older ones are
/// forgotten (a token that old is refused as unknown, without revoking the session).
pub const MAX_PREVIOUS_TOKENS: usize = 50;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: SessionId,
    /// `<tenant>#<user>`: the `user-index` partition key (a user's sessions).
    #[serde(default)]
    pub tenant_user: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The credential the session was opened with.
    pub credential_id: CredentialId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<String>,
    /// RFC 8176 methods of the login, repeated in every access token of the session.
    pub amr: Vec<String>,
    /// When the user authenticated (the access tokens' `auth_time`).
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refreshed_at: Option<i64>,
    pub refresh_token_hash: String,
    #[serde(default)]
    pub previous_token_hashes: Vec<String>,
    /// How many times the refresh token was rotated.
    #[serde(default)]
    pub rotations: u32,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// `logout`, `refresh_token_reuse`, `account_deleted` (user or tenant gone) or `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

pub const SESSION_USER_INDEX: &str = "user-index";

impl SessionRecord {
    pub fn key_for(tenant: &TenantId, user: &UserId) -> String {
        tenant_user_key(tenant, user)
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Replacing the session's refresh token by a new one.
#[derive(Clone, Debug)]
pub struct Rotation<'a> {
    pub session: &'a SessionRecord,
    pub new_hash: String,
    pub now: i64,
    pub expires_at: i64,
}

/// What a rotation found.
#[derive(Debug, PartialEq, Eq)]
pub enum RotationOutcome {
    Rotated,
    /// The presented token is no longer the current one, or the session was revoked or
    /// expired meanwhile: nothing was written.
    NotCurrent,
    /// The session's user was erased: nothing was written.
    UserGone,
}

/// Most items DynamoDB takes in one transaction.
pub const TRANSACTION_ITEMS: usize = 100;

fn session_key(id: &SessionId) -> Item {
    let mut key = Item::new();
    key.insert("session_id".into(), s(id.to_string()));
    key
}

impl Store {
    pub async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().sessions)
            .set_key(Some(session_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// A user's sessions, newest first, at most `limit` (revoked and expired ones included:
    /// the caller filters).
    pub async fn list_sessions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        limit: i32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().sessions)
            .index_name(SESSION_USER_INDEX)
            .key_condition_expression("tenant_user = :tu")
            .expression_attribute_values(":tu", s(tenant_user_key(tenant, user)))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        from_items(out.items)
    }

    /// Swaps the refresh token, only if the presented one is still the current one and the
    /// session is live: of two concurrent refreshes with one token, exactly one succeeds.
    /// One transaction: the rotation, a check that the session's user still exists (not
    /// erased), and the audit record.
    pub async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
        audit: &AuditRecord,
    ) -> Result<RotationOutcome, StoreError> {
        let session = rotation.session;
        let mut previous = session.previous_token_hashes.clone();
        previous.push(session.refresh_token_hash.clone());
        let excess = previous.len().saturating_sub(MAX_PREVIOUS_TOKENS);
        previous.drain(..excess);
        let write = Write {
            update: Some(
                "SET #hash = :new, #previous = :previous, #last = :now, #exp = :exp \
                 ADD #rotations :one"
                    .into(),
            ),
            condition: Some(
                "#hash = :old AND attribute_not_exists(#revoked) AND #exp > :now".into(),
            ),
            ..Write::new(session_key(&session.session_id))
        }
        .name("#hash", "refresh_token_hash")
        .name("#previous", "previous_token_hashes")
        .name("#last", "last_refreshed_at")
        .name("#exp", "expires_at")
        .name("#rotations", "rotations")
        .name("#revoked", "revoked_at")
        .value(":new", s(&rotation.new_hash))
        .value(":old", s(&session.refresh_token_hash))
        .value(
            ":previous",
            AttributeValue::L(previous.into_iter().map(s).collect()),
        )
        .value(":now", n(rotation.now))
        .value(":exp", n(rotation.expires_at))
        .value(":one", n(1));
        let user = ConditionCheck::builder()
            .table_name(&self.tables().users)
            .key("tenant_id", s(session.tenant_id.to_string()))
            .key("user_id", s(session.user_id.to_string()))
            .condition_expression("attribute_exists(user_id) AND attribute_not_exists(deleted_at)")
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let items = vec![
            write.transact_update(&self.tables().sessions)?,
            TransactWriteItem::builder().condition_check(user).build(),
            super::audit::transact_put_record(self, audit)?,
        ];
        Ok(match self.transact(items).await? {
            Ok(()) => RotationOutcome::Rotated,
            Err(1) => RotationOutcome::UserGone,
            Err(_) => RotationOutcome::NotCurrent,
        })
    }

    /// Marks a session revoked; `false` if it does not exist or was already revoked. The item
    /// stays until its TTL so later uses of its tokens are still recognised. With `audit`, its
    /// record is written in the same transaction.
    pub async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        now: i64,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let write = Write {
            update: Some("SET #revoked = :now, #reason = :reason".into()),
            condition: Some(
                "attribute_exists(session_id) AND attribute_not_exists(#revoked)".into(),
            ),
            ..Write::new(session_key(id))
        }
        .name("#revoked", "revoked_at")
        .name("#reason", "revoked_reason")
        .value(":now", n(now))
        .value(":reason", s(reason));
        self.update_audited(&write, &self.tables().sessions, audit)
            .await
    }

    /// Revokes the sessions `ids` (read just before) and writes the audit record, in
    /// transactions of at most [`TRANSACTION_ITEMS`] items sent concurrently: one round trip.
    /// A session revoked meanwhile keeps its first revocation; one deleted meanwhile (its TTL)
    /// fails its transaction, reported as unavailable so the client retries.
    pub async fn revoke_sessions_audited(
        &self,
        ids: &[SessionId],
        reason: &str,
        now: i64,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError> {
        let table = &self.tables().sessions;
        let mut items = Vec::with_capacity(ids.len() + 1);
        if let Some(record) = audit {
            items.push(super::audit::transact_put_record(self, record)?);
        }
        for id in ids {
            let write = Write {
                update: Some(
                    "SET #revoked = if_not_exists(#revoked, :now), \
                     #reason = if_not_exists(#reason, :reason)"
                        .into(),
                ),
                condition: Some("attribute_exists(session_id)".into()),
                ..Write::new(session_key(id))
            }
            .name("#revoked", "revoked_at")
            .name("#reason", "revoked_reason")
            .value(":now", n(now))
            .value(":reason", s(reason));
            items.push(write.transact_update(table)?);
        }
        let chunks = items
            .chunks(TRANSACTION_ITEMS)
            .map(|c| self.transact(c.to_vec()));
        for outcome in futures::future::try_join_all(chunks).await? {
            if outcome.is_err() {
                return Err(StoreError::Unavailable(
                    "a session disappeared while it was being revoked".into(),
                ));
            }
        }
        Ok(())
    }
}
