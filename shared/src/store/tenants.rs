use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::{classify, from_item, s, to_item, Item, Store, StoreError};
use crate::ids::TenantId;
use crate::tenant::Tenant;

impl Store {
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
