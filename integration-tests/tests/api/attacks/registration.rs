//! Registration attacks (WebAuthn L3 §7.1, Registering a New Credential) against
//! `POST /v1/users/me/mfa/webauthn/register/complete`.
//!
//! `SoftPasskey` self-attests (`packed` without `x5c`), signing authData ‖ hash(clientData)
//! with the new credential's key. Edits that must get past that signature start from the
//! `none` attestation a browser conveys for `attestation: "none"` (see the forge's sanity
//! test), where nothing but the Relying Party's own checks stands between the edit and the
//! credential store.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P521_SHA512_ASN1_SIGNING,
};
use lambda_http::http::StatusCode;
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use shared::store::UserRecord;

use super::forge::{
    attested_auth_data, b64, edit_client_data, none_attestation, set_attestation, sha256, unb64,
    BS, FIDO, PASSKEY, UP,
};
use crate::harness::{auth_headers, Authenticator, Reply, TestApp, ORIGIN};

fn body(credential: &Value, method: &str) -> Value {
    json!({ "credential": credential, "device_name": "Device", "method_type": method })
}

async fn stored_ids(app: &TestApp, user: &UserRecord) -> Vec<Vec<u8>> {
    app.store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.credential_id.as_bytes().to_vec())
        .collect()
}

/// Options for the app's user, then a real SoftPasskey's credential for them.
async fn passkey_credential(app: &TestApp) -> (Vec<(String, String)>, Value) {
    let headers = app.auth_headers(&app.token());
    let mut passkey = Authenticator::passkey();
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut passkey)
        .await;
    (headers, credential)
}

async fn complete(app: &TestApp, headers: &[(String, String)], credential: &Value) -> Reply {
    app.register_complete(headers, &body(credential, PASSKEY))
        .await
}

/// Refused with 400 `invalid_attestation`, and nothing stored for the user.
async fn assert_invalid_attestation(
    app: &TestApp,
    headers: &[(String, String)],
    credential: &Value,
) {
    complete(app, headers, credential)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_attestation");
    assert!(
        stored_ids(app, &app.user).await.is_empty(),
        "nothing stored"
    );
}

/// A COSE_Key (RFC 9053 §7.1.1) for a fresh EC2 key of `alg` on `crv`.
fn ec2_cose_key(signing: &'static EcdsaSigningAlgorithm, crv: i128, alg: i128) -> Cbor {
    let pair = EcdsaKeyPair::generate(signing).unwrap();
    let point = pair.public_key().as_ref();
    let size = (point.len() - 1) / 2;
    cose_ec2(
        crv,
        alg,
        point[1..=size].to_vec(),
        point[size + 1..].to_vec(),
    )
}

fn cose_ec2(crv: i128, alg: i128, x: Vec<u8>, y: Vec<u8>) -> Cbor {
    Cbor::Map(BTreeMap::from([
        (Cbor::Integer(1), Cbor::Integer(2)),
        (Cbor::Integer(3), Cbor::Integer(alg)),
        (Cbor::Integer(-1), Cbor::Integer(crv)),
        (Cbor::Integer(-2), Cbor::Bytes(x)),
        (Cbor::Integer(-3), Cbor::Bytes(y)),
    ]))
}

fn cose_entry(key: &Cbor, label: i128) -> &Cbor {
    let Cbor::Map(map) = key else {
        panic!("COSE key is not a map")
    };
    &map[&Cbor::Integer(label)]
}

// ---- Steps 7–9: the client data ----

