//! Seed 000: the second factor of a login with a passkey, a security key or a backup code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::auth::{authenticate, Accepts, MFA_SETUP_SCOPE};
use shared::ids::ChallengeId;
use shared::tenant::{MethodType, UserVerification};

use crate::harness::{
    api_call, api_request, auth_headers, invoke, settings, Authenticator, Reply, TestApp, ORIGIN,
};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

/// Verifies a token with nothing but the published JWKS document, as another service would.
fn verify_with_jwks(jwks: &Value, token: &str) -> Value {
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[settings().issuer]);
    validation.set_audience(&[settings().audience]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

async fn enrolled(app: &TestApp, method: &str) -> Authenticator {
    let mut authenticator = match method {
        PASSKEY => Authenticator::passkey(),
        _ => Authenticator::security_key(),
    };
    let reply = app.enroll(&mut authenticator, method, "device").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    authenticator
}

fn complete_body(challenge: &ChallengeId, credential: &Value) -> Value {
    json!({ "challenge_id": challenge, "credential": credential })
}

#[tokio::test]
async fn a_passkey_completes_mfa_with_a_token_verifiable_from_the_jwks() {
    let app = TestApp::new().await;
    let mut passkey = enrolled(&app, PASSKEY).await;
    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    let allowed: Vec<&str> = options.body["options"]["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(allowed, vec![stored[0].credential_id.to_base64url()]);
    assert_eq!(options.body["options"]["rpId"], "localhost");
    // Passkeys were registered with user verification, so it is required here too.
    assert_eq!(options.body["options"]["userVerification"], "required");

    let credential = passkey
        .authenticate(&options.body["options"], ORIGIN)
        .unwrap();
    let reply = app
        .mfa_complete(&[], &complete_body(&challenge, &credential))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["mfa_setup_required"], false);
    assert_eq!(reply.body["enrollment_required"], false);
    assert!(reply.body.get("challenge_id").is_none());

    let jwks = app.jwks_document().await;
    assert_eq!(jwks.status, StatusCode::OK);
    let claims = verify_with_jwks(&jwks.body, reply.body["token"].as_str().unwrap());
    let now = app.clock_now();
    assert_eq!(claims["sub"], app.user.user_id.to_string());
    assert_eq!(claims["tenant_id"], app.tenant.tenant_id.to_string());
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["auth_time"], now);
    assert_eq!(claims["exp"], now + i64::from(app.tenant.token_ttl_secs));
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]));
    assert!(claims.get("scope").is_none());
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.timestamp(), claims["exp"].as_i64().unwrap());

    let after = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(after[0].use_count, 1);
    assert_eq!(after[0].sign_count, 1);
    assert_eq!(after[0].last_used_at, Some(now));
}

#[tokio::test]
async fn a_security_key_completes_mfa() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.body["options"]["userVerification"], "preferred");
    let credential = key.authenticate(&options.body["options"], ORIGIN).unwrap();
    let reply = app
        .mfa_complete(&[], &complete_body(&challenge, &credential))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = verify_with_jwks(
        &app.jwks_document().await.body,
        reply.body["token"].as_str().unwrap(),
    );
    // No user verification on a security key that only prefers it.
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]));
}

#[tokio::test]
async fn a_uv_required_tenant_asks_for_and_enforces_user_verification() {
    let app = TestApp::with_tenant(|t| t.user_verification = UserVerification::Required).await;
    let mut key = Authenticator::security_key_with_uv();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key with PIN").await.status,
        StatusCode::OK
    );
    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.body["options"]["userVerification"], "required");
    // A client that drops the requirement gets an assertion without UV, which is refused.
    let mut weakened = options.body["options"].clone();
    weakened["userVerification"] = json!("discouraged");
    let credential = key.authenticate(&weakened, ORIGIN).unwrap();
    app.mfa_complete(&[], &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "user_verification_required");
}

