//! A user with no authenticator at all enrolls the first one from an MFA challenge: MFA options
//! consume the challenge and answer with seed 000's enrollment shape, whose grant enrolls any
//! method type the tenant enables (Cognito's MFA_SETUP). Driven by real soft authenticators.

use authctl::{run, Cli, Context};
use clap::Parser;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::clock::rfc3339;
use shared::ids::{ChallengeId, TenantId};
use shared::store::{ChallengeKind, CredentialRecord, UserRecord};
use shared::tenant::MethodType;

use crate::harness::{api_request, invoke, settings, Authenticator, Reply, TestApp, ORIGIN};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

fn tenant_header(tenant: &TenantId) -> Vec<(String, String)> {
    vec![("x-tenant-id".to_owned(), tenant.to_string())]
}

async fn credentials(app: &TestApp, user: &UserRecord) -> Vec<CredentialRecord> {
    app.store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .expect("credentials")
}

/// Whether the item under `kind#id` is still stored (expired or not).
async fn stored(app: &TestApp, kind: ChallengeKind, id: &str) -> bool {
    let id: ChallengeId = id.parse().expect("a challenge id");
    app.store
        .read_challenge(&kind.key(&id))
        .await
        .expect("read")
        .is_some()
}

/// Asserts seed 000's enrollment shape, exactly; returns the grant's id.
fn enrollment_shape(app: &TestApp, reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.body.as_object().expect("object");
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "challenge_id",
            "enrollment_required",
            "expires_at",
            "mfa_setup_required",
            "token"
        ]
    );
    assert_eq!(body["token"], Value::Null);
    assert_eq!(body["mfa_setup_required"], false);
    assert_eq!(body["enrollment_required"], true);
    let expiry = app.clock_now() + i64::from(app.tenant.challenge_timeout_secs);
    assert_eq!(body["expires_at"], rfc3339(expiry));
    let grant = body["challenge_id"]
        .as_str()
        .expect("a grant id")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&grant).is_ok(), "{grant}");
    grant
}

async fn options_with_grant(app: &TestApp, grant: &str, method: &str) -> Reply {
    let req = api_request(
        "/v1/users/me/mfa/webauthn/register",
        &[("method_type", method), ("challenge_id", grant)],
        &tenant_header(&app.tenant.tenant_id),
        None,
    );
    invoke(req, |req| {
        register_options::handler(&app.register_options, req)
    })
    .await
}

/// Register options and completion with the grant alone (no Authorization header).
async fn enroll_with_grant(
    app: &TestApp,
    grant: &str,
    method: &str,
    authenticator: &mut Authenticator,
) -> Reply {
    let options = options_with_grant(app, grant, method).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let credential = authenticator
        .register(&options.body["options"], ORIGIN)
        .expect("authenticator registers");
    let body = json!({
        "credential": credential,
        "device_name": "first",
        "method_type": method,
        "challenge_id": grant,
    });
    app.register_complete(&tenant_header(&app.tenant.tenant_id), &body)
        .await
}

fn assert_first_codes(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let codes = reply.body["codes"].as_array().expect("codes");
    assert_eq!(codes.len(), shared::codes::BACKUP_CODE_COUNT);
    assert_eq!(reply.body["remaining"], shared::codes::BACKUP_CODE_COUNT);
}

