//! Operator operations through `authctl` (the same library functions the admin API will call):
//! erasing a user completely, also when it is interrupted half-way and when the user owns more
//! items than one batch or transaction holds; removing a credential; revoking sessions.

use authctl::{run, Cli, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::ids::CredentialId;
use shared::store::{Store, UserRecord};

use crate::faults::{proxied_app, Fault, Operation};
use crate::harness::{auth_headers, settings, Authenticator, TestApp};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

async fn authctl(store: &Store, args: &[&str]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(std::iter::once("authctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let ctx = Context {
        store: store.clone(),
        token_settings: settings(),
        kms_signing_key: None,
        signing_key_pem: None,
    };
    run(cli.command, &ctx).await
}

/// Items of `table` whose attribute `attr` is `value` (a scan: test-only, small tables).
async fn count(store: &Store, table: &str, attr: &str, value: &str) -> usize {
    let mut total = 0;
    let mut start = None;
    loop {
        let out = store
            .client()
            .scan()
            .table_name(table)
            .filter_expression("#a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        total += out.items.unwrap_or_default().len();
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return total,
        }
    }
}

/// Everything the user owns, per table (audit separately).
async fn owned(store: &Store, user: &UserRecord) -> Vec<(&'static str, usize)> {
    let t = store.tables();
    let id = user.user_id.to_string();
    vec![
        ("users", count(store, &t.users, "user_id", &id).await),
        (
            "credentials",
            count(store, &t.credentials, "user_id", &id).await,
        ),
        (
            "backup_codes",
            count(store, &t.backup_codes, "user_id", &id).await,
        ),
        ("sessions", count(store, &t.sessions, "user_id", &id).await),
        ("devices", count(store, &t.devices, "user_id", &id).await),
        (
            "challenges",
            count(store, &t.challenges, "user_id", &id).await,
        ),
    ]
}

/// A user with a passkey, a security key and 40 more credentials (copies of a real record
/// with other ids: more than a batch or a transaction holds), backup codes, two sessions, a
/// device and pending MFA, login and registration challenges.
async fn busy_user(app: &TestApp) -> (UserRecord, Authenticator, Value) {
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let mut template = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .remove(0);
    for i in 0..40u8 {
        template.credential_id = CredentialId::from_bytes(vec![i; 32]);
        app.store
            .client()
            .put_item()
            .table_name(&app.store.tables().credentials)
            .set_item(Some(serde_dynamo::to_item(&template).unwrap()))
            .send()
            .await
            .unwrap();
    }
    let first = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let login = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    app.mfa_challenge(&app.user).await;
    app.login_begin(&app.tenant_headers(), &app.user.email)
        .await;
    app.register_options(&app.auth_headers(&app.token()), Some(FIDO))
        .await;
    (app.user.clone(), passkey, login.body["data"].clone())
}

#[tokio::test]
async fn deleting_a_user_erases_everything_they_own_but_the_audit() {
    let app = TestApp::new().await;
    let (user, _passkey, login) = busy_user(&app).await;
    let before = owned(&app.store, &user).await;
    assert_eq!(
        before,
        [
            ("users", 1),
            ("credentials", 42),
            ("backup_codes", 1),
            ("sessions", 2),
            ("devices", 1),
            ("challenges", 3)
        ]
    );
    let audit_before = app
        .store
        .list_audit_records(&user.tenant_id, Some(&user.user_id), 100)
        .await
        .unwrap()
        .len();

    let (tenant, id) = (user.tenant_id.to_string(), user.user_id.to_string());
    let out = authctl(
        &app.store,
        &["user", "delete", "--tenant", &tenant, "--user", &id],
    )
    .await
    .unwrap();
    assert_eq!(out["erased"]["credentials"], 42, "{out}");
    assert!(owned(&app.store, &user).await.iter().all(|(_, n)| *n == 0));
    let audit_after = app
        .store
        .list_audit_records(&user.tenant_id, Some(&user.user_id), 100)
        .await
        .unwrap()
        .len();
    assert_eq!(audit_after, audit_before, "audit records are kept");

    // Nothing of the user works any more.
    app.login_begin(&app.tenant_headers(), &user.email)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.refresh(&[], login["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    let token = auth_headers(login["access_token"].as_str().unwrap(), &user.tenant_id);
    app.register_options(&token, Some(PASSKEY))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_revoked");
    // Deleting again: no such user.
    let again = authctl(
        &app.store,
        &["user", "delete", "--tenant", &tenant, "--user", &id],
    )
    .await;
    assert!(again.unwrap_err().contains("no such user"));
}

/// The store fails half-way through the erasure: the user is already unable to do anything,
/// and running the deletion again finishes it.
#[tokio::test]
async fn an_interrupted_deletion_leaves_a_user_who_can_do_nothing_and_finishes_when_run_again() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let (user, _, login) = busy_user(&app).await;
    proxy.fail(Operation::BatchWriteItem, Fault::ServerError, None);
    let (tenant, id) = (user.tenant_id.to_string(), user.user_id.to_string());
    let failed = authctl(
        &app.store,
        &["user", "delete", "--tenant", &tenant, "--user", &id],
    )
    .await;
    assert!(failed.is_err(), "{failed:?}");
    proxy.reset();
    // Half-deleted, yet nobody can use the account.
    assert!(owned(&app.store, &user).await.iter().any(|(_, n)| *n > 0));
    app.login_begin(&app.tenant_headers(), &user.email)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.refresh(&[], login["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
    app.register_options(&app.auth_headers(&app.token()), Some(PASSKEY))
        .await
        .assert_error(StatusCode::NOT_FOUND, "user_not_found");
    // Run again: done.
    let out = authctl(
        &app.store,
        &["user", "delete", "--tenant", &tenant, "--user", &id],
    )
    .await
    .unwrap();
    assert_eq!(out["deleted"], true);
    assert!(owned(&app.store, &user).await.iter().all(|(_, n)| *n == 0));
}

#[tokio::test]
async fn operators_remove_a_credential_and_revoke_a_users_sessions() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let login = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    let (tenant, user) = (
        app.tenant.tenant_id.to_string(),
        app.user.user_id.to_string(),
    );

    let revoked = authctl(
        &app.store,
        &["sessions", "revoke", "--tenant", &tenant, "--user", &user],
    )
    .await
    .unwrap();
    assert_eq!(revoked["revoked"].as_array().unwrap().len(), 1);
    app.refresh(&[], login.body["data"]["refresh_token"].as_str().unwrap())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");

    let id = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()[0]
        .credential_id
        .to_base64url();
    let args = [
        "credentials",
        "delete",
        "--tenant",
        &tenant,
        "--user",
        &user,
        "--credential",
        &id,
    ];
    let out = authctl(&app.store, &args).await.unwrap();
    assert_eq!(out, json!({ "credential_id": id, "deleted": true }));
    assert!(app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .is_empty());
    assert!(authctl(&app.store, &args)
        .await
        .unwrap_err()
        .contains("no such credential"));
}
