//! Garbage in, 4xx out. Every handler is fed arbitrary bytes, arbitrary JSON, JSON of the
//! right shape with wrong types and garbage values in its known fields, and random
//! `Authorization`, `X-Tenant-ID` and `X-Device-Fingerprint` headers and query strings. Each
//! answer must be a client error with the error body's shape (`success: false` too on the
//! `/api/v1` surface), never a 5xx and never a panic. The JWKS document ignores its request, so
//! there the answer must be the unchanged document.
//!
//! Authenticated cases carry the app's valid token and tenant header, so the garbage gets past
//! authentication into body parsing and the store; the "spoiled" properties go further and start
//! real ceremonies (registration options, MFA challenges, passwordless logins, sessions) with the
//! soft authenticators, then spoil one part of the answer, so the garbage reaches the stored
//! state and the verification.
//!
//! Random search rarely hits exact edges, so the spoiled-ceremony tests first sweep a few
//! fixed ones (empty values, credential ids and challenges longer than a store key can hold).
//!
//! proptest drives a synchronous runner; each test owns a current-thread tokio runtime and
//! blocks on it for every case.

use std::cell::RefCell;
use std::future::Future;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::Request;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult, TestRunner};
use serde_json::{json, Value};
use shared::ids::SessionId;
use shared::tenant::MethodType;
use tokio::runtime::Runtime;

use crate::harness::{call_function, Authenticator, Reply, TestApp, ORIGIN};

const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

/// Cases per endpoint and property. Every store call costs the serialised moto server some
/// 20 ms, so the counts keep the whole file to about twenty seconds on an idle machine.
const CASES: u32 = 48;
/// Cases per property that starts a real ceremony (options, challenge or login) for each case.
const CEREMONY_CASES: u32 = 24;

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    RegisterOptions,
    RegisterComplete,
    MfaOptions,
    MfaComplete,
    BackupCode,
    Jwks,
    LoginBegin,
    LoginComplete,
    Refresh,
    Logout,
}

impl Endpoint {
    const ALL: [Endpoint; 10] = [
        Endpoint::RegisterOptions,
        Endpoint::RegisterComplete,
        Endpoint::MfaOptions,
        Endpoint::MfaComplete,
        Endpoint::BackupCode,
        Endpoint::Jwks,
        Endpoint::LoginBegin,
        Endpoint::LoginComplete,
        Endpoint::Refresh,
        Endpoint::Logout,
    ];

    fn path(self) -> &'static str {
        match self {
            Endpoint::RegisterOptions => "/v1/users/me/mfa/webauthn/register",
            Endpoint::RegisterComplete => "/v1/users/me/mfa/webauthn/register/complete",
            Endpoint::MfaOptions => "/v1/auth/mfa/webauthn/options",
            Endpoint::MfaComplete => "/v1/auth/mfa/webauthn/complete",
            Endpoint::BackupCode => "/v1/auth/mfa/backup_code/complete",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::LoginBegin => "/api/v1/webauthn/authenticate/begin",
            Endpoint::LoginComplete => "/api/v1/webauthn/authenticate/complete",
            Endpoint::Refresh => "/api/v1/auth/refresh",
            Endpoint::Logout => "/api/v1/auth/logout",
        }
    }

    /// The method API Gateway routes to the function.
    fn method(self) -> &'static str {
        match self {
            Endpoint::Jwks => "GET",
            _ => "POST",
        }
    }

    fn v1(self) -> bool {
        self.path().starts_with("/api/v1/")
    }
}

/// A request body as API Gateway passes it on: none, text, or binary (base64 in the event).
#[derive(Clone, Debug)]
enum Payload {
    Absent,
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn json(value: &Value) -> Self {
        Payload::Text(value.to_string())
    }
}

/// An API Gateway HTTP API (payload 2.0) event with exactly these raw parts.
fn request(
    endpoint: Endpoint,
    raw_query: &str,
    headers: &[(String, String)],
    body: &Payload,
) -> Request {
    let (method, path) = (endpoint.method(), endpoint.path());
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), json!("application/json"));
    for (name, value) in headers {
        header_map.insert(name.to_lowercase(), json!(value));
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "integration-tests"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "23/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0
        },
        "isBase64Encoded": false
    });
    match body {
        Payload::Absent => {}
        Payload::Text(text) => event["body"] = json!(text),
        Payload::Binary(bytes) => {
            event["body"] = json!(STANDARD.encode(bytes));
            event["isBase64Encoded"] = json!(true);
        }
    }
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

async fn call(app: &TestApp, endpoint: Endpoint, req: Request) -> Reply {
    call_function(app, endpoint.function(), req).await
}

impl Endpoint {
    /// The function (`functions/<name>`) behind the endpoint.
    fn function(self) -> &'static str {
        match self {
            Endpoint::RegisterOptions => "register-options",
            Endpoint::RegisterComplete => "register-complete",
            Endpoint::MfaOptions => "mfa-options",
            Endpoint::MfaComplete => "mfa-complete",
            Endpoint::BackupCode => "backup-code-complete",
            Endpoint::Jwks => "jwks",
            Endpoint::LoginBegin => "authenticate-begin",
            Endpoint::LoginComplete => "authenticate-complete",
            Endpoint::Refresh => "auth-refresh",
            Endpoint::Logout => "auth-logout",
        }
    }
}