#[tokio::test]
async fn w3c_7_1_step_7_client_data_of_type_webauthn_get_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |_| {});
    edit_client_data(&mut credential, |c| c["type"] = json!("webauthn.get"));
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_8_challenge_naming_no_pending_enrollment_is_not_found() {
    let app = TestApp::new().await;
    let (headers, mut genuine) = passkey_credential(&app).await;
    none_attestation(&mut genuine, |_| {});
    let mut forged = genuine.clone();
    edit_client_data(&mut forged, |c| {
        c["challenge"] = json!(b64(uuid::Uuid::new_v4().as_bytes()));
    });
    complete(&app, &headers, &forged)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    assert!(stored_ids(&app, &app.user).await.is_empty());
    // The real pending enrollment was not touched: the genuine credential still completes it.
    let reply = complete(&app, &headers, &genuine).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn w3c_7_1_step_8_challenge_of_another_users_enrollment_is_not_found() {
    let app = TestApp::new().await;
    let bob = app
        .add_user(&format!("bob-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let bob_headers = auth_headers(&app.token_for(&bob), &bob.tenant_id);
    let options = app.register_options(&bob_headers, Some(PASSKEY)).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    // Alice's authenticator answers bob's options; alice submits it as her own enrollment.
    let alice_headers = app.auth_headers(&app.token());
    let mut alice_passkey = Authenticator::passkey();
    let credential = alice_passkey
        .register(&options.body["options"], ORIGIN)
        .unwrap();
    complete(&app, &alice_headers, &credential)
        .await
        .assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    assert!(stored_ids(&app, &app.user).await.is_empty());
    // Bob's pending enrollment survived the attempt.
    let mut bob_passkey = Authenticator::passkey();
    let own = bob_passkey
        .register(&options.body["options"], ORIGIN)
        .unwrap();
    let reply = complete(&app, &bob_headers, &own).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(stored_ids(&app, &app.user).await.is_empty());
}

#[tokio::test]
async fn w3c_7_1_step_9_origin_with_another_scheme_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let mut passkey = Authenticator::passkey();
    // A real client on https://localhost:3000; its self-attestation is intact.
    let credential = passkey
        .register(&options.body["options"], "https://localhost:3000")
        .unwrap();
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_9_origin_with_another_port_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let mut passkey = Authenticator::passkey();
    let credential = passkey
        .register(&options.body["options"], "http://localhost:3001")
        .unwrap();
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_9_origin_of_a_subdomain_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |_| {});
    edit_client_data(&mut credential, |c| {
        c["origin"] = json!("http://evil.localhost:3000");
    });
    assert_invalid_attestation(&app, &headers, &credential).await;
}

// ---- Steps 14–17: the authenticator data ----

#[tokio::test]
async fn w3c_7_1_step_14_rp_id_hash_of_another_rp_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |d| d.rp_id_hash = sha256(b"evil.example"));
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_15_registration_without_user_presence_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |d| d.flags &= !UP);
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_16_passkey_registration_without_uv_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let mut options = options.body["options"].clone();
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    // A client that downgrades the request; the authenticator cannot verify the user anyway.
    options["authenticatorSelection"]["userVerification"] = json!("discouraged");
    let mut passkey = Authenticator::passkey_without_uv();
    let credential = passkey.register(&options, ORIGIN).unwrap();
    assert_invalid_attestation(&app, &headers, &credential).await;
}

#[tokio::test]
async fn w3c_7_1_step_17_backup_state_without_backup_eligibility_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |d| d.flags |= BS);
    assert_invalid_attestation(&app, &headers, &credential).await;
}

// ---- Step 20: the credential public key's algorithm ----

