//! Audit records: one item per authentication outcome. The table's partition key is sharded,
//! `<tenant>#<yyyy-mm-dd>#<bucket>` ([`AUDIT_BUCKETS`] buckets a day, the bucket a hash of the
//! event key), so one tenant's writes spread over many keys instead of landing on one ever-hot
//! key range (see the README's "Partition keys at scale"). A tenant's records in a time range
//! are read by fanning out over the days and buckets and merging by `event_key`; the
//! `user-index` GSI lists one user's. DynamoDB's TTL on `expires_at` enforces the tenant's
//! retention.

use std::collections::VecDeque;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{classify, from_items, s, tenant_user_key, to_item, Item, Store, StoreError};
use crate::ids::{CredentialId, SessionId, TenantId, UserId};

pub const AUDIT_USER_INDEX: &str = "user-index";

/// Buckets per tenant and day. A tenant's audit writes spread evenly over this many partition
/// keys a day: at 10,000 logins/s, each writing up to two records of ≤ 1 KB inside a
/// transaction (2 WCU each), that is 40,000 WCU/s over 64 keys, 625 WCU/s a key, under
/// DynamoDB's 1,000 WCU/s per partition. A tenant-wide query reads every bucket of a day.
pub const AUDIT_BUCKETS: u32 = 64;

/// Most days one page of a tenant-wide query reads (each day is [`AUDIT_BUCKETS`] queries,
/// in one concurrent round when the records are spread evenly). A page that has not filled
/// when its days are spent ends early, with a cursor that resumes at the next day.
pub const AUDIT_DAYS_PER_PAGE: i64 = 7;

/// Queries of one fan-out in flight at once: a day's buckets in one round trip.
const FAN_OUT_CONCURRENCY: usize = AUDIT_BUCKETS as usize;

/// How far a record's time can be from the querying container's clock (clocks of different
/// containers disagree a little): the walk over days starts this much after `now` and ends
/// this much before the tenant was created.
const CLOCK_SLACK_SECS: i64 = 900;

const DAY_SECS: i64 = 86_400;

/// Sorts after every UUID a real key holds: with the last second of a day, the position
/// "everything of that day and before" (a cursor that resumes at the next day to read).
const MAX_UUID: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub tenant_id: TenantId,
    /// The table's partition key, `<tenant>#<yyyy-mm-dd>#<bucket, 2 digits>`: the UTC day of
    /// the event and its bucket ([`AuditRecord::bucket`]), a function of `tenant_id` and
    /// `event_key` ([`AuditRecord::shard_key`]). Not part of the admin API's answers.
    pub tenant_shard: String,
    /// `<epoch seconds, 11 digits>#<UUIDv7>`: sorts by time (the v7 part orders events of one
    /// second by the millisecond), unique within the tenant.
    pub event_key: String,
    /// `<tenant>#<user>` when the user is known: the `user-index` partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub at: i64,
    pub time: String,
    /// What was attempted, e.g. `passwordless_login`, `mfa_webauthn`, `token_refresh`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code the client received, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<CredentialId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Who made an account change, e.g. `user:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What an account change was made to: a credential id, a session id, `backup_codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub request_id: String,
    /// TTL attribute: the end of the tenant's retention period.
    pub expires_at: i64,
}

/// The last second an `event_key` can name: its time is 11 digits.
pub const MAX_EVENT_SECOND: i64 = 99_999_999_999;

impl AuditRecord {
    pub fn event_key(at: i64) -> String {
        format!("{at:011}#{}", uuid::Uuid::now_v7())
    }

    /// Whether `key` has the shape [`AuditRecord::event_key`] gives keys: 11 digits, `#`, a UUID.
    pub fn is_event_key(key: &str) -> bool {
        key.split_once('#').is_some_and(|(second, id)| {
            second.len() == 11
                && second.bytes().all(|b| b.is_ascii_digit())
                && uuid::Uuid::parse_str(id).is_ok()
        })
    }

    /// The bucket of an event: FNV-1a of its key, modulo [`AUDIT_BUCKETS`]. The key's UUIDv7
    /// is random past its millisecond, so events spread evenly, and the same key always has
    /// the same bucket (a fixed hash, not the standard library's, which may change).
    pub fn bucket(event_key: &str) -> u32 {
        let hash = event_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % u64::from(AUDIT_BUCKETS)) as u32
    }

    /// The partition key of a tenant's event: `<tenant>#<UTC day of the key's second>#<bucket>`.
    pub fn shard_key(tenant: &TenantId, event_key: &str) -> String {
        let second = event_key
            .get(..11)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_default();
        partition(tenant, second.div_euclid(DAY_SECS), Self::bucket(event_key))
    }
}

