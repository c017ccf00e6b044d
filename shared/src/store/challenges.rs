use aws_sdk_dynamodb::types::ReturnValue;
use serde::{Deserialize, Serialize};

use super::{classify, condition_held, from_item, n, s, to_item, Item, Store, StoreError, Write};
use crate::ids::{ChallengeId, TenantId, UserId};
use crate::tenant::MethodType;

/// Which ceremony a pending state belongs to; a state is only ever consumed by its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    /// A passkey or security-key enrollment in progress.
    Registration,
    /// A second-factor login, created by the primary login and completed by this service.
    Mfa,
    /// A grant to enroll without a token (MFA `enrollment_required`): one method type, or any
    /// the tenant enables when the grant names none (a first enrollment from MFA options).
    Enrollment,
    /// A passwordless login in progress (`/api/v1/webauthn/authenticate/begin`).
    Login,
}

impl ChallengeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChallengeKind::Registration => "registration",
            ChallengeKind::Mfa => "mfa",
            ChallengeKind::Enrollment => "enrollment",
            ChallengeKind::Login => "login",
        }
    }

    /// The item key of a challenge handed out by id.
    pub fn key(&self, id: &ChallengeId) -> String {
        format!("{}#{id}", self.as_str())
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
    /// Serialized ceremony state (JSON); an MFA challenge has none until options are requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For a registration started with an enrollment grant: the grant, consumed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<ChallengeId>,
    /// An MFA challenge or an e-mail login's: the user's credentials when it was created, so
    /// MFA options and login completion need not read them (README, Performance shape). Absent
    /// on challenges of other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<super::CredentialRecord>>,
    /// With `credentials`: the user's groups when the challenge was created, for the tenant's
    /// policies at completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl ChallengeRecord {
    /// Registration and login states are keyed by their WebAuthn challenge, which the client
    /// echoes back in clientDataJSON; so several ceremonies of one user (two tabs) can be
    /// pending at once.
    pub fn ceremony_key(kind: ChallengeKind, challenge_b64url: &str) -> String {
        format!("{}#{challenge_b64url}", kind.as_str())
    }
}

/// What a consumer expects of the state it takes; anything else leaves the item untouched.
#[derive(Clone, Debug)]
pub struct ConsumeChallenge<'a> {
    pub key: &'a str,
    pub kind: ChallengeKind,
    /// `None` where the challenge itself is the credential and names the tenant (MFA).
    pub tenant: Option<&'a TenantId>,
    pub user: Option<&'a UserId>,
    pub method_type: Option<MethodType>,
    /// With `method_type`: an item that names no method type matches too (an enrollment grant
    /// for any method). Otherwise an item must name exactly `method_type`.
    pub any_method_if_unset: bool,
    /// Only take it if ceremony state was attached (an MFA challenge after its options).
    pub require_state: bool,
    pub now: i64,
}

/// The index of a user's pending challenges (`tenant_user`, keys only): erasing a user finds
/// them there. The store adds `tenant_user` to every challenge it writes.
pub const CHALLENGE_USER_INDEX: &str = "user-index";

