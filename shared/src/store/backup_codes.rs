use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use aws_sdk_dynamodb::types::ReturnValue;

use super::{classify, condition_held, from_item, n, s, tenant_user_key, Store, StoreError};
use crate::ids::{TenantId, UserId};

/// A user's backup codes: only keyed hashes (see `codes`), one per slot. A redeemed code's slot
/// moves from `codes` to `used`. A code's slot is named after its hash ([`slot_for`]), so
/// redeeming one is a single conditional write with no read; records written before that
/// (slots `"0"`…`"9"`) still work, at one more round trip (the refused redemption returns the
/// record, whose slots the handler then searches) until the user's codes are regenerated.
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
                .map(|hash| (slot_for(&hash), hash))
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

    /// Whether this record names slots after the codes' hashes (see [`slot_for`]).
    pub fn keyed_by_hash(&self) -> bool {
        self.codes
            .iter()
            .all(|(slot, hash)| *slot == slot_for(hash))
    }

    /// What a wrong code does to this record: counted, or (the limit reached) a lockout.
    pub fn next_failure(&self, now: i64, max_failures: u32, lockout_secs: i64) -> FailedCode {
        let failures = self.failed_attempts.saturating_add(1);
        if failures >= max_failures {
            FailedCode::LockedUntil(now + lockout_secs)
        } else {
            FailedCode::AttemptsLeft(max_failures - failures)
        }
    }

    /// Until when redemption is locked, if it still is at `now`.
    pub fn locked_until(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// The slot a code's keyed hash is stored under: its first 32 hex digits (128 bits). The
/// redemption's condition compares the whole hash.
pub fn slot_for(hash: &str) -> String {
    hash.chars().take(32).collect()
}

/// What a redemption attempt found.
#[derive(Debug, PartialEq)]
pub enum Redemption {
    /// The code was unused and is now used; the audit record was written with it.
    Redeemed,
    /// Nothing was written: no such unused code in that slot, or locked out. The record as it
    /// was (`None`: the user has no backup codes).
    Refused(Option<Box<BackupCodesRecord>>),
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

    /// Marks the code whose keyed hash is `hash` used, in `slot`, and writes `audit` in the
    /// same transaction: of concurrent redemptions of the same code exactly one succeeds. Also
    /// clears the failure count. Refused, with the record as it was, if the slot does not hold
    /// that hash (a wrong or used code) or the user is locked out.
    pub async fn redeem_backup_code_audited(
        &self,
        tenant: &TenantId,
        user: &UserId,
        slot: &str,
        hash: &str,
        audit: &super::AuditRecord,
        now: i64,
    ) -> Result<Redemption, StoreError> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.tables().backup_codes)
            .key("tenant_user", s(tenant_user_key(tenant, user)))
            .update_expression(
                "REMOVE codes.#slot, locked_until SET used.#slot = :now, failed_attempts = :zero",
            )
            .condition_expression(
                "codes.#slot = :hash AND (attribute_not_exists(locked_until) OR locked_until <= :now)",
            )
            .expression_attribute_names("#slot", slot)
            .expression_attribute_values(":hash", s(hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(update)
                .build(),
            super::audit::transact_put_record(self, audit)?,
        ];
        match self.transact_returning(items).await? {
            Ok(()) => Ok(Redemption::Redeemed),
            Err(failed) if failed.index == 0 => Ok(Redemption::Refused(
                failed.item.map(from_item).transpose()?.map(Box::new),
            )),
            Err(failed) => Err(super::cancelled(vec![format!(
                "ConditionalCheckFailed at item {}",
                failed.index
            )])),
        }
    }

    /// Counts a wrong code against `seen` (the record as the refused redemption returned it)
    /// and writes `audit`, the failure's record, in the same transaction. `false` when the
    /// record changed meanwhile (a concurrent attempt): nothing was written, and the caller
    /// counts with [`Store::record_backup_code_failure`] instead.
    pub async fn count_backup_code_failure_audited(
        &self,
        seen: &BackupCodesRecord,
        outcome: &FailedCode,
        audit: &super::AuditRecord,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut condition = String::from(
            "attribute_exists(tenant_user) AND (attribute_not_exists(locked_until) OR locked_until <= :now) AND ",
        );
        condition.push_str(if seen.failed_attempts == 0 {
            "(attribute_not_exists(failed_attempts) OR failed_attempts = :seen)"
        } else {
            "failed_attempts = :seen"
        });
        let mut write = super::Write::new(super::Item::from([(
            "tenant_user".to_owned(),
            s(&seen.tenant_user),
        )]))
        .value(":now", n(now))
        .value(":seen", n(seen.failed_attempts));
        write = match outcome {
            FailedCode::AttemptsLeft(_) => {
                write.update = Some("SET failed_attempts = :count".into());
                write.value(":count", n(seen.failed_attempts.saturating_add(1)))
            }
            FailedCode::LockedUntil(until) => {
                write.update = Some("SET locked_until = :until, failed_attempts = :zero".into());
                write.value(":until", n(*until)).value(":zero", n(0))
            }
        };
        write.condition = Some(condition);
        self.update_audited(&write, &self.tables().backup_codes, Some(audit))
            .await
    }

    /// Counts a wrong code; the `max_failures`-th locks redemption for `lockout_secs`. Each
    /// failure is one conditional write, and the one that reaches the limit sets the lock in
    /// that same write, so no number of parallel wrong codes gets more than `max_failures`
    /// answers other than "locked" — and [`Store::redeem_backup_code_audited`] refuses while locked.
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