/// `<tenant>#<yyyy-mm-dd>#<bucket>` of a day (days since the epoch).
fn partition(tenant: &TenantId, day: i64, bucket: u32) -> String {
    let date = chrono::DateTime::from_timestamp(day * DAY_SECS, 0)
        .unwrap_or_default()
        .date_naive();
    format!("{tenant}#{date}#{bucket:02}")
}

/// The record as one item of a transaction (a new key: it never replaces a record).
pub(crate) fn transact_put_record(
    store: &Store,
    record: &AuditRecord,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    super::transact_put(
        &store.tables().audit,
        to_item(record)?,
        "attribute_not_exists(event_key)",
    )
}

impl Store {
    pub async fn put_audit_record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().audit)
            .set_item(Some(to_item(record)?))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The newest `limit` records of a tenant, or of one of its users, newest first, up to the
    /// system clock's now (what `authctl audit list` and the tests read): [`Store::query_audit`]
    /// page after page.
    pub async fn list_audit_records(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        limit: i32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        use crate::clock::Clock;
        let now = crate::clock::SystemClock.now();
        let mut records = Vec::new();
        let mut before = None;
        while records.len() < usize::try_from(limit).unwrap_or_default() {
            let page = self
                .query_audit(AuditQuery {
                    tenant,
                    user,
                    from: None,
                    to: None,
                    limit: limit - records.len() as i32,
                    before,
                    now,
                })
                .await?;
            records.extend(page.records);
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        Ok(records)
    }
}

/// A page of audit records and where the next one starts: the `event_key` below which the
/// listing continues (an opaque cursor's content), `None` when nothing is left.
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next: Option<String>,
}

/// What an audit query asks for.
pub struct AuditQuery<'a> {
    pub tenant: &'a TenantId,
    pub user: Option<&'a UserId>,
    /// Epoch seconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: i32,
    /// A previous page's `next`: only records whose `event_key` sorts below it. Any string of
    /// the shape of an event key is safe here (it only positions the listing in this tenant's
    /// or user's records).
    pub before: Option<String>,
    /// The caller's clock: no record is newer (give or take [`CLOCK_SLACK_SECS`]), so a
    /// tenant-wide query's walk over days starts at this day, not at `to`'s.
    pub now: i64,
}

/// One partition key's records in the query's key range, newest first, fetched a few at a
/// time as the merge needs them.
struct Shard {
    partition: String,
    buffered: VecDeque<AuditRecord>,
    /// Where the next fetch starts (DynamoDB's `LastEvaluatedKey`).
    start: Option<Item>,
    done: bool,
}

/// The key range of a query: `event_key BETWEEN lower AND upper`, `upper` itself excluded when
/// it is a cursor's position.
struct KeyRange {
    lower: String,
    upper: String,
    exclusive: bool,
}

impl KeyRange {
    fn admits(&self, key: &str) -> bool {
        !(self.exclusive && key == self.upper)
    }
}

/// How many records to ask each bucket for when a day's merge still needs `need`: twice an
/// even share and two more (the newest `need` of a day are spread evenly over the buckets, so
/// a second round is rare), plus one for the cursor's own record, never more than the merge
/// can use.
fn per_bucket(need: usize) -> i32 {
    let buckets = AUDIT_BUCKETS as usize;
    let share = 2 * need.div_ceil(buckets) + 2;
    (share.min(need) + 1).try_into().unwrap_or(i32::MAX)
}

