//! Seeds 002 and 001: registration options and completion for passkeys and security keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::ids::CredentialId;
use shared::tenant::{MethodType, UserVerification};

use crate::harness::{auth_headers, Authenticator, TestApp, ORIGIN, PEPPER, RP_ID};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

#[tokio::test]
async fn passkey_options_ask_for_a_discoverable_user_verified_credential() {
    let app = TestApp::new().await;
    let reply = app
        .register_options(&app.auth_headers(&app.token()), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let options = &reply.body["options"];
    // Bare creation options, not wrapped in `publicKey`.
    assert!(options.get("publicKey").is_none());
    assert_eq!(options["rp"]["id"], RP_ID);
    assert_eq!(options["user"]["name"], "alice@example.com");
    assert_eq!(options["user"]["displayName"], "Alice");
    let user_handle = URL_SAFE_NO_PAD
        .decode(options["user"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(user_handle, app.user.user_id.as_uuid().as_bytes());
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    assert!(options["challenge"].as_str().unwrap().len() >= 43);
    assert!(options.get("excludeCredentials").is_none());
}

#[tokio::test]
async fn security_key_options_are_consistent_for_chromium() {
    let app = TestApp::new().await;
    let reply = app
        .register_options(&app.auth_headers(&app.token()), Some(FIDO))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let options = &reply.body["options"];
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["userVerification"], "preferred");
    assert_eq!(selection["authenticatorAttachment"], "cross-platform");
    assert_eq!(options["hints"], json!(["security-key"]));
    // Chromium refuses credProtect=userVerificationRequired unless UV is required (#490).
    let policy = &options["extensions"]["credentialProtectionPolicy"];
    assert_ne!(policy, "userVerificationRequired", "{options}");
}

#[tokio::test]
async fn security_keys_of_a_uv_required_tenant_must_verify_the_user() {
    let app = TestApp::with_tenant(|t| t.user_verification = UserVerification::Required).await;
    let reply = app
        .register_options(&app.auth_headers(&app.token()), Some(FIDO))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let options = &reply.body["options"];
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options["hints"], json!(["security-key"]));
}

#[tokio::test]
async fn passkey_registration_stores_the_credential_and_returns_backup_codes() {
    let app = TestApp::new().await;
    let mut passkey = Authenticator::passkey();
    let reply = app
        .enroll(&mut passkey, PASSKEY, "  MacBook Touch ID  ")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let codes = reply.body["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(reply.body["remaining"], 10);

    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let cred = &stored[0];
    assert_eq!(cred.method_type, MethodType::WebauthnPasskey);
    assert_eq!(cred.device_name, "MacBook Touch ID");
    assert_eq!(cred.tenant_id, app.tenant.tenant_id);
    assert_eq!(cred.user_id, app.user.user_id);
    assert!(cred.user_verified);
    assert_eq!(cred.use_count, 0);
    assert_eq!(cred.last_used_at, None);
    assert_eq!(cred.created_at, app.clock_now());
    assert!(!cred.credential_id.as_bytes().is_empty());
    // The public key is stored and parses back into a webauthn-rs credential.
    let parsed: webauthn_rs::prelude::Credential =
        serde_json::from_str(&cred.webauthn_credential).unwrap();
    assert_eq!(parsed.cred_id.as_slice(), cred.credential_id.as_bytes());
    // Also findable by credential id alone.
    let by_id = app
        .store
        .find_credentials_by_id(&cred.credential_id)
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
}

#[tokio::test]
async fn security_key_registration_stores_a_fido_credential() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    let reply = app.enroll(&mut key, FIDO, "YubiKey 5C").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["codes"].as_array().unwrap().len(), 10);
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].method_type, MethodType::WebauthnFido);
    assert_eq!(stored[0].device_name, "YubiKey 5C");
    assert!(!stored[0].backup_eligible);
    // SoftToken attests with packed attestation and its own AAGUID.
    assert!(!stored[0].aaguid.is_nil());
}

#[tokio::test]
async fn backup_codes_are_returned_once_stored_hashed_and_counted() {
    let app = TestApp::new().await;
    let first = app
        .enroll(&mut Authenticator::passkey(), PASSKEY, "Phone")
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let codes: Vec<String> = first.body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        codes.iter().collect::<std::collections::HashSet<_>>().len(),
        10
    );

    let record = app
        .store
        .get_backup_codes(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .expect("codes stored");
    assert_eq!(record.remaining(), 10);
    let hasher = shared::codes::BackupCodeHasher::new(PEPPER).unwrap();
    let stored_text = format!("{:?}", record);
    for code in &codes {
        assert!(!stored_text.contains(code.as_str()), "plain code stored");
        assert!(!stored_text.contains(&shared::codes::normalise(code)));
        // Each stored value is the keyed hash of one returned code.
        assert!(hasher
            .find_slot(
                &app.tenant.tenant_id,
                &app.user.user_id,
                code,
                &record.codes
            )
            .is_some());
    }

    // Later enrollments show no codes, only how many are left.
    let second = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["codes"], json!([]));
    assert_eq!(second.body["remaining"], 10);

    // A used code (moved out of `codes`) lowers `remaining`.
    let mut used = record.clone();
    let (slot, _) = used.codes.pop_first().unwrap();
    used.used.insert(slot, app.clock_now());
    app.store
        .client()
        .put_item()
        .table_name(&app.store.tables().backup_codes)
        .set_item(Some(serde_dynamo::to_item(&used).unwrap()))
        .send()
        .await
        .unwrap();
    let third = app
        .enroll(&mut Authenticator::passkey(), PASSKEY, "Laptop")
        .await;
    assert_eq!(third.body["codes"], json!([]));
    assert_eq!(third.body["remaining"], 9);
}

