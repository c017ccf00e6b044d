use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{classify, from_item, from_items, s, to_item, Store, StoreError, Write};
use crate::ids::{TenantId, UserId};

/// A user of one tenant. `email` is normalised (trimmed, lower-case) so lookups are exact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub created_at: i64,
    /// Set when the user's erasure began: from then on every lookup treats the user as gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// The groups the operator put the user in (sorted, unique): `principal.groups` in the
    /// tenant's policies. Absent on records written before groups existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl UserRecord {
    fn live(self) -> Option<Self> {
        self.deleted_at.is_none().then_some(self)
    }
}

/// What an operator changes on a user; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserChanges<'a> {
    pub display_name: Option<&'a str>,
    pub groups: Option<&'a [String]>,
}

/// The conditional update (the user live) that makes `changes`; `None` if it changes nothing.
fn user_update(tenant: &TenantId, user: &UserId, changes: &UserChanges<'_>) -> Option<Write> {
    let mut set = Vec::new();
    let mut remove = None;
    let mut write = Write {
        condition: Some("attribute_exists(user_id) AND attribute_not_exists(deleted_at)".into()),
        ..Write::new(super::erase::user_key(tenant, user))
    };
    if let Some(name) = changes.display_name {
        set.push("display_name = :name");
        write = write.value(":name", s(name));
    }
    match changes.groups {
        None => {}
        Some([]) => remove = Some("REMOVE #groups"),
        Some(groups) => {
            set.push("#groups = :groups");
            let list = groups.iter().map(|g| s(g.as_str())).collect();
            write = write.value(":groups", AttributeValue::L(list));
        }
    }
    if changes.groups.is_some() {
        write = write.name("#groups", "groups");
    }
    let set = (!set.is_empty()).then(|| format!("SET {}", set.join(", ")));
    write.update = Some(match (set, remove) {
        (Some(set), Some(remove)) => format!("{set} {remove}"),
        (Some(set), None) => set,
        (None, Some(remove)) => remove.to_owned(),
        (None, None) => return None,
    });
    Some(write)
}

/// Trimmed and lower-cased; the form stored and looked up.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    /// Creates a user; fails with `ConditionFailed` if the id is taken.
    /// With `audit`, its record is written in the same transaction.
    pub async fn create_user(
        &self,
        user: &UserRecord,
        audit: Option<&super::AuditRecord>,
    ) -> Result<(), StoreError> {
        let new = "attribute_not_exists(user_id)";
        let Some(audit) = audit else {
            self.client()
                .put_item()
                .table_name(&self.tables().users)
                .set_item(Some(to_item(user)?))
                .condition_expression(new)
                .send()
                .await
                .map_err(classify)?;
            return Ok(());
        };
        let items = vec![
            super::transact_put(&self.tables().users, to_item(user)?, new)?,
            super::audit::transact_put_record(self, audit)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::ConditionFailed),
        }
    }

    pub async fn get_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().users)
            .key("tenant_id", s(tenant.to_string()))
            .key("user_id", s(user.to_string()))
            .send()
            .await
            .map_err(classify)?;
        let user: Option<UserRecord> = out.item.map(from_item).transpose()?;
        Ok(user.and_then(UserRecord::live))
    }

    /// Changes what `changes` sets on a live user; `false` if there is no such user. An
    /// empty group list removes the attribute. With `audit`, its record is written in the same
    /// transaction.
    pub async fn update_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        changes: &UserChanges<'_>,
        audit: Option<&super::AuditRecord>,
    ) -> Result<bool, StoreError> {
        let Some(write) = user_update(tenant, user, changes) else {
            // Nothing to change: only whether the user is there.
            return Ok(self.get_user(tenant, user).await?.is_some());
        };
        self.update_audited(&write, &self.tables().users, audit)
            .await
    }

    /// Users with this email, across tenants (the `email-index` GSI), at most `limit`.
    pub async fn find_users_by_email(
        &self,
        email: &str,
        limit: i32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().users)
            .index_name("email-index")
            .key_condition_expression("email = :email")
            .expression_attribute_values(":email", s(normalise_email(email)))
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        let users: Vec<UserRecord> = from_items(out.items)?;
        Ok(users.into_iter().filter_map(UserRecord::live).collect())
    }

    /// The user with this email in one tenant (the index's range key), if any.
    pub async fn find_user_by_email_in_tenant(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().users)
            .index_name("email-index")
            .key_condition_expression("email = :email AND tenant_id = :tenant")
            .expression_attribute_values(":email", s(normalise_email(email)))
            .expression_attribute_values(":tenant", s(tenant.to_string()))
            .limit(1)
            .send()
            .await
            .map_err(classify)?;
        let users: Vec<UserRecord> = from_items(out.items)?;
        Ok(users.into_iter().filter_map(UserRecord::live).next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalise_email("  Alice@Example.COM "), "alice@example.com");
    }
}
