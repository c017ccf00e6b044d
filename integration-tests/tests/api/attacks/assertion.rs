//! Assertion attacks (WebAuthn L3 §7.2, Verifying an Authentication Assertion) against MFA
//! completion (`/v1/auth/mfa/webauthn/complete`, seed error body) and passwordless completion
//! (`/api/v1/webauthn/authenticate/complete`, `/api/v1` error body). Legitimate parts are real
//! soft authenticators; bytes no compliant authenticator would produce come from the forge
//! (the real private key of a `SoftToken` credential).

use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::store::{CredentialRecord, UserRecord};
use shared::tenant::UserVerification;

use super::forge::{
    complete_body, enrolled_token, mfa_options, StolenKey, BE, BS, FIDO, PASSKEY, UP, UV,
};
use crate::harness::{Authenticator, Reply, TestApp, ORIGIN};

async fn credentials(app: &TestApp, user: &UserRecord) -> Vec<CredentialRecord> {
    app.store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
}

async fn only_credential(app: &TestApp, user: &UserRecord) -> CredentialRecord {
    let mut all = credentials(app, user).await;
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// The refused assertion changed nothing on the credential.
async fn assert_unused(app: &TestApp, user: &UserRecord, sign_count: u32, use_count: u64) {
    let record = only_credential(app, user).await;
    assert_eq!(record.sign_count, sign_count, "stored counter unchanged");
    assert_eq!(record.use_count, use_count, "no use recorded");
    assert!(!record.backup_eligible, "backup eligibility unchanged");
}

async fn mfa_refused(app: &TestApp, challenge: &shared::ids::ChallengeId, credential: &Value) {
    app.mfa_complete(&[], &complete_body(challenge, credential))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credential");
}

/// A user of the app's tenant with a security key that verifies users, usable for
/// passwordless login, and the key's private key.
async fn passwordless_user(app: &TestApp) -> (UserRecord, Authenticator, StolenKey) {
    let user = app
        .add_user(&format!("user-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let mut token = Authenticator::security_key_with_uv();
    let reply = app.enroll_user(&user, &mut token, FIDO).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let key = StolenKey::from(&token);
    (user, token, key)
}

async fn login_options(app: &TestApp, user: &UserRecord) -> Value {
    let begun = app.login_begin(&app.tenant_headers(), &user.email).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    begun.body["data"]["options"].clone()
}

async fn sessions_of(app: &TestApp, user: &UserRecord) -> usize {
    let out = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().sessions)
        .filter_expression("user_id = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::S(user.user_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default().len()
}

async fn passwordless_refused(app: &TestApp, user: &UserRecord, credential: &Value, code: &str) {
    app.login_complete(&app.tenant_headers(), &user.email, credential)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, code);
    assert_eq!(sessions_of(app, user).await, 0, "no session opened");
}

fn user_handle(user: &UserRecord) -> Option<Vec<u8>> {
    Some(user.user_id.as_uuid().as_bytes().to_vec())
}

// ---- Steps 10–12: the client data ----

#[tokio::test]
async fn w3c_7_2_step_10_client_data_of_type_webauthn_create_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.type_ = "webauthn.create".into();
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_11_assertion_signed_over_another_challenge_is_refused() {
    let app = TestApp::new().await;
    let (mut token, _key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (first, _) = mfa_options(&app).await;
    let (second, second_options) = mfa_options(&app).await;
    // A genuine assertion, made for the second challenge, presented for the first.
    let credential = token.authenticate(&second_options, ORIGIN).unwrap();
    mfa_refused(&app, &first, &credential).await;
    assert_unused(&app, &app.user, 0, 0).await;
    // The same assertion is good for the challenge it was made for.
    let reply = app
        .mfa_complete(&[], &complete_body(&second, &credential))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn w3c_7_2_step_12_origin_with_another_scheme_is_refused() {
    let app = TestApp::new().await;
    let (mut token, _key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    // A real client on https://localhost:3000: same host and port, other scheme.
    let credential = token
        .authenticate(&options, "https://localhost:3000")
        .unwrap();
    mfa_refused(&app, &challenge, &credential).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_12_origin_with_another_port_is_refused() {
    let app = TestApp::new().await;
    let (mut token, _key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let credential = token
        .authenticate(&options, "http://localhost:3001")
        .unwrap();
    mfa_refused(&app, &challenge, &credential).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_12_origin_of_a_subdomain_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    // No client lets plain http use a subdomain of localhost as RP id; a tampered one does.
    let mut forgery = key.assertion(&options);
    forgery.origin = "http://evil.localhost:3000".into();
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

// ---- Step 15: the RP id hash ----

#[tokio::test]
async fn w3c_7_2_step_15_rp_id_hash_of_another_rp_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    // The right origin and challenge, but authenticator data scoped to another RP.
    let mut forgery = key.assertion(&options);
    forgery.rp_id = "evil.example".into();
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_15_rp_id_hash_of_another_rp_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (user, _token, key) = passwordless_user(&app).await;
    let options = login_options(&app, &user).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | UV;
    forgery.user_handle = user_handle(&user);
    forgery.rp_id = "evil.example".into();
    passwordless_refused(&app, &user, &forgery.credential(), "INVALID_ASSERTION").await;
    assert_unused(&app, &user, 0, 0).await;
}

// ---- Steps 16 and 17: user presence and verification ----

#[tokio::test]
async fn w3c_7_2_step_16_assertion_without_user_presence_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = 0;
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_16_assertion_without_user_presence_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (user, _token, key) = passwordless_user(&app).await;
    let options = login_options(&app, &user).await;
    let mut forgery = key.assertion(&options);
    // "Verified" a user who was never present: UV without UP.
    forgery.flags = UV;
    forgery.user_handle = user_handle(&user);
    passwordless_refused(&app, &user, &forgery.credential(), "INVALID_ASSERTION").await;
    assert_unused(&app, &user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_17_assertion_without_uv_on_a_uv_required_tenant_is_refused() {
    let app = TestApp::with_tenant(|t| t.user_verification = UserVerification::Required).await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key_with_uv(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    assert_eq!(options["userVerification"], "required");
    let mut forgery = key.assertion(&options);
    forgery.flags = UP;
    app.mfa_complete(&[], &complete_body(&challenge, &forgery.credential()))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "user_verification_required");
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_17_passkey_assertion_without_uv_is_refused() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    let reply = app.enroll(&mut passkey, PASSKEY, "Passkey").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (challenge, options) = mfa_options(&app).await;
    assert_eq!(options["userVerification"], "required");
    // A client that downgrades the request gets a real assertion without UV.
    let mut weakened = options.clone();
    weakened["userVerification"] = json!("discouraged");
    let credential = passkey.authenticate(&weakened, ORIGIN).unwrap();
    app.mfa_complete(&[], &complete_body(&challenge, &credential))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "user_verification_required");
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_17_assertion_without_uv_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (user, _token, key) = passwordless_user(&app).await;
    let options = login_options(&app, &user).await;
    assert_eq!(options["userVerification"], "required");
    let mut forgery = key.assertion(&options);
    forgery.flags = UP;
    forgery.user_handle = user_handle(&user);
    passwordless_refused(&app, &user, &forgery.credential(), "INVALID_ASSERTION").await;
    assert_unused(&app, &user, 0, 0).await;
}

// ---- Steps 18 and 19: backup eligibility and state ----

#[tokio::test]
async fn w3c_7_2_step_18_backup_state_without_backup_eligibility_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | BS;
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

/// A security key registered without BE that suddenly claims backup eligibility: its key may
/// have been copied out (step 19: if the record is not backup eligible, BE must not be set).
#[tokio::test]
async fn w3c_7_2_step_19_backup_eligibility_appearing_on_a_security_key_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | BE;
    app.mfa_complete(&[], &complete_body(&challenge, &forgery.credential()))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    assert_unused(&app, &app.user, 0, 0).await;
}

/// The same flip under a UV-required ceremony (webauthn-rs's passkey API, which allows a
/// non-eligible credential to "upgrade" to backup eligible).
#[tokio::test]
async fn w3c_7_2_step_19_backup_eligibility_appearing_in_a_uv_required_ceremony_is_refused() {
    let app = TestApp::with_tenant(|t| t.user_verification = UserVerification::Required).await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key_with_uv(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | UV | BE;
    app.mfa_complete(&[], &complete_body(&challenge, &forgery.credential()))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    assert_unused(&app, &app.user, 0, 0).await;
}

/// Why the flip matters: a record marked backup eligible "may be synced", and then a counter
/// that goes backwards is allowed. A clone that flips BE first must not escape step 22.
#[tokio::test]
async fn w3c_7_2_step_22_clone_claiming_backup_eligibility_is_still_refused() {
    let app = TestApp::with_tenant(|t| t.user_verification = UserVerification::Required).await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key_with_uv(), FIDO).await;
    // The owner logs in: counter 10.
    let (challenge, options) = mfa_options(&app).await;
    let mut genuine = key.assertion(&options);
    genuine.flags = UP | UV;
    genuine.counter = 10;
    let reply = app
        .mfa_complete(&[], &complete_body(&challenge, &genuine.credential()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The clone first claims backup eligibility with a counter ahead (refused by step 19, or,
    // if that slips through, the record is marked backup eligible)…
    let (challenge, options) = mfa_options(&app).await;
    let mut flip = key.assertion(&options);
    flip.flags = UP | UV | BE;
    flip.counter = 11;
    let flipped = app
        .mfa_complete(&[], &complete_body(&challenge, &flip.credential()))
        .await;
    // …then signs with a counter behind the owner's, as a synced passkey may. Step 22 must
    // still catch it.
    let (challenge, options) = mfa_options(&app).await;
    let mut clone = key.assertion(&options);
    clone.flags = UP | UV | BE;
    clone.counter = 3;
    let cloned = app
        .mfa_complete(&[], &complete_body(&challenge, &clone.credential()))
        .await;
    cloned.assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    flipped.assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    assert_unused(&app, &app.user, 10, 1).await;
}

#[tokio::test]
async fn w3c_7_2_step_19_backup_eligibility_appearing_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (user, _token, key) = passwordless_user(&app).await;
    let options = login_options(&app, &user).await;
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | UV | BE;
    forgery.user_handle = user_handle(&user);
    passwordless_refused(&app, &user, &forgery.credential(), "INVALID_ASSERTION").await;
    assert_unused(&app, &user, 0, 0).await;
}

// ---- Step 21: the signature ----

#[tokio::test]
async fn w3c_7_2_step_21_signature_over_other_client_data_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (_, other_options) = mfa_options(&app).await;
    let (challenge, options) = mfa_options(&app).await;
    // The client data of this challenge is sent; the signature covers another challenge's.
    let other = key.assertion(&other_options).client_data_json();
    let mut forgery = key.assertion(&options);
    forgery.signed_client_data = Some(other);
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_21_signature_by_another_key_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    // The attacker's own token, enrolled nowhere, signs in the victim credential's name.
    let mut attacker = Authenticator::security_key();
    let other = TestApp::new().await;
    let reply = other.enroll(&mut attacker, FIDO, "Attacker").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let attacker_key = StolenKey::from(&attacker);
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = attacker_key.assertion(&options);
    forgery.credential_id = key.credential_id.clone();
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

// ---- Steps 5 and 6: which credential, whose credential ----

#[tokio::test]
async fn w3c_7_2_step_5_unknown_credential_id_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.credential_id = uuid::Uuid::new_v4().as_bytes().repeat(2);
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_5_credential_registered_after_the_options_were_issued_is_refused() {
    let app = TestApp::new().await;
    let (_first, _) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    // A second key of the same user, enrolled after allowCredentials was fixed.
    let (mut second, second_key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let mut retargeted = options.clone();
    retargeted["allowCredentials"] = json!([{
        "type": "public-key",
        "id": super::forge::b64(&second_key.credential_id),
    }]);
    let credential = second.authenticate(&retargeted, ORIGIN).unwrap();
    mfa_refused(&app, &challenge, &credential).await;
    let records = credentials(&app, &app.user).await;
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r.use_count == 0 && r.sign_count == 0));
    // The second key itself is fine with options that list it.
    let reply = app.mfa_login(&app.user, &mut second).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

async fn bob_with_key(app: &TestApp) -> (UserRecord, Authenticator, StolenKey) {
    let bob = app
        .add_user(&format!("bob-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let mut token = Authenticator::security_key_with_uv();
    let reply = app.enroll_user(&bob, &mut token, FIDO).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let key = StolenKey::from(&token);
    (bob, token, key)
}

#[tokio::test]
async fn w3c_7_2_step_6_another_users_credential_is_refused() {
    let app = TestApp::new().await;
    let (_token, _key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (bob, mut bob_token, bob_key) = bob_with_key(&app).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut retargeted = options.clone();
    retargeted["allowCredentials"] = json!([{
        "type": "public-key",
        "id": super::forge::b64(&bob_key.credential_id),
    }]);
    let credential = bob_token.authenticate(&retargeted, ORIGIN).unwrap();
    mfa_refused(&app, &challenge, &credential).await;
    assert_unused(&app, &app.user, 0, 0).await;
    assert_unused(&app, &bob, 0, 0).await;
}

#[tokio::test]
async fn w3c_7_2_step_6_another_users_credential_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (alice, _token, _key) = passwordless_user(&app).await;
    let (bob, _bob_token, bob_key) = bob_with_key(&app).await;
    let options = login_options(&app, &alice).await;
    // Bob's genuine, verified assertion over alice's challenge, naming bob as its user.
    let mut forgery = bob_key.assertion(&options);
    forgery.flags = UP | UV;
    forgery.user_handle = user_handle(&bob);
    passwordless_refused(&app, &alice, &forgery.credential(), "INVALID_CREDENTIAL").await;
    assert_unused(&app, &alice, 0, 0).await;
    assert_unused(&app, &bob, 0, 0).await;
    assert_eq!(sessions_of(&app, &bob).await, 0);
}

#[tokio::test]
async fn w3c_7_2_step_6_user_handle_naming_another_user_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (alice, _token, key) = passwordless_user(&app).await;
    let (bob, _bob_token, _bob_key) = bob_with_key(&app).await;
    let options = login_options(&app, &alice).await;
    // Alice's own key and a valid signature, but the response claims to be bob's.
    let mut forgery = key.assertion(&options);
    forgery.flags = UP | UV;
    forgery.user_handle = user_handle(&bob);
    passwordless_refused(&app, &alice, &forgery.credential(), "INVALID_ASSERTION").await;
    assert_unused(&app, &alice, 0, 0).await;
    assert_eq!(sessions_of(&app, &bob).await, 0);
}

/// Step 6: "If response.userHandle is present, verify that it equals the user handle of the
/// user account." The handle is not signed, so this is a consistency check, not a forgery
/// barrier; both completions make it (`shared::webauthn::finish_authentication`).
#[tokio::test]
async fn w3c_7_2_step_6_user_handle_naming_another_user_is_refused_on_mfa() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (bob, _bob_token, _bob_key) = bob_with_key(&app).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.user_handle = user_handle(&bob);
    mfa_refused(&app, &challenge, &forgery.credential()).await;
    assert_unused(&app, &app.user, 0, 0).await;
}

// ---- Step 22: the signature counter ----

#[tokio::test]
async fn w3c_7_2_step_22_counter_regression_on_a_security_key_is_refused() {
    let app = TestApp::new().await;
    let (_token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    let (challenge, options) = mfa_options(&app).await;
    let mut genuine = key.assertion(&options);
    genuine.counter = 10;
    let reply = app
        .mfa_complete(&[], &complete_body(&challenge, &genuine.credential()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A copy of the key replays the same counter, or one behind it.
    for counter in [10, 9, 1] {
        let (challenge, options) = mfa_options(&app).await;
        let mut clone = key.assertion(&options);
        clone.counter = counter;
        app.mfa_complete(&[], &complete_body(&challenge, &clone.credential()))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    }
    assert_unused(&app, &app.user, 10, 1).await;
}

#[tokio::test]
async fn w3c_7_2_step_22_counter_regression_is_refused_on_passwordless_login() {
    let app = TestApp::new().await;
    let (user, _token, key) = passwordless_user(&app).await;
    let options = login_options(&app, &user).await;
    let mut genuine = key.assertion(&options);
    genuine.flags = UP | UV;
    genuine.counter = 10;
    genuine.user_handle = user_handle(&user);
    let reply: Reply = app
        .login_complete(&app.tenant_headers(), &user.email, &genuine.credential())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let options = login_options(&app, &user).await;
    let mut clone = key.assertion(&options);
    clone.flags = UP | UV;
    clone.counter = 9;
    clone.user_handle = user_handle(&user);
    app.login_complete(&app.tenant_headers(), &user.email, &clone.credential())
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_ASSERTION");
    assert_eq!(sessions_of(&app, &user).await, 1, "only the genuine login");
    assert_unused(&app, &user, 10, 1).await;
}
