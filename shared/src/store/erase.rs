//! Erasing a user: every item they own (credentials, backup codes, sessions, devices, pending
//! challenges), then the user record; audit records are kept. A user can own more items than
//! one transaction holds, so erasing is resumable instead of atomic: the user record is first
//! marked `deleted_at`, which makes every lookup treat the user as gone (no login, no
//! enrollment, no refresh), then the items go in batches, then the record. An erasure that
//! stops half-way leaves a user who can do nothing, and running it again finishes the job.

use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{
    classify, condition_held, n, s, tenant_user_key, Item, Store, StoreError, Write,
    CHALLENGE_USER_INDEX, SESSION_USER_INDEX,
};
use crate::ids::{TenantId, UserId};

/// Items a batch write takes at most (DynamoDB's limit).
const BATCH_SIZE: usize = 25;
/// Keys listed per query page while erasing.
const PAGE: i32 = 100;
/// Rounds of a batch write whose unprocessed items are sent again.
const BATCH_ROUNDS: u32 = 5;

/// How many items of each kind an erasure removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub credentials: usize,
    pub backup_codes: usize,
    pub sessions: usize,
    pub devices: usize,
    pub challenges: usize,
}

/// One kind of owned item: its table, how to find the user's keys, and the key attributes.
struct Owned<'a> {
    table: &'a str,
    index: Option<&'static str>,
    key_attributes: &'static [&'static str],
}

impl Store {
    /// Marks the user as being deleted (keeping the first mark); `false` if there is no such
    /// user. From then on the user is absent to every lookup.
    pub async fn mark_user_deleted(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let write = Write {
            update: Some("SET deleted_at = if_not_exists(deleted_at, :now)".into()),
            condition: Some("attribute_exists(user_id)".into()),
            ..Write::new(user_key(tenant, user))
        }
        .value(":now", n(now));
        condition_held(write.update_item(self.client(), &self.tables().users).await)
    }

    /// Deletes everything the user owns, then the user record (only if marked deleted).
    pub async fn erase_user(&self, tenant: &TenantId, user: &UserId) -> Result<Erased, StoreError> {
        let tables = self.tables();
        let owner = tenant_user_key(tenant, user);
        let kinds = [
            Owned {
                table: &tables.credentials,
                index: None,
                key_attributes: &["tenant_user", "credential_id"],
            },
            Owned {
                table: &tables.backup_codes,
                index: None,
                key_attributes: &["tenant_user"],
            },
            Owned {
                table: &tables.sessions,
                index: Some(SESSION_USER_INDEX),
                key_attributes: &["session_id"],
            },
            Owned {
                table: &tables.devices,
                index: None,
                key_attributes: &["tenant_user", "device_hash"],
            },
            Owned {
                table: &tables.challenges,
                index: Some(CHALLENGE_USER_INDEX),
                key_attributes: &["challenge_key"],
            },
        ];
        let mut counts = [0usize; 5];
        for (kind, count) in kinds.iter().zip(counts.iter_mut()) {
            *count = self.erase_owned(kind, &owner).await?;
        }
        let removed = self
            .client()
            .delete_item()
            .table_name(&tables.users)
            .set_key(Some(user_key(tenant, user)))
            .condition_expression("attribute_exists(deleted_at)")
            .send()
            .await
            .map_err(classify);
        condition_held(removed)?;
        let [credentials, backup_codes, sessions, devices, challenges] = counts;
        Ok(Erased {
            credentials,
            backup_codes,
            sessions,
            devices,
            challenges,
        })
    }

    /// Lists a page of the owner's keys and deletes them, until none are left.
    async fn erase_owned(&self, kind: &Owned<'_>, owner: &str) -> Result<usize, StoreError> {
        let mut erased = 0;
        loop {
            let out = self
                .client()
                .query()
                .table_name(kind.table)
                .set_index_name(kind.index.map(str::to_owned))
                .key_condition_expression("tenant_user = :owner")
                .expression_attribute_values(":owner", s(owner))
                .limit(PAGE)
                .send()
                .await
                .map_err(classify)?;
            let keys: Vec<Item> = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|item| {
                    item.into_iter()
                        .filter(|(name, _)| kind.key_attributes.contains(&name.as_str()))
                        .collect()
                })
                .collect();
            if keys.is_empty() {
                return Ok(erased);
            }
            erased += keys.len();
            for chunk in keys.chunks(BATCH_SIZE) {
                self.delete_batch(kind.table, chunk).await?;
            }
        }
    }

    /// Deletes up to 25 items, sending unprocessed ones again a bounded number of times.
    async fn delete_batch(&self, table: &str, keys: &[Item]) -> Result<(), StoreError> {
        let mut pending: Vec<WriteRequest> = keys
            .iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(|e| StoreError::Rejected(e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, StoreError>>()?;
        for round in 0..BATCH_ROUNDS {
            let out = self
                .client()
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(classify)?;
            pending = out
                .unprocessed_items
                .unwrap_or_default()
                .remove(table)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50 << round)).await;
        }
        Err(StoreError::Unavailable(format!(
            "{} deletions left unprocessed",
            pending.len()
        )))
    }
}

pub(super) fn user_key(tenant: &TenantId, user: &UserId) -> Item {
    Item::from([
        ("tenant_id".to_owned(), s(tenant.to_string())),
        ("user_id".to_owned(), s(user.to_string())),
    ])
}