/// A genuine P-521 key (ES521, COSE -36) where the options offered only ES256, ES384 and
/// RS256. The same edit with an offered algorithm (a P-384 key) is accepted, so the refusal
/// is the algorithm check and nothing else.
#[tokio::test]
async fn w3c_7_1_step_20_credential_algorithm_not_offered_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let mut passkey = Authenticator::passkey();
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let offered: Vec<i64> = options.body["options"]["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert!(!offered.contains(&-36), "{offered:?}");
    assert!(offered.contains(&-35), "{offered:?}");
    let mut credential = passkey.register(&options.body["options"], ORIGIN).unwrap();
    none_attestation(&mut credential, |d| {
        d.public_key = ec2_cose_key(&ECDSA_P521_SHA512_ASN1_SIGNING, 3, -36);
    });
    assert_invalid_attestation(&app, &headers, &credential).await;

    let (headers, mut credential) = passkey_credential(&app).await;
    none_attestation(&mut credential, |d| {
        d.public_key = ec2_cose_key(&ECDSA_P384_SHA384_ASN1_SIGNING, 2, -35);
    });
    let reply = complete(&app, &headers, &credential).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn w3c_7_1_step_20_malformed_credential_public_key_is_refused() {
    let app = TestApp::new().await;
    type Edit = Box<dyn Fn(&Cbor) -> Cbor>;
    let edits: Vec<Edit> = vec![
        // A point off the curve: y changed.
        Box::new(|key: &Cbor| {
            let Cbor::Bytes(mut y) = cose_entry(key, -3).clone() else {
                panic!("y")
            };
            y[31] ^= 0x01;
            let Cbor::Bytes(x) = cose_entry(key, -2).clone() else {
                panic!("x")
            };
            cose_ec2(1, -7, x, y)
        }),
        // x one byte short.
        Box::new(|key: &Cbor| {
            let Cbor::Bytes(x) = cose_entry(key, -2).clone() else {
                panic!("x")
            };
            let Cbor::Bytes(y) = cose_entry(key, -3).clone() else {
                panic!("y")
            };
            cose_ec2(1, -7, x[1..].to_vec(), y)
        }),
        // No key type.
        Box::new(|key: &Cbor| {
            let Cbor::Map(mut map) = key.clone() else {
                panic!("map")
            };
            map.remove(&Cbor::Integer(1));
            Cbor::Map(map)
        }),
        // A P-256 point labelled as P-384.
        Box::new(|key: &Cbor| {
            let Cbor::Map(mut map) = key.clone() else {
                panic!("map")
            };
            map.insert(Cbor::Integer(-1), Cbor::Integer(2));
            map.insert(Cbor::Integer(3), Cbor::Integer(-35));
            Cbor::Map(map)
        }),
        // Not a map at all.
        Box::new(|_: &Cbor| Cbor::Text("not a key".into())),
    ];
    for edit in edits {
        let (headers, mut credential) = passkey_credential(&app).await;
        none_attestation(&mut credential, |d| d.public_key = edit(&d.public_key));
        assert_invalid_attestation(&app, &headers, &credential).await;
    }
}

// ---- Steps 21 and 22: the attestation statement ----

#[tokio::test]
async fn w3c_7_1_step_21_unknown_attestation_format_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    let data = attested_auth_data(&credential);
    set_attestation(
        &mut credential,
        "evil-format",
        Cbor::Map(BTreeMap::new()),
        data.to_bytes(),
    );
    assert_invalid_attestation(&app, &headers, &credential).await;
}

