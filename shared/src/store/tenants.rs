//! Tenants, and the per-container cache of their settings.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::{classify, from_item, s, to_item, Item, Store, StoreError};
use crate::ids::TenantId;
use crate::tenant::Tenant;

/// Most tenants one container keeps settings of; past it, the oldest copy is dropped.
pub const TENANT_CACHE_ENTRIES: usize = 1_000;

/// Tenant settings as this container last read them, with when (epoch seconds).
#[derive(Debug, Default)]
pub(crate) struct TenantCache(Mutex<HashMap<TenantId, (Tenant, i64)>>);

impl TenantCache {
    /// The copy read at most the tenant's own `config_cache_secs` before `now`.
    fn fresh(&self, id: &TenantId, now: i64) -> Option<Tenant> {
        let entries = self.0.lock().ok()?;
        let (tenant, read_at) = entries.get(id)?;
        let age = now.saturating_sub(*read_at);
        (0..i64::from(tenant.config_cache_secs))
            .contains(&age)
            .then(|| tenant.clone())
    }

    fn keep(&self, tenant: &Tenant, now: i64) {
        let Ok(mut entries) = self.0.lock() else {
            return;
        };
        if entries.len() >= TENANT_CACHE_ENTRIES && !entries.contains_key(&tenant.tenant_id) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                entries.remove(&id);
            }
        }
        entries.insert(tenant.tenant_id, (tenant.clone(), now));
    }

    fn forget(&self, id: &TenantId) {
        if let Ok(mut entries) = self.0.lock() {
            entries.remove(id);
        }
    }
}

impl Store {
    /// A tenant's settings for a request at `now`: this container's copy if it was read less
    /// than the tenant's `config_cache_secs` ago, else read (and kept). An unknown tenant is
    /// read every time, so a new tenant works at once. Operators' reads and writes use
    /// [`Store::get_tenant`] and [`Store::replace_tenant`], which are never cached; a change
    /// reaches other containers within `config_cache_secs` (README, Tenants).
    pub async fn tenant(&self, id: &TenantId, now: i64) -> Result<Option<Tenant>, StoreError> {
        if let Some(tenant) = self.tenant_cache.fresh(id, now) {
            return Ok(Some(tenant));
        }
        let tenant = self.get_tenant(id).await?;
        if let Some(tenant) = &tenant {
            self.tenant_cache.keep(tenant, now);
        }
        Ok(tenant)
    }

    /// Creates a tenant; fails with `ConditionFailed` if the id is taken.
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().tenants)
            .set_item(Some(to_item(tenant)?))
            .condition_expression("attribute_not_exists(tenant_id)")
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// A page of tenants (a scan: operators only) and where the next page starts.
    pub async fn list_tenants(
        &self,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Tenant>, Option<Item>), StoreError> {
        let out = self
            .client()
            .scan()
            .table_name(&self.tables().tenants)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let tenants = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        Ok((tenants, out.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// Replaces a tenant's settings; `false` if it does not exist (any more).
    pub async fn replace_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        let result = self
            .client()
            .put_item()
            .table_name(&self.tables().tenants)
            .set_item(Some(to_item(tenant)?))
            .condition_expression("attribute_exists(tenant_id)")
            .send()
            .await
            .map_err(classify);
        // This container applies the change at once; others within `config_cache_secs`.
        self.tenant_cache.forget(&tenant.tenant_id);
        super::condition_held(result)
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().tenants)
            .key("tenant_id", s(tenant.to_string()))
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// Tenants by id in one round trip (`BatchGetItem`); ids that name no tenant are skipped.
    /// With no ids it still reads one key that names no tenant, so a lookup takes the same
    /// round trip whatever it finds: passwordless concealment relies on that.
    pub async fn get_tenants(&self, ids: &[TenantId]) -> Result<Vec<Tenant>, StoreError> {
        let table = &self.tables().tenants;
        let nobody = [TenantId::from(uuid::Uuid::nil())];
        let ids = if ids.is_empty() { &nobody[..] } else { ids };
        // BatchGetItem refuses a request that names one key twice (one address can have two
        // users in one tenant after a race of two creations).
        let unique: std::collections::BTreeSet<String> =
            ids.iter().map(ToString::to_string).collect();
        let keys: Vec<Item> = unique
            .into_iter()
            .map(|id| Item::from([("tenant_id".to_owned(), s(id))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| StoreError::Rejected(e.to_string()))?,
        );
        let mut tenants = Vec::new();
        // Unprocessed keys (throttling) are asked for again, a bounded number of times.
        for _ in 0..BATCH_ROUNDS {
            let Some(keys) = request.take() else { break };
            let out = self
                .client()
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(classify)?;
            let mut responses = out.responses.unwrap_or_default();
            for item in responses.remove(table).unwrap_or_default() {
                tenants.push(from_item(item)?);
            }
            request = out
                .unprocessed_keys
                .unwrap_or_else(HashMap::new)
                .remove(table)
                .filter(|k| !k.keys().is_empty());
        }
        match request {
            None => Ok(tenants),
            Some(_) => Err(StoreError::Unavailable("tenants left unprocessed".into())),
        }
    }
}

/// Rounds of a batch read before unprocessed keys count as the store being unavailable.
const BATCH_ROUNDS: usize = 3;