#[tokio::test]
async fn a_replayed_completion_fails() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    let body = complete_body(&challenge, &credential);
    assert_eq!(app.mfa_complete(&[], &body).await.status, StatusCode::OK);
    app.mfa_complete(&[], &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

#[tokio::test]
async fn twenty_concurrent_completions_of_one_challenge_yield_one_token() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    let body = complete_body(&challenge, &credential);
    let replies = futures::future::join_all((0..20).map(|_| app.mfa_complete(&[], &body))).await;
    let ok: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    }
}

#[tokio::test]
async fn an_expired_challenge_is_not_found() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    app.clock.advance(301);
    app.mfa_complete(&[], &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    let fresh = app.mfa_challenge(&app.user).await;
    app.clock.advance(301);
    app.mfa_options(&[], &json!({ "challenge_id": fresh }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

/// Takes the options issued for `app.user` and lets `other` sign them with its own credential.
fn sign_with_foreign_credential(
    options: &Value,
    other: &mut Authenticator,
    other_id: &str,
) -> Value {
    let mut forged = options.clone();
    forged["allowCredentials"] = json!([{ "type": "public-key", "id": other_id }]);
    other.authenticate(&forged, ORIGIN).unwrap()
}

#[tokio::test]
async fn another_users_credential_is_refused() {
    let app = TestApp::new().await;
    let _alice_key = enrolled(&app, FIDO).await;
    let bob = app.add_user("bob@example.com").await;
    let mut bob_key = Authenticator::security_key();
    assert_eq!(
        app.enroll_user(&bob, &mut bob_key, FIDO).await.status,
        StatusCode::OK
    );
    let bob_id = app
        .store
        .list_credentials(&bob.tenant_id, &bob.user_id)
        .await
        .unwrap()[0]
        .credential_id
        .to_base64url();

    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    let credential = sign_with_foreign_credential(&options.body["options"], &mut bob_key, &bob_id);
    app.mfa_complete(&[], &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credential");
}

#[tokio::test]
async fn another_tenants_credential_is_a_tenant_mismatch() {
    let app = TestApp::new().await;
    let _alice_key = enrolled(&app, FIDO).await;
    let other = TestApp::new().await;
    let mut other_key = enrolled(&other, FIDO).await;
    let other_id = other
        .store
        .list_credentials(&other.tenant.tenant_id, &other.user.user_id)
        .await
        .unwrap()[0]
        .credential_id
        .to_base64url();

    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    let credential =
        sign_with_foreign_credential(&options.body["options"], &mut other_key, &other_id);
    app.mfa_complete(&[], &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
}

#[tokio::test]
async fn a_tenant_header_must_match_the_challenge() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let other = TenantId::new_random();
    let challenge = app.mfa_challenge(&app.user).await;
    let header = vec![("x-tenant-id".to_string(), other.to_string())];
    app.mfa_options(&header, &json!({ "challenge_id": challenge }))
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    app.mfa_complete(&header, &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
}

fn edit_b64(credential: &mut Value, field: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = URL_SAFE_NO_PAD
        .decode(credential["response"][field].as_str().unwrap())
        .unwrap();
    edit(&mut bytes);
    credential["response"][field] = Value::String(URL_SAFE_NO_PAD.encode(bytes));
}

fn edit_client_data(credential: &mut Value, key: &str, value: &str) {
    edit_b64(credential, "clientDataJSON", |bytes| {
        let mut data: Value = serde_json::from_slice(bytes).unwrap();
        data[key] = json!(value);
        *bytes = serde_json::to_vec(&data).unwrap();
    });
}

type Tamper = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn tampered_assertions_are_401_invalid_credential() {
    let app = TestApp::new().await;
    let mut key = enrolled(&app, FIDO).await;
    let tamper: Vec<Tamper> = vec![
        Box::new(|c| edit_b64(c, "signature", |s| s[10] ^= 0x01)),
        Box::new(|c| edit_b64(c, "authenticatorData", |a| a[33] ^= 0x01)),
        Box::new(|c| edit_client_data(c, "origin", "https://evil.example")),
        Box::new(|c| {
            edit_client_data(
                c,
                "challenge",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
        }),
        Box::new(|c| edit_client_data(c, "type", "webauthn.create")),
    ];
    for edit in tamper {
        let (challenge, mut credential) = app.mfa_assertion(&app.user, &mut key).await;
        edit(&mut credential);
        app.mfa_complete(&[], &complete_body(&challenge, &credential))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credential");
    }
    // A genuine assertion made for a phishing page (its own origin and RP id) fails too.
    let fresh = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": fresh }))
        .await;
    let mut phishing = options.body["options"].clone();
    phishing["rpId"] = json!("evil.example");
    let phished = key.authenticate(&phishing, "https://evil.example").unwrap();
    app.mfa_complete(&[], &complete_body(&fresh, &phished))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credential");
}

#[tokio::test]
async fn a_cloned_security_key_is_rejected_by_its_counter() {
    let app = TestApp::new().await;
    let mut original = enrolled(&app, FIDO).await;
    let mut clone = original.clone_security_key();
    assert_eq!(
        app.mfa_login(&app.user, &mut original).await.status,
        StatusCode::OK
    );
    // The clone's counter is behind the original's.
    app.mfa_login(&app.user, &mut clone)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored[0].use_count, 1);
}

#[tokio::test]
async fn a_synced_passkeys_counter_regression_is_allowed_and_audited() {
    let app = TestApp::new().await;
    let mut passkey = enrolled(&app, PASSKEY).await;
    assert_eq!(
        app.mfa_login(&app.user, &mut passkey).await.status,
        StatusCode::OK
    );
    // Another device of the same synced passkey reported a higher counter.
    let mut record = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.registration_sign_count, 0);
    record.sign_count = 50;
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().credentials)
        .set_item(Some(serde_dynamo::to_item(&record).unwrap()))
        .send()
        .await
        .unwrap();
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(after.counter_regressions, 1);
    assert_eq!(
        after.sign_count, 50,
        "a lower counter never lowers the stored one"
    );
    assert_eq!(after.use_count, 2);
}

#[tokio::test]
async fn too_few_authenticators_get_a_setup_only_token() {
    let app = TestApp::with_tenant(|t| t.min_authenticators = 2).await;
    let mut key = enrolled(&app, FIDO).await;
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["mfa_setup_required"], true);
    assert_eq!(reply.body["enrollment_required"], false);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let claims = verify_with_jwks(&app.jwks_document().await.body, &token);
    assert_eq!(claims["scope"], MFA_SETUP_SCOPE);

    // The MFA enrollment endpoints accept it…
    let headers = app.auth_headers(&token);
    assert_eq!(
        app.register_options(&headers, Some(PASSKEY)).await.status,
        StatusCode::OK
    );
    // …every other use refuses it.
    let req = api_request("/v1/anything", &[], &headers, None);
    let err = authenticate(
        &req,
        &app.register_options.common.tokens,
        app.clock_now(),
        Accepts::FullAccess,
    )
    .unwrap_err();
    assert_eq!(err.code(), shared::error::ErrorCode::InsufficientScope);

    // After a second enrollment the same policy yields a full token.
    assert_eq!(
        app.enroll(&mut Authenticator::passkey(), PASSKEY, "second")
            .await
            .status,
        StatusCode::OK
    );
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.body["mfa_setup_required"], false);
    let claims = verify_with_jwks(
        &app.jwks_document().await.body,
        reply.body["token"].as_str().unwrap(),
    );
    assert!(claims.get("scope").is_none());
}

#[tokio::test]
async fn a_missing_required_method_gets_an_enrollment_grant_instead_of_a_token() {
    let app = TestApp::with_tenant(|t| t.required_methods = vec![MethodType::WebauthnFido]).await;
    let mut passkey = enrolled(&app, PASSKEY).await;
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["enrollment_required"], true);
    assert_eq!(reply.body["token"], Value::Null);
    let grant = reply.body["challenge_id"].as_str().unwrap().to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap()).is_ok()
    );

    // The grant authorises exactly that enrollment, without a token.
    let tenant = vec![("x-tenant-id".to_string(), app.tenant.tenant_id.to_string())];
    let query =
        |method: &'static str| vec![("method_type", method), ("challenge_id", grant.as_str())];
    let call = |q: Vec<(&str, &str)>| {
        let req = api_request("/v1/users/me/mfa/webauthn/register", &q, &tenant, None);
        invoke(req, |req| {
            register_options::handler(&app.register_options, req)
        })
    };
    call(query(PASSKEY))
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    let options = call(query(FIDO)).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let mut key = Authenticator::security_key();
    let credential = key.register(&options.body["options"], ORIGIN).unwrap();
    let body = json!({ "credential": credential, "device_name": "Key", "method_type": FIDO, "challenge_id": grant });
    let done = app.register_complete(&tenant, &body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // Used up: the same grant cannot start another enrollment.
    call(query(FIDO))
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");

    // With the required method enrolled, MFA now issues a full token.
    let reply = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(reply.body["enrollment_required"], false);
    assert!(reply.body["token"].is_string());
}