fn attestation_statement(credential: &Value) -> Cbor {
    let object: Cbor = serde_cbor_2::from_slice(&unb64(
        credential["response"]["attestationObject"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    let Cbor::Map(map) = object else {
        panic!("attestation object")
    };
    map[&Cbor::Text("attStmt".into())].clone()
}

/// Authenticator data changed under a real `packed` attestation statement, self attestation
/// (SoftPasskey) and full attestation with an x5c chain (SoftToken): the signature no longer
/// covers what is presented.
#[tokio::test]
async fn w3c_7_1_step_22_attestation_signature_over_other_data_is_refused() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    for (mut authenticator, method) in [
        (Authenticator::passkey(), PASSKEY),
        (Authenticator::security_key(), FIDO),
    ] {
        let mut credential = app
            .registration_credential(&headers, method, &mut authenticator)
            .await;
        let statement = attestation_statement(&credential);
        let Cbor::Map(fields) = &statement else {
            panic!("attStmt")
        };
        assert_eq!(
            fields.contains_key(&Cbor::Text("x5c".into())),
            method == FIDO,
            "SoftToken attests with a certificate, SoftPasskey by itself"
        );
        let mut data = attested_auth_data(&credential);
        data.counter = 7;
        set_attestation(&mut credential, "packed", statement, data.to_bytes());
        app.register_complete(&headers, &body(&credential, method))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_attestation");
        assert!(stored_ids(&app, &app.user).await.is_empty());
    }
}

// ---- Steps 25 and 26: the credential id ----

#[tokio::test]
async fn w3c_7_1_step_25_credential_id_longer_than_1023_bytes_is_refused() {
    let app = TestApp::new().await;
    let (headers, mut credential) = passkey_credential(&app).await;
    let long: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    none_attestation(&mut credential, |d| d.credential_id = long.clone());
    assert_eq!(unb64(credential["rawId"].as_str().unwrap()).len(), 1024);
    let reply = complete(&app, &headers, &credential).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        reply.body["details"]["field"], "credential",
        "{}",
        reply.body
    );
    assert!(stored_ids(&app, &app.user).await.is_empty());
}

/// Ids WebAuthn allows (≤ 1023 bytes) but DynamoDB's sort-key limit does not (the key is the
/// base64url form: over 768 bytes it passes 1024 characters) get a 400 before the store, never
/// the 500 a real DynamoDB's ValidationException would cause; 768 bytes still registers.
#[tokio::test]
async fn w3c_7_1_step_25_credential_ids_past_the_stored_key_limit_are_a_400_not_a_store_error() {
    let app = TestApp::new().await;
    for len in [769usize, 1000, 1023] {
        let (headers, mut credential) = passkey_credential(&app).await;
        let long: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        none_attestation(&mut credential, |d| d.credential_id = long.clone());
        let reply = complete(&app, &headers, &credential).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["details"]["max_bytes"], 768, "{}", reply.body);
    }
    assert!(stored_ids(&app, &app.user).await.is_empty());
    let (headers, mut credential) = passkey_credential(&app).await;
    let longest: Vec<u8> = (0..768u32).map(|i| (i % 251) as u8).collect();
    none_attestation(&mut credential, |d| d.credential_id = longest.clone());
    let reply = complete(&app, &headers, &credential).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(stored_ids(&app, &app.user).await.len(), 1);
}

#[tokio::test]
async fn w3c_7_1_step_26_excluded_authenticator_registering_again_is_a_conflict() {
    let app = TestApp::new().await;
    let (headers, first) = passkey_credential(&app).await;
    let registered = attested_auth_data(&first);
    let reply = complete(&app, &headers, &first).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // The next options exclude it; the same authenticator answers with the same credential.
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    let excluded: Vec<&str> = options.body["options"]["excludeCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(excluded, vec![b64(&registered.credential_id)]);
    let mut passkey = Authenticator::passkey();
    let mut again = passkey.register(&options.body["options"], ORIGIN).unwrap();
    none_attestation(&mut again, |d| *d = registered.clone());
    complete(&app, &headers, &again)
        .await
        .assert_error(StatusCode::CONFLICT, "credential_already_registered");
    assert_eq!(
        stored_ids(&app, &app.user).await,
        vec![registered.credential_id.clone()]
    );
}

#[tokio::test]
async fn w3c_7_1_step_26_credential_id_registered_to_another_user_is_a_conflict() {
    let app = TestApp::new().await;
    let (headers, first) = passkey_credential(&app).await;
    let registered = attested_auth_data(&first);
    let reply = complete(&app, &headers, &first).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Bob enrolls, presenting alice's credential id and key: not in his excludeCredentials.
    let bob = app
        .add_user(&format!("bob-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let bob_headers = auth_headers(&app.token_for(&bob), &bob.tenant_id);
    let mut passkey = Authenticator::passkey();
    let mut credential = app
        .registration_credential(&bob_headers, PASSKEY, &mut passkey)
        .await;
    none_attestation(&mut credential, |d| *d = registered.clone());
    app.register_complete(&bob_headers, &body(&credential, PASSKEY))
        .await
        .assert_error(StatusCode::CONFLICT, "credential_already_registered");
    assert!(stored_ids(&app, &bob).await.is_empty());
    assert_eq!(
        stored_ids(&app, &app.user).await,
        vec![registered.credential_id]
    );
}
