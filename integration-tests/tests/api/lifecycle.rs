//! A new user's whole life through the HTTP handlers, with real soft authenticators: the admin
//! creates the user and an MFA challenge; the user enrolls a first passkey through the grant,
//! gets codes, adds a security key (recent login), lists and renames both, deletes one,
//! regenerates codes, logs in with MFA and passwordless, lists sessions and revokes one; the
//! admin erases the user, and nothing of theirs is left but the audit. The tenant is created
//! over HTTP too.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::store::Store;

use crate::harness::{api_call, auth_headers, invoke, me, Authenticator, Reply, TestApp, ORIGIN};

const ARN: &str = "arn:aws:sts::123456789012:assumed-role/backend/lifecycle";

async fn admin(
    app: &TestApp,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    body: Value,
) -> Reply {
    crate::harness::admin(app, Some(ARN), method, route, params, &[], Some(body)).await
}

async fn items_of(store: &Store, table: &str, user_id: &str) -> usize {
    let out = store
        .client()
        .scan()
        .table_name(table)
        .filter_expression("user_id = :u")
        .expression_attribute_values(":u", AttributeValue::S(user_id.to_owned()))
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default().len()
}

#[tokio::test]
async fn a_users_life_from_creation_to_erasure() {
    let mut app = TestApp::new().await;
    // The admin creates the tenant: the test's own origin and RP id.
    let created = admin(
        &app,
        "POST",
        "/v1/admin/tenants",
        &[],
        json!({ "name": "Initech",
        "rp_id": crate::harness::RP_ID, "origins": [ORIGIN] }),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let tenant_id = created.body["tenant_id"].as_str().unwrap().parse().unwrap();
    app.tenant = app.store.get_tenant(&tenant_id).await.unwrap().unwrap();
    let tenant = app.tenant.tenant_id.to_string();
    let tenant_headers = app.tenant_headers();

    // The backend creates the user and, after its primary login, an MFA challenge.
    let created = admin(
        &app,
        "POST",
        "/v1/admin/tenants/{tenant_id}/users",
        &[("tenant_id", &tenant)],
        json!({ "email": "dana@example.com", "display_name": "Dana" }),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let user_id = created.body["user_id"].as_str().unwrap().to_owned();
    let ids = [
        ("tenant_id", tenant.as_str()),
        ("user_id", user_id.as_str()),
    ];
    let challenge = admin(
        &app,
        "POST",
        "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges",
        &ids,
        json!({}),
    )
    .await;
    let challenge_id = challenge.body["challenge_id"].as_str().unwrap().to_owned();

    // No authenticator yet: MFA options hand out an enrollment grant instead.
    let options = app
        .mfa_options(&tenant_headers, &json!({ "challenge_id": challenge_id }))
        .await;
    assert_eq!(
        options.body["enrollment_required"], true,
        "{}",
        options.body
    );
    let grant = options.body["challenge_id"].as_str().unwrap().to_owned();
    let query = [
        ("method_type", "webauthn_passkey"),
        ("challenge_id", grant.as_str()),
    ];
    let req = api_call(
        "POST",
        "/v1/users/me/mfa/webauthn/register",
        &[],
        &query,
        &tenant_headers,
        None,
    );
    let creation = invoke(req, |req| {
        register_options::handler(&app.register_options, req)
    })
    .await;
    assert_eq!(creation.status, StatusCode::OK, "{}", creation.body);
    let mut passkey = Authenticator::passkey();
    let credential = passkey.register(&creation.body["options"], ORIGIN).unwrap();
    let first = app
        .register_complete(
            &tenant_headers,
            &json!({ "credential": credential,
        "device_name": "Phone", "method_type": "webauthn_passkey", "challenge_id": grant }),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["codes"].as_array().unwrap().len(), 10);

    // Passwordless login: a session, whose fresh token may add a security key.
    let dana = app
        .store
        .get_user(&app.tenant.tenant_id, &user_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let login = app.passwordless_login(&dana, &mut passkey, &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let headers = auth_headers(&token, &app.tenant.tenant_id);
    let mut key = Authenticator::security_key();
    let pending = app
        .registration_credential(&headers, "webauthn_fido", &mut key)
        .await;
    let second = app
        .register_complete(
            &headers,
            &json!({ "credential": pending,
        "device_name": "YubiKey", "method_type": "webauthn_fido" }),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);

    // List, rename, delete one; regenerate codes.
    let listed = me(
        &app,
        "GET",
        "/v1/users/me/mfa/webauthn/credentials",
        &[],
        &headers,
        None,
    )
    .await;
    let creds = listed.body["credentials"].as_array().unwrap().clone();
    assert_eq!(creds.len(), 2);
    let key_id = creds
        .iter()
        .find(|c| c["method_type"] == "webauthn_fido")
        .unwrap()["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone_id = creds
        .iter()
        .find(|c| c["method_type"] == "webauthn_passkey")
        .unwrap()["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (id, name) in [(&phone_id, "Dana's phone"), (&key_id, "Dana's key")] {
        let renamed = me(
            &app,
            "PATCH",
            "/v1/users/me/mfa/webauthn/credentials/{credential_id}",
            &[("credential_id", id)],
            &headers,
            Some(json!({ "device_name": name })),
        )
        .await;
        assert_eq!(renamed.body["device_name"], name, "{}", renamed.body);
    }
    let deleted = me(
        &app,
        "DELETE",
        "/v1/users/me/mfa/webauthn/credentials/{credential_id}",
        &[("credential_id", &key_id)],
        &headers,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let codes = me(
        &app,
        "POST",
        "/v1/users/me/mfa/backup_codes",
        &[],
        &headers,
        None,
    )
    .await;
    assert_eq!(
        codes.body["codes"].as_array().unwrap().len(),
        10,
        "{}",
        codes.body
    );

    // MFA with the passkey, passwordless again; list sessions and revoke the older one.
    let mfa_challenge = admin(
        &app,
        "POST",
        "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges",
        &ids,
        json!({}),
    )
    .await;
    let id = mfa_challenge.body["challenge_id"].as_str().unwrap();
    let options = app.mfa_options(&[], &json!({ "challenge_id": id })).await;
    let assertion = passkey
        .authenticate(&options.body["options"], ORIGIN)
        .unwrap();
    let mfa = app
        .mfa_complete(&[], &json!({ "challenge_id": id, "credential": assertion }))
        .await;
    assert!(mfa.body["token"].is_string(), "{}", mfa.body);
    let again = app.passwordless_login(&dana, &mut passkey, &[]).await;
    let newest = auth_headers(
        again.body["data"]["access_token"].as_str().unwrap(),
        &app.tenant.tenant_id,
    );
    let sessions = me(&app, "GET", "/v1/users/me/sessions", &[], &newest, None).await;
    let list = sessions.body["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let older = list.iter().find(|s| s["current"] == false).unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = me(
        &app,
        "DELETE",
        "/v1/users/me/sessions/{session_id}",
        &[("session_id", &older)],
        &newest,
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);

    // The admin erases Dana: nothing of hers is left but the audit.
    let erased = admin(
        &app,
        "DELETE",
        "/v1/admin/tenants/{tenant_id}/users/{user_id}",
        &ids,
        json!({}),
    )
    .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    let t = app.store.tables();
    for table in [
        &t.users,
        &t.credentials,
        &t.backup_codes,
        &t.sessions,
        &t.devices,
        &t.challenges,
    ] {
        assert_eq!(items_of(&app.store, table, &user_id).await, 0, "{table}");
    }
    assert!(items_of(&app.store, &t.audit, &user_id).await >= 5);
}
