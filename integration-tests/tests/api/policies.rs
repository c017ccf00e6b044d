//! Issue 14: tenant policies in Cedar decide registration, the MFA outcome and sensitive
//! account changes; their `@notice`s reach the responses. Real soft authenticators over the
//! handlers, a policy set per tenant.

use authctl::{run, Cli, Context};
use clap::Parser;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::policy::default_policies;
use shared::tenant::Tenant;
use uuid::Uuid;

use crate::harness::{admin, me, settings, Authenticator, Reply, TestApp};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";
const CREDENTIAL: &str = "/v1/users/me/mfa/webauthn/credentials/{credential_id}";
const CREDENTIALS: &str = "/v1/users/me/mfa/webauthn/credentials";
const CODES: &str = "/v1/users/me/mfa/backup_codes";
const TENANT: &str = "/v1/admin/tenants/{tenant_id}";
const ARN: &str = "arn:aws:sts::123456789012:assumed-role/operator/tests";

/// The tenant's default set plus `extra`.
fn with_default(tenant: &Tenant, extra: &str) -> String {
    format!("{}\n{extra}", default_policies(tenant))
}

/// A tenant whose set is its default plus `extra`.
async fn app_with(extra: &'static str) -> TestApp {
    TestApp::with_tenant(|t| t.policies = Some(with_default(t, extra))).await
}

/// `DELETE` of the user's credential `id`.
async fn delete(app: &TestApp, id: &str, headers: &[(String, String)]) -> Reply {
    me(
        app,
        "DELETE",
        CREDENTIAL,
        &[("credential_id", id)],
        headers,
        None,
    )
    .await
}

fn notices(reply: &Reply) -> Vec<String> {
    serde_json::from_value(reply.body["notices"].clone()).unwrap_or_default()
}

async fn stored_credentials(app: &TestApp) -> usize {
    app.store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .len()
}

/// The AAGUID the soft security key attests (read from a registration in its own tenant).
async fn soft_key_aaguid() -> Uuid {
    let app = TestApp::new().await;
    let reply = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    stored[0].aaguid
}

