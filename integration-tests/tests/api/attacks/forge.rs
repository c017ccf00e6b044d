//! A tampered authenticator: the private key of a real `SoftToken` credential, lifted out of
//! the token's own serialisation, signing assertions whose every field the attacker chooses.
//!
//! What it signs is exactly what an authenticator signs (WebAuthn L3 §6.3.3): authenticator
//! data (rpIdHash ‖ flags ‖ signCount) followed by SHA-256(clientDataJSON), with the client
//! data serialised the way webauthn-authenticator-rs's client does. The sanity tests below show
//! that an untampered forgery is accepted, so each refusal elsewhere is due to the one field an
//! attack changed.
//!
//! The same module turns a real `SoftPasskey` attestation into the `none` attestation a
//! browser conveys when the Relying Party asks for no attestation (L3 §5.1.3), so registration
//! attacks can edit authenticator data that no signature covers.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::http::StatusCode;
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use url::Url;
use webauthn_rs_proto::{
    AuthenticationExtensionsClientOutputs, AuthenticatorAssertionResponseRaw, CollectedClientData,
    PublicKeyCredential,
};

use crate::harness::{Authenticator, TestApp, ORIGIN, RP_ID};

/// authenticatorData flags (L3 §6.1).
pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
pub const AT: u8 = 0x40;

pub const FIDO: &str = "webauthn_fido";
pub const PASSKEY: &str = "webauthn_passkey";

pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest(&SHA256, data).as_ref().to_vec()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

fn map_get<'a>(map: &'a Cbor, key: &str) -> &'a Cbor {
    match map {
        Cbor::Map(m) => m
            .iter()
            .find_map(|(k, v)| matches!(k, Cbor::Text(t) if t == key).then_some(v))
            .unwrap_or_else(|| panic!("no {key:?} in the CBOR map")),
        other => panic!("not a CBOR map: {other:?}"),
    }
}

/// Bytes serialised either as a CBOR byte string or, as serde does for `Vec<u8>`, as an array
/// of small integers.
fn cbor_bytes(value: &Cbor) -> Vec<u8> {
    match value {
        Cbor::Bytes(b) => b.clone(),
        Cbor::Array(items) => items
            .iter()
            .map(|i| match i {
                Cbor::Integer(n) => u8::try_from(*n).expect("a byte"),
                other => panic!("not a byte: {other:?}"),
            })
            .collect(),
        other => panic!("not bytes: {other:?}"),
    }
}

/// A credential's private key taken out of a `SoftToken`, with the token's signature counter.
pub struct StolenKey {
    pub credential_id: Vec<u8>,
    /// The counter of the token at extraction; the forge signs with whatever it is told.
    pub counter: u32,
    key: EcdsaKeyPair,
}

impl StolenKey {
    /// The one credential of a security key (`SoftToken`) that has registered exactly once.
    pub fn from(authenticator: &Authenticator) -> Self {
        let Authenticator::SecurityKey(token) = authenticator else {
            panic!("only a SoftToken serialises its keys")
        };
        let cbor: Cbor = serde_cbor_2::from_slice(&token.to_cbor().expect("to_cbor")).unwrap();
        let counter = match map_get(&cbor, "counter") {
            Cbor::Integer(n) => u32::try_from(*n).unwrap(),
            other => panic!("counter: {other:?}"),
        };
        let Cbor::Map(tokens) = map_get(&cbor, "tokens") else {
            panic!("tokens is not a map")
        };
        assert_eq!(tokens.len(), 1, "one credential per token in these tests");
        let (id, der) = tokens.iter().next().unwrap();
        let der = cbor_bytes(der);
        let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .expect("a SEC1 DER P-256 private key");
        Self {
            credential_id: cbor_bytes(id),
            counter,
            key,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&SystemRandom::new(), message)
            .expect("signature")
            .as_ref()
            .to_vec()
    }

    /// An assertion for `options` exactly as the token would make it (next counter, UP only,
    /// the options' RP id, the app's origin): change fields, then [`Forgery::credential`].
    pub fn assertion(&self, options: &Value) -> Forgery<'_> {
        Forgery {
            key: self,
            credential_id: self.credential_id.clone(),
            rp_id: options["rpId"].as_str().unwrap_or(RP_ID).to_owned(),
            flags: UP,
            counter: self.counter + 1,
            type_: "webauthn.get".into(),
            challenge: unb64(options["challenge"].as_str().expect("options.challenge")),
            origin: ORIGIN.into(),
            user_handle: None,
            signed_client_data: None,
        }
    }
}

/// Every field of one assertion, chosen by the attacker.
pub struct Forgery<'a> {
    key: &'a StolenKey,
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    pub flags: u8,
    pub counter: u32,
    pub type_: String,
    pub challenge: Vec<u8>,
    pub origin: String,
    pub user_handle: Option<Vec<u8>>,
    /// Sign over this clientDataJSON instead of the one sent (a signature over other data).
    pub signed_client_data: Option<Vec<u8>>,
}

