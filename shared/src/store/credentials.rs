use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    classify, condition_held, from_item, from_items, n, s, tenant_user_key, to_item, transact_put,
    AuditRecord, BackupCodesRecord, Item, Store, StoreError, Write,
};
use crate::ids::{CredentialId, TenantId, UserId};
use crate::tenant::MethodType;

pub const CREDENTIAL_ID_INDEX: &str = "credential-id-index";

/// A registered authenticator. Keyed by `tenant_user` + `credential_id`; the
/// `credential-id-index` GSI finds it from a credential id alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialRecord {
    pub tenant_user: String,
    pub credential_id: CredentialId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub method_type: MethodType,
    pub device_name: String,
    pub aaguid: Uuid,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub sign_count: u32,
    /// The counter the authenticator reported at registration; synced passkeys report 0.
    #[serde(default)]
    pub registration_sign_count: u32,
    /// Assertions whose counter did not advance, allowed because the passkey may be synced.
    #[serde(default)]
    pub counter_regressions: u32,
    pub user_verified: bool,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    pub use_count: u64,
    /// The webauthn-rs credential (public key, algorithm, registration policy, attestation) as
    /// JSON. Written once at registration; the counter and backup flags above are the live copy.
    pub webauthn_credential: String,
}

impl CredentialRecord {
    pub fn key_for(tenant: &TenantId, user: &UserId) -> String {
        tenant_user_key(tenant, user)
    }
}

/// How an assertion's counter is written, decided from how the credential was registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterRule {
    /// Security keys and device-bound passkeys: the live stored counter must be below the
    /// presented one (or both 0, for authenticators without a counter); otherwise the
    /// authenticator may be cloned and the use is refused.
    MustAdvance,
    /// A passkey that may be synced, whose counter advanced past the copy read: written only
    /// if it is above the live value too.
    AdvanceIfHigher,
    /// A passkey that may be synced, whose counter did not advance: the counter is left alone
    /// and the regression counted.
    Regressed,
}

/// What one successful assertion changes on the credential. The backup-eligible flag is not
/// here: it is fixed at registration.
#[derive(Clone, Debug)]
pub struct CredentialUse {
    /// The counter the assertion presented.
    pub sign_count: u32,
    pub backup_state: bool,
    pub rule: CounterRule,
    pub now: i64,
}

impl CredentialUse {
    /// The same use written as a regression: after a synced passkey's counter lost a race
    /// against a higher one.
    pub fn as_regression(&self) -> Self {
        Self {
            rule: CounterRule::Regressed,
            ..self.clone()
        }
    }
}

/// What recording a credential's use found.
#[derive(Debug, PartialEq, Eq)]
pub enum UseOutcome {
    Recorded,
    /// The credential was deleted since it was read.
    CredentialGone,
    /// The live counter is at or above the presented one on a credential that must advance.
    CounterNotAdvanced,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SaveCredentialOutcome {
    Saved,
    /// This user already has this credential id.
    DuplicateCredential,
    /// Another enrollment created the user's backup codes first; nothing was written.
    BackupCodesAlreadyExist,
}

impl Store {
    /// All credentials of a user, read consistently (an enrollment just written is included).
    pub async fn list_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(&self.tables().credentials)
                .key_condition_expression("tenant_user = :tu")
                .expression_attribute_values(":tu", s(tenant_user_key(tenant, user)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                records.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    /// Persists counter, backup state, `last_used_at` and the use count after an assertion,
    /// with the counter judged against the live stored value (see [`CounterRule`]).
    pub async fn record_credential_use(
        &self,
        record: &CredentialRecord,
        used: &CredentialUse,
        audit: Option<&AuditRecord>,
    ) -> Result<UseOutcome, StoreError> {
        let table = &self.tables().credentials;
        let write = credential_use_write(record, used);
        if self.update_audited(&write, table, audit).await? {
            return Ok(UseOutcome::Recorded);
        }
        if used.rule == CounterRule::AdvanceIfHigher {
            // A synced passkey whose higher counter was written meanwhile: a regression.
            let write = credential_use_write(record, &used.as_regression());
            return Ok(match self.update_audited(&write, table, audit).await? {
                true => UseOutcome::Recorded,
                false => UseOutcome::CredentialGone,
            });
        }
        self.use_failure(record).await
    }

    /// Why a use that must advance the counter was refused: the credential is gone, or its
    /// live counter is not below the presented one.
    pub(crate) async fn use_failure(
        &self,
        record: &CredentialRecord,
    ) -> Result<UseOutcome, StoreError> {
        let live = self
            .get_credential(&record.tenant_id, &record.user_id, &record.credential_id)
            .await?;
        Ok(match live {
            None => UseOutcome::CredentialGone,
            Some(live) => {
                tracing::warn!(
                    event = "counter_not_advanced",
                    stored = live.sign_count,
                    "the live signature counter is not below the presented one"
                );
                UseOutcome::CounterNotAdvanced
            }
        })
    }

    /// One credential of one user, read consistently: finding it under the user's key is
    /// what proves the user owns it.
    pub async fn get_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        credential: &CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().credentials)
            .key("tenant_user", s(tenant_user_key(tenant, user)))
            .key("credential_id", s(credential.to_base64url()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// Every stored record with this credential id, in any tenant (normally zero or one).
    pub async fn find_credentials_by_id(
        &self,
        credential: &CredentialId,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().credentials)
            .index_name(CREDENTIAL_ID_INDEX)
            .key_condition_expression("credential_id = :c")
            .expression_attribute_values(":c", s(credential.to_base64url()))
            .limit(10)
            .send()
            .await
            .map_err(classify)?;
        from_items(out.items)
    }

    /// Writes a new credential and, on a user's first enrollment, their backup codes, in one
    /// transaction: either both exist afterwards or neither does.
    pub async fn save_new_credential(
        &self,
        record: &CredentialRecord,
        first_backup_codes: Option<&BackupCodesRecord>,
        audit: Option<&AuditRecord>,
    ) -> Result<SaveCredentialOutcome, StoreError> {
        let item = to_item(record)?;
        let new_credential = "attribute_not_exists(credential_id)";
        if first_backup_codes.is_none() && audit.is_none() {
            let result = self
                .client()
                .put_item()
                .table_name(&self.tables().credentials)
                .set_item(Some(item))
                .condition_expression(new_credential)
                .send()
                .await;
            return match result.map_err(classify) {
                Ok(_) => Ok(SaveCredentialOutcome::Saved),
                Err(StoreError::ConditionFailed) => Ok(SaveCredentialOutcome::DuplicateCredential),
                Err(other) => Err(other),
            };
        }
        let mut items = vec![transact_put(
            &self.tables().credentials,
            item,
            new_credential,
        )?];
        if let Some(codes) = first_backup_codes {
            items.push(transact_put(
                &self.tables().backup_codes,
                to_item(codes)?,
                "attribute_not_exists(tenant_user)",
            )?);
        }
        if let Some(record) = audit {
            items.push(super::audit::transact_put_record(self, record)?);
        }
        Ok(match self.transact(items).await? {
            Ok(()) => SaveCredentialOutcome::Saved,
            Err(1) if first_backup_codes.is_some() => {
                SaveCredentialOutcome::BackupCodesAlreadyExist
            }
            Err(_) => SaveCredentialOutcome::DuplicateCredential,
        })
    }
}

/// What deleting a credential found.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteCredentialOutcome {
    Deleted,
    /// No such credential (already deleted, or never the user's).
    NotFound,
    /// The credential that had to remain (the last other one) was deleted meanwhile.
    WitnessGone,
}

impl Store {
    /// Renames a credential; `false` if the user has no such credential.
    pub async fn rename_credential(
        &self,
        record: &CredentialRecord,
        device_name: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let write = Write {
            update: Some("SET device_name = :name".into()),
            condition: Some("attribute_exists(credential_id)".into()),
            ..Write::new(credential_key(record))
        }
        .value(":name", s(device_name));
        self.update_audited(&write, &self.tables().credentials, audit)
            .await
    }

