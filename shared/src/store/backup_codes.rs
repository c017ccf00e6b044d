use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::types::ReturnValue;

use super::{classify, condition_held, from_item, n, s, tenant_user_key, Store, StoreError};
use crate::ids::{TenantId, UserId};

/// A user's backup codes: only keyed hashes (see `codes`), one per slot. A redeemed code's slot
/// moves from `codes` to `used`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupCodesRecord {
    pub tenant_user: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// slot → hex HMAC-SHA256 of an unused code
    pub codes: BTreeMap<String, String>,
    /// slot → when it was redeemed
    #[serde(default)]
    pub used: BTreeMap<String, i64>,
    pub created_at: i64,
    /// Wrong codes since the last success or lockout.
    #[serde(default)]
    pub failed_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
}

impl BackupCodesRecord {
    pub fn new(tenant: &TenantId, user: &UserId, hashes: Vec<String>, created_at: i64) -> Self {
        Self {
            tenant_user: tenant_user_key(tenant, user),
            tenant_id: *tenant,
            user_id: *user,
            codes: hashes
                .into_iter()
                .enumerate()
                .map(|(slot, hash)| (slot.to_string(), hash))
                .collect(),
            used: BTreeMap::new(),
            created_at,
            failed_attempts: 0,
            locked_until: None,
        }
    }

    pub fn remaining(&self) -> usize {
        self.codes.len()
    }

    /// Until when redemption is locked, if it still is at `now`.
    pub fn locked_until(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// What a wrong code did to the user's lockout state.
#[derive(Debug, PartialEq, Eq)]
pub enum FailedCode {
    /// Still below the limit: this many attempts are left.
    AttemptsLeft(u32),
    /// The limit was reached: locked until this time.
    LockedUntil(i64),
}

impl Store {
    pub async fn get_backup_codes(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<BackupCodesRecord>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().backup_codes)
            .key("tenant_user", s(tenant_user_key(tenant, user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// Replaces the user's backup codes with a new set: the old codes stop working at once,
    /// and the failure count and any lockout start over.
    /// With `audit`, its record is written in the same transaction.
    pub async fn replace_backup_codes(
        &self,
        record: &BackupCodesRecord,
        audit: Option<&super::AuditRecord>,
    ) -> Result<(), StoreError> {
        let item = super::to_item(record)?;
        let Some(audit) = audit else {
            self.client()
                .put_item()
                .table_name(&self.tables().backup_codes)
                .set_item(Some(item))
                .send()
                .await
                .map_err(classify)?;
            return Ok(());
        };
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.tables().backup_codes)
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(put)
                .build(),
            super::audit::transact_put_record(self, audit)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::ConditionFailed),
        }
    }

    /// Marks one code used: a conditional update, so of concurrent redemptions of the same code
    /// exactly one succeeds. Also clears the failure count. `false` if the code is already used
    /// (or the user is locked out).
    pub async fn redeem_backup_code(
        &self,
        tenant: &TenantId,
        user: &UserId,
        slot: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(&self.tables().backup_codes)
            .key("tenant_user", s(tenant_user_key(tenant, user)))
            .update_expression("REMOVE codes.#slot, locked_until SET used.#slot = :now, failed_attempts = :zero")
            .condition_expression(
                "attribute_exists(codes.#slot) AND (attribute_not_exists(locked_until) OR locked_until <= :now)",
            )
            .expression_attribute_names("#slot", slot)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(classify);
        condition_held(result)
    }

    /// Counts a wrong code; the `max_failures`-th locks redemption for `lockout_secs`. Each
    /// failure is one conditional write, and the one that reaches the limit sets the lock in
    /// that same write, so no number of parallel wrong codes gets more than `max_failures`
    /// answers other than "locked" — and [`Store::redeem_backup_code`] refuses while locked.
    pub async fn record_backup_code_failure(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: i64,
        max_failures: u32,
        lockout_secs: i64,
    ) -> Result<FailedCode, StoreError> {
        let key = tenant_user_key(tenant, user);
        let last = max_failures.saturating_sub(1);
        let until = now + lockout_secs;
        for _ in 0..FAILURE_WRITE_ATTEMPTS {
            // Below the limit: count it.
            let counted = self
                .client()
                .update_item()
                .table_name(&self.tables().backup_codes)
                .key("tenant_user", s(&key))
                .update_expression("SET failed_attempts = if_not_exists(failed_attempts, :zero) + :one")
                .condition_expression(
                    "attribute_exists(tenant_user) AND (attribute_not_exists(locked_until) OR locked_until <= :now) \
                     AND (attribute_not_exists(failed_attempts) OR failed_attempts < :last)",
                )
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":last", n(last))
                .return_values(ReturnValue::AllNew)
                .send()
                .await
                .map_err(classify);
            match counted {
                Ok(out) => {
                    let record: BackupCodesRecord = from_item(out.attributes.unwrap_or_default())?;
                    return Ok(FailedCode::AttemptsLeft(
                        max_failures.saturating_sub(record.failed_attempts),
                    ));
                }
                Err(StoreError::ConditionFailed) => {}
                Err(other) => return Err(other),
            }
            // The failure that reaches the limit: the lock is set by this very write.
            let locked = self
                .client()
                .update_item()
                .table_name(&self.tables().backup_codes)
                .key("tenant_user", s(&key))
                .update_expression("SET locked_until = :until, failed_attempts = :zero")
                .condition_expression(
                    "attribute_exists(tenant_user) AND (attribute_not_exists(locked_until) OR locked_until <= :now) \
                     AND failed_attempts >= :last",
                )
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":last", n(last))
                .send()
                .await
                .map_err(classify);
            if condition_held(locked)? {
                return Ok(FailedCode::LockedUntil(until));
            }
            // Neither held: locked by a concurrent failure, or the codes are gone.
            match self.get_backup_codes(tenant, user).await? {
                Some(record) => {
                    if let Some(until) = record.locked_until(now) {
                        return Ok(FailedCode::LockedUntil(until));
                    }
                }
                None => return Ok(FailedCode::AttemptsLeft(0)),
            }
        }
        Err(StoreError::Unavailable(
            "backup-code failure count kept changing".into(),
        ))
    }
}

/// Rounds of the failure writes when concurrent failures keep changing the count.
const FAILURE_WRITE_ATTEMPTS: usize = 3;