impl Forgery<'_> {
    pub fn client_data_json(&self) -> Vec<u8> {
        let data = CollectedClientData {
            type_: self.type_.clone(),
            challenge: self.challenge.clone(),
            origin: Url::parse(&self.origin).expect("origin"),
            token_binding: None,
            cross_origin: None,
            unknown_keys: Default::default(),
        };
        serde_json::to_vec(&data).unwrap()
    }

    pub fn authenticator_data(&self) -> Vec<u8> {
        let mut data = sha256(self.rp_id.as_bytes());
        data.push(self.flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }

    /// The `PublicKeyCredential` JSON, in the serde form `Authenticator::authenticate` returns.
    pub fn credential(&self) -> Value {
        let client_data = self.client_data_json();
        let authenticator_data = self.authenticator_data();
        let signed = self.signed_client_data.as_ref().unwrap_or(&client_data);
        let mut message = authenticator_data.clone();
        message.extend_from_slice(&sha256(signed));
        let credential = PublicKeyCredential {
            id: b64(&self.credential_id),
            raw_id: self.credential_id.clone(),
            response: AuthenticatorAssertionResponseRaw {
                authenticator_data,
                client_data_json: client_data,
                signature: self.key.sign(&message),
                user_handle: self.user_handle.clone(),
            },
            extensions: AuthenticationExtensionsClientOutputs::default(),
            type_: "public-key".into(),
        };
        serde_json::to_value(credential).unwrap()
    }
}

/// Enrolls a fresh security key for the app's user with `method` and returns it with its key.
pub async fn enrolled_token(
    app: &TestApp,
    mut token: Authenticator,
    method: &str,
) -> (Authenticator, StolenKey) {
    let reply = app.enroll(&mut token, method, "Key").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let key = StolenKey::from(&token);
    (token, key)
}

/// Options of a fresh MFA challenge of `app.user`: (challenge id, options).
pub async fn mfa_options(app: &TestApp) -> (shared::ids::ChallengeId, Value) {
    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    (challenge, options.body["options"].clone())
}

pub fn complete_body(challenge: &shared::ids::ChallengeId, credential: &Value) -> Value {
    json!({ "challenge_id": challenge, "credential": credential })
}

// ---- Registration: the `none` attestation a browser conveys, and edits of its authData ----

/// The parts of a `none` attestation's authenticator data (L3 §6.1, §6.5.1).
#[derive(Clone, Debug)]
pub struct AttestedAuthData {
    pub rp_id_hash: Vec<u8>,
    pub flags: u8,
    pub counter: u32,
    pub aaguid: Vec<u8>,
    pub credential_id: Vec<u8>,
    /// The COSE_Key, as CBOR.
    pub public_key: Cbor,
}

impl AttestedAuthData {
    pub fn parse(auth_data: &[u8]) -> Self {
        assert!(auth_data[32] & AT != 0, "attested credential data present");
        let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
        let id_end = 55 + id_len;
        // Soft authenticators add no extensions: the COSE key is the rest.
        let public_key: Cbor = serde_cbor_2::from_slice(&auth_data[id_end..]).expect("COSE key");
        Self {
            rp_id_hash: auth_data[..32].to_vec(),
            flags: auth_data[32],
            counter: u32::from_be_bytes(auth_data[33..37].try_into().unwrap()),
            aaguid: auth_data[37..53].to_vec(),
            credential_id: auth_data[55..id_end].to_vec(),
            public_key,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_key(&serde_cbor_2::to_vec(&self.public_key).unwrap())
    }

    /// With the credential public key given as raw bytes (possibly not CBOR at all).
    pub fn to_bytes_with_key(&self, public_key: &[u8]) -> Vec<u8> {
        let mut out = self.rp_id_hash.clone();
        out.push(self.flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.aaguid);
        let len = u16::try_from(self.credential_id.len()).expect("id length fits u16");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.credential_id);
        out.extend_from_slice(public_key);
        out
    }
}

fn attestation_map(credential: &Value) -> Cbor {
    let bytes = unb64(
        credential["response"]["attestationObject"]
            .as_str()
            .unwrap(),
    );
    serde_cbor_2::from_slice(&bytes).expect("attestation object")
}

/// The attestation format a registration credential carries.
pub fn attestation_format(credential: &Value) -> String {
    match map_get(&attestation_map(credential), "fmt") {
        Cbor::Text(t) => t.clone(),
        other => panic!("fmt: {other:?}"),
    }
}

/// The authenticator data of a registration credential.
pub fn attested_auth_data(credential: &Value) -> AttestedAuthData {
    AttestedAuthData::parse(&cbor_bytes(map_get(
        &attestation_map(credential),
        "authData",
    )))
}

