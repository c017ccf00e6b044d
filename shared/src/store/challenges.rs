use aws_sdk_dynamodb::types::ReturnValue;
use serde::{Deserialize, Serialize};

use super::{classify, from_item, n, s, to_item, Store, StoreError};
use crate::ids::{TenantId, UserId};
use crate::tenant::MethodType;

/// Which ceremony a pending state belongs to; a state is only ever consumed by its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    Registration,
}

impl ChallengeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChallengeKind::Registration => "registration",
        }
    }
}

/// Pending ceremony state. `expires_at` (epoch seconds) is the table's TTL attribute and is
/// also checked on every read, because DynamoDB deletes expired items only eventually.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    pub challenge_key: String,
    pub kind: ChallengeKind,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_type: Option<MethodType>,
    /// Serialized webauthn-rs ceremony state (JSON).
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl ChallengeRecord {
    /// Registration states are keyed by their challenge, which the client echoes back in
    /// clientDataJSON; so several enrollments (two tabs) can be pending at once.
    pub fn registration_key(challenge_b64url: &str) -> String {
        format!("registration#{challenge_b64url}")
    }
}

/// What a consumer expects of the state it takes; anything else leaves the item untouched.
#[derive(Clone, Debug)]
pub struct ConsumeChallenge<'a> {
    pub key: &'a str,
    pub kind: ChallengeKind,
    pub tenant: &'a TenantId,
    pub user: Option<&'a UserId>,
    pub method_type: Option<MethodType>,
    pub now: i64,
}

impl Store {
    pub async fn put_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().challenges)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(challenge_key)")
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Reads and deletes the state in one conditional delete, so that of any number of
    /// concurrent consumers exactly one gets it. `None` when it is missing, expired, already
    /// used, or belongs to another kind, tenant, user or method.
    pub async fn consume_challenge(
        &self,
        expect: ConsumeChallenge<'_>,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let mut condition = String::from(
            "attribute_exists(challenge_key) AND #kind = :kind AND #tenant = :tenant AND #exp > :now",
        );
        let mut request = self
            .client()
            .delete_item()
            .table_name(&self.tables().challenges)
            .key("challenge_key", s(expect.key))
            .return_values(ReturnValue::AllOld)
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#tenant", "tenant_id")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":kind", s(expect.kind.as_str()))
            .expression_attribute_values(":tenant", s(expect.tenant.to_string()))
            .expression_attribute_values(":now", n(expect.now));
        if let Some(user) = expect.user {
            condition.push_str(" AND #user = :user");
            request = request
                .expression_attribute_names("#user", "user_id")
                .expression_attribute_values(":user", s(user.to_string()));
        }
        if let Some(method) = expect.method_type {
            condition.push_str(" AND #method = :method");
            request = request
                .expression_attribute_names("#method", "method_type")
                .expression_attribute_values(":method", s(method.as_str()));
        }
        match request
            .condition_expression(condition)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => match out.attributes {
                Some(item) if !item.is_empty() => from_item(item).map(Some),
                _ => Err(StoreError::Corrupt("delete returned no old item".into())),
            },
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