#[tokio::test]
async fn existing_credentials_are_excluded_and_a_duplicate_is_rejected() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let existing = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    let existing_id = existing[0].credential_id.to_base64url();

    let headers = app.auth_headers(&app.token());
    let reply = app.register_options(&headers, Some(PASSKEY)).await;
    let excluded: Vec<&str> = reply.body["options"]["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(excluded, vec![existing_id.as_str()]);

    // An authenticator that presents a credential id already on record is refused, and
    // nothing is written. (A real authenticator would refuse on the exclude list; the soft
    // authenticators always mint a fresh id, so the record is planted under the new id.)
    let mut passkey = Authenticator::passkey();
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let credential = passkey.register(&options.body["options"], ORIGIN).unwrap();
    let new_id = CredentialId::from_base64url(credential["rawId"].as_str().unwrap()).unwrap();
    let mut planted = existing[0].clone();
    planted.credential_id = new_id.clone();
    app.store
        .save_new_credential(&planted, None, None)
        .await
        .unwrap();
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "again", "method_type": PASSKEY }),
        )
        .await;
    reply.assert_error(StatusCode::CONFLICT, "credential_already_registered");
    let after = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(after.len(), 2, "only the original and the planted record");
    assert!(after.iter().all(|c| c.device_name != "again"));
}

#[tokio::test]
async fn a_credential_registered_to_another_user_is_rejected() {
    let app = TestApp::new().await;
    let bob = app.add_user("bob@example.com").await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, FIDO, &mut Authenticator::security_key())
        .await;
    let id = CredentialId::from_base64url(credential["rawId"].as_str().unwrap()).unwrap();
    // Bob already holds a credential with this id.
    let bob_app_record = shared::store::CredentialRecord {
        tenant_user: shared::store::CredentialRecord::key_for(&bob.tenant_id, &bob.user_id),
        credential_id: id,
        tenant_id: bob.tenant_id,
        user_id: bob.user_id,
        method_type: MethodType::WebauthnFido,
        device_name: "bob's key".into(),
        aaguid: uuid::Uuid::nil(),
        backup_eligible: false,
        backup_state: false,
        transports: vec![],
        sign_count: 0,
        registration_sign_count: 0,
        counter_regressions: 0,
        user_verified: false,
        created_at: 0,
        last_used_at: None,
        use_count: 0,
        webauthn_credential: "{}".into(),
    };
    app.store
        .save_new_credential(&bob_app_record, None, None)
        .await
        .unwrap();
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "mine", "method_type": FIDO }),
        )
        .await;
    reply.assert_error(StatusCode::CONFLICT, "credential_already_registered");
    assert!(app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn completing_twice_fails_the_second_time() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut Authenticator::passkey())
        .await;
    let body = json!({ "credential": credential, "device_name": "Phone", "method_type": PASSKEY });
    assert_eq!(
        app.register_complete(&headers, &body).await.status,
        StatusCode::OK
    );
    app.register_complete(&headers, &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
}

#[tokio::test]
async fn concurrent_completions_of_one_enrollment_succeed_exactly_once() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, FIDO, &mut Authenticator::security_key())
        .await;
    let body = json!({ "credential": credential, "device_name": "Key", "method_type": FIDO });
    let replies =
        futures::future::join_all((0..10).map(|_| app.register_complete(&headers, &body))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        reply.assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    }
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn an_expired_enrollment_is_not_found_even_before_ttl_deletes_it() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut Authenticator::passkey())
        .await;
    app.clock
        .advance(i64::from(app.tenant.challenge_timeout_secs) + 1);
    let headers = app.auth_headers(&app.token());
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "Phone", "method_type": PASSKEY }),
        )
        .await;
    reply.assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
}