impl Store {
    /// Audit records newest first, by tenant or by user, within a time range, a page at a
    /// time. By user: one query of the `user-index`. By tenant: the days from `to` (or now)
    /// back to `from` (or the tenant's creation), newest first, each day's [`AUDIT_BUCKETS`]
    /// keys merged by `event_key`; at most [`AUDIT_DAYS_PER_PAGE`] days a page.
    pub async fn query_audit(&self, q: AuditQuery<'_>) -> Result<AuditPage, StoreError> {
        let empty = AuditPage {
            records: Vec::new(),
            next: None,
        };
        // event_key starts with the 11-digit epoch second, so a time range is a key range: both
        // ends are kept within 11 digits, so the range's order is its keys' order (DynamoDB
        // refuses a BETWEEN whose lower bound sorts after its upper one).
        let second = |at: i64| at.clamp(0, MAX_EVENT_SECOND);
        let (from, to) = (
            second(q.from.unwrap_or(0)),
            second(q.to.unwrap_or(MAX_EVENT_SECOND)),
        );
        let lower = format!("{from:011}");
        let mut range = KeyRange {
            lower: lower.clone(),
            upper: format!("{to:011}~"),
            exclusive: false,
        };
        if let Some(before) = q.before.filter(|b| *b < range.upper) {
            range = KeyRange {
                lower,
                upper: before,
                exclusive: true,
            };
        }
        let limit = usize::try_from(q.limit).unwrap_or_default();
        if from > to || range.lower > range.upper || limit == 0 {
            return Ok(empty);
        }
        match q.user {
            Some(user) => {
                self.query_user_audit(tenant_user_key(q.tenant, user), &range, limit)
                    .await
            }
            None => {
                // No record is older than its tenant, nor newer than now: the days to read.
                // The tenant's settings as this container has them cached (README, Tenants).
                let Some(created) = self.tenant(q.tenant, q.now).await?.map(|t| t.created_at)
                else {
                    return Ok(empty);
                };
                let upper_second = range
                    .upper
                    .get(..11)
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(to);
                let newest = upper_second.min(q.now + CLOCK_SLACK_SECS);
                let oldest = from.max(created - CLOCK_SLACK_SECS);
                if newest < oldest {
                    return Ok(empty);
                }
                let days = (oldest.div_euclid(DAY_SECS), newest.div_euclid(DAY_SECS));
                self.query_tenant_audit(q.tenant, days, &range, limit).await
            }
        }
    }

    /// One user's records: a single query of the `user-index`, one record more than the page
    /// (the cursor's own record may be among them; a record past the page means another page).
    async fn query_user_audit(
        &self,
        tenant_user: String,
        range: &KeyRange,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let (records, last) = self
            .query_range(
                Some(AUDIT_USER_INDEX),
                "tenant_user",
                tenant_user,
                range,
                (limit + 1).try_into().unwrap_or(i32::MAX),
                None,
            )
            .await?;
        let mut records: Vec<AuditRecord> = records
            .into_iter()
            .filter(|r| range.admits(&r.event_key))
            .collect();
        let more = records.len() > limit || last.is_some();
        records.truncate(limit);
        let next = more
            .then(|| records.last().map(|r| r.event_key.clone()))
            .flatten();
        Ok(AuditPage { records, next })
    }

    /// A tenant's records of the days `oldest..=newest` (days since the epoch), newest day
    /// first, at most [`AUDIT_DAYS_PER_PAGE`] of them.
    async fn query_tenant_audit(
        &self,
        tenant: &TenantId,
        (oldest, newest): (i64, i64),
        range: &KeyRange,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let mut records = Vec::new();
        let mut day = newest;
        while day >= oldest && day > newest - AUDIT_DAYS_PER_PAGE {
            let (found, more_that_day) = self
                .merge_day(tenant, day, range, limit - records.len())
                .await?;
            records.extend(found);
            if records.len() == limit {
                let more = more_that_day || day > oldest;
                let next = more
                    .then(|| records.last().map(|r| r.event_key.clone()))
                    .flatten();
                return Ok(AuditPage { records, next });
            }
            day -= 1;
        }
        // The page did not fill: every day read is exhausted. Unread days remain (the page's
        // budget of days ran out) or not.
        let next = (day >= oldest).then(|| format!("{:011}#{MAX_UUID}", (day + 1) * DAY_SECS - 1));
        Ok(AuditPage { records, next })
    }

