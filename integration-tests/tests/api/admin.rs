//! The admin API (`/v1/admin/…`): IAM-authorized in the template and in the handlers, and the
//! backend's integration calls — users, MFA challenges, session revocation, erasure.

use lambda_http::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Authenticator, Reply, TestApp};

const USERS: &str = "/v1/admin/tenants/{tenant_id}/users";
const USER: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}";
const CHALLENGES: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges";
const SESSIONS: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/sessions";
const TENANTS: &str = "/v1/admin/tenants";
const TENANT: &str = "/v1/admin/tenants/{tenant_id}";
const CREDS: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials";
const CRED: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials/{credential_id}";
const AUDIT: &str = "/v1/admin/tenants/{tenant_id}/audit";
const ARN: &str = "arn:aws:sts::123456789012:assumed-role/primary-login/tests";

/// Calls an admin function, signed by `ARN` unless `iam` is false.
async fn admin(
    app: &TestApp,
    iam: bool,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let arn = iam.then_some(ARN);
    crate::harness::admin(app, arn, method, route, params, query, body).await
}

/// The admin routes of a template without `Auth.Authorizer: AWS_IAM`.
fn admin_routes_without_iam(template: &str) -> (usize, Vec<String>) {
    let doc: serde_yaml::Value = serde_yaml::from_str(template).expect("template YAML");
    let mut admin_routes = 0;
    let mut open = Vec::new();
    let resources = doc["Resources"].as_mapping().expect("Resources");
    for (id, resource) in resources {
        let events = resource["Properties"]["Events"].as_mapping();
        for (_, event) in events.into_iter().flatten() {
            let path = event["Properties"]["Path"].as_str().unwrap_or_default();
            if !path.starts_with("/v1/admin") {
                continue;
            }
            admin_routes += 1;
            if event["Properties"]["Auth"]["Authorizer"].as_str() != Some("AWS_IAM") {
                open.push(format!("{}: {path}", id.as_str().unwrap_or_default()));
            }
        }
    }
    (admin_routes, open)
}

#[test]
fn every_admin_route_in_the_template_requires_iam() {
    let template = include_str!("../../../template.yaml");
    let (count, open) = admin_routes_without_iam(template);
    assert!(count >= 10, "the admin routes are in the template");
    assert!(open.is_empty(), "admin routes without AWS_IAM: {open:?}");
    // The check itself catches a route that lost its authorizer.
    let broken = template.replacen("              Authorizer: AWS_IAM\n", "", 1);
    assert_eq!(admin_routes_without_iam(&broken).1.len(), 1);
}