#[tokio::test]
async fn a_blocked_aaguid_is_refused_at_completion_and_nothing_is_stored() {
    let blocked = soft_key_aaguid().await;
    let policy = format!(
        r#"@id("block_model")
        @notice("This authenticator model is not allowed here.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when {{ resource has aaguid && resource.aaguid == "{blocked}" }};"#
    );
    let app = TestApp::with_tenant(|t| t.policies = Some(with_default(t, &policy))).await;
    // At options the model is not known yet: allowed.
    let reply = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "policy_denied");
    assert_eq!(
        notices(&reply),
        vec!["This authenticator model is not allowed here."]
    );
    assert_eq!(stored_credentials(&app).await, 0);
    let codes = app
        .store
        .get_backup_codes(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert!(codes.is_none(), "no backup codes either");
    // Another model (the soft passkey) is allowed by the same set.
    let allowed = app
        .enroll(&mut Authenticator::passkey(), PASSKEY, "Phone")
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(stored_credentials(&app).await, 1);
}

#[tokio::test]
async fn a_method_type_can_be_refused_at_the_options_step() {
    let app = app_with(
        r#"@id("no_passkeys")
        @notice("Passkeys are not allowed for this tenant.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when { context has method_type && context.method_type == "webauthn_passkey" };"#,
    )
    .await;
    let headers = app.auth_headers(&app.token());
    let refused = app.register_options(&headers, Some(PASSKEY)).await;
    refused.assert_error(StatusCode::FORBIDDEN, "policy_denied");
    assert_eq!(
        notices(&refused),
        vec!["Passkeys are not allowed for this tenant."]
    );
    let allowed = app.register_options(&headers, Some(FIDO)).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
}

const REFUSE_PACKED: &str = r#"@id("no_packed")
        @notice("Authenticators with packed attestation are not allowed.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when { context has attestation_format && context.attestation_format == "packed" };"#;

#[tokio::test]
async fn an_attestation_format_can_be_refused() {
    let app = app_with(REFUSE_PACKED).await;
    // The soft security key attests with `packed`: refused at completion (the options step
    // does not know the format yet).
    let key = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    key.assert_error(StatusCode::FORBIDDEN, "policy_denied");
    assert_eq!(
        notices(&key),
        vec!["Authenticators with packed attestation are not allowed."]
    );
    assert_eq!(stored_credentials(&app).await, 0);
    // Refusing another format lets it through.
    let other = TestApp::with_tenant(|t| {
        t.policies = Some(with_default(
            t,
            &REFUSE_PACKED.replace("\"packed\"", "\"tpm\""),
        ))
    })
    .await;
    let key = other
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
}

#[tokio::test]
async fn the_default_set_explains_a_setup_only_token() {
    let app = TestApp::with_tenant(|t| t.min_authenticators = 2).await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["mfa_setup_required"], true);
    assert_eq!(
        notices(&reply),
        vec!["Register at least 2 authenticators for full access."]
    );
    // Allowed: a second authenticator, a full token and no notice.
    assert_eq!(
        app.enroll(&mut Authenticator::passkey(), PASSKEY, "Phone")
            .await
            .status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.body["mfa_setup_required"], false);
    assert!(reply.body.get("notices").is_none(), "{}", reply.body);
}

#[tokio::test]
async fn a_full_access_policy_decides_the_token() {
    let app = app_with(
        r#"@id("keys_for_full_access")
        @notice("Full access needs a security key.")
        forbid(principal, action == Passkey::Action::"full_access", resource)
          when { principal.security_key_count == 0 };"#,
    )
    .await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(reply.body["mfa_setup_required"], true, "{}", reply.body);
    assert_eq!(notices(&reply), vec!["Full access needs a security key."]);
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.body["mfa_setup_required"], false, "{}", reply.body);
    assert!(reply.body["token"].is_string());
}

#[tokio::test]
async fn a_refused_waiver_is_an_enrollment_grant_with_the_notice() {
    let app = app_with(
        r#"@id("fido_after_backup_codes")
        @notice("Add a security key before you use backup codes again.")
        forbid(principal, action == Passkey::Action::"waive_method", resource)
          when { context has method_type && context.method_type == "webauthn_fido" };"#,
    )
    .await;
    let first = app
        .enroll(&mut Authenticator::passkey(), PASSKEY, "Phone")
        .await;
    let code = first.body["codes"][0].as_str().unwrap().to_owned();
    // Through the backup-code completion as well as the WebAuthn one.
    let challenge = app.mfa_challenge(&app.user).await;
    let reply = app.backup_code(&challenge, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["enrollment_required"], true);
    assert_eq!(reply.body["token"], Value::Null);
    assert_eq!(
        notices(&reply),
        vec!["Add a security key before you use backup codes again."]
    );
    // The default (no such forbid) waives it: a full token.
    let plain = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        plain.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let reply = plain.mfa_login(&plain.user, &mut passkey).await;
    assert_eq!(reply.body["enrollment_required"], false);
    assert!(reply.body["token"].is_string());
}

#[tokio::test]
async fn the_default_set_explains_a_required_method() {
    let app = TestApp::with_tenant(|t| {
        t.required_methods = vec![shared::tenant::MethodType::WebauthnFido]
    })
    .await;
    let mut passkey = Authenticator::passkey();
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(reply.body["enrollment_required"], true, "{}", reply.body);
    assert_eq!(
        notices(&reply),
        vec!["This tenant requires a security key (webauthn_fido)."]
    );
}

/// Headers of a token whose login was `age` seconds ago.
fn login_aged(app: &TestApp, age: i64) -> Vec<(String, String)> {
    let mut claims = app.claims_for(&app.user);
    claims.auth_time = Some(app.clock_now() - age);
    app.auth_headers(&app.key.sign(&claims).unwrap())
}

#[tokio::test]
async fn sensitive_changes_carry_the_window_notice() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let stale = login_aged(&app, 601);
    let window = "This change needs a sign-in within the last 600 seconds.";
    let refused = me(&app, "POST", CODES, &[], &stale, None).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    assert_eq!(notices(&refused), vec![window]);
    let adding = app.register_options(&stale, Some(PASSKEY)).await;
    adding.assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    assert_eq!(
        notices(&adding),
        vec!["Adding an authenticator needs a sign-in within the last 600 seconds."]
    );
    let listed = me(&app, "GET", CREDENTIALS, &[], &stale, None).await;
    let id = listed.body["credentials"][0]["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = delete(&app, &id, &stale).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    assert_eq!(notices(&refused), vec![window]);
    // Allowed: a login within the window.
    let recent = login_aged(&app, 600);
    let fresh = me(&app, "POST", CODES, &[], &recent, None).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

#[tokio::test]
async fn a_tenant_can_shorten_the_window_for_deletions_only() {
    let app = app_with(
        r#"@id("quick_deletes")
        @notice("Deleting an authenticator needs a sign-in within the last minute.")
        forbid(principal, action == Passkey::Action::"delete_authenticator", resource)
          unless { context has auth_age_secs && context.auth_age_secs <= 60 };"#,
    )
    .await;
    let (mut passkey, mut key) = (Authenticator::passkey(), Authenticator::security_key());
    assert_eq!(
        app.enroll(&mut passkey, PASSKEY, "Phone").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let listed = me(
        &app,
        "GET",
        CREDENTIALS,
        &[],
        &app.auth_headers(&app.token()),
        None,
    )
    .await;
    let id = listed.body["credentials"][0]["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let two_minutes = login_aged(&app, 120);
    let refused = delete(&app, &id, &two_minutes).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    assert_eq!(
        notices(&refused),
        vec!["Deleting an authenticator needs a sign-in within the last minute."]
    );
    // Regenerating codes keeps the default window.
    let codes = me(&app, "POST", CODES, &[], &two_minutes, None).await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    let deleted = delete(&app, &id, &login_aged(&app, 30)).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
}

#[tokio::test]
async fn the_admin_api_validates_policies_and_stores_only_valid_sets() {
    let app = TestApp::new().await;
    let id = app.tenant.tenant_id.to_string();
    let params = [("tenant_id", id.as_str())];
    let patch = |policies: &str| {
        admin(
            &app,
            Some(ARN),
            "PATCH",
            TENANT,
            &params,
            &[],
            Some(json!({ "policies": policies })),
        )
    };
    let refused = patch(
        r#"@id("unguarded") forbid(principal, action == Passkey::Action::"register", resource)
        when { resource.aaguid == "x" };"#,
    )
    .await;
    refused.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(refused.body["details"]["field"], "policies");
    let errors = refused.body["details"]["errors"].as_array().unwrap();
    assert!(
        errors[0].as_str().unwrap().contains("unguarded"),
        "{errors:?}"
    );
    let stored = app.store.get_tenant(&app.tenant.tenant_id).await.unwrap();
    assert_eq!(stored.unwrap().policies, None);

    let set = with_default(
        &app.tenant,
        r#"@notice("No security keys here.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when { resource.method_type == "webauthn_fido" };"#,
    );
    let changed = patch(&set).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["policies"], set.as_str());
    let refused = app
        .register_options(&app.auth_headers(&app.token()), Some(FIDO))
        .await;
    refused.assert_error(StatusCode::FORBIDDEN, "policy_denied");
    assert_eq!(notices(&refused), vec!["No security keys here."]);
    // An empty set goes back to the default.
    let reset = patch("").await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert!(reset.body.get("policies").is_none());
}

async fn authctl(ctx: &Context, args: &[&str]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(std::iter::once("authctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    run(cli.command, ctx).await
}

#[tokio::test]
async fn authctl_sets_gets_and_tests_policies() {
    let app = TestApp::new().await;
    let ctx = Context {
        store: app.store.clone(),
        token_settings: settings(),
        kms_signing_key: None,
        signing_key_pem: None,
    };
    let dir = std::env::temp_dir().join(format!("authctl-policy-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let tenant = app.tenant.tenant_id.to_string();
    let got = authctl(&ctx, &["tenant", "policy", "get", "--tenant", &tenant])
        .await
        .unwrap();
    assert_eq!(got["default"], true);
    assert_eq!(got["policies"], default_policies(&app.tenant).as_str());

    let bad = file(
        "bad.cedar",
        r#"permit(principal, action == Passkey::Action::"fly", resource);"#,
    );
    let err = authctl(
        &ctx,
        &[
            "tenant", "policy", "set", "--tenant", &tenant, "--file", &bad,
        ],
    )
    .await
    .unwrap_err();
    assert!(err.contains("fly"), "{err}");
    let still = authctl(&ctx, &["tenant", "policy", "get", "--tenant", &tenant])
        .await
        .unwrap();
    assert_eq!(still["default"], true);

    let trusted = with_default(
        &app.tenant,
        r#"@notice("Passwordless sign-in works only on a trusted device.")
        forbid(principal, action == Passkey::Action::"bypass_mfa", resource)
          unless { context has device_trusted && context.device_trusted };"#,
    );
    let good = file("good.cedar", &trusted);
    let request = file(
        "request.json",
        r#"{"action": "bypass_mfa", "user": {"authenticators": ["webauthn_passkey"]},
            "authenticator": {"method_type": "webauthn_passkey"}, "context": {"uv": true}}"#,
    );
    // Tested without saving…
    let tested = authctl(
        &ctx,
        &[
            "tenant",
            "policy",
            "test",
            "--tenant",
            &tenant,
            "--file",
            &good,
            "--request",
            &request,
        ],
    )
    .await
    .unwrap();
    assert_eq!(tested["allowed"], false);
    assert_eq!(
        tested["notices"],
        json!(["Passwordless sign-in works only on a trusted device."])
    );
    let current = authctl(
        &ctx,
        &[
            "tenant",
            "policy",
            "test",
            "--tenant",
            &tenant,
            "--request",
            &request,
        ],
    )
    .await
    .unwrap();
    assert_eq!(current["allowed"], true);
    assert_eq!(
        authctl(&ctx, &["tenant", "policy", "get", "--tenant", &tenant])
            .await
            .unwrap()["default"],
        true
    );
    // …then stored.
    let set = authctl(
        &ctx,
        &[
            "tenant", "policy", "set", "--tenant", &tenant, "--file", &good,
        ],
    )
    .await
    .unwrap();
    assert_eq!(set["default"], false);
    assert_eq!(set["policies"], trusted.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's third example: passwordless logins stand alone only from a device the user
/// has logged in from before.
const TRUSTED_DEVICES_ONLY: &str = r#"@id("trusted_devices_only")
@notice("Passwordless sign-in needs a device you have signed in from before; use your second factor.")
forbid(principal, action == Passkey::Action::"bypass_mfa", resource)
  unless { context has device_trusted && context.device_trusted };"#;

async fn sessions(app: &TestApp) -> usize {
    app.store
        .list_sessions(&app.tenant.tenant_id, &app.user.user_id, 100)
        .await
        .unwrap()
        .len()
}

/// Passwordless `bypass_mfa`: allowed by the default set (the device becomes trusted); once the
/// tenant allows it only from trusted devices, the same device still logs in and another one
/// (another fingerprint) gets 403 `POLICY_DENIED` with the forbid's notice, its challenge spent
/// and no session opened.
#[tokio::test]
async fn passwordless_stands_alone_only_as_the_tenant_policy_allows() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "Laptop").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let first = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(sessions(&app).await, 1);

    let id = app.tenant.tenant_id.to_string();
    let set = with_default(&app.tenant, TRUSTED_DEVICES_ONLY);
    let patched = admin(
        &app,
        Some(ARN),
        "PATCH",
        TENANT,
        &[("tenant_id", id.as_str())],
        &[],
        Some(json!({ "policies": set })),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    // The device of the first login (no fingerprint header: its user agent) is trusted.
    let again = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(sessions(&app).await, 2);

    // Another device: a fingerprint header on both begin and complete.
    let other = vec![(
        "x-device-fingerprint".to_owned(),
        r#"{"screen":"390x844","platform":"iPhone"}"#.to_owned(),
    )];
    let mut headers = app.tenant_headers();
    headers.extend(other.clone());
    let begun = app.login_begin(&headers, &app.user.email).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let credential = passkey
        .authenticate(&begun.body["data"]["options"], crate::harness::ORIGIN)
        .unwrap();
    let denied = app
        .login_complete(&headers, &app.user.email, &credential)
        .await;
    denied.assert_v1_error(StatusCode::FORBIDDEN, "POLICY_DENIED");
    assert_eq!(
        notices(&denied),
        vec![
            "Passwordless sign-in needs a device you have signed in from before; use your second factor."
        ]
    );
    assert_eq!(sessions(&app).await, 2);
    // The challenge was spent with the refusal.
    app.login_complete(&headers, &app.user.email, &credential)
        .await
        .assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
}

/// Usernameless logins ask the same policy; their device is read beside the user.
#[tokio::test]
async fn a_usernameless_login_from_an_unknown_device_is_refused_by_the_policy() {
    let app = app_with(TRUSTED_DEVICES_ONLY).await;
    let mut passkey = Authenticator::resident_passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "Phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let begun = app
        .login_begin_raw(&app.tenant_headers(), "{}".to_owned())
        .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let credential = passkey
        .authenticate(&begun.body["data"]["options"], crate::harness::ORIGIN)
        .unwrap();
    let body = json!({ "credential": credential }).to_string();
    let denied = app.login_complete_raw(&app.tenant_headers(), body).await;
    denied.assert_v1_error(StatusCode::FORBIDDEN, "POLICY_DENIED");
    assert_eq!(notices(&denied).len(), 1);
    assert_eq!(sessions(&app).await, 0);
}

/// The README's worked example "require a security key for admins".
const ADMINS_NEED_A_KEY: &str = r#"@id("admins_need_a_security_key")
@notice("Administrators must use a security key.")
forbid(principal, action == Passkey::Action::"waive_method", resource)
  when {
    context has method_type && context.method_type == "webauthn_fido" &&
    principal has groups && principal.groups.contains("admins")
  };"#;

const USER: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}";
const MFA_CHALLENGES: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges";

/// The app user's groups, set by an operator over the admin API; returns the reply.
async fn set_groups(app: &TestApp, groups: Value) -> Reply {
    admin_on_user(app, "PATCH", USER, Some(json!({ "groups": groups }))).await
}

/// An admin API call on a route of the app's user.
async fn admin_on_user(app: &TestApp, method: &str, route: &str, body: Option<Value>) -> Reply {
    let (tenant, user) = (
        app.tenant.tenant_id.to_string(),
        app.user.user_id.to_string(),
    );
    let params = [("tenant_id", tenant.as_str()), ("user_id", user.as_str())];
    admin(app, Some(ARN), method, route, &params, &[], body).await
}

/// A passkey the app's user has enrolled.
async fn enrolled_passkey(app: &TestApp) -> Authenticator {
    let mut passkey = Authenticator::passkey();
    let reply = app.enroll(&mut passkey, PASSKEY, "Phone").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    passkey
}

/// An MFA login whose challenge the admin API makes, as the primary login does.
async fn admin_mfa_login(app: &TestApp, authenticator: &mut Authenticator) -> Reply {
    let made = admin_on_user(app, "POST", MFA_CHALLENGES, None).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let challenge = made.body["challenge_id"].clone();
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let credential = authenticator
        .authenticate(&options.body["options"], crate::harness::ORIGIN)
        .expect("authenticator signs");
    app.mfa_complete(
        &[],
        &json!({ "challenge_id": challenge, "credential": credential }),
    )
    .await
}

#[tokio::test]
async fn admins_need_a_security_key_by_the_groups_the_admin_api_sets() {
    let app = app_with(ADMINS_NEED_A_KEY).await;
    let mut passkey = enrolled_passkey(&app).await;
    // In no group: a passkey is enough.
    let reply = admin_mfa_login(&app, &mut passkey).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["token"].is_string(), "{}", reply.body);
    assert_eq!(reply.body["enrollment_required"], false);

    // The operator makes the user an admin: stored trimmed, sorted and unique.
    let set = set_groups(&app, json!([" staff", "admins", "staff"])).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["groups"], json!(["admins", "staff"]));
    let stored = app
        .store
        .get_user(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.groups, vec!["admins", "staff"]);
    // Filed with the change, with the operator as actor.
    let audit = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 20)
        .await
        .unwrap();
    let updated: Vec<_> = audit.iter().filter(|r| r.event == "user_updated").collect();
    assert_eq!(updated.len(), 1, "{audit:?}");
    assert_eq!(updated[0].outcome, "success");
    assert_eq!(
        updated[0].actor.as_deref(),
        Some(format!("iam:{ARN}").as_str())
    );
    let reply = admin_mfa_login(&app, &mut passkey).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["enrollment_required"], true, "{}", reply.body);
    assert_eq!(reply.body["token"], Value::Null);
    assert_eq!(
        notices(&reply),
        vec!["Administrators must use a security key."]
    );

    // With a security key the admin gets a full token.
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let reply = admin_mfa_login(&app, &mut key).await;
    assert!(reply.body["token"].is_string(), "{}", reply.body);
    assert_eq!(reply.body["enrollment_required"], false);
}

#[tokio::test]
async fn groups_leave_with_an_empty_list_and_bad_groups_are_refused() {
    let app = app_with(ADMINS_NEED_A_KEY).await;
    let mut passkey = enrolled_passkey(&app).await;
    assert_eq!(
        set_groups(&app, json!(["admins"])).await.status,
        StatusCode::OK
    );
    for bad in [json!([""]), json!(["has space"]), json!(["x".repeat(65)])] {
        let refused = set_groups(&app, bad).await;
        refused.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(refused.body["details"]["field"], "groups");
    }
    let too_many: Vec<String> = (0..33).map(|i| format!("g{i}")).collect();
    set_groups(&app, json!(too_many))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // Nothing refused was stored.
    let reply = admin_mfa_login(&app, &mut passkey).await;
    assert_eq!(reply.body["enrollment_required"], true, "{}", reply.body);

    // A rename and the removal of every group in one PATCH.
    let body = json!({ "display_name": "Renamed", "groups": [] });
    let cleared = admin_on_user(&app, "PATCH", USER, Some(body)).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["groups"], json!([]));
    assert_eq!(cleared.body["display_name"], "Renamed");
    let reply = admin_mfa_login(&app, &mut passkey).await;
    assert!(reply.body["token"].is_string(), "{}", reply.body);
}

#[tokio::test]
async fn a_deletion_is_decided_with_the_users_groups() {
    let app = app_with(
        r#"@id("admins_keep_keys")
        @notice("Administrators cannot remove authenticators themselves.")
        forbid(principal, action == Passkey::Action::"delete_authenticator", resource)
          when { principal has groups && principal.groups.contains("admins") };"#,
    )
    .await;
    enrolled_passkey(&app).await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let recent = login_aged(&app, 10);
    let listed = me(&app, "GET", CREDENTIALS, &[], &recent, None).await;
    let id = listed.body["credentials"][0]["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    set_groups(&app, json!(["admins"])).await;
    let refused = delete(&app, &id, &recent).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    assert_eq!(
        notices(&refused),
        vec!["Administrators cannot remove authenticators themselves."]
    );
    assert_eq!(stored_credentials(&app).await, 2);
    set_groups(&app, json!([])).await;
    let deleted = delete(&app, &id, &recent).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(stored_credentials(&app).await, 1);
}