    /// The newest `need` records of one day of a tenant: a k-way merge of its buckets, each
    /// read a few records at a time (concurrently) as the merge runs out of them. Also whether
    /// the day may hold more.
    async fn merge_day(
        &self,
        tenant: &TenantId,
        day: i64,
        range: &KeyRange,
        need: usize,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let mut shards: Vec<Shard> = (0..AUDIT_BUCKETS)
            .map(|bucket| Shard {
                partition: partition(tenant, day, bucket),
                buffered: VecDeque::new(),
                start: None,
                done: false,
            })
            .collect();
        let mut records = Vec::new();
        while records.len() < need {
            let dry: Vec<usize> = (0..shards.len())
                .filter(|&i| shards[i].buffered.is_empty() && !shards[i].done)
                .collect();
            let limit = per_bucket(need - records.len());
            let queries: Vec<_> = dry
                .iter()
                .map(|&i| {
                    let shard = &shards[i];
                    self.query_range(
                        None,
                        "tenant_shard",
                        shard.partition.clone(),
                        range,
                        limit,
                        shard.start.clone(),
                    )
                })
                .collect();
            let fetched: Vec<_> = futures::stream::iter(queries)
                .buffered(FAN_OUT_CONCURRENCY)
                .try_collect()
                .await?;
            for (i, (found, last)) in dry.into_iter().zip(fetched) {
                let shard = &mut shards[i];
                shard.buffered.extend(found);
                shard.done = last.is_none();
                shard.start = last;
            }
            // The newest record at the head of any bucket: every bucket that may hold more has
            // one buffered, so nothing newer is unread.
            let newest = shards
                .iter_mut()
                .filter(|s| !s.buffered.is_empty())
                .max_by(|a, b| a.buffered[0].event_key.cmp(&b.buffered[0].event_key));
            let Some(record) = newest.and_then(|s| s.buffered.pop_front()) else {
                break;
            };
            if range.admits(&record.event_key) {
                records.push(record);
            }
        }
        let more = shards.iter().any(|s| !s.buffered.is_empty() || !s.done);
        Ok((records, more))
    }

    /// One query of a partition key within the range, newest first: the records and where the
    /// next query would start.
    async fn query_range(
        &self,
        index: Option<&str>,
        partition: &str,
        value: String,
        range: &KeyRange,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<AuditRecord>, Option<Item>), StoreError> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().audit)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#p = :p AND event_key BETWEEN :from AND :to")
            .expression_attribute_names("#p", partition)
            .expression_attribute_values(":p", s(value))
            .expression_attribute_values(":from", s(range.lower.clone()))
            .expression_attribute_values(":to", s(range.upper.clone()))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        Ok((
            from_items(out.items)?,
            out.last_evaluated_key.filter(|k| !k.is_empty()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_recognised() {
        assert!(AuditRecord::is_event_key(&AuditRecord::event_key(
            1_795_869_609
        )));
        for key in [
            "",
            "#",
            "1#x",
            "1795869609#0190a2b4-0000-7000-8000-000000000000",
        ] {
            assert!(!AuditRecord::is_event_key(key), "{key}");
        }
    }

    #[test]
    fn event_keys_sort_by_time() {
        let earlier = AuditRecord::event_key(999_999_999);
        let later = AuditRecord::event_key(1_800_000_000);
        assert!(earlier < later);
        assert_eq!(earlier.split('#').next().map(str::len), Some(11));
    }

    #[test]
    fn shard_keys_name_the_tenant_the_utc_day_and_a_bucket() {
        let tenant = TenantId::new_random();
        // 2026-04-15T12:00:00Z and the day's last second.
        for at in [1_776_254_400, 1_776_297_599] {
            let key = AuditRecord::event_key(at);
            let shard = AuditRecord::shard_key(&tenant, &key);
            let bucket = AuditRecord::bucket(&key);
            assert!(bucket < AUDIT_BUCKETS);
            assert_eq!(shard, format!("{tenant}#2026-04-15#{bucket:02}"));
        }
        let next_day = AuditRecord::event_key(1_776_297_600);
        assert!(AuditRecord::shard_key(&tenant, &next_day).contains("#2026-04-16#"));
    }

    #[test]
    fn events_of_one_second_spread_over_every_bucket() {
        let mut counts = [0u32; AUDIT_BUCKETS as usize];
        let events = 64_000;
        for _ in 0..events {
            counts[AuditRecord::bucket(&AuditRecord::event_key(1_776_254_400)) as usize] += 1;
        }
        // An even share is 1,000 each; a uniform hash stays well within ±20 %.
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(
            min > Some(&800) && max < Some(&1_200),
            "{min:?}..{max:?}: {counts:?}"
        );
    }

    #[test]
    fn the_resume_position_sorts_after_every_key_of_its_second() {
        let last_second = 1_776_297_599;
        let resume = format!("{last_second:011}#{MAX_UUID}");
        assert!(AuditRecord::is_event_key(&resume));
        assert!(AuditRecord::event_key(last_second) < resume);
        assert!(resume < AuditRecord::event_key(last_second + 1));
    }

    #[test]
    fn buckets_are_asked_for_a_fair_share() {
        assert_eq!(per_bucket(1), 2);
        assert_eq!(per_bucket(50), 5);
        assert_eq!(per_bucket(1000), 35);
    }
}
