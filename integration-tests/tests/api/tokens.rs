//! Bearer tokens on the registration endpoints: 401 for anything not a valid system JWT.

use crate::harness::TestKey as SigningKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::http::StatusCode;
use serde_json::json;

use crate::harness::{TestApp, ORIGIN};

async fn assert_refused(app: &TestApp, token: &str) {
    let headers = app.auth_headers(token);
    app.register_options(&headers, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    let body = json!({ "credential": {}, "device_name": "x", "method_type": "webauthn_passkey" });
    app.register_complete(&headers, &body)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let app = TestApp::new().await;
    let reply = app
        .register_options(&app.auth_headers(&app.token()), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401() {
    let app = TestApp::new().await;
    let tenant = ("x-tenant-id".to_string(), app.tenant.tenant_id.to_string());
    for auth in [
        None,
        Some("Basic dXNlcjpwdw=="),
        Some("Bearer"),
        Some("Bearer not.a.jwt"),
    ] {
        let mut headers = vec![tenant.clone()];
        if let Some(value) = auth {
            headers.push(("authorization".into(), value.into()));
        }
        app.register_options(&headers, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn no_credentials_at_all_is_401_even_with_a_bad_body() {
    let app = TestApp::new().await;
    let tenant = vec![("x-tenant-id".to_string(), app.tenant.tenant_id.to_string())];
    for body in ["", "{not json", r#"{"device_name":"x"}"#] {
        app.register_complete_raw(&tenant, body)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let app = TestApp::new().await;
    let token = app.token();
    app.clock.advance(900 + 31);
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn a_token_from_another_key_is_401() {
    let app = TestApp::new().await;
    let other = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
    assert_refused(&app, &other.sign(&app.claims_for(&app.user)).unwrap()).await;
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_401() {
    let app = TestApp::new().await;
    let mut claims = app.claims_for(&app.user);
    claims.aud = "another-api".into();
    assert_refused(&app, &app.key.sign(&claims).unwrap()).await;
    let mut claims = app.claims_for(&app.user);
    claims.iss = ORIGIN.into();
    assert_refused(&app, &app.key.sign(&claims).unwrap()).await;
}

#[tokio::test]
async fn an_algorithm_swapped_token_is_401() {
    let app = TestApp::new().await;
    let claims = app.claims_for(&app.user);
    // HS256 keyed with the public JWK: the classic confusion attack on asymmetric verifiers.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(app.key.kid().to_owned());
    let public = serde_json::to_vec(&app.key.jwks().keys[0]).unwrap();
    let hs = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
    assert_refused(&app, &hs).await;

    // alg "none" with no signature.
    let none_header = json!({ "alg": "none", "typ": "JWT", "kid": app.key.kid() });
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims).unwrap())
    );
    assert_refused(&app, &unsigned).await;

    // A genuine token whose payload was edited.
    let genuine = app.token();
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut edited = claims.clone();
    edited.sub = shared::ids::UserId::new_random();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_string(&edited).unwrap()),
        parts[2]
    );
    assert_refused(&app, &forged).await;
}

#[tokio::test]
async fn an_mfa_setup_token_may_enroll_but_other_scopes_may_not() {
    let app = TestApp::new().await;
    let mut claims = app.claims_for(&app.user);
    claims.scope = Some(shared::auth::MFA_SETUP_SCOPE.into());
    let setup = app.key.sign(&claims).unwrap();
    assert_eq!(
        app.register_options(&app.auth_headers(&setup), None)
            .await
            .status,
        StatusCode::OK
    );
    claims.scope = Some("something_else".into());
    let other = app.key.sign(&claims).unwrap();
    app.register_options(&app.auth_headers(&other), None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
}