#[tokio::test]
async fn a_user_with_nothing_registered_enrolls_a_passkey_from_the_mfa_challenge() {
    let app = TestApp::new().await;
    assert!(credentials(&app, &app.user).await.is_empty());
    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge });

    let grant = enrollment_shape(&app, &app.mfa_options(&[], &body).await);
    // The MFA challenge was the proof of the primary login: it is spent.
    assert!(!stored(&app, ChallengeKind::Mfa, &challenge.to_string()).await);
    app.mfa_options(&[], &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    // The grant is this user's, names no method type (any enabled one) and is still unused.
    let id: ChallengeId = grant.parse().unwrap();
    let item = app
        .store
        .read_challenge(&ChallengeKind::Enrollment.key(&id))
        .await
        .unwrap()
        .expect("the grant is stored");
    assert_eq!(item.kind, ChallengeKind::Enrollment);
    assert_eq!(item.tenant_id, app.tenant.tenant_id);
    assert_eq!(item.user_id, app.user.user_id);
    assert_eq!(item.method_type, None);

    let mut passkey = Authenticator::passkey();
    let done = enroll_with_grant(&app, &grant, PASSKEY, &mut passkey).await;
    assert_first_codes(&done);
    let stored_credentials = credentials(&app, &app.user).await;
    assert_eq!(stored_credentials.len(), 1);
    assert_eq!(
        stored_credentials[0].method_type,
        MethodType::WebauthnPasskey
    );
    // Used up, for every method type.
    assert!(!stored(&app, ChallengeKind::Enrollment, &grant).await);
    for method in [PASSKEY, FIDO] {
        options_with_grant(&app, &grant, method)
            .await
            .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    }

    // A fresh MFA login with that passkey gets a full token.
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["token"].is_string(), "{}", reply.body);
    assert_eq!(reply.body["mfa_setup_required"], false);
    assert_eq!(reply.body["enrollment_required"], false);

    // The trade is audited as an MFA outcome, newest first.
    let records = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 10)
        .await
        .unwrap()
        // Authentication outcomes only: enrollments are audited too.
        .into_iter()
        .filter(|r| r.event != "credential_registered")
        .collect::<Vec<_>>();
    let seen: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.event.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("mfa_webauthn", "success"),
            ("mfa_first_enrollment", "success")
        ]
    );
    assert_eq!(records[1].method, None);
    assert!(!serde_json::to_string(&records).unwrap().contains(&grant));
}

#[tokio::test]
async fn the_same_grant_can_enroll_a_security_key_instead() {
    let app = TestApp::new().await;
    let challenge = app.mfa_challenge(&app.user).await;
    let grant = enrollment_shape(
        &app,
        &app.mfa_options(&[], &json!({ "challenge_id": challenge }))
            .await,
    );
    let mut key = Authenticator::security_key();
    let done = enroll_with_grant(&app, &grant, FIDO, &mut key).await;
    assert_first_codes(&done);
    let stored_credentials = credentials(&app, &app.user).await;
    assert_eq!(stored_credentials.len(), 1);
    assert_eq!(stored_credentials[0].method_type, MethodType::WebauthnFido);
    assert!(!stored(&app, ChallengeKind::Enrollment, &grant).await);
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["token"].is_string(), "{}", reply.body);
}

#[tokio::test]
async fn an_any_method_grant_still_honours_the_tenants_enabled_methods() {
    let app = TestApp::with_tenant(|t| t.methods = vec![MethodType::WebauthnPasskey]).await;
    let challenge = app.mfa_challenge(&app.user).await;
    let grant = enrollment_shape(
        &app,
        &app.mfa_options(&[], &json!({ "challenge_id": challenge }))
            .await,
    );
    let refused = options_with_grant(&app, &grant, FIDO).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_IMPLEMENTED,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["code"], "method_not_enabled");
    // Refusing the method did not use the grant up.
    let done = enroll_with_grant(&app, &grant, PASSKEY, &mut Authenticator::passkey()).await;
    assert_first_codes(&done);
}

