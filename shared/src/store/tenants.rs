use super::{classify, from_item, s, to_item, Store, StoreError};
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
}
