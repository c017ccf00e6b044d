//! The audit table's sharded partition key (`<tenant>#<day>#<bucket>`): one tenant's records
//! of one second land on many keys; a tenant-wide query fans out over the days and buckets and
//! still pages through everything newest first; a user's query uses the `user-index`; and no
//! query ever sees another tenant's records.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use lambda_http::http::StatusCode;
use serde_json::Value;
use shared::audit::{Audit, AuditEvent};
use shared::clock::Clock;
use shared::http::ClientInfo;
use shared::store::audit::{AUDIT_BUCKETS, AUDIT_DAYS_PER_PAGE};
use shared::store::{AuditRecord, Item, UserRecord};

use crate::harness::{Authenticator, TestApp};

const AUDIT: &str = "/v1/admin/tenants/{tenant_id}/audit";
const ARN: &str = "arn:aws:sts::123456789012:assumed-role/auditor/tests";
const DAY: i64 = 86_400;

/// Files one record of the app's tenant (and `user`'s, if any) at `at`, as a handler would.
fn record(app: &TestApp, user: Option<&UserRecord>, at: i64, n: usize) -> AuditRecord {
    let audit = Audit {
        event: AuditEvent::TokenRefresh,
        tenant: Some(app.tenant.tenant_id),
        user: user.map(|u| u.user_id),
        method: None,
        credential: None,
        device_hash: None,
        session: None,
        actor: None,
        target: None,
        retention_secs: 365 * DAY,
        client: ClientInfo::default(),
        request_id: format!("request-{n}"),
        committed: false,
        failure_committed: false,
    };
    audit.record(Ok(()), at).expect("a tenant, so a record")
}

/// Stores the records, a few at a time; their event keys.
async fn file(app: &TestApp, records: Vec<AuditRecord>) -> Vec<String> {
    let keys = records.iter().map(|r| r.event_key.clone()).collect();
    let writes = records.iter().map(|r| app.store.put_audit_record(r));
    futures::stream::iter(writes)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("stored");
    keys
}

/// Every stored audit item of a tenant, as DynamoDB holds it.
async fn stored(app: &TestApp, tenant: &str) -> Vec<Item> {
    app.store
        .client()
        .scan()
        .table_name(&app.store.tables().audit)
        .filter_expression("tenant_id = :t")
        .expression_attribute_values(":t", AttributeValue::S(tenant.to_owned()))
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn text<'a>(item: &'a Item, attribute: &str) -> &'a str {
    item.get(attribute)
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("{attribute} in {item:?}"))
}

/// Every page of an audit listing (`query` plus the cursor): the pages' records.
async fn pages(app: &TestApp, tenant: &str, query: &[(&str, &str)]) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = query.to_vec();
        if let Some(c) = cursor.as_deref() {
            q.push(("cursor", c));
        }
        let path = [("tenant_id", tenant)];
        let page = crate::harness::admin(app, Some(ARN), "GET", AUDIT, &path, &q, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages.push(page.body["records"].as_array().expect("records").clone());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
    panic!("a listing that never ends");
}

fn keys(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event_key"].as_str().expect("event_key").to_owned())
        .collect()
}