/// A client error with the error body: a non-empty string `code` and `message`, nothing but
/// `code, message, details, notices`, and on `/api/v1` also `success: false`.
fn refused(reply: &Reply, v1: bool) -> TestCaseResult {
    let body = &reply.body;
    prop_assert!(
        reply.status.is_client_error(),
        "status {} is not a 4xx: {}",
        reply.status,
        body
    );
    let object = body
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("the error body is not an object: {body}")))?;
    for field in ["code", "message"] {
        prop_assert!(
            object
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            "`{}` is not a non-empty string: {}",
            field,
            body
        );
    }
    let allowed: &[&str] = if v1 {
        &["success", "code", "message", "details", "notices"]
    } else {
        &["code", "message", "details", "notices"]
    };
    prop_assert!(
        object.keys().all(|k| allowed.contains(&k.as_str())),
        "unexpected keys in {}",
        body
    );
    if v1 {
        prop_assert_eq!(object.get("success"), Some(&Value::Bool(false)), "{}", body);
    }
    Ok(())
}

/// A JSON object without an `email` (or with `"email": null`) and a valid `X-Tenant-ID` is a
/// usernameless `begin`, which a garbage body can be: then, and only then, the answer is 200
/// with options that list no credential.
fn usernameless_begun(payload: &Payload, reply: &Reply) -> TestCaseResult {
    let body = match payload {
        Payload::Text(text) => serde_json::from_str::<Value>(text).ok(),
        Payload::Absent | Payload::Binary(_) => None,
    };
    let no_email = body
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|o| o.get("email").is_none_or(Value::is_null));
    prop_assert!(
        no_email,
        "begin answered 200 to {:?}: {}",
        payload,
        reply.body
    );
    prop_assert_eq!(
        &reply.body["data"]["options"]["allowCredentials"],
        &json!([]),
        "{}",
        reply.body
    );
    Ok(())
}

/// One test's app and the runtime its cases run on.
struct Fixture {
    rt: Runtime,
    app: TestApp,
    jwks: Value,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let app = rt.block_on(TestApp::new());
        let jwks = rt.block_on(app.jwks_document()).body;
        Self { rt, app, jwks }
    }

    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.rt.block_on(future)
    }

    /// Runs `cases` cases of `strategy`; a failed case is shrunk and reported with its input.
    fn check<S, F, Fut>(&self, what: &str, cases: u32, strategy: S, test: F)
    where
        S: Strategy,
        F: Fn(S::Value) -> Fut,
        Fut: Future<Output = TestCaseResult>,
    {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(err) = runner.run(&strategy, |value| self.rt.block_on(test(value))) {
            panic!("{what}: {err}");
        }
    }

    /// Runs `test` on each of `inputs`: edge values a random search would rarely hit.
    fn sweep<T, F, Fut>(&self, what: &str, inputs: Vec<T>, test: F)
    where
        T: std::fmt::Debug,
        F: Fn(T) -> Fut,
        Fut: Future<Output = TestCaseResult>,
    {
        for input in inputs {
            let shown = format!("{input:?}");
            match self.rt.block_on(test(input)) {
                Ok(()) | Err(TestCaseError::Reject(_)) => {}
                Err(TestCaseError::Fail(why)) => panic!("{what}: {why}; input: {shown}"),
            }
        }
    }

    /// The answer must be a refusal, or for the JWKS document the unchanged document.
    fn expect(&self, endpoint: Endpoint, reply: &Reply) -> TestCaseResult {
        if endpoint == Endpoint::Jwks {
            prop_assert_eq!(reply.status, StatusCode::OK);
            prop_assert_eq!(&reply.body, &self.jwks);
            return Ok(());
        }
        refused(reply, endpoint.v1())
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings with a special meaning somewhere: empty, blank, JSON-ish, prefixes of our formats,
/// injection classics, control and direction characters.
const LOADED: &[&str] = &[
    "",
    " ",
    "\t\n",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "NaN",
    "{}",
    "[]",
    "\"\"",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "rt1_",
    "rt1_AAAA",
    "Bearer",
    "Bearer ",
    "registration#",
    "mfa#",
    "login#",
    "enrollment#",
    "@",
    "a@",
    "@b",
    "%00",
    "../../etc/passwd",
    "' OR '1'='1",
    "${jndi:ldap://127.0.0.1/x}",
    "<script>alert(1)</script>",
    "00000000-0000-0000-0000-000000000000",
    "webauthn_",
    "WEBAUTHN_PASSKEY",
];

fn uuid_string() -> BoxedStrategy<String> {
    any::<u128>()
        .prop_map(|n| uuid::Uuid::from_u128(n).to_string())
        .boxed()
}

fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max).boxed()
}

/// Any string a client could send.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        2 => any::<String>(),
        1 => "[a-z0-9._+-]{0,10}@[a-z0-9.-]{0,10}",
        1 => uuid_string(),
        1 => prop::sample::select(LOADED).prop_map(str::to_owned),
        1 => (0usize..5000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// The fields the handlers read, so that arbitrary objects often have them with wrong values.
const FIELDS: &[&str] = &[
    "challenge_id",
    "credential",
    "email",
    "refresh_token",
    "code",
    "device_name",
    "method_type",
    "id",
    "rawId",
    "type",
    "response",
    "clientDataJSON",
    "authenticatorData",
    "signature",
    "userHandle",
    "attestationObject",
    "transports",
    "extensions",
];

fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(FIELDS).prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
    .boxed()
}

/// Any JSON value: null, booleans, numbers, strings, and arrays and objects of them, nested a
/// few levels deep.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("a finite number", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
    .boxed()
}