    /// Deletes a credential. With `keep`, only while that other credential still exists, in
    /// one transaction: two concurrent deletions of a user's last two credentials cannot both
    /// pass, so the user keeps one. With `audit`, its record is written in the same
    /// transaction.
    pub async fn delete_credential(
        &self,
        record: &CredentialRecord,
        keep: Option<&CredentialRecord>,
        audit: Option<&AuditRecord>,
    ) -> Result<DeleteCredentialOutcome, StoreError> {
        let table = &self.tables().credentials;
        let exists = "attribute_exists(credential_id)";
        if keep.is_none() && audit.is_none() {
            let result = self
                .client()
                .delete_item()
                .table_name(table)
                .set_key(Some(credential_key(record)))
                .condition_expression(exists)
                .send()
                .await
                .map_err(classify);
            return Ok(match condition_held(result)? {
                true => DeleteCredentialOutcome::Deleted,
                false => DeleteCredentialOutcome::NotFound,
            });
        }
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(credential_key(record)))
            .condition_expression(exists)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        if let Some(keep) = keep {
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(credential_key(keep)))
                .condition_expression(exists)
                .build()
                .map_err(|e| StoreError::Rejected(e.to_string()))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        if let Some(record) = audit {
            items.push(super::audit::transact_put_record(self, record)?);
        }
        Ok(match self.transact(items).await? {
            Ok(()) => DeleteCredentialOutcome::Deleted,
            Err(1) if keep.is_some() => DeleteCredentialOutcome::WitnessGone,
            Err(_) => DeleteCredentialOutcome::NotFound,
        })
    }
}

fn credential_key(record: &CredentialRecord) -> Item {
    let mut key = Item::new();
    key.insert("tenant_user".into(), s(&record.tenant_user));
    key.insert(
        "credential_id".into(),
        s(record.credential_id.to_base64url()),
    );
    key
}

/// The update one successful assertion makes to its credential: conditional on it still
/// existing and, per [`CounterRule`], on the live counter.
pub(crate) fn credential_use_write(record: &CredentialRecord, used: &CredentialUse) -> Write {
    let key = credential_key(record);
    let mut update = String::from("SET backup_state = :bs, last_used_at = :now");
    let mut condition = String::from("attribute_exists(credential_id)");
    match used.rule {
        CounterRule::MustAdvance if used.sign_count == 0 => {
            // An authenticator without a counter: it must never have reported one.
            condition.push_str(" AND sign_count = :count");
        }
        CounterRule::MustAdvance | CounterRule::AdvanceIfHigher => {
            update.push_str(", sign_count = :count");
            condition.push_str(" AND sign_count < :count");
        }
        CounterRule::Regressed => {}
    }
    update.push_str(" ADD use_count :one");
    if used.rule == CounterRule::Regressed {
        update.push_str(", counter_regressions :one");
    }
    let write = Write {
        update: Some(update),
        condition: Some(condition),
        ..Write::new(key)
    }
    .value(":bs", AttributeValue::Bool(used.backup_state))
    .value(":now", n(used.now))
    .value(":one", n(1));
    match used.rule {
        CounterRule::Regressed => write,
        CounterRule::MustAdvance | CounterRule::AdvanceIfHigher => {
            write.value(":count", n(used.sign_count))
        }
    }
}