#[tokio::test]
async fn audit_records_of_one_tenant_and_second_land_on_different_partition_keys() {
    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    // A real login: its record is written inside the login transaction.
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, "webauthn_passkey", "laptop").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let login = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    // And 200 more in the same second.
    let now = app.clock.now();
    let burst: Vec<_> = (0..200).map(|n| record(&app, None, now, n)).collect();
    file(&app, burst).await;

    let items = stored(&app, &tenant).await;
    assert_eq!(items.len(), 202, "the enrollment, the login and the burst");
    let date = shared::clock::rfc3339(now)[..10].to_owned();
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        // The partition key is the tenant, the event's UTC day and the event key's bucket;
        // the tenant is still an attribute of its own.
        let (shard, event_key) = (text(item, "tenant_shard"), text(item, "event_key"));
        let bucket = AuditRecord::bucket(event_key);
        assert!(bucket < AUDIT_BUCKETS);
        assert_eq!(shard, format!("{tenant}#{date}#{bucket:02}"), "{item:?}");
        assert_eq!(
            shard,
            AuditRecord::shard_key(&app.tenant.tenant_id, event_key)
        );
        assert_eq!(text(item, "tenant_id"), tenant);
        *per_key.entry(shard).or_default() += 1;
    }
    let login_item = items
        .iter()
        .find(|i| text(i, "event") == "passwordless_login")
        .expect("the login's record");
    assert!(text(login_item, "tenant_shard").starts_with(&format!("{tenant}#{date}#")));
    // 202 events over 64 buckets: about 62 keys in use (fewer than 50 has odds below 1e-9),
    // none holding more than a small share.
    assert!(per_key.len() >= 50, "{} keys: {per_key:?}", per_key.len());
    assert!(per_key.values().all(|&n| n <= 16), "{per_key:?}");

    // The API's records are the stored ones, without the table's partition key.
    let all = pages(&app, &tenant, &[("limit", "1000")]).await.concat();
    assert_eq!(all.len(), 202);
    assert!(
        all.iter().all(|r| r.get("tenant_shard").is_none()),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_tenant_audit_query_over_days_and_buckets_pages_through_everything_in_order() {
    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    let bob = app.add_user("bob@example.com").await;
    let start = app.clock.now();
    // Records on the tenant's first day, the next, and eight days later: the first page reads
    // the last of these days and the empty ones before it, and its budget of days ends before
    // the second. Every third is Bob's.
    let plan = [(0, 23), (DAY + 3_600, 17), (8 * DAY, 9)];
    const { assert!(8 > AUDIT_DAYS_PER_PAGE) };
    let mut records = Vec::new();
    for (offset, count) in plan {
        for n in 0..count {
            let user = (n % 3 == 0).then_some(&bob);
            records.push(record(&app, user, start + offset + n as i64, records.len()));
        }
    }
    let mut expected: Vec<(String, i64, bool)> = records
        .iter()
        .map(|r| (r.event_key.clone(), r.at, r.user_id.is_some()))
        .collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0));
    file(&app, records).await;
    app.clock.advance(8 * DAY + 3_600);

    // Stored on the three days' keys only.
    let days: BTreeSet<String> = stored(&app, &tenant)
        .await
        .iter()
        .map(|i| {
            text(i, "tenant_shard")
                .split('#')
                .nth(1)
                .unwrap()
                .to_owned()
        })
        .collect();
    let day_of = |at: i64| shared::clock::rfc3339(at)[..10].to_owned();
    let planned: BTreeSet<String> = plan.iter().map(|(o, _)| day_of(start + o)).collect();
    assert!(days.is_superset(&planned) && days.len() <= 4, "{days:?}");

    // The whole trail, ten at a time: every record once, newest first.
    let listed = pages(&app, &tenant, &[("limit", "10")]).await;
    assert!(listed.iter().all(|p| p.len() <= 10));
    let all: Vec<String> = keys(&listed.concat());
    let want: Vec<String> = expected.iter().map(|e| e.0.clone()).collect();
    assert_eq!(
        all,
        want,
        "pages: {:?}",
        listed.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // The newest day's page ended with its days spent, not full: a short page with a cursor.
    assert_eq!(
        listed[0].len(),
        9,
        "{:?}",
        listed.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // A range over two days' buckets: the last records of the first day, all of the second.
    let (from, to) = (start + 20, start + DAY + 3_600 + 16);
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let q = [
        ("limit", "4"),
        ("from", from_s.as_str()),
        ("to", to_s.as_str()),
    ];
    let ranged = keys(&pages(&app, &tenant, &q).await.concat());
    let want: Vec<String> = expected
        .iter()
        .filter(|e| (from..=to).contains(&e.1))
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(want.len(), 3 + 17);
    assert_eq!(ranged, want);

    // Bob's, through the user index, three at a time.
    let bob_id = bob.user_id.to_string();
    let q = [("limit", "3"), ("user_id", bob_id.as_str())];
    let his = pages(&app, &tenant, &q).await.concat();
    assert!(his.iter().all(|r| r["user_id"] == bob_id.as_str()));
    let want: Vec<String> = expected
        .iter()
        .filter(|e| e.2)
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(keys(&his), want);

    // The store's own listing, as authctl uses it (its now is the system clock's, so it reads
    // the first days only).
    let newest = app
        .store
        .list_audit_records(&app.tenant.tenant_id, None, 5)
        .await
        .unwrap();
    assert_eq!(newest.len(), 5);
    assert!(newest.iter().all(|r| r.at < start + 2 * DAY));
}

#[tokio::test]
async fn audit_queries_never_cross_tenants() {
    let acme = TestApp::new().await;
    let globex = TestApp::new().await;
    // Both tenants file records in the same seconds, users of both included.
    let at = acme.clock.now();
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for n in 0..40 {
        let second = at + (n as i64 % 4);
        mine.push(record(&acme, (n % 2 == 0).then_some(&acme.user), second, n));
        theirs.push(record(
            &globex,
            (n % 2 == 0).then_some(&globex.user),
            second,
            n,
        ));
    }
    let mine = file(&acme, mine).await;
    file(&globex, theirs).await;

    let tenant = acme.tenant.tenant_id.to_string();
    let other = globex.tenant.tenant_id.to_string();
    for item in stored(&globex, &other).await {
        assert!(text(&item, "tenant_shard").starts_with(&format!("{other}#")));
    }
    let listed = pages(&acme, &tenant, &[("limit", "7")]).await.concat();
    assert!(listed.iter().all(|r| r["tenant_id"] == tenant.as_str()));
    let mut want = mine.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys(&listed), want);
    let user = acme.user.user_id.to_string();
    let theirs_user = globex.user.user_id.to_string();
    let by_user = pages(&acme, &tenant, &[("user_id", user.as_str())])
        .await
        .concat();
    assert_eq!(by_user.len(), 20);
    assert!(by_user.iter().all(|r| r["tenant_id"] == tenant.as_str()));
    // Another tenant's user under this tenant: nothing.
    let foreign = pages(&acme, &tenant, &[("user_id", theirs_user.as_str())]).await;
    assert_eq!(foreign.concat().len(), 0);

    // A cursor of one tenant's listing is refused on the other's.
    let path = [("tenant_id", tenant.as_str())];
    let first = crate::harness::admin(
        &acme,
        Some(ARN),
        "GET",
        AUDIT,
        &path,
        &[("limit", "1")],
        None,
    )
    .await;
    let next = first.body["next_cursor"].as_str().expect("a next page");
    let elsewhere = [("tenant_id", other.as_str())];
    crate::harness::admin(
        &globex,
        Some(ARN),
        "GET",
        AUDIT,
        &elsewhere,
        &[("cursor", next)],
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}