impl Store {
    pub async fn put_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let mut item = to_item(record)?;
        item.insert(
            "tenant_user".into(),
            s(super::tenant_user_key(&record.tenant_id, &record.user_id)),
        );
        self.client()
            .put_item()
            .table_name(&self.tables().challenges)
            .set_item(Some(item))
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
        self.delete_challenge_returning(consume_write(&expect))
            .await
    }

    /// Deletes the challenge of `kind` under `key` and returns it, expired or not (the caller
    /// checks `expires_at`, and still learns whose it was): of any number of concurrent takers
    /// exactly one gets it. `None` when it is missing, already taken, or of another kind.
    pub async fn take_challenge(
        &self,
        key: &str,
        kind: ChallengeKind,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let mut write = Write::new(Item::from([("challenge_key".to_owned(), s(key))]))
            .name("#kind", "kind")
            .value(":kind", s(kind.as_str()));
        write.condition = Some("attribute_exists(challenge_key) AND #kind = :kind".into());
        self.delete_challenge_returning(write).await
    }

    /// The conditional delete both take a challenge with: the item as it was, or `None` when
    /// the condition failed (nothing was deleted).
    async fn delete_challenge_returning(
        &self,
        write: Write,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        match self
            .client()
            .delete_item()
            .table_name(&self.tables().challenges)
            .set_key(Some(write.key))
            .return_values(ReturnValue::AllOld)
            .set_condition_expression(write.condition)
            .set_expression_attribute_names(Some(write.names))
            .set_expression_attribute_values(Some(write.values))
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

    /// A challenge by key, read consistently; `None` when missing or past its expiry.
    pub async fn get_challenge(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let record = self.read_challenge(key).await?;
        Ok(record.filter(|r| r.expires_at > now))
    }

    /// A challenge by key, read consistently, even one past its expiry (DynamoDB's TTL sweep
    /// is late): the caller must check `expires_at` itself.
    pub async fn read_challenge(&self, key: &str) -> Result<Option<ChallengeRecord>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.tables().challenges)
            .key("challenge_key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// Stores ceremony state on a live challenge of `kind`; `false` if it is gone or expired.
    pub async fn attach_challenge_state(
        &self,
        key: &str,
        kind: ChallengeKind,
        state: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(&self.tables().challenges)
            .key("challenge_key", s(key))
            .update_expression("SET #state = :state")
            .condition_expression(
                "attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":kind", s(kind.as_str()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(classify);
        condition_held(result)
    }

    /// Creates a single-use challenge of `kind` for a user, valid for `ttl_secs`.
    pub async fn create_challenge(
        &self,
        kind: ChallengeKind,
        tenant: &TenantId,
        user: &UserId,
        method_type: Option<MethodType>,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(ChallengeId, ChallengeRecord), StoreError> {
        let (id, mut record) = new_challenge(kind, tenant, user, now, ttl_secs);
        record.method_type = method_type;
        self.put_challenge(&record).await?;
        Ok((id, record))
    }

    /// The public operation behind the primary login's hand-off: an MFA challenge for a user
    /// who must now present a second factor. Returns the `challenge_id` the client sends to
    /// `/v1/auth/mfa/…`. `credentials` are the user's, read by the caller: the challenge keeps
    /// them for MFA options.
    pub async fn create_mfa_challenge(
        &self,
        tenant: &TenantId,
        user: &UserId,
        credentials: Vec<super::CredentialRecord>,
        groups: Vec<String>,
        now: i64,
        ttl_secs: i64,
    ) -> Result<ChallengeId, StoreError> {
        let (id, mut record) = new_challenge(ChallengeKind::Mfa, tenant, user, now, ttl_secs);
        record.credentials = Some(credentials);
        record.groups = Some(groups);
        self.put_challenge(&record).await?;
        Ok(id)
    }
}

/// A new challenge of `kind` for a user, valid for `ttl_secs`, with nothing attached yet.
fn new_challenge(
    kind: ChallengeKind,
    tenant: &TenantId,
    user: &UserId,
    now: i64,
    ttl_secs: i64,
) -> (ChallengeId, ChallengeRecord) {
    let id = ChallengeId::new_random();
    let record = ChallengeRecord {
        challenge_key: kind.key(&id),
        kind,
        tenant_id: *tenant,
        user_id: *user,
        method_type: None,
        state: None,
        grant: None,
        credentials: None,
        groups: None,
        created_at: now,
        expires_at: now + ttl_secs,
    };
    (id, record)
}

/// The conditional delete that consumes a challenge.
fn consume_write(expect: &ConsumeChallenge<'_>) -> Write {
    let mut key = Item::new();
    key.insert("challenge_key".into(), s(expect.key));
    let mut condition =
        String::from("attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now");
    let mut write = Write::new(key)
        .name("#kind", "kind")
        .name("#exp", "expires_at")
        .value(":kind", s(expect.kind.as_str()))
        .value(":now", n(expect.now));
    if let Some(tenant) = expect.tenant {
        condition.push_str(" AND #tenant = :tenant");
        write = write
            .name("#tenant", "tenant_id")
            .value(":tenant", s(tenant.to_string()));
    }
    if let Some(user) = expect.user {
        condition.push_str(" AND #user = :user");
        write = write
            .name("#user", "user_id")
            .value(":user", s(user.to_string()));
    }
    if expect.require_state {
        condition.push_str(" AND attribute_exists(#state)");
        write = write.name("#state", "state");
    }
    if let Some(method) = expect.method_type {
        condition.push_str(if expect.any_method_if_unset {
            " AND (#method = :method OR attribute_not_exists(#method))"
        } else {
            " AND #method = :method"
        });
        write = write
            .name("#method", "method_type")
            .value(":method", s(method.as_str()));
    }
    write.condition = Some(condition);
    write
}
