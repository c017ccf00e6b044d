//! Bearer-token attacks (RFC 8725, JSON Web Token Best Current Practices; RFC 7519 for the
//! time claims) against the registration options endpoint
//! (`POST /v1/users/me/mfa/webauthn/register`, bearer token + `X-Tenant-ID`).
//!
//! Tokens are assembled by hand (base64url header and claims, then a signature over
//! `header.claims`), so any header can be sent; a control test shows that a hand-assembled
//! token signed by the server's key with the server's header is accepted.

use crate::harness::TestKey as SigningKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::{api_call, auth_headers, env, invoke, Reply, TestApp};

const PASSKEY: &str = "webauthn_passkey";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`, the signature made by `key` with `alg` over `header.claims`.
fn signed(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

async fn server_key() -> EncodingKey {
    EncodingKey::from_ec_pem(env().await.signing_pem.as_bytes()).unwrap()
}

/// A P-256 key the attacker made: its encoding key and public JWK (kid = its thumbprint).
fn attacker() -> (EncodingKey, Value) {
    let pem = SigningKey::generate_pem().unwrap();
    let jwk = serde_json::to_value(&SigningKey::from_pem(&pem).unwrap().jwks().keys[0]).unwrap();
    (EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), jwk)
}

/// The header the server itself issues.
fn server_header(app: &TestApp) -> Value {
    json!({ "typ": "JWT", "alg": "ES256", "kid": app.key.kid() })
}

fn claims(app: &TestApp) -> Value {
    serde_json::to_value(app.claims_for(&app.user)).unwrap()
}

async fn options_with(app: &TestApp, token: &str) -> Reply {
    app.register_options(&app.auth_headers(token), Some(PASSKEY))
        .await
}

/// Registration states stored for the app's user: a refused call must have written none.
async fn pending_registrations(app: &TestApp) -> usize {
    let out = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().challenges)
        .filter_expression("user_id = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::S(app.user.user_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default().len()
}

async fn assert_unauthenticated(app: &TestApp, token: &str) {
    options_with(app, token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(pending_registrations(app).await, 0, "nothing stored");
}

#[tokio::test]
async fn hand_assembled_token_with_the_servers_header_and_key_is_accepted() {
    let app = TestApp::new().await;
    let token = signed(
        &server_header(&app),
        &claims(&app),
        &server_key().await,
        Algorithm::ES256,
    );
    let reply = options_with(&app, &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(pending_registrations(&app).await, 1);
}

// ---- §3.1 Perform Algorithm Verification ----

#[tokio::test]
async fn rfc8725_3_1_alg_none_is_refused() {
    let app = TestApp::new().await;
    let payload = b64(claims(&app).to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "typ": "JWT", "alg": alg, "kid": app.key.kid() });
        let unsigned = format!("{}.{payload}", b64(header.to_string().as_bytes()));
        assert_unauthenticated(&app, &format!("{unsigned}.")).await;
        assert_unauthenticated(&app, &unsigned).await;
    }
}

#[tokio::test]
async fn rfc8725_3_1_hs256_keyed_with_the_servers_public_key_is_refused() {
    let app = TestApp::new().await;
    // The JWKS document exactly as served, and its parsed form.
    let served = invoke(
        api_call("GET", "/.well-known/jwks.json", &[], &[], &[], None),
        |req| jwks::handler(&app.jwks, req),
    )
    .await
    .raw;
    let jwks = app.jwks_document().await;
    assert_eq!(jwks.status, StatusCode::OK);
    let jwk = &jwks.body["keys"][0];
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = [vec![0x04], coordinate("x"), coordinate("y")].concat();
    // SubjectPublicKeyInfo of a P-256 key: the fixed DER prefix, then the point.
    let spki_prefix: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let spki = [spki_prefix.to_vec(), point.clone()].concat();
    let spki_pem = pem_encode("PUBLIC KEY", &spki);
    let secrets: Vec<Vec<u8>> = vec![
        served,
        jwks.body.to_string().into_bytes(),
        jwk.to_string().into_bytes(),
        spki_pem.clone().into_bytes(),
        spki_pem.trim_end().as_bytes().to_vec(),
        spki,
        point,
    ];
    for secret in secrets {
        let header = json!({ "typ": "JWT", "alg": "HS256", "kid": app.key.kid() });
        let token = signed(
            &header,
            &claims(&app),
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        );
        assert_unauthenticated(&app, &token).await;
    }
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {tag}-----\n{}\n-----END {tag}-----\n",
        lines.join("\n")
    )
}

// ---- §3.8 Validate Issuer and Subject: the key must be the issuer's ----

#[tokio::test]
async fn rfc8725_3_8_same_kid_signed_by_another_p256_key_is_refused() {
    let app = TestApp::new().await;
    let (key, _) = attacker();
    // Every claim right, the server's kid, but the attacker's signature.
    let token = signed(&server_header(&app), &claims(&app), &key, Algorithm::ES256);
    assert_unauthenticated(&app, &token).await;
}

#[tokio::test]
async fn rfc8725_3_8_embedded_jwk_header_is_not_trusted() {
    let app = TestApp::new().await;
    let (key, jwk) = attacker();
    for kid in [
        app.key.kid().to_owned(),
        jwk["kid"].as_str().unwrap().to_owned(),
    ] {
        let header = json!({ "typ": "JWT", "alg": "ES256", "kid": kid, "jwk": jwk });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
    // Without a kid, the embedded key is the only key the token names.
    let header = json!({ "typ": "JWT", "alg": "ES256", "jwk": jwk });
    let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
    assert_unauthenticated(&app, &token).await;
}

#[tokio::test]
async fn rfc8725_3_8_wrong_issuer_is_refused() {
    let app = TestApp::new().await;
    let mut claims = claims(&app);
    claims["iss"] = json!("https://evil.example");
    let token = signed(
        &server_header(&app),
        &claims,
        &server_key().await,
        Algorithm::ES256,
    );
    assert_unauthenticated(&app, &token).await;
}

// ---- §3.9 Use and Validate Audience ----

#[tokio::test]
async fn rfc8725_3_9_wrong_audience_is_refused() {
    let app = TestApp::new().await;
    let key = server_key().await;
    for aud in [
        json!("another-service"),
        json!(["another-service"]),
        json!(null),
    ] {
        let mut claims = claims(&app);
        claims["aud"] = aud;
        let token = signed(&server_header(&app), &claims, &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
    let mut claims = claims(&app);
    claims.as_object_mut().unwrap().remove("aud");
    let token = signed(&server_header(&app), &claims, &key, Algorithm::ES256);
    assert_unauthenticated(&app, &token).await;
}

#[tokio::test]
async fn rfc8725_3_9_token_of_another_tenant_is_a_tenant_mismatch() {
    let app = TestApp::new().await;
    let other = TestApp::new().await;
    // A genuine token of another tenant's user, presented with this tenant's header.
    let token = other.token_for(&other.user);
    app.register_options(&auth_headers(&token, &app.tenant.tenant_id), Some(PASSKEY))
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    // Rewriting its tenant claim leaves the other tenant's signature over the old claims.
    let mut claims = serde_json::to_value(other.claims_for(&other.user)).unwrap();
    let genuine = signed(
        &server_header(&app),
        &claims,
        &server_key().await,
        Algorithm::ES256,
    );
    claims["tenant_id"] = json!(app.tenant.tenant_id);
    let parts: Vec<&str> = genuine.split('.').collect();
    let rewritten = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_unauthenticated(&app, &rewritten).await;
}

// ---- §3.10 Do Not Trust Received Claims ----

#[tokio::test]
async fn rfc8725_3_10_kid_path_traversal_is_refused() {
    let app = TestApp::new().await;
    let (key, _) = attacker();
    for kid in [
        "../../../../../../dev/null",
        "/dev/null",
        "../../../../proc/self/environ",
        "..%2F..%2F..%2Fdev%2Fnull",
    ] {
        // The classic: a kid naming an empty file, and an HMAC over the empty key.
        let header = json!({ "typ": "JWT", "alg": "HS256", "kid": kid });
        let token = signed(
            &header,
            &claims(&app),
            &EncodingKey::from_secret(b""),
            Algorithm::HS256,
        );
        assert_unauthenticated(&app, &token).await;
        let header = json!({ "typ": "JWT", "alg": "ES256", "kid": kid });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

#[tokio::test]
async fn rfc8725_3_10_kid_sql_injection_is_refused() {
    let app = TestApp::new().await;
    let (key, jwk) = attacker();
    let kids = [
        "' OR '1'='1".to_owned(),
        format!("x' UNION SELECT '{jwk}' -- "),
        format!("{}' OR 1=1 --", app.key.kid()),
        format!("{}\u{0}", app.key.kid()),
    ];
    for kid in kids {
        let header = json!({ "typ": "JWT", "alg": "ES256", "kid": kid });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

#[tokio::test]
async fn rfc8725_3_10_unknown_kid_is_refused_even_with_the_servers_signature() {
    let app = TestApp::new().await;
    let key = server_key().await;
    let upper = app.key.kid().to_uppercase();
    let kids = [
        Some(uuid::Uuid::new_v4().to_string()),
        Some(upper),
        Some(format!("{} ", app.key.kid())),
        Some(String::new()),
        None,
    ];
    for kid in kids {
        let mut header = json!({ "typ": "JWT", "alg": "ES256" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

#[tokio::test]
async fn rfc8725_3_10_jku_header_pointing_elsewhere_is_not_followed() {
    let app = TestApp::new().await;
    let (key, jwk) = attacker();
    for kid in [
        app.key.kid().to_owned(),
        jwk["kid"].as_str().unwrap().to_owned(),
    ] {
        let header = json!({
            "typ": "JWT", "alg": "ES256", "kid": kid,
            "jku": "https://evil.example/.well-known/jwks.json",
        });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

#[tokio::test]
async fn rfc8725_3_10_x5u_header_pointing_elsewhere_is_not_followed() {
    let app = TestApp::new().await;
    let (key, jwk) = attacker();
    for kid in [
        app.key.kid().to_owned(),
        jwk["kid"].as_str().unwrap().to_owned(),
    ] {
        let header = json!({
            "typ": "JWT", "alg": "ES256", "kid": kid,
            "x5u": "https://evil.example/attacker.pem",
        });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

// ---- §3.11 Use Explicit Typing ----

#[tokio::test]
async fn rfc8725_3_11_token_of_another_type_is_refused() {
    let app = TestApp::new().await;
    let key = server_key().await;
    // Correctly signed by the server's key: only the declared type is wrong.
    for typ in ["at+jwt", "JWE", "secevent+jwt"] {
        let header = json!({ "typ": typ, "alg": "ES256", "kid": app.key.kid() });
        let token = signed(&header, &claims(&app), &key, Algorithm::ES256);
        assert_unauthenticated(&app, &token).await;
    }
}

// ---- §3.12 Use Mutually Exclusive Validation Rules for Different Kinds of JWTs ----

#[tokio::test]
async fn rfc8725_3_12_token_with_a_scope_the_endpoint_does_not_accept_is_forbidden() {
    let app = TestApp::new().await;
    let key = server_key().await;
    for scope in ["admin", "mfa_setup admin", "MFA_SETUP", ""] {
        let mut claims = claims(&app);
        claims["scope"] = json!(scope);
        let token = signed(&server_header(&app), &claims, &key, Algorithm::ES256);
        options_with(&app, &token)
            .await
            .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
        assert_eq!(pending_registrations(&app).await, 0);
    }
}

// ---- RFC 7519 §4.1.4–4.1.6: the time claims ----

#[tokio::test]
async fn rfc7519_4_1_4_expired_token_is_refused() {
    let app = TestApp::new().await;
    let key = server_key().await;
    let now = app.clock_now();
    let mut claims = claims(&app);
    claims["iat"] = json!(now - 1000);
    claims["exp"] = json!(now - 31);
    let token = signed(&server_header(&app), &claims, &key, Algorithm::ES256);
    assert_unauthenticated(&app, &token).await;
    // A token that was fine when issued, presented after it expired.
    let token = app.token();
    app.clock.advance(900 + 31);
    assert_unauthenticated(&app, &token).await;
}

#[tokio::test]
async fn rfc7519_4_1_5_token_before_its_not_before_time_is_refused() {
    let app = TestApp::new().await;
    let mut claims = claims(&app);
    claims["nbf"] = json!(app.clock_now() + 600);
    let token = signed(
        &server_header(&app),
        &claims,
        &server_key().await,
        Algorithm::ES256,
    );
    assert_unauthenticated(&app, &token).await;
}

#[tokio::test]
async fn rfc7519_4_1_6_token_issued_in_the_future_is_refused() {
    let app = TestApp::new().await;
    let mut claims = claims(&app);
    let now = app.clock_now();
    claims["iat"] = json!(now + 600);
    claims["exp"] = json!(now + 1200);
    let token = signed(
        &server_header(&app),
        &claims,
        &server_key().await,
        Algorithm::ES256,
    );
    assert_unauthenticated(&app, &token).await;
}