/// What can arrive in a base64url field: random bytes encoded right, standard base64 with
/// padding, a very long value, text that is not base64url, or another JSON type.
fn b64_field() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => bytes(96).prop_map(|b| json!(URL_SAFE_NO_PAD.encode(b))),
        1 => Just(json!("")),
        1 => bytes(64).prop_map(|b| json!(STANDARD.encode(b))),
        1 => (0usize..4096).prop_map(|n| json!(URL_SAFE_NO_PAD.encode(vec![0xA5; n]))),
        1 => text().prop_map(Value::String),
        1 => any_json(),
    ]
    .boxed()
}

/// A clientDataJSON: well-formed client data with garbage in its fields (challenges of any
/// length, the wrong type, another origin), or not client data at all.
fn client_data() -> BoxedStrategy<Value> {
    let challenge = prop_oneof![
        3 => bytes(64).prop_map(|b| json!(URL_SAFE_NO_PAD.encode(b))),
        1 => (0usize..3000).prop_map(|n| json!(URL_SAFE_NO_PAD.encode(vec![0u8; n]))),
        1 => text().prop_map(Value::String),
        1 => any_json(),
    ];
    let kind = prop_oneof![
        Just(json!("webauthn.get")),
        Just(json!("webauthn.create")),
        any_json(),
    ];
    let origin = prop_oneof![Just(json!(ORIGIN)), any_json()];
    let data = (kind, challenge, origin).prop_map(|(kind, challenge, origin)| {
        let data = json!({ "type": kind, "challenge": challenge, "origin": origin });
        json!(URL_SAFE_NO_PAD.encode(data.to_string()))
    });
    prop_oneof![3 => data, 1 => b64_field()].boxed()
}

fn credential_type() -> BoxedStrategy<Value> {
    prop_oneof![3 => Just(json!("public-key")), 1 => any_json()].boxed()
}

/// A registration credential of the right shape with garbage in every field.
fn attestation_garbage() -> BoxedStrategy<Value> {
    (
        b64_field(),
        b64_field(),
        client_data(),
        b64_field(),
        credential_type(),
        prop::option::of(any_json()),
    )
        .prop_map(|(id, raw_id, client_data, attestation, kind, transports)| {
            let mut credential = json!({
                "id": id,
                "rawId": raw_id,
                "type": kind,
                "response": { "clientDataJSON": client_data, "attestationObject": attestation },
            });
            if let Some(transports) = transports {
                credential["response"]["transports"] = transports;
            }
            credential
        })
        .boxed()
}

/// An assertion credential of the right shape with garbage in every field.
fn assertion_garbage() -> BoxedStrategy<Value> {
    (
        b64_field(),
        b64_field(),
        client_data(),
        b64_field(),
        b64_field(),
        prop::option::of(b64_field()),
        credential_type(),
    )
        .prop_map(
            |(id, raw_id, client_data, auth_data, signature, user_handle, kind)| {
                let mut credential = json!({
                    "id": id,
                    "rawId": raw_id,
                    "type": kind,
                    "response": {
                        "clientDataJSON": client_data,
                        "authenticatorData": auth_data,
                        "signature": signature,
                    },
                });
                if let Some(handle) = user_handle {
                    credential["response"]["userHandle"] = handle;
                }
                credential
            },
        )
        .boxed()
}

/// A value for a field that wants `expected`: garbage of its kind, or any JSON.
fn or_any_json(expected: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![3 => expected, 1 => any_json()].boxed()
}

fn string_value(strategy: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    strategy.prop_map(Value::String).boxed()
}

fn challenge_id_value() -> BoxedStrategy<Value> {
    or_any_json(string_value(prop_oneof![uuid_string(), text()].boxed()))
}

fn email_value() -> BoxedStrategy<Value> {
    or_any_json(string_value(
        prop_oneof![
            "[a-z0-9._+-]{1,16}@[a-z0-9-]{1,12}\\.[a-z]{2,4}",
            (0usize..400).prop_map(|n| format!("{}@example.com", "é".repeat(n))),
            text(),
        ]
        .boxed(),
    ))
}

/// A refresh token's look-alikes: the right prefix and length with random bytes, the wrong
/// length, or anything.
fn refresh_token_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => bytes(48).prop_map(|b| format!("rt1_{}", URL_SAFE_NO_PAD.encode(b))),
        2 => prop::collection::vec(any::<u8>(), 48..=48)
            .prop_map(|b| format!("rt1_{}", URL_SAFE_NO_PAD.encode(b))),
        1 => text(),
    ]
    .boxed()
}

/// JSON of the endpoint's own shape, its fields filled with wrong types and garbage.
fn plausible_body(endpoint: Endpoint) -> BoxedStrategy<Value> {
    match endpoint {
        Endpoint::RegisterOptions | Endpoint::Jwks => any_json(),
        Endpoint::RegisterComplete => (
            or_any_json(attestation_garbage()),
            or_any_json(string_value(text())),
            or_any_json(string_value(
                prop_oneof![Just(PASSKEY.to_owned()), Just(FIDO.to_owned()), text()].boxed(),
            )),
            prop::option::of(challenge_id_value()),
        )
            .prop_map(|(credential, name, method, grant)| {
                let mut body =
                    json!({ "credential": credential, "device_name": name, "method_type": method });
                if let Some(grant) = grant {
                    body["challenge_id"] = grant;
                }
                body
            })
            .boxed(),
        Endpoint::MfaOptions => challenge_id_value()
            .prop_map(|id| json!({ "challenge_id": id }))
            .boxed(),
        Endpoint::MfaComplete => (challenge_id_value(), or_any_json(assertion_garbage()))
            .prop_map(|(id, credential)| json!({ "challenge_id": id, "credential": credential }))
            .boxed(),
        Endpoint::BackupCode => (
            challenge_id_value(),
            or_any_json(string_value(
                prop_oneof!["[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", text()].boxed(),
            )),
        )
            .prop_map(|(id, code)| json!({ "challenge_id": id, "code": code }))
            .boxed(),
        Endpoint::LoginBegin => email_value()
            .prop_map(|email| json!({ "email": email }))
            .boxed(),
        Endpoint::LoginComplete => (or_any_json(assertion_garbage()), email_value())
            .prop_map(|(credential, email)| json!({ "credential": credential, "email": email }))
            .boxed(),
        Endpoint::Refresh | Endpoint::Logout => or_any_json(string_value(refresh_token_text()))
            .prop_map(|token| json!({ "refresh_token": token }))
            .boxed(),
    }
}

