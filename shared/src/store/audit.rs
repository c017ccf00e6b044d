//! Audit records: one item per authentication outcome, partitioned by tenant and sorted by
//! time; the `user-index` GSI lists one user's. DynamoDB's TTL on `expires_at` enforces the
//! tenant's retention.

use serde::{Deserialize, Serialize};

use super::{classify, from_items, s, tenant_user_key, to_item, Store, StoreError};
use crate::ids::{CredentialId, SessionId, TenantId, UserId};

pub const AUDIT_USER_INDEX: &str = "user-index";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub tenant_id: TenantId,
    /// `<epoch seconds, 11 digits>#<UUIDv7>`: sorts by time (the v7 part orders events of one
    /// second by the millisecond), unique within the tenant.
    pub event_key: String,
    /// `<tenant>#<user>` when the user is known: the `user-index` partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub at: i64,
    pub time: String,
    /// What was attempted, e.g. `passwordless_login`, `mfa_webauthn`, `token_refresh`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code the client received, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<CredentialId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Who made an account change, e.g. `user:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What an account change was made to: a credential id, a session id, `backup_codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub request_id: String,
    /// TTL attribute: the end of the tenant's retention period.
    pub expires_at: i64,
}

/// The last second an `event_key` can name: its time is 11 digits.
pub const MAX_EVENT_SECOND: i64 = 99_999_999_999;

impl AuditRecord {
    pub fn event_key(at: i64) -> String {
        format!("{at:011}#{}", uuid::Uuid::now_v7())
    }

    /// Whether `key` has the shape [`AuditRecord::event_key`] gives keys: 11 digits, `#`, a UUID.
    pub fn is_event_key(key: &str) -> bool {
        key.split_once('#').is_some_and(|(second, id)| {
            second.len() == 11
                && second.bytes().all(|b| b.is_ascii_digit())
                && uuid::Uuid::parse_str(id).is_ok()
        })
    }
}

/// The record as one item of a transaction (a new key: it never replaces a record).
pub(crate) fn transact_put_record(
    store: &Store,
    record: &AuditRecord,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    super::transact_put(
        &store.tables().audit,
        to_item(record)?,
        "attribute_not_exists(event_key)",
    )
}

impl Store {
    pub async fn put_audit_record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().audit)
            .set_item(Some(to_item(record)?))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The newest `limit` records of a tenant, or of one of its users, newest first.
    pub async fn list_audit_records(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        limit: i32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let query = self
            .client()
            .query()
            .table_name(&self.tables().audit)
            .scan_index_forward(false)
            .limit(limit);
        let query = match user {
            Some(user) => query
                .index_name(AUDIT_USER_INDEX)
                .key_condition_expression("tenant_user = :key")
                .expression_attribute_values(":key", s(tenant_user_key(tenant, user))),
            None => query
                .key_condition_expression("tenant_id = :key")
                .expression_attribute_values(":key", s(tenant.to_string())),
        };
        let out = query.send().await.map_err(classify)?;
        from_items(out.items)
    }
}

/// A page of audit records and where the next one starts (an opaque cursor's content).
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next: Option<super::Item>,
}

/// What an audit query asks for.
pub struct AuditQuery<'a> {
    pub tenant: &'a TenantId,
    pub user: Option<&'a UserId>,
    /// Epoch seconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: i32,
    pub start: Option<super::Item>,
}

impl Store {
    /// Audit records newest first, by tenant or by user, within a time range, a page at a time.
    pub async fn query_audit(&self, q: AuditQuery<'_>) -> Result<AuditPage, StoreError> {
        let (index, partition, value) = match q.user {
            Some(user) => (
                Some(AUDIT_USER_INDEX),
                "tenant_user",
                tenant_user_key(q.tenant, user),
            ),
            None => (None, "tenant_id", q.tenant.to_string()),
        };
        // event_key starts with the 11-digit epoch second, so a time range is a key range: both
        // ends are kept within 11 digits, so the range's order is its keys' order (DynamoDB
        // refuses a BETWEEN whose lower bound sorts after its upper one).
        let second = |at: i64| at.clamp(0, MAX_EVENT_SECOND);
        let (from, to) = (
            second(q.from.unwrap_or(0)),
            second(q.to.unwrap_or(MAX_EVENT_SECOND)),
        );
        if from > to {
            return Ok(AuditPage {
                records: Vec::new(),
                next: None,
            });
        }
        let from = format!("{from:011}");
        let to = format!("{to:011}~");
        let out = self
            .client()
            .query()
            .table_name(&self.tables().audit)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#p = :p AND event_key BETWEEN :from AND :to")
            .expression_attribute_names("#p", partition)
            .expression_attribute_values(":p", s(value))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .scan_index_forward(false)
            .limit(q.limit)
            .set_exclusive_start_key(q.start)
            .send()
            .await
            .map_err(classify)?;
        Ok(AuditPage {
            records: from_items(out.items)?,
            next: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_recognised() {
        assert!(AuditRecord::is_event_key(&AuditRecord::event_key(
            1_795_869_609
        )));
        for key in [
            "",
            "#",
            "1#x",
            "1795869609#0190a2b4-0000-7000-8000-000000000000",
        ] {
            assert!(!AuditRecord::is_event_key(key), "{key}");
        }
    }

    #[test]
    fn event_keys_sort_by_time() {
        let earlier = AuditRecord::event_key(999_999_999);
        let later = AuditRecord::event_key(1_800_000_000);
        assert!(earlier < later);
        assert_eq!(earlier.split('#').next().map(str::len), Some(11));
    }
}