/// Replaces the attestation object with `{fmt, attStmt, authData}` and the credential ids with
/// the one inside `auth_data`.
pub fn set_attestation(credential: &mut Value, fmt: &str, att_stmt: Cbor, auth_data: Vec<u8>) {
    let id = match auth_data.get(32) {
        Some(flags) if flags & AT != 0 => {
            let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
            Some(auth_data[55..55 + len].to_vec())
        }
        _ => None,
    };
    let object = Cbor::Map(
        [
            (Cbor::Text("fmt".into()), Cbor::Text(fmt.into())),
            (Cbor::Text("attStmt".into()), att_stmt),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]
        .into_iter()
        .collect(),
    );
    credential["response"]["attestationObject"] =
        json!(b64(&serde_cbor_2::to_vec(&object).unwrap()));
    if let Some(id) = id {
        credential["id"] = json!(b64(&id));
        credential["rawId"] = json!(b64(&id));
    }
}

/// What a browser sends for `attestation: "none"`: the authenticator's attestation statement
/// replaced by `none`, authenticator data unchanged except as `edit` changes it.
pub fn none_attestation(credential: &mut Value, edit: impl FnOnce(&mut AttestedAuthData)) {
    let mut data = attested_auth_data(credential);
    edit(&mut data);
    set_attestation(
        credential,
        "none",
        Cbor::Map(Default::default()),
        data.to_bytes(),
    );
}

/// Edits the clientDataJSON of a credential as JSON.
pub fn edit_client_data(credential: &mut Value, edit: impl FnOnce(&mut Value)) {
    let field = &mut credential["response"]["clientDataJSON"];
    let mut data: Value = serde_json::from_slice(&unb64(field.as_str().unwrap())).unwrap();
    edit(&mut data);
    *field = json!(b64(&serde_json::to_vec(&data).unwrap()));
}

// ---- Sanity: the forge and the `none` rewrite are faithful ----

#[tokio::test]
async fn forged_assertion_with_the_tokens_own_fields_is_accepted_by_mfa_complete() {
    let app = TestApp::new().await;
    let (mut token, key) = enrolled_token(&app, Authenticator::security_key(), FIDO).await;
    assert_eq!(key.counter, 0, "registration does not count");

    // The forged JSON has the shape of the real authenticator's, field for field.
    let (_, options) = mfa_options(&app).await;
    let real = token.authenticate(&options, ORIGIN).unwrap();
    let forged = key.assertion(&options).credential();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.extend(
            v["response"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| format!("response.{k}")),
        );
        k.sort();
        k
    };
    assert_eq!(keys(&forged), keys(&real));
    assert_eq!(forged["rawId"], real["rawId"]);
    assert_eq!(
        forged["response"]["clientDataJSON"], real["response"]["clientDataJSON"],
        "byte-identical client data for the same challenge"
    );
    let (real_data, forged_data) = (
        unb64(real["response"]["authenticatorData"].as_str().unwrap()),
        unb64(forged["response"]["authenticatorData"].as_str().unwrap()),
    );
    assert_eq!(forged_data, real_data, "same rpIdHash, flags and counter 1");

    // The real token has used counter 1, so the forgery continues from there.
    let (challenge, options) = mfa_options(&app).await;
    let mut forgery = key.assertion(&options);
    forgery.counter = 2;
    let reply = app
        .mfa_complete(&[], &complete_body(&challenge, &forgery.credential()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored[0].sign_count, 2);
    assert_eq!(stored[0].use_count, 1);
}

#[tokio::test]
async fn forged_assertion_with_user_verification_is_accepted_by_passwordless_complete() {
    let app = TestApp::new().await;
    let user = app
        .add_user(&format!("user-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let mut token = Authenticator::security_key_with_uv();
    let reply = app.enroll_user(&user, &mut token, FIDO).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let key = StolenKey::from(&token);
    let begun = app.login_begin(&app.tenant_headers(), &user.email).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let mut forgery = key.assertion(&begun.body["data"]["options"]);
    forgery.flags = UP | UV;
    forgery.user_handle = Some(user.user_id.as_uuid().as_bytes().to_vec());
    let reply = app
        .login_complete(&app.tenant_headers(), &user.email, &forgery.credential())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
}

#[tokio::test]
async fn soft_passkey_attestation_conveyed_as_none_is_accepted() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let mut passkey = Authenticator::passkey();
    let mut credential = app
        .registration_credential(&headers, PASSKEY, &mut passkey)
        .await;
    // SoftPasskey self-attests (packed, no x5c): its signature covers authData and the client
    // data, so edits are only meaningful once the browser has stripped it to `none`.
    assert_eq!(attestation_format(&credential), "packed");
    let original = attested_auth_data(&credential);
    none_attestation(&mut credential, |_| {});
    assert_eq!(attestation_format(&credential), "none");
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "Passkey", "method_type": PASSKEY }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let stored = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].credential_id.as_bytes(), original.credential_id);
}