/// A header value API Gateway can deliver: printable ASCII, non-ASCII text, a UUID, JSON, or
/// something long.
fn header_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[ -~]{0,64}",
        2 => "\\PC{0,32}",
        1 => uuid_string(),
        1 => any_json().prop_map(|v| v.to_string()),
        1 => (0usize..9000).prop_map(|n| "f".repeat(n)),
        1 => prop::sample::select(LOADED).prop_map(str::to_owned),
    ]
    .prop_filter("a header value API Gateway can deliver", |v| {
        HeaderValue::from_str(v).is_ok()
    })
    .boxed()
}

/// `Authorization` values that are never a valid bearer token, some of them close to one.
fn bad_authorization(token: String) -> BoxedStrategy<String> {
    let b64 = || bytes(80).prop_map(|b| URL_SAFE_NO_PAD.encode(b));
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let truncated = {
        let token = token.clone();
        (1usize..token.len()).prop_map(move |cut| format!("Bearer {}", &token[..token.len() - cut]))
    };
    let other_payload = any_json().prop_map(move |claims| {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("Bearer {}.{payload}.{}", parts[0], parts[2])
    });
    prop_oneof![
        3 => header_text(),
        2 => header_text().prop_map(|t| format!("Bearer {t}")),
        2 => (b64(), b64(), b64()).prop_map(|(a, b, c)| format!("Bearer {a}.{b}.{c}")),
        1 => truncated,
        1 => other_payload,
        1 => Just(token.clone()),
        1 => Just(format!("Basic {token}")),
    ]
    .prop_filter("a header value API Gateway can deliver", |v| {
        HeaderValue::from_str(v).is_ok()
    })
    .boxed()
}

/// The request's headers, and whether they are the app's valid token and tenant.
#[derive(Clone, Debug)]
struct Headers {
    list: Vec<(String, String)>,
    authenticated: bool,
}

/// Garbage in any of `Authorization`, `X-Tenant-ID` and `X-Device-Fingerprint`; or the app's
/// valid token and tenant (with a garbage fingerprint) so the body's garbage gets through.
fn headers(app: &TestApp) -> BoxedStrategy<Headers> {
    let tenant = app.tenant.tenant_id.to_string();
    let valid = app.auth_headers(&app.token());
    let tenant_value = prop_oneof![
        2 => header_text(),
        1 => uuid_string(),
        1 => Just(tenant),
    ];
    let garbage = (
        prop::option::of(bad_authorization(app.token())),
        prop::option::of(tenant_value),
        prop::option::of(header_text()),
    )
        .prop_map(|(authorization, tenant, fingerprint)| {
            let named = [
                ("authorization", authorization),
                ("x-tenant-id", tenant),
                ("x-device-fingerprint", fingerprint),
            ];
            Headers {
                list: named
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
                    .collect(),
                authenticated: false,
            }
        });
    let authenticated = prop::option::of(header_text()).prop_map(move |fingerprint| {
        let mut list = valid.clone();
        list.extend(fingerprint.map(|f| ("x-device-fingerprint".to_owned(), f)));
        Headers {
            list,
            authenticated: true,
        }
    });
    prop_oneof![garbage, authenticated].boxed()
}

/// Query strings: encoded pairs (often `method_type` and `challenge_id`) or raw garbage.
fn query() -> BoxedStrategy<String> {
    let key = prop_oneof![
        Just("method_type".to_owned()),
        Just("challenge_id".to_owned()),
        "\\PC{0,12}",
    ];
    let value = prop_oneof![
        3 => text(),
        1 => uuid_string(),
        1 => Just(PASSKEY.to_owned()),
        1 => Just(FIDO.to_owned()),
    ];
    let pairs = prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    });
    prop_oneof![3 => pairs, 1 => "[A-Za-z0-9%&=+;._~!$()*,:@/?-]{0,60}"].boxed()
}

/// A `method_type` that is not one: with a valid token, the only thing that keeps a
/// registration-options request from succeeding.
fn bad_method() -> BoxedStrategy<String> {
    text()
        .prop_filter("not a method type", |m| m.parse::<MethodType>().is_err())
        .boxed()
}

/// The query actually sent: a valid token asking for registration options always carries a
/// wrong `method_type` first (the handler reads the first), or it would rightly succeed.
fn effective_query(endpoint: Endpoint, headers: &Headers, query: &str, method: &str) -> String {
    if endpoint == Endpoint::RegisterOptions && headers.authenticated {
        let method: String = url::form_urlencoded::byte_serialize(method.as_bytes()).collect();
        format!("method_type={method}&{query}")
    } else {
        query.to_owned()
    }
}

