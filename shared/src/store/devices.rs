//! Trusted devices: one item per user and device fingerprint hash, created on the first
//! successful passwordless login from that device and updated on every later one.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{classify, from_items, n, s, tenant_user_key, Item, Store, StoreError, Write};
use crate::ids::{CredentialId, TenantId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub tenant_user: String,
    pub device_hash: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub trusted: bool,
    /// Where the hash came from: `header` (JSON fingerprint), `opaque_header` (a header that
    /// is not JSON, hashed as text) or `user_agent` (no header).
    pub fingerprint_source: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub seen_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_credential_id: Option<CredentialId>,
}

/// One successful login seen from a device.
#[derive(Clone, Debug)]
pub struct DeviceSighting {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub device_hash: String,
    pub fingerprint_source: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub credential_id: CredentialId,
    pub now: i64,
}

impl DeviceSighting {
    /// Creates the record or updates it: first-seen is kept, count incremented.
    pub(crate) fn upsert(&self) -> Write {
        let mut key = Item::new();
        key.insert(
            "tenant_user".into(),
            s(tenant_user_key(&self.tenant_id, &self.user_id)),
        );
        key.insert("device_hash".into(), s(&self.device_hash));
        let optional = |value: &Option<String>| match value {
            Some(v) => s(v),
            None => AttributeValue::Null(true),
        };
        Write {
            update: Some(
                "SET #tenant = :tenant, #user = :user, #trusted = :true, #source = :source, \
                 #first = if_not_exists(#first, :now), #last = :now, #ip = :ip, #ua = :ua, \
                 #cred = :cred ADD #count :one"
                    .into(),
            ),
            ..Write::new(key)
        }
        .name("#tenant", "tenant_id")
        .name("#user", "user_id")
        .name("#trusted", "trusted")
        .name("#source", "fingerprint_source")
        .name("#first", "first_seen_at")
        .name("#last", "last_seen_at")
        .name("#ip", "last_ip")
        .name("#ua", "last_user_agent")
        .name("#cred", "last_credential_id")
        .name("#count", "seen_count")
        .value(":tenant", s(self.tenant_id.to_string()))
        .value(":user", s(self.user_id.to_string()))
        .value(":true", AttributeValue::Bool(true))
        .value(":source", s(self.fingerprint_source))
        .value(":now", n(self.now))
        .value(":ip", optional(&self.ip))
        .value(":ua", optional(&self.user_agent))
        .value(":cred", s(self.credential_id.to_base64url()))
        .value(":one", n(1))
    }
}

impl Store {
    /// Whether the user has a trusted device record for `device_hash` (a login from it
    /// succeeded before).
    pub async fn device_trusted(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device_hash: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().devices)
            .key("tenant_user", s(tenant_user_key(tenant, user)))
            .key("device_hash", s(device_hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let record: Option<DeviceRecord> = out.item.map(super::from_item).transpose()?;
        Ok(record.is_some_and(|d| d.trusted))
    }

    /// A user's trusted devices.
    pub async fn list_devices(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().devices)
            .key_condition_expression("tenant_user = :tu")
            .expression_attribute_values(":tu", s(tenant_user_key(tenant, user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        from_items(out.items)
    }
}
