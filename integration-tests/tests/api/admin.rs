//! The admin API (`/v1/admin/…`): IAM-authorized in the template and in the handlers, and the
//! backend's integration calls — users, MFA challenges, session revocation, erasure.

use lambda_http::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::{api_call_as, Authenticator, Reply, TestApp};

const USERS: &str = "/v1/admin/tenants/{tenant_id}/users";
const USER: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}";
const CHALLENGES: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges";
const SESSIONS: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/sessions";
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
    let body = body.map(|b| b.to_string());
    let req = api_call_as(arn, method, route, params, query, &[], body);
    let s = &app.admin;
    Reply::from(match (method, route) {
        ("POST", USERS) => admin_user_create::handler(s, req).await,
        ("GET", USERS) => admin_user_find::handler(s, req).await,
        ("DELETE", USER) => admin_user_delete::handler(s, req).await,
        ("POST", CHALLENGES) => admin_mfa_challenge_create::handler(s, req).await,
        ("DELETE", SESSIONS) => admin_user_sessions_revoke::handler(s, req).await,
        other => panic!("no admin function for {other:?}"),
    })
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
    assert!(count >= 5, "the admin routes are in the template");
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