async fn authctl(ctx: &Context, args: &[&str]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(std::iter::once("authctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    run(cli.command, ctx).await
}

#[tokio::test]
async fn a_tenant_that_turned_it_off_still_answers_no_credentials() {
    let app = TestApp::with_tenant(|t| t.enroll_without_authenticator = false).await;
    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge });
    for _ in 0..2 {
        app.mfa_options(&[], &body)
            .await
            .assert_error(StatusCode::NOT_FOUND, "no_credentials");
    }
    // The challenge is intact: still there, with no state attached.
    let item = app
        .store
        .get_challenge(&ChallengeKind::Mfa.key(&challenge), app.clock_now())
        .await
        .unwrap()
        .expect("the challenge survives");
    assert_eq!(item.state, None);
    assert!(credentials(&app, &app.user).await.is_empty());

    // The operator's switch: `authctl tenant create --no-first-enrollment-from-mfa`.
    let ctx = Context {
        store: app.store.clone(),
        token_settings: settings(),
        kms_signing_key: None,
        signing_key_pem: None,
    };
    let mut created = Vec::new();
    for flag in [None, Some("--no-first-enrollment-from-mfa")] {
        let mut args = vec![
            "tenant",
            "create",
            "--name",
            "Strict",
            "--rp-id",
            "localhost",
            "--origin",
            ORIGIN,
        ];
        args.extend(flag);
        let reply = authctl(&ctx, &args).await.unwrap();
        let id: TenantId = reply["tenant_id"].as_str().unwrap().parse().unwrap();
        created.push(app.store.get_tenant(&id).await.unwrap().unwrap());
    }
    assert!(created[0].enroll_without_authenticator);
    assert!(!created[1].enroll_without_authenticator);
    let strict = &created[1];
    let user = UserRecord {
        tenant_id: strict.tenant_id,
        user_id: shared::ids::UserId::new_random(),
        email: "carol@example.com".into(),
        display_name: "Carol".into(),
        created_at: app.clock_now(),
        deleted_at: None,
        groups: Vec::new(),
    };
    app.store.create_user(&user, None).await.unwrap();
    let challenge = app.mfa_challenge(&user).await;
    app.mfa_options(
        &tenant_header(&strict.tenant_id),
        &json!({ "challenge_id": challenge }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "no_credentials");
    assert!(stored(&app, ChallengeKind::Mfa, &challenge.to_string()).await);
}

#[tokio::test]
async fn a_mismatched_tenant_header_leaves_the_challenge_for_its_rightful_use() {
    let app = TestApp::new().await;
    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge });
    let other = tenant_header(&TenantId::new_random());
    app.mfa_options(&other, &body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    assert!(stored(&app, ChallengeKind::Mfa, &challenge.to_string()).await);
    // With the right header (or none) it still works, once.
    let right = tenant_header(&app.tenant.tenant_id);
    enrollment_shape(&app, &app.mfa_options(&right, &body).await);
    assert!(!stored(&app, ChallengeKind::Mfa, &challenge.to_string()).await);
    app.mfa_options(&right, &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

#[tokio::test]
async fn an_expired_mfa_challenge_grants_nothing() {
    let app = TestApp::new().await;
    let challenge = app.mfa_challenge(&app.user).await;
    app.clock.advance(301);
    app.mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    let records = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 10)
        .await
        .unwrap()
        // Authentication outcomes only: enrollments are audited too.
        .into_iter()
        .filter(|r| r.event != "credential_registered")
        .collect::<Vec<_>>();
    assert!(records.is_empty(), "{records:?}");
}

#[tokio::test]
async fn concurrent_options_trade_one_challenge_for_one_grant() {
    let app = TestApp::new().await;
    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge });
    let replies = futures::future::join_all((0..20).map(|_| app.mfa_options(&[], &body))).await;
    let (ok, refused): (Vec<&Reply>, Vec<&Reply>) =
        replies.iter().partition(|r| r.status == StatusCode::OK);
    assert_eq!(ok.len(), 1, "{replies:?}");
    enrollment_shape(&app, ok[0]);
    for reply in refused {
        reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    }
    let records = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 50)
        .await
        .unwrap()
        // Authentication outcomes only: enrollments are audited too.
        .into_iter()
        .filter(|r| r.event != "credential_registered")
        .collect::<Vec<_>>();
    assert_eq!(records.len(), 1, "{records:?}");
}

/// Grants that name a method type work exactly as before: another type can neither start nor
/// complete an enrollment with them, and such an attempt leaves the grant for its rightful use.
#[tokio::test]
async fn a_grant_for_one_method_type_is_not_consumed_by_another() {
    let app = TestApp::new().await;
    let (grant, _) = app
        .store
        .create_challenge(
            ChallengeKind::Enrollment,
            &app.tenant.tenant_id,
            &app.user.user_id,
            Some(MethodType::WebauthnFido),
            app.clock_now(),
            300,
        )
        .await
        .unwrap();
    let grant = grant.to_string();
    options_with_grant(&app, &grant, PASSKEY)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    // A pending passkey registration (started with a token) presented with the grant.
    let mut passkey = Authenticator::passkey();
    let credential = app
        .registration_credential(&app.auth_headers(&app.token()), PASSKEY, &mut passkey)
        .await;
    let body = json!({ "credential": credential, "device_name": "pk",
        "method_type": PASSKEY, "challenge_id": grant });
    app.register_complete(&tenant_header(&app.tenant.tenant_id), &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    assert!(stored(&app, ChallengeKind::Enrollment, &grant).await);
    assert!(credentials(&app, &app.user).await.is_empty());
    let done = enroll_with_grant(&app, &grant, FIDO, &mut Authenticator::security_key()).await;
    assert_first_codes(&done);
    assert!(!stored(&app, ChallengeKind::Enrollment, &grant).await);
}
