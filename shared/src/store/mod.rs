//! DynamoDB access. Every call classifies the SDK's error kinds: a failed condition is a client
//! outcome the caller decides on, throttling and outages are retryable, the rest is a fault.

pub mod audit;
mod backup_codes;
mod challenges;
pub mod client;
mod credentials;
pub mod devices;
mod erase;
mod login;
#[cfg(feature = "tables")]
pub mod schema;
pub mod sessions;
mod tenants;
pub mod users;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::TableNames;
use crate::ids::{TenantId, UserId};

pub use audit::{AuditPage, AuditQuery, AuditRecord};
pub use backup_codes::{slot_for, BackupCodesRecord, FailedCode, Redemption};
pub use challenges::{ChallengeKind, ChallengeRecord, ConsumeChallenge, CHALLENGE_USER_INDEX};
pub use client::{configure_client, retry_config, timeout_config};
pub use credentials::{
    CounterRule, CredentialRecord, CredentialUse, DeleteCredentialOutcome, SaveCredentialOutcome,
    UseOutcome,
};
pub use devices::{DeviceRecord, DeviceSighting};
pub use erase::Erased;
pub use login::{LoginCommit, LoginCommitOutcome};
pub use sessions::{Rotation, RotationOutcome, SessionRecord, SESSION_USER_INDEX};
pub use users::{normalise_email, UserChanges, UserRecord};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition expression did not hold (item missing, already present, expired, not ours).
    #[error("conditional check failed")]
    ConditionFailed,
    /// A transaction was cancelled; one reason code per item, in request order.
    #[error("transaction cancelled: {0:?}")]
    TransactionCanceled(Vec<String>),
    /// Throttled, timed out or unreachable: safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item that does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// The store refused the request (validation, missing table, permissions).
    #[error("store rejected the request: {0}")]
    Rejected(String),
}

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

/// Cancellation reasons of a transaction that may succeed if sent again: an item was throttled
/// or another transaction was writing it. DynamoDB reports throttling inside a transaction this
/// way, as a `TransactionCanceledException`, which the SDK does not retry.
const RETRYABLE_CANCELLATIONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "TransactionConflict",
];

/// Whether a cancelled transaction may succeed if sent again.
pub(crate) fn retryable_cancellation(reasons: &[String]) -> bool {
    reasons
        .iter()
        .any(|r| RETRYABLE_CANCELLATIONS.contains(&r.as_str()))
}

/// The error of a cancelled transaction no caller turned into an outcome: unavailable (a 503)
/// if it was throttled or contended, a fault otherwise.
pub(crate) fn cancelled(reasons: Vec<String>) -> StoreError {
    if retryable_cancellation(&reasons) {
        StoreError::Unavailable(format!("transaction cancelled: {reasons:?}"))
    } else {
        StoreError::TransactionCanceled(reasons)
    }
}

pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ConditionalCheckFailedException") => StoreError::ConditionFailed,
            Some(code) if RETRYABLE_CODES.contains(&code) => StoreError::Unavailable(text),
            _ => StoreError::Rejected(text),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Rejected(text),
    }
}

/// For writes whose condition failing is an expected answer: `Ok(true)` if it held and the
/// write happened, `Ok(false)` if it did not hold, store faults as they are.
pub(crate) fn condition_held<T>(result: Result<T, StoreError>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed) => Ok(false),
        Err(other) => Err(other),
    }
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The items of a query answer.
pub(crate) fn from_items<T: DeserializeOwned>(
    items: Option<Vec<Item>>,
) -> Result<Vec<T>, StoreError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(from_item)
        .collect()
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Partition key of everything owned by one user of one tenant.
pub fn tenant_user_key(tenant: &TenantId, user: &UserId) -> String {
    format!("{tenant}#{user}")
}

/// A key, an optional update and a condition, with their placeholders: built once, sent as a
/// single request or as one item of a transaction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Write {
    pub key: Item,
    pub update: Option<String>,
    pub condition: Option<String>,
    pub names: HashMap<String, String>,
    pub values: Item,
}