/// Every endpoint, `CASES` cases each, of random headers, query and a body from `body`.
fn every_endpoint(what: &str, body: impl Fn(Endpoint) -> BoxedStrategy<Payload>) {
    let fx = Fixture::new();
    let fx = &fx;
    for endpoint in Endpoint::ALL {
        let strategy = (headers(&fx.app), query(), bad_method(), body(endpoint));
        fx.check(
            &format!("{what} to {endpoint:?}"),
            CASES,
            strategy,
            move |(headers, query, method, payload)| async move {
                let query = effective_query(endpoint, &headers, &query, &method);
                let req = request(endpoint, &query, &headers.list, &payload);
                let reply = call(&fx.app, endpoint, req).await;
                if endpoint == Endpoint::LoginBegin && reply.status == StatusCode::OK {
                    return usernameless_begun(&payload, &reply);
                }
                fx.expect(endpoint, &reply)
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage to every endpoint
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_bytes_are_refused_by_every_endpoint() {
    every_endpoint("arbitrary bytes", |_| {
        prop_oneof![
            1 => Just(Payload::Absent),
            4 => bytes(512).prop_map(Payload::Binary),
            2 => bytes(256).prop_map(|b| Payload::Text(String::from_utf8_lossy(&b).into_owned())),
            // Almost JSON: a JSON text cut short.
            2 => (any_json(), any::<Index>()).prop_map(|(v, cut)| {
                let text = v.to_string();
                let at = cut.index(text.len().max(1));
                Payload::Binary(text.as_bytes()[..at].to_vec())
            }),
        ]
        .boxed()
    });
}

#[test]
fn arbitrary_json_is_refused_by_every_endpoint() {
    every_endpoint("arbitrary JSON", |_| {
        any_json().prop_map(|v| Payload::json(&v)).boxed()
    });
}

#[test]
fn plausible_json_with_garbage_fields_is_refused_by_every_endpoint() {
    every_endpoint("plausible JSON", |endpoint| {
        plausible_body(endpoint)
            .prop_map(|v| Payload::json(&v))
            .boxed()
    });
}

#[test]
fn random_headers_and_queries_are_refused_by_every_endpoint() {
    // Well-formed bodies naming nothing that exists, so only the headers and query vary.
    let body = |endpoint: Endpoint| match endpoint {
        Endpoint::RegisterOptions | Endpoint::Jwks => Payload::Absent,
        Endpoint::RegisterComplete => Payload::json(&json!({
            "credential": {}, "device_name": "Key", "method_type": FIDO
        })),
        Endpoint::MfaOptions => Payload::json(&json!({ "challenge_id": uuid::Uuid::new_v4() })),
        Endpoint::MfaComplete => Payload::json(&json!({
            "challenge_id": uuid::Uuid::new_v4(), "credential": {}
        })),
        Endpoint::BackupCode => Payload::json(&json!({
            "challenge_id": uuid::Uuid::new_v4(), "code": "AAAA-BBBB-CCCC"
        })),
        Endpoint::LoginBegin => Payload::json(&json!({ "email": "nobody@example.com" })),
        Endpoint::LoginComplete => Payload::json(&json!({
            "credential": {}, "email": "nobody@example.com"
        })),
        Endpoint::Refresh | Endpoint::Logout => Payload::json(&json!({
            "refresh_token": format!("rt1_{}", URL_SAFE_NO_PAD.encode([7u8; 48]))
        })),
    };
    every_endpoint("random headers and query", |endpoint| {
        Just(body(endpoint)).boxed()
    });
}

// ---------------------------------------------------------------------------------------------
// Spoiled answers to real ceremonies
// ---------------------------------------------------------------------------------------------

/// The value at a dotted path of a credential (`response.signature`).
fn at<'v>(value: &'v mut Value, path: &str) -> &'v mut Value {
    path.split('.').fold(value, |v, key| &mut v[key])
}

/// One thing wrong with an otherwise genuine credential.
#[derive(Clone, Debug)]
enum Spoil {
    /// The field replaced by garbage of its kind (or any JSON).
    Replace(&'static str, Value),
    /// The field's bytes cut short.
    Truncate(&'static str, Index),
    /// One field of the client data replaced.
    ClientData(&'static str, Value),
    /// A required field left out.
    Remove(&'static str),
}

impl Spoil {
    /// Applies the spoil; `false` if it changed nothing that must fail (the case is skipped).
    fn apply(&self, credential: &mut Value) -> bool {
        let before = credential.clone();
        match self {
            Spoil::Replace(path, value) => *at(credential, path) = value.clone(),
            Spoil::Truncate(path, cut) => {
                let field = at(credential, path);
                let bytes = URL_SAFE_NO_PAD
                    .decode(field.as_str().expect("a base64url field"))
                    .expect("base64url");
                let kept = &bytes[..cut.index(bytes.len().max(1))];
                *field = json!(URL_SAFE_NO_PAD.encode(kept));
            }
            Spoil::ClientData(key, value) => {
                let field = at(credential, "response.clientDataJSON");
                let raw = URL_SAFE_NO_PAD
                    .decode(field.as_str().expect("clientDataJSON"))
                    .expect("base64url");
                let mut data: Value = serde_json::from_slice(&raw).expect("client data JSON");
                if data[*key] == *value {
                    // Only the keys' order would change, which need not fail everywhere.
                    return false;
                }
                data[*key] = value.clone();
                *field = json!(URL_SAFE_NO_PAD.encode(data.to_string()));
            }
            Spoil::Remove(path) => {
                let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
                let parent = if parent.is_empty() {
                    &mut *credential
                } else {
                    at(credential, parent)
                };
                parent.as_object_mut().expect("an object").remove(key);
            }
        }
        *credential != before
    }
}

/// Ways to spoil a genuine credential whose base64url fields are `fields`, each bound to make
/// it fail: the credential id, the signed data, the signature or what the client data says
/// changes, or the credential no longer parses. (No bit flips: an attestation's unsigned parts
/// may change without failing it.)
fn spoil(fields: &'static [&'static str]) -> BoxedStrategy<Spoil> {
    let field = || prop::sample::select(fields);
    let client_data_key = prop::sample::select(&["type", "challenge", "origin"][..]);
    prop_oneof![
        3 => (field(), b64_field()).prop_map(|(f, v)| Spoil::Replace(f, v)),
        1 => client_data().prop_map(|v| Spoil::Replace("response.clientDataJSON", v)),
        2 => (field(), any::<Index>()).prop_map(|(f, cut)| Spoil::Truncate(f, cut)),
        2 => (client_data_key, any_json()).prop_map(|(k, v)| Spoil::ClientData(k, v)),
        1 => prop::sample::select(&["id", "rawId", "response"][..]).prop_map(Spoil::Remove),
        1 => field().prop_map(Spoil::Remove),
    ]
    .boxed()
}

const ATTESTATION_FIELDS: &[&str] = &[
    "rawId",
    "response.clientDataJSON",
    "response.attestationObject",
];
const ASSERTION_FIELDS: &[&str] = &[
    "rawId",
    "response.clientDataJSON",
    "response.authenticatorData",
    "response.signature",
];

/// Client data asking for this challenge, otherwise well-formed.
fn client_data_with_challenge(challenge: &[u8], kind: &str) -> Value {
    let data = json!({
        "type": kind,
        "challenge": URL_SAFE_NO_PAD.encode(challenge),
        "origin": ORIGIN,
    });
    json!(URL_SAFE_NO_PAD.encode(data.to_string()))
}

/// Values at the edges of what the store can key: empty, just past the longest credential id a
/// sort key can hold (768 bytes, 1024 base64url characters), and far longer.
fn edge_spoils(fields: &[&'static str], kind: &str) -> Vec<Spoil> {
    let mut spoils = Vec::new();
    for field in fields {
        spoils.push(Spoil::Replace(field, json!("")));
    }
    for size in [769, 3000] {
        spoils.push(Spoil::Replace(
            "rawId",
            json!(URL_SAFE_NO_PAD.encode(vec![0x5A; size])),
        ));
    }
    for size in [0, 3000] {
        spoils.push(Spoil::Replace(
            "response.clientDataJSON",
            client_data_with_challenge(&vec![0; size], kind),
        ));
    }
    spoils
}

/// A user of the fixture's tenant with a unique address and an enrolled passkey.
fn passkey_user(fx: &Fixture) -> (shared::store::UserRecord, RefCell<Authenticator>) {
    fx.block_on(async {
        let email = format!("garbage-{}@example.com", uuid::Uuid::new_v4());
        let user = fx.app.add_user(&email).await;
        let mut passkey = Authenticator::passkey();
        let reply = fx.app.enroll_user(&user, &mut passkey, PASSKEY).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (user, RefCell::new(passkey))
    })
}

/// `X-Tenant-ID` as a client may send it to the MFA and passwordless endpoints: absent, the
/// right tenant, another tenant, or garbage.
fn optional_tenant(app: &TestApp) -> BoxedStrategy<Vec<(String, String)>> {
    let tenant = app.tenant.tenant_id.to_string();
    prop::option::of(prop_oneof![Just(tenant), uuid_string(), header_text()])
        .prop_map(|header| {
            header
                .map(|h| vec![("x-tenant-id".to_owned(), h)])
                .unwrap_or_default()
        })
        .boxed()
}

#[test]
fn spoiled_attestations_of_real_enrollments_are_refused() {
    let fx = &Fixture::new();
    let passkey = &RefCell::new(Authenticator::passkey());
    let key = &RefCell::new(Authenticator::security_key());
    let headers = &fx.app.auth_headers(&fx.app.token());
    let case = move |(fido, spoil): (bool, Spoil)| async move {
        let (method, authenticator) = if fido {
            (FIDO, key)
        } else {
            (PASSKEY, passkey)
        };
        let options = fx.app.register_options(headers, Some(method)).await;
        prop_assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let mut credential = authenticator
            .borrow_mut()
            .register(&options.body["options"], ORIGIN)
            .map_err(TestCaseError::fail)?;
        prop_assume!(spoil.apply(&mut credential));
        let body = json!({ "credential": credential, "device_name": "Key", "method_type": method });
        refused(&fx.app.register_complete(headers, &body).await, false)
    };
    let edges = edge_spoils(ATTESTATION_FIELDS, "webauthn.create");
    fx.sweep(
        "edge values in attestations",
        edges.into_iter().map(|s| (true, s)).collect(),
        case,
    );
    fx.check(
        "spoiled attestations",
        CEREMONY_CASES,
        (any::<bool>(), spoil(ATTESTATION_FIELDS)),
        case,
    );
    let stored = fx.block_on(
        fx.app
            .store
            .list_credentials(&fx.app.tenant.tenant_id, &fx.app.user.user_id),
    );
    assert!(
        stored.expect("credentials").is_empty(),
        "nothing was registered"
    );
}

#[test]
fn spoiled_mfa_assertions_are_refused() {
    let fx = &Fixture::new();
    let key = &RefCell::new(Authenticator::security_key());
    let enrolled = fx.block_on(fx.app.enroll(&mut key.borrow_mut(), FIDO, "Key"));
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let case = move |(spoil, headers): (Spoil, Vec<(String, String)>)| async move {
        let challenge = fx.app.mfa_challenge(&fx.app.user).await;
        let options = fx
            .app
            .mfa_options(&[], &json!({ "challenge_id": challenge }))
            .await;
        prop_assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let mut credential = key
            .borrow_mut()
            .authenticate(&options.body["options"], ORIGIN)
            .map_err(TestCaseError::fail)?;
        prop_assume!(spoil.apply(&mut credential));
        let body = json!({ "challenge_id": challenge, "credential": credential });
        refused(&fx.app.mfa_complete(&headers, &body).await, false)
    };
    let edges = edge_spoils(ASSERTION_FIELDS, "webauthn.get");
    fx.sweep(
        "edge values in MFA assertions",
        edges.into_iter().map(|s| (s, Vec::new())).collect(),
        case,
    );
    fx.check(
        "spoiled MFA assertions",
        CEREMONY_CASES,
        (spoil(ASSERTION_FIELDS), optional_tenant(&fx.app)),
        case,
    );
    let stored = fx
        .block_on(
            fx.app
                .store
                .list_credentials(&fx.app.tenant.tenant_id, &fx.app.user.user_id),
        )
        .expect("credentials");
    assert_eq!(stored[0].use_count, 0, "no assertion was accepted");
}

#[test]
fn wrong_backup_codes_for_real_challenges_are_refused() {
    let fx = &Fixture::new();
    let enrolled = fx.block_on(
        fx.app
            .enroll(&mut Authenticator::security_key(), FIDO, "Key"),
    );
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let codes: Vec<String> = serde_json::from_value(enrolled.body["codes"].clone()).unwrap();
    let code = or_any_json(string_value(
        prop_oneof!["[A-Za-z0-9]{4}-[A-Za-z0-9]{4}-[A-Za-z0-9]{4}", text()].boxed(),
    ))
    .prop_filter("not one of the user's codes", move |v| {
        !v.as_str()
            .is_some_and(|c| codes.iter().any(|code| code.eq_ignore_ascii_case(c.trim())))
    });
    fx.check(
        "wrong backup codes",
        CASES,
        (code, optional_tenant(&fx.app)),
        move |(code, headers)| async move {
            let challenge = fx.app.mfa_challenge(&fx.app.user).await;
            let body = Payload::json(&json!({ "challenge_id": challenge, "code": code }));
            let req = request(Endpoint::BackupCode, "", &headers, &body);
            refused(&call(&fx.app, Endpoint::BackupCode, req).await, false)
        },
    );
    let stored = fx
        .block_on(
            fx.app
                .store
                .get_backup_codes(&fx.app.tenant.tenant_id, &fx.app.user.user_id),
        )
        .expect("store")
        .expect("codes");
    assert_eq!(stored.remaining(), 10, "no code was used");
    assert!(stored.used.is_empty());
}

#[test]
fn spoiled_passwordless_assertions_are_refused() {
    let fx = &Fixture::new();
    let (user, passkey) = passkey_user(fx);
    let (user, passkey) = (&user, &passkey);
    let handle = user.user_id.as_uuid().as_bytes().to_vec();
    let user_handle = bytes(64)
        .prop_filter("another user's handle", move |b| *b != handle)
        .prop_map(|b| Spoil::Replace("response.userHandle", json!(URL_SAFE_NO_PAD.encode(b))));
    let email = prop_oneof![
        3 => Just(json!(user.email)),
        1 => Just(json!(format!("  {}  ", user.email.to_uppercase()))),
        1 => email_value(),
    ];
    let case = move |(spoil, email, with_tenant): (Spoil, Value, bool)| async move {
        let begun = fx
            .app
            .login_begin(&fx.app.tenant_headers(), &user.email)
            .await;
        prop_assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        let mut credential = passkey
            .borrow_mut()
            .authenticate(&begun.body["data"]["options"], ORIGIN)
            .map_err(TestCaseError::fail)?;
        prop_assume!(spoil.apply(&mut credential));
        let headers = if with_tenant {
            fx.app.tenant_headers()
        } else {
            Vec::new()
        };
        let body = json!({ "credential": credential, "email": email }).to_string();
        refused(&fx.app.login_complete_raw(&headers, body).await, true)
    };
    let edges = edge_spoils(ASSERTION_FIELDS, "webauthn.get");
    fx.sweep(
        "edge values in passwordless assertions",
        edges
            .into_iter()
            .map(|s| (s, json!(user.email), true))
            .collect(),
        case,
    );
    fx.check(
        "spoiled passwordless assertions",
        CEREMONY_CASES,
        (
            prop_oneof![4 => spoil(ASSERTION_FIELDS), 1 => user_handle],
            email,
            any::<bool>(),
        ),
        case,
    );
    let used = fx
        .block_on(
            fx.app
                .store
                .list_credentials(&user.tenant_id, &user.user_id),
        )
        .expect("credentials");
    assert_eq!(used[0].use_count, 0, "no login succeeded");
}

#[test]
fn forged_refresh_tokens_are_refused_and_leave_the_session_alone() {
    let fx = &Fixture::new();
    let (user, passkey) = passkey_user(fx);
    let login = fx.block_on(
        fx.app
            .passwordless_login(&user, &mut passkey.borrow_mut(), &[]),
    );
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let real = login.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid: SessionId = shared::session::session_of(&real).expect("a session id");
    let tenant = fx.app.tenant.tenant_id;

    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .chars()
        .collect();
    let one_char_changed = {
        let real = real.clone();
        (4..real.len(), prop::sample::select(alphabet)).prop_filter_map(
            "a different character",
            move |(i, c)| {
                let mut chars: Vec<char> = real.chars().collect();
                (chars[i] != c).then(|| {
                    chars[i] = c;
                    chars.into_iter().collect::<String>()
                })
            },
        )
    };
    let forged = prop_oneof![
        // The session's id with a random secret.
        2 => prop::collection::vec(any::<u8>(), 32..=32).prop_map(move |secret| {
            let mut raw = sid.as_uuid().as_bytes().to_vec();
            raw.extend(secret);
            format!("rt1_{}", URL_SAFE_NO_PAD.encode(raw))
        }),
        2 => one_char_changed,
        1 => text().prop_filter("non-empty", |t| !t.is_empty())
            .prop_map({ let real = real.clone(); move |t| format!("{real}{t}") }),
        1 => prop::sample::select(&[" ", "\n", "\t"][..])
            .prop_map({ let real = real.clone(); move |w| format!("{w}{real}") }),
        1 => Just(real.to_uppercase()),
        1 => refresh_token_text(),
    ];
    // The real token itself, with a tenant header that is not its tenant's.
    let wrong_tenant = prop_oneof![uuid_string(), header_text()]
        .prop_filter("not the session's tenant", move |h| {
            h.parse::<shared::ids::TenantId>().ok() != Some(tenant)
        });
    let cases = prop_oneof![
        3 => (forged, optional_tenant(&fx.app)),
        1 => (Just(real.clone()), wrong_tenant.prop_map(|h| vec![("x-tenant-id".to_owned(), h)])),
    ];
    let endpoint = prop::sample::select(&[Endpoint::Refresh, Endpoint::Logout][..]);
    fx.check(
        "forged refresh tokens",
        CASES,
        (endpoint, cases),
        move |(endpoint, (token, headers))| async move {
            let body = Payload::json(&json!({ "refresh_token": token }));
            let req = request(endpoint, "", &headers, &body);
            refused(&call(&fx.app, endpoint, req).await, true)
        },
    );
    let session = fx
        .block_on(fx.app.store.get_session(&sid))
        .expect("store")
        .expect("session");
    assert_eq!(session.rotations, 0);
    assert_eq!(session.revoked_at, None);
    let refreshed = fx.block_on(fx.app.refresh(&[], &real));
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[test]
fn garbage_fingerprints_do_not_break_a_genuine_login() {
    let fx = &Fixture::new();
    let (user, passkey) = passkey_user(fx);
    let (user, passkey) = (&user, &passkey);
    fx.check(
        "garbage fingerprints",
        CEREMONY_CASES / 2,
        header_text(),
        move |fingerprint| async move {
            let begun = fx
                .app
                .login_begin(&fx.app.tenant_headers(), &user.email)
                .await;
            prop_assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
            let credential = passkey
                .borrow_mut()
                .authenticate(&begun.body["data"]["options"], ORIGIN)
                .map_err(TestCaseError::fail)?;
            let mut headers = fx.app.tenant_headers();
            headers.push(("x-device-fingerprint".to_owned(), fingerprint));
            let reply = fx
                .app
                .login_complete(&headers, &user.email, &credential)
                .await;
            prop_assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            Ok(())
        },
    );
}

/// Values the store cannot key (an empty credential id, one longer than a sort key holds, a
/// challenge far longer than any issued) are refused as the client's error before any store
/// call: DynamoDB would refuse them as keys, a server error. (moto accepts oversized keys on
/// reads, so the answer's code is what shows the store was not asked.)
#[tokio::test]
async fn ids_and_challenges_no_key_can_hold_are_refused_before_the_store() {
    let app = TestApp::new().await;
    let spoils = |kind: &str| {
        vec![
            Spoil::Replace("rawId", json!("")),
            Spoil::Replace("rawId", json!(URL_SAFE_NO_PAD.encode([1u8; 769]))),
            Spoil::Replace(
                "response.clientDataJSON",
                client_data_with_challenge(&[0; 65], kind),
            ),
            Spoil::Replace(
                "response.clientDataJSON",
                client_data_with_challenge(&[0; 3000], kind),
            ),
        ]
    };

    let headers = app.auth_headers(&app.token());
    let mut key = Authenticator::security_key();
    let genuine = app.registration_credential(&headers, FIDO, &mut key).await;
    for spoil in spoils("webauthn.create") {
        let mut credential = genuine.clone();
        assert!(spoil.apply(&mut credential));
        let body = json!({ "credential": credential, "device_name": "Key", "method_type": FIDO });
        let reply = app.register_complete(&headers, &body).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(reply.body["details"]["field"], "credential", "{spoil:?}");
    }
    // None of that used the pending enrollment up.
    let body = json!({ "credential": genuine, "device_name": "Key", "method_type": FIDO });
    let done = app.register_complete(&headers, &body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);

    let email = format!("keys-{}@example.com", uuid::Uuid::new_v4());
    let user = app.add_user(&email).await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll_user(&user, &mut passkey, PASSKEY).await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let genuine = app.login_assertion(&email, &mut passkey).await;
    for spoil in spoils("webauthn.get") {
        let mut credential = genuine.clone();
        assert!(spoil.apply(&mut credential));
        let reply = app
            .login_complete(&app.tenant_headers(), &email, &credential)
            .await;
        reply.assert_v1_error(StatusCode::BAD_REQUEST, "AUTHENTICATION_COMPLETION_FAILED");
        assert_eq!(reply.body["details"]["field"], "credential", "{spoil:?}");
    }
    let ok = app
        .login_complete(&app.tenant_headers(), &email, &genuine)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}
