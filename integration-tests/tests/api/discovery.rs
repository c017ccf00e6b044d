//! The issuer and its discovery document: `iss` is the configured issuer or, without one, the
//! URL of the API domain the request came through; `/.well-known/openid-configuration` names
//! that issuer and the JWKS; the example function echoes what a JWT authorizer verified.

use lambda_http::http::StatusCode;
use lambda_http::Request;
use serde_json::{json, Value};
use shared::config::TokenConfig;
use shared::jwt::TokenVerifier;
use shared::keys::{PublishedKeys, TokenSigner};
use shared::mfa::TokenIssuer;
use shared::state::Issuing;

use crate::harness::{invoke, settings, Authenticator, TestApp};

/// A GET as API Gateway passes it, received on `domain` (none: no `domainName`).
fn get(path: &str, domain: Option<&str>, authorizer: Option<Value>) -> Request {
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("GET {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "accept": "application/json" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "http": { "method": "GET", "path": path, "protocol": "HTTP/1.1",
                      "sourceIp": "203.0.113.9", "userAgent": "tests" },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("GET {path}"),
            "stage": "$default",
            "time": "28/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0
        },
        "isBase64Encoded": false
    });
    if let Some(domain) = domain {
        event["requestContext"]["domainName"] = json!(domain);
    }
    if let Some(authorizer) = authorizer {
        event["requestContext"]["authorizer"] = authorizer;
    }
    lambda_http::request::from_str(&event.to_string()).expect("event")
}

fn unset_issuer() -> TokenConfig {
    TokenConfig {
        issuer: None,
        audience: settings().audience,
    }
}

const API_DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

#[tokio::test]
async fn the_discovery_document_names_the_issuer_its_jwks_and_algorithms() {
    let app = TestApp::new().await;
    let keys = PublishedKeys::new(app.key.jwks());
    let fixed = openid_configuration::State::new(&keys, settings().into());
    let reply = invoke(
        get("/.well-known/openid-configuration", Some(API_DOMAIN), None),
        |req| openid_configuration::handler(&fixed, req),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["issuer"], settings().issuer);
    assert_eq!(
        reply.body["jwks_uri"],
        format!("{}/.well-known/jwks.json", settings().issuer)
    );
    assert_eq!(
        reply.body["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );

    // Without a configured issuer, the API's own URL is the issuer.
    let derived = openid_configuration::State::new(&keys, unset_issuer());
    let reply = invoke(
        get("/.well-known/openid-configuration", Some(API_DOMAIN), None),
        |req| openid_configuration::handler(&derived, req),
    )
    .await;
    assert_eq!(reply.body["issuer"], format!("https://{API_DOMAIN}"));
    assert_eq!(
        reply.body["jwks_uri"],
        format!("https://{API_DOMAIN}/.well-known/jwks.json")
    );
    // Neither a configured issuer nor a domain: a server fault, reported without internals.
    let reply = invoke(
        get("/.well-known/openid-configuration", None, None),
        |req| openid_configuration::handler(&derived, req),
    )
    .await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    // A domain that is not a host name is not taken for one.
    let reply = invoke(
        get(
            "/.well-known/openid-configuration",
            Some("evil.example/x?"),
            None,
        ),
        |req| openid_configuration::handler(&derived, req),
    )
    .await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
}

#[tokio::test]
async fn without_a_configured_issuer_tokens_name_the_api_they_were_issued_through() {
    let mut app = TestApp::new().await;
    app.authenticate_complete = Issuing {
        common: app.common.clone(),
        issuer: TokenIssuer {
            signer: TokenSigner::from_pem(&crate::harness::env().await.signing_pem).unwrap(),
            config: unset_issuer(),
        },
    };
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, "webauthn_passkey", "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let login = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["data"]["access_token"].as_str().unwrap();
    // The harness's requests arrive on the domain "localhost".
    let verifier = TokenVerifier::new(&app.key.jwks(), unset_issuer()).unwrap();
    let claims = verifier
        .verify_for(
            &get("/any", Some("localhost"), None),
            token,
            app.clock_now(),
        )
        .expect("valid on the API it was issued through");
    assert_eq!(claims.iss, "https://localhost");
    // The same token presented to another API (another issuer) is refused.
    let elsewhere = get("/any", Some(API_DOMAIN), None);
    assert!(verifier
        .verify_for(&elsewhere, token, app.clock_now())
        .is_err());
}

#[tokio::test]
async fn the_example_function_echoes_the_claims_the_authorizer_verified() {
    let state = example_whoami::State;
    let verified = json!({ "jwt": {
        "claims": { "sub": "u-1", "tenant_id": "t-1", "iss": "https://issuer", "amr": "[hwk user]" },
        "scopes": null
    }});
    let reply = invoke(get("/whoami", Some(API_DOMAIN), Some(verified)), |req| {
        example_whoami::handler(&state, req)
    })
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["sub"], "u-1");
    assert_eq!(reply.body["tenant_id"], "t-1");
    // Not behind the authorizer: nothing was verified, so nothing is echoed.
    let reply = invoke(get("/whoami", Some(API_DOMAIN), None), |req| {
        example_whoami::handler(&state, req)
    })
    .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}