impl Write {
    pub fn new(key: Item) -> Self {
        Self {
            key,
            ..Self::default()
        }
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.into(), value);
        self
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    pub fn transact_update(&self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.update.clone().unwrap_or_default())
            .set_condition_expression(self.condition.clone())
            .set_expression_attribute_names(self.names())
            .set_expression_attribute_values(self.values())
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub async fn update_item(&self, client: &Client, table: &str) -> Result<(), StoreError> {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.update.clone().unwrap_or_default())
            .set_condition_expression(self.condition.clone())
            .set_expression_attribute_names(self.names())
            .set_expression_attribute_values(self.values())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// The per-item cancellation reason codes of a cancelled transaction, if that is what failed.
pub(crate) fn transaction_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    cancellation_reasons(err).map(|reasons| {
        reasons
            .iter()
            .map(|r| r.code().unwrap_or("None").to_owned())
            .collect()
    })
}

fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<&[aws_sdk_dynamodb::types::CancellationReason]> {
    match err {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                Some(cancelled.cancellation_reasons())
            }
            _ => None,
        },
        _ => None,
    }
}

/// Which item of a transaction failed its condition, and that item as it was when its write
/// asked for it (`ReturnValuesOnConditionCheckFailure::AllOld`; `None` if it did not exist).
#[derive(Debug)]
pub(crate) struct FailedCondition {
    pub index: usize,
    pub item: Option<Item>,
}

/// Attempts of a transaction that DynamoDB cancels because another one touched the same item at
/// the same moment, or because an item was throttled (which the SDK does not retry inside a
/// transaction).
const CONFLICT_ATTEMPTS: u32 = 4;

impl Store {
    /// Writes `items` in one transaction, retried on conflicts. `Ok(Err(i))` when the condition
    /// of `items[i]` failed: nothing was written.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), usize>, StoreError> {
        Ok(self.transact_returning(items).await?.map_err(|f| f.index))
    }

    /// [`Store::transact`], also returning the failed item as it was, when its write asked
    /// for it.
    pub(crate) async fn transact_returning(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), FailedCondition>, StoreError> {
        let mut attempt = 1;
        loop {
            let result = self
                .client()
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            let Some(reasons) = transaction_reasons(&err) else {
                return Err(classify(err));
            };
            if let Some(index) = reasons.iter().position(|r| r == "ConditionalCheckFailed") {
                let item = cancellation_reasons(&err)
                    .and_then(|all| all.get(index))
                    .and_then(|reason| reason.item().cloned())
                    .filter(|item| !item.is_empty());
                return Ok(Err(FailedCondition { index, item }));
            }
            if !retryable_cancellation(&reasons) || attempt >= CONFLICT_ATTEMPTS {
                return Err(cancelled(reasons));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// A conditional update and, in the same transaction, the audit record of its success
    /// (README, Performance shape: the audit write is no extra round trip). `Ok(false)` when
    /// the update's condition failed: nothing was written. Without a record, a plain update.
    pub(crate) async fn update_audited(
        &self,
        write: &Write,
        table: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let Some(record) = audit else {
            return condition_held(write.update_item(self.client(), table).await);
        };
        let items = vec![
            write.transact_update(table)?,
            audit::transact_put_record(self, record)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }
}

/// A conditional put as one item of a transaction.
pub(crate) fn transact_put(
    table: &str,
    item: Item,
    condition: &str,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .build()
        .map_err(|e| StoreError::Rejected(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The DynamoDB client, the table names and the container's tenant settings cache: built once
/// per cold start, shared by requests (clones share the cache).
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    tables: TableNames,
    tenant_cache: std::sync::Arc<tenants::TenantCache>,
}

impl Store {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self {
            client,
            tables,
            tenant_cache: Default::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// How long one attempt of a call may take, as the client is configured
    /// ([`client::ATTEMPT_TIMEOUT`] in the functions).
    pub fn attempt_timeout(&self) -> std::time::Duration {
        self.client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout())
            .unwrap_or(client::ATTEMPT_TIMEOUT)
    }
}