#[tokio::test]
async fn completing_with_another_method_type_finds_no_enrollment_and_keeps_it() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, FIDO, &mut Authenticator::security_key())
        .await;
    let wrong = json!({ "credential": credential, "device_name": "Key", "method_type": PASSKEY });
    app.register_complete(&headers, &wrong)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    let right = json!({ "credential": credential, "device_name": "Key", "method_type": FIDO });
    assert_eq!(
        app.register_complete(&headers, &right).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_users_enrollment_cannot_be_completed() {
    let app = TestApp::new().await;
    let bob = app.add_user("bob@example.com").await;
    let alice_headers = app.auth_headers(&app.token());
    let options = app.register_options(&alice_headers, Some(PASSKEY)).await;
    let credential = Authenticator::passkey()
        .register(&options.body["options"], ORIGIN)
        .unwrap();
    let body = json!({ "credential": credential, "device_name": "x", "method_type": PASSKEY });
    app.register_complete(&app.auth_headers(&app.token_for(&bob)), &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    assert_eq!(
        app.register_complete(&alice_headers, &body).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn device_names_must_have_one_to_a_hundred_characters() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut Authenticator::passkey())
        .await;
    for bad in ["", "   ", &"x".repeat(101)] {
        let body = json!({ "credential": credential, "device_name": bad, "method_type": PASSKEY });
        let reply = app.register_complete(&headers, &body).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["details"]["field"], "device_name");
    }
    // Refusing the name did not use up the enrollment; exactly 100 characters is fine.
    let body =
        json!({ "credential": credential, "device_name": "x".repeat(100), "method_type": PASSKEY });
    assert_eq!(
        app.register_complete(&headers, &body).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_400s() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    app.register_options(&headers, Some("sms"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"device_name":"x","method_type":"webauthn_passkey"}"#,
        r#"{"credential":{},"device_name":"x","method_type":"webauthn_passkey"}"#,
    ] {
        app.register_complete_raw(&headers, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut Authenticator::passkey())
        .await;
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "x", "method_type": "totp" }),
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let bad_tenant = vec![
        headers[0].clone(),
        ("x-tenant-id".to_string(), "not-a-uuid".to_string()),
    ];
    app.register_options(&bad_tenant, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let no_tenant = vec![headers[0].clone()];
    app.register_options(&no_tenant, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_method_the_tenant_has_not_enabled_is_not_implemented() {
    let app = TestApp::with_tenant(|t| t.methods = vec![MethodType::WebauthnPasskey]).await;
    let headers = app.auth_headers(&app.token());
    app.register_options(&headers, Some(FIDO))
        .await
        .assert_error(StatusCode::NOT_IMPLEMENTED, "method_not_enabled");
    assert_eq!(
        app.register_options(&headers, Some(PASSKEY)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_tenants_header_is_a_tenant_mismatch() {
    let app = TestApp::new().await;
    let other = TestApp::new().await;
    let headers = auth_headers(&app.token(), &other.tenant.tenant_id);
    app.register_options(&headers, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    let body = json!({ "credential": {}, "device_name": "x", "method_type": PASSKEY });
    app.register_complete(&headers, &body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
}

#[tokio::test]
async fn an_attestation_from_another_origin_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let mut options_json = options.body["options"].clone();
    // A phishing page on another registrable domain, proxying our options.
    options_json["rp"]["id"] = json!("evil.example");
    let credential = Authenticator::passkey()
        .register(&options_json, "https://evil.example")
        .unwrap();
    app.register_complete(
        &headers,
        &json!({ "credential": credential, "device_name": "x", "method_type": PASSKEY }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_attestation");
}

#[tokio::test]
async fn a_tampered_attestation_is_refused_with_a_stable_code() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let mut credential = app
        .registration_credential(&headers, FIDO, &mut Authenticator::security_key())
        .await;
    // Flip one byte of the attestation object (inside the signed authenticator data).
    let mut att = URL_SAFE_NO_PAD
        .decode(
            credential["response"]["attestationObject"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let n = att.len();
    att[n - 80] ^= 0x01;
    credential["response"]["attestationObject"] = Value::String(URL_SAFE_NO_PAD.encode(att));
    app.register_complete(
        &headers,
        &json!({ "credential": credential, "device_name": "x", "method_type": FIDO }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_attestation");
}

#[tokio::test]
async fn a_passkey_without_user_verification_cannot_enroll() {
    let app = TestApp::new().await;
    let options = app
        .register_options(&app.auth_headers(&app.token()), Some(PASSKEY))
        .await;
    // The authenticator cannot satisfy `userVerification: required`, so the client refuses.
    assert!(Authenticator::passkey_without_uv()
        .register(&options.body["options"], ORIGIN)
        .is_err());
}

#[tokio::test]
async fn an_unreachable_store_is_a_503_without_internals() {
    let env = crate::harness::env().await;
    let dead = shared::store::Store::new(
        crate::harness::client("http://127.0.0.1:9"),
        env.tables.clone(),
    );
    let app = TestApp::build(dead, |_| {}).await;
    let reply = app
        .register_options(&app.auth_headers(&app.token()), None)
        .await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert!(!reply.body.to_string().contains("127.0.0.1"));
}