#[tokio::test]
async fn an_enrollment_grant_of_another_tenant_is_a_mismatch() {
    let app = TestApp::with_tenant(|t| t.required_methods = vec![MethodType::WebauthnFido]).await;
    let mut passkey = enrolled(&app, PASSKEY).await;
    let reply = app.mfa_login(&app.user, &mut passkey).await;
    let grant = reply.body["challenge_id"].as_str().unwrap().to_owned();
    let other = vec![(
        "x-tenant-id".to_string(),
        TenantId::new_random().to_string(),
    )];
    let req = api_request(
        "/v1/users/me/mfa/webauthn/register",
        &[("method_type", FIDO), ("challenge_id", &grant)],
        &other,
        None,
    );
    invoke(req, |req| {
        register_options::handler(&app.register_options, req)
    })
    .await
    .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
}

async fn first_codes(app: &TestApp) -> Vec<String> {
    let reply = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    reply.body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_backup_code_works_once() {
    let app = TestApp::new().await;
    let codes = first_codes(&app).await;
    let challenge = app.mfa_challenge(&app.user).await;
    let reply = app.backup_code(&challenge, &codes[3].to_lowercase()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = verify_with_jwks(
        &app.jwks_document().await.body,
        reply.body["token"].as_str().unwrap(),
    );
    assert_eq!(claims["amr"], json!(["otp", "mfa"]));
    let stored = app
        .store
        .get_backup_codes(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.remaining(), 9);

    let again = app.mfa_challenge(&app.user).await;
    app.backup_code(&again, &codes[3])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    // The challenge itself is single-use too.
    app.backup_code(&challenge, &codes[4])
        .await
        .assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
}

/// The user's backup-code outcomes in the audit trail, sorted: `(outcome, code)`.
async fn backup_code_audit(app: &TestApp) -> Vec<(String, Option<String>)> {
    let mut records = app
        .store
        .list_audit_records(&app.tenant.tenant_id, Some(&app.user.user_id), 200)
        .await
        .expect("audit records");
    records.retain(|r| r.method.as_deref() == Some("backup_code"));
    let mut outcomes: Vec<_> = records.into_iter().map(|r| (r.outcome, r.code)).collect();
    outcomes.sort();
    outcomes
}

/// Codes are slotted by their keyed hash, so a redemption is one write with no read of the
/// codes; each attempt leaves exactly one audit record, written with that write.
#[tokio::test]
async fn backup_codes_are_slotted_by_hash_and_each_attempt_is_audited_once() {
    let app = TestApp::new().await;
    let codes = first_codes(&app).await;
    let codes_of = || async {
        app.store
            .get_backup_codes(&app.tenant.tenant_id, &app.user.user_id)
            .await
            .unwrap()
            .unwrap()
    };
    let stored = codes_of().await;
    assert!(stored.keyed_by_hash());
    assert!(stored
        .codes
        .iter()
        .all(|(slot, hash)| slot.len() == 32 && hash.starts_with(slot.as_str())));

    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, "0000-0000-0000")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    assert_eq!(codes_of().await.failed_attempts, 1);
    let challenge = app.mfa_challenge(&app.user).await;
    let reply = app.backup_code(&challenge, &codes[5]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = codes_of().await;
    assert_eq!((after.remaining(), after.failed_attempts), (9, 0));
    assert_eq!(
        backup_code_audit(&app).await,
        vec![
            ("failure".to_owned(), Some("invalid_backup_code".to_owned())),
            ("success".to_owned(), None),
        ]
    );
}

/// Records written before slots were named after hashes (`"0"`…`"9"`) keep working: the
/// refused redemption returns the record, its slots are searched, and the code is redeemed
/// once; a wrong code is counted as before.
#[tokio::test]
async fn backup_codes_stored_in_numbered_slots_still_redeem_once() {
    let app = TestApp::new().await;
    let codes = first_codes(&app).await;
    let (tenant, user) = (&app.tenant.tenant_id, &app.user.user_id);
    let mut legacy = app
        .store
        .get_backup_codes(tenant, user)
        .await
        .unwrap()
        .unwrap();
    legacy.codes = legacy
        .codes
        .into_values()
        .enumerate()
        .map(|(slot, hash)| (slot.to_string(), hash))
        .collect();
    assert!(!legacy.keyed_by_hash());
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().backup_codes)
        .set_item(Some(serde_dynamo::to_item(&legacy).unwrap()))
        .send()
        .await
        .unwrap();

    let challenge = app.mfa_challenge(&app.user).await;
    let reply = app.backup_code(&challenge, &codes[2]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, &codes[2])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    let stored = app
        .store
        .get_backup_codes(tenant, user)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.remaining(), stored.used.len()), (9, 1));
    assert_eq!(stored.failed_attempts, 1);
    assert_eq!(
        backup_code_audit(&app).await,
        vec![
            ("failure".to_owned(), Some("invalid_backup_code".to_owned())),
            ("success".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn a_backup_code_belongs_to_one_user() {
    let app = TestApp::new().await;
    let alice_codes = first_codes(&app).await;
    let bob = app.add_user("bob@example.com").await;
    assert_eq!(
        app.enroll_user(&bob, &mut Authenticator::security_key(), FIDO)
            .await
            .status,
        StatusCode::OK
    );
    let challenge = app.mfa_challenge(&bob).await;
    app.backup_code(&challenge, &alice_codes[0])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
}

#[tokio::test]
async fn one_code_redeemed_concurrently_passes_once() {
    let app = TestApp::new().await;
    let codes = first_codes(&app).await;
    let mut challenges = Vec::new();
    for _ in 0..5 {
        challenges.push(app.mfa_challenge(&app.user).await);
    }
    let replies =
        futures::future::join_all(challenges.iter().map(|c| app.backup_code(c, &codes[0]))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    }
}

#[tokio::test]
async fn wrong_codes_lock_redemption_for_a_while() {
    let app = TestApp::new().await;
    let codes = first_codes(&app).await;
    for attempt in 1..=shared::codes::MAX_FAILED_ATTEMPTS {
        let challenge = app.mfa_challenge(&app.user).await;
        let reply = app.backup_code(&challenge, "0000-0000-0000").await;
        if attempt < shared::codes::MAX_FAILED_ATTEMPTS {
            reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
        } else {
            reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "backup_codes_locked");
            assert!(reply.body["details"]["locked_until"].is_string());
        }
    }
    // Even the right code waits out the lockout…
    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, &codes[0])
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "backup_codes_locked");
    // …and works after it.
    app.clock.advance(shared::codes::LOCKOUT_SECS + 1);
    let challenge = app.mfa_challenge(&app.user).await;
    assert_eq!(
        app.backup_code(&challenge, &codes[0]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_mfa_requests_are_400() {
    let app = TestApp::new().await;
    for body in [json!({}), json!({ "challenge_id": "nope" })] {
        app.mfa_options(&[], &body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    app.mfa_complete(
        &[],
        &json!({ "challenge_id": ChallengeId::new_random(), "credential": {} }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A 400 does not use the challenge up: it is still there, and as the user has nothing
    // to sign with yet, options trade it for a grant to enroll a first authenticator.
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    assert_eq!(options.body["enrollment_required"], true);
}

#[tokio::test]
async fn the_jwks_document_publishes_only_public_keys() {
    let app = TestApp::new().await;
    let req = api_call("GET", "/.well-known/jwks.json", &[], &[], &[], None);
    let reply = invoke(req, |req| jwks::handler(&app.jwks, req)).await;
    assert_eq!(
        reply.headers.get("cache-control").unwrap(),
        "public, max-age=300"
    );
    let key = &reply.body["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["kid"], app.key.kid());
    assert!(key.get("d").is_none());
    let _ = auth_headers;
}

#[tokio::test]
async fn the_jwks_document_is_read_only() {
    let app = TestApp::new().await;
    let head = api_call("HEAD", "/.well-known/jwks.json", &[], &[], &[], None);
    let reply = invoke(head, |req| jwks::handler(&app.jwks, req)).await;
    assert_eq!(reply.status, StatusCode::OK);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let req = api_call(method, "/.well-known/jwks.json", &[], &[], &[], None);
        let reply = invoke(req, |req| jwks::handler(&app.jwks, req)).await;
        assert_eq!(reply.headers.get("allow").unwrap(), "GET, HEAD");
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

use shared::ids::TenantId;

#[tokio::test]
async fn every_mfa_outcome_is_audited_without_secrets() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    let enrolled = app.enroll(&mut key, FIDO, "key").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let codes: Vec<String> = serde_json::from_value(enrolled.body["codes"].clone()).unwrap();

    let ok = app.mfa_login(&app.user, &mut key).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, "0000-0000-0000")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
    let challenge = app.mfa_challenge(&app.user).await;
    let redeemed = app.backup_code(&challenge, &codes[0]).await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.body);
    // An unknown challenge with the tenant header is filed under that tenant, without a user.
    let headers = vec![("x-tenant-id".to_owned(), app.tenant.tenant_id.to_string())];
    let (_, credential) = app.mfa_assertion(&app.user, &mut key).await;
    let unknown = complete_body(&ChallengeId::new_random(), &credential);
    app.mfa_complete(&headers, &unknown)
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
    let seen: Vec<(&str, &str, Option<&str>, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.outcome.as_str(),
                r.code.as_deref(),
                r.method.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("mfa_backup_code", "success", None, Some("backup_code")),
            (
                "mfa_backup_code",
                "failure",
                Some("invalid_backup_code"),
                Some("backup_code")
            ),
            ("mfa_webauthn", "success", None, Some(FIDO)),
        ]
    );
    assert!(records[2].credential_id.is_some());
    assert_eq!(records[2].ip.as_deref(), Some("127.0.0.1"));
    let raw = serde_json::to_string(&records).unwrap();
    assert!(!raw.contains(ok.body["token"].as_str().unwrap()));
    assert!(!raw.contains(&codes[0]));

    let tenant_wide = app
        .store
        .list_audit_records(&app.tenant.tenant_id, None, 10)
        .await
        .unwrap()
        // Authentication outcomes only: enrollments are audited too.
        .into_iter()
        .filter(|r| r.event != "credential_registered")
        .collect::<Vec<_>>();
    // An unknown challenge establishes no tenant: that attempt is logged, never filed under
    // the tenant its header names.
    assert!(
        tenant_wide.iter().all(|r| r.user_id.is_some()),
        "{tenant_wide:?}"
    );
}
