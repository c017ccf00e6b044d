use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{classify, from_item, s, tenant_user_key, Store, StoreError};
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
        }
    }

    pub fn remaining(&self) -> usize {
        self.codes.len()
    }
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
}