#[tokio::test]
async fn requests_without_an_iam_identity_are_refused() {
    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let both = [("tenant_id", tenant.as_str()), ("user_id", user.as_str())];
    type Call<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let calls: [Call; 5] = [
        ("POST", USERS, &both[..1]),
        ("GET", USERS, &both[..1]),
        ("DELETE", USER, &both),
        ("POST", CHALLENGES, &both),
        ("DELETE", SESSIONS, &both),
    ];
    for (method, route, params) in calls {
        let body = Some(json!({ "email": "x@example.com", "display_name": "X" }));
        admin(
            &app,
            false,
            method,
            route,
            params,
            &[("email", "x@example.com")],
            body,
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "iam_required");
    }
    // Nothing happened: the user is still there, with no challenge or new user.
    assert!(app
        .store
        .get_user(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .is_some());
    assert!(app
        .store
        .find_user_by_email_in_tenant(&app.tenant.tenant_id, "x@example.com")
        .await
        .unwrap()
        .is_none());
}

/// A backend's integration through HTTP only: create a user, find them, hand off to MFA, and
/// the user's first factor works; revoke their sessions; erase them.
#[tokio::test]
async fn a_backend_provisions_hands_off_to_mfa_and_erases_a_user() {
    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    let created = admin(
        &app,
        true,
        "POST",
        USERS,
        &[("tenant_id", &tenant)],
        &[],
        Some(json!({ "email": " Carol@Example.com ", "display_name": "Carol" })),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["email"], "carol@example.com");
    let user_id = created.body["user_id"].as_str().unwrap().to_owned();
    let both = [
        ("tenant_id", tenant.as_str()),
        ("user_id", user_id.as_str()),
    ];

    admin(
        &app,
        true,
        "POST",
        USERS,
        &both[..1],
        &[],
        Some(json!({ "email": "carol@example.com", "display_name": "Carol again" })),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "already_exists");
    admin(
        &app,
        true,
        "POST",
        USERS,
        &both[..1],
        &[],
        Some(json!({ "email": "not-an-address", "display_name": "X" })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    let found = admin(
        &app,
        true,
        "GET",
        USERS,
        &both[..1],
        &[("email", "CAROL@example.com")],
        None,
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["user_id"], user_id.as_str());
    admin(
        &app,
        true,
        "GET",
        USERS,
        &both[..1],
        &[("email", "nobody@example.com")],
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");

    // Carol enrolls a key (token for her), then the primary login hands off to MFA over HTTP.
    let carol = app
        .store
        .get_user(&app.tenant.tenant_id, &user_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut key = Authenticator::passkey();
    let enrolled = app.enroll_user(&carol, &mut key, "webauthn_passkey").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let challenge = admin(&app, true, "POST", CHALLENGES, &both, &[], None).await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.body);
    assert!(challenge.body["expires_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let id = challenge.body["challenge_id"].as_str().unwrap();
    let options = app.mfa_options(&[], &json!({ "challenge_id": id })).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let assertion = key
        .authenticate(&options.body["options"], crate::harness::ORIGIN)
        .unwrap();
    let done = app
        .mfa_complete(&[], &json!({ "challenge_id": id, "credential": assertion }))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    admin(
        &app,
        true,
        "POST",
        CHALLENGES,
        &both,
        &[],
        Some(json!({ "ttl_secs": 5 })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Sessions revoked, then the user erased (audit kept, with the IAM principal as actor).
    let login = app.passwordless_login(&carol, &mut key, &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let revoked = admin(&app, true, "DELETE", SESSIONS, &both, &[], None).await;
    assert_eq!(
        revoked.body["revoked"].as_array().unwrap().len(),
        1,
        "{}",
        revoked.body
    );
    let erased = admin(&app, true, "DELETE", USER, &both, &[], None).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(erased.body["erased"]["credentials"], 1);
    admin(&app, true, "DELETE", USER, &both, &[], None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    let audit = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&carol.user_id), 50)
        .await
        .unwrap();
    let deleted = audit
        .iter()
        .find(|r| r.event == "user_deleted")
        .expect("audited");
    assert_eq!(
        deleted.actor.as_deref(),
        Some(format!("iam:{ARN}").as_str())
    );
    assert!(audit
        .iter()
        .any(|r| r.event == "mfa_webauthn" && r.outcome == "success"));
}

/// Tenants are created, read and changed over HTTP with authctl's validation; an invalid
/// change is refused and nothing is stored; the secret never leaves.
#[tokio::test]
async fn operators_create_read_and_change_tenants() {
    let app = TestApp::new().await;
    admin(&app, false, "POST", TENANTS, &[], &[], Some(json!({})))
        .await
        .assert_error(StatusCode::FORBIDDEN, "iam_required");
    let body = json!({ "name": "Globex", "rp_id": "login.globex.example",
        "origins": ["https://login.globex.example"], "conceal_unknown_users": true });
    let created = admin(&app, true, "POST", TENANTS, &[], &[], Some(body)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["conceal_unknown_users"], true);
    assert!(created.body.get("secret").is_none(), "{}", created.body);
    let id = created.body["tenant_id"].as_str().unwrap().to_owned();
    // The tenant item holds no secret: concealment keys derive from a deployment secret.
    let item = app
        .store
        .client()
        .get_item()
        .table_name(&app.store.tables().tenants)
        .key(
            "tenant_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the tenant is stored");
    assert_eq!(item["conceal_unknown_users"].as_bool().ok(), Some(&true));
    assert!(!item.contains_key("secret"), "{item:?}");

    admin(
        &app,
        true,
        "POST",
        TENANTS,
        &[],
        &[],
        Some(json!({ "name": "No origins", "rp_id": "x" })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    admin(
        &app,
        true,
        "POST",
        TENANTS,
        &[],
        &[],
        Some(json!({ "name": "X", "bogus": 1 })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    let got = admin(&app, true, "GET", TENANT, &[("tenant_id", &id)], &[], None).await;
    assert_eq!(got.body["rp_id"], "login.globex.example");
    assert!(got.body.get("secret").is_none());
    let changed = admin(
        &app,
        true,
        "PATCH",
        TENANT,
        &[("tenant_id", &id)],
        &[],
        Some(json!({ "token_ttl_secs": 600, "conceal_unknown_users": false })),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["token_ttl_secs"], 600);
    // An invalid change (a 5-second token lifetime) is refused and not stored.
    admin(
        &app,
        true,
        "PATCH",
        TENANT,
        &[("tenant_id", &id)],
        &[],
        Some(json!({ "token_ttl_secs": 5 })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let stored = app
        .store
        .get_tenant(&id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.token_ttl_secs, stored.conceal_unknown_users),
        (600, false)
    );
    let missing = shared::ids::TenantId::new_random().to_string();
    admin(
        &app,
        true,
        "GET",
        TENANT,
        &[("tenant_id", &missing)],
        &[],
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "tenant_not_found");
    admin(
        &app,
        true,
        "PATCH",
        TENANT,
        &[("tenant_id", &missing)],
        &[],
        Some(json!({})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "tenant_not_found");
}

/// An operator lists a user's credentials and removes one, the last one too (a lost key).
#[tokio::test]
async fn operators_list_and_remove_a_users_credentials() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, "webauthn_fido", "Key").await.status,
        StatusCode::OK
    );
    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let both = [("tenant_id", tenant.as_str()), ("user_id", user.as_str())];
    let listed = admin(&app, true, "GET", CREDS, &both, &[], None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let creds = listed.body["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1);
    let id = creds[0]["credential_id"].as_str().unwrap().to_owned();
    let with_cred = [both[0], both[1], ("credential_id", id.as_str())];
    let deleted = admin(&app, true, "DELETE", CRED, &with_cred, &[], None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    admin(&app, true, "DELETE", CRED, &with_cred, &[], None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "credential_not_found");
    let ghost = shared::ids::UserId::new_random().to_string();
    admin(
        &app,
        true,
        "GET",
        CREDS,
        &[both[0], ("user_id", ghost.as_str())],
        &[],
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    let audit = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 20)
        .await
        .unwrap();
    let record = audit
        .iter()
        .find(|r| r.event == "credential_deleted")
        .expect("audited");
    assert_eq!(record.actor.as_deref(), Some(format!("iam:{ARN}").as_str()));
}

/// Users read and renamed; tenants listed and the audit queried a page at a time, with a cursor
/// that only this API's own pages produce.
#[tokio::test]
async fn operators_read_users_list_tenants_and_page_through_the_audit() {
    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let both = [("tenant_id", tenant.as_str()), ("user_id", user.as_str())];
    let got = admin(&app, true, "GET", USER, &both, &[], None).await;
    assert_eq!(got.body["email"], app.user.email.as_str(), "{}", got.body);
    let renamed = admin(
        &app,
        true,
        "PATCH",
        USER,
        &both,
        &[],
        Some(json!({ "display_name": " Alice B. " })),
    )
    .await;
    assert_eq!(renamed.body["display_name"], "Alice B.", "{}", renamed.body);
    admin(
        &app,
        true,
        "PATCH",
        USER,
        &both,
        &[],
        Some(json!({ "display_name": "" })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    admin(
        &app,
        true,
        "PATCH",
        USER,
        &both,
        &[],
        Some(json!({ "email": "x@example.com" })),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Tenants, two per page, until the cursor runs out; every page without secrets.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut query = vec![("limit", "2")];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let page = admin(&app, true, "GET", TENANTS, &[], &query, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for t in page.body["tenants"].as_array().unwrap() {
            assert!(t.get("secret").is_none());
            seen.insert(t["tenant_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(seen.contains(&tenant), "the app's tenant is listed");
    for bad in ["!!!!", "e30", "eyJvdGhlciI6IngifQ"] {
        admin(&app, true, "GET", TENANTS, &[], &[("cursor", bad)], None)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Audit: three backup-code failures, paged one at a time, newest first; a time range.
    let codes = app
        .enroll(&mut Authenticator::security_key(), "webauthn_fido", "Key")
        .await;
    assert_eq!(codes.status, StatusCode::OK);
    for _ in 0..3 {
        let challenge = app.mfa_challenge(&app.user).await;
        app.backup_code(&challenge, "0000-0000-0001").await;
        app.clock.advance(10);
    }
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1"), ("user_id", user.as_str())];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let page = admin(&app, true, "GET", AUDIT, &both[..1], &query, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        records.extend(page.body["records"].as_array().unwrap().clone());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // The three failures, the enrollment before them and the rename before that (audited
    // since renames and group changes are).
    assert_eq!(records.len(), 5, "{records:?}");
    assert_eq!(records[4]["event"], "user_updated", "{records:?}");
    let failures = records
        .iter()
        .filter(|r| r["event"] == "mfa_backup_code")
        .count();
    assert_eq!(failures, 3, "{records:?}");
    let times: Vec<i64> = records.iter().map(|r| r["at"].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let newest = times[0].to_string();
    let ranged = admin(
        &app,
        true,
        "GET",
        AUDIT,
        &both[..1],
        &[("from", newest.as_str())],
        None,
    )
    .await;
    assert_eq!(
        ranged.body["records"].as_array().unwrap().len(),
        1,
        "{}",
        ranged.body
    );
    admin(
        &app,
        true,
        "GET",
        AUDIT,
        &both[..1],
        &[("limit", "0")],
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

/// A cursor is the page key this API returned, for the listing it was returned for; anything
/// else is 400 before it reaches DynamoDB, which refuses a malformed `ExclusiveStartKey` (an
/// empty, missing or extra key attribute, another partition's key) as a bad request — a 500
/// here if it got that far. Likewise a time range whose ends are out of order. (moto lets all
/// of these through, so the answers before the fix were 200s from moto and 500s from DynamoDB.)
#[tokio::test]
async fn cursors_and_time_ranges_dynamodb_would_refuse_are_400s() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let app = TestApp::new().await;
    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let cursor = |key: Value| URL_SAFE_NO_PAD.encode(key.to_string());
    for key in [json!({ "tenant_id": "" }), json!({ "tenant_id": "x" })] {
        let bad = cursor(key);
        admin(&app, true, "GET", TENANTS, &[], &[("cursor", &bad)], None)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Two audit records, so a tenant's first page of one has a next page.
    for _ in 0..2 {
        let challenge = app.mfa_challenge(&app.user).await;
        app.backup_code(&challenge, "0000-0000-0001").await;
        app.clock.advance(10);
    }
    let path = [("tenant_id", tenant.as_str())];
    let first = admin(&app, true, "GET", AUDIT, &path, &[("limit", "1")], None).await;
    let next = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = admin(&app, true, "GET", AUDIT, &path, &[("cursor", &next)], None).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["records"].as_array().map(Vec::len), Some(1));

    let event_key = first.body["records"][0]["event_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_tenant = shared::ids::TenantId::new_random().to_string();
    let user_key = format!("{tenant}#{user}");
    let bad_cursors = [
        // Another tenant's key, a missing or extra attribute, malformed or empty values.
        json!({ "tenant_id": other_tenant, "event_key": event_key }),
        json!({ "tenant_id": tenant }),
        json!({ "tenant_id": tenant, "event_key": event_key, "tenant_user": user_key }),
        json!({ "tenant_id": tenant, "event_key": "1#x" }),
        json!({ "tenant_id": tenant, "event_key": "" }),
    ];
    for key in bad_cursors {
        let bad = cursor(key.clone());
        let reply = admin(&app, true, "GET", AUDIT, &path, &[("cursor", &bad)], None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{key}: {}",
            reply.body
        );
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // The tenant listing's cursor is not a user listing's, and the other way round.
    let by_user = [("user_id", user.as_str()), ("cursor", next.as_str())];
    admin(&app, true, "GET", AUDIT, &path, &by_user, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let user_page = [("user_id", user.as_str()), ("limit", "1")];
    let first = admin(&app, true, "GET", AUDIT, &path, &user_page, None).await;
    let user_next = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let mixed = [("cursor", user_next.as_str())];
    admin(&app, true, "GET", AUDIT, &path, &mixed, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let other_user = shared::ids::UserId::new_random().to_string();
    let foreign = [
        ("user_id", other_user.as_str()),
        ("cursor", user_next.as_str()),
    ];
    admin(&app, true, "GET", AUDIT, &path, &foreign, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // A range whose ends are out of order is refused; ends past what a key can name are not.
    admin(
        &app,
        true,
        "GET",
        AUDIT,
        &path,
        &[("from", "100"), ("to", "50")],
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let wide = [("from", "-5"), ("to", "9223372036854775807")];
    let all = admin(&app, true, "GET", AUDIT, &path, &wide, None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["records"].as_array().map(Vec::len), Some(2));
    let future = [("from", "500000000000"), ("to", "1000000000000")];
    let none = admin(&app, true, "GET", AUDIT, &path, &future, None).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert_eq!(none.body["records"].as_array().map(Vec::len), Some(0));
}
