//! The API contract, `api/openapi.yaml`, and the check every response of these tests goes
//! through ([`crate::harness::invoke`]): the route (method and path template, from the
//! request's API Gateway `routeKey`) must be an operation of the document, the status one it
//! documents for that operation, the required headers present, the content type the documented
//! one, and the body valid against the documented schema (JSON Schema 2020-12, formats checked).
//!
//! The document is read and its registry prepared once per process; each response schema's
//! validator is compiled the first time a test meets it and kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::{Registry, Validator};
use lambda_http::http::{HeaderMap, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{json, Value};

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.yaml");
/// The URI the document is registered under; response schemas are `$ref`s into it.
const SPEC_URI: &str = "urn:openapi";
const JSON: &str = "application/json";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

struct Contract {
    doc: Value,
    registry: Registry<'static>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| {
    let text = std::fs::read_to_string(SPEC_PATH).expect("api/openapi.yaml");
    let doc: Value = serde_yaml::from_str(&text).expect("api/openapi.yaml is YAML");
    let registry = Registry::new()
        .draft(jsonschema::Draft::Draft202012)
        .add(SPEC_URI, doc.clone())
        .expect("the spec's URI")
        .prepare()
        .expect("api/openapi.yaml as a JSON Schema resource");
    Contract {
        doc,
        registry,
        validators: Mutex::new(HashMap::new()),
    }
});

/// The parsed document.
pub fn document() -> &'static Value {
    &CONTRACT.doc
}

/// Every operation of the document: (method in upper case, path template, operationId).
pub fn operations() -> BTreeSet<(String, String, String)> {
    let mut ops = BTreeSet::new();
    let paths = document()["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let item = item.as_object().expect("a path item");
        for (method, op) in item {
            if METHODS.contains(&method.as_str()) {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                ops.insert((method.to_uppercase(), path.clone(), id));
            }
        }
    }
    ops
}

/// The request's route as API Gateway names it (`routeKey`, e.g. `POST /v1/auth/refresh`).
pub fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone(),
        _ => None,
    }
    .filter(|key| key.contains(' '))
    .unwrap_or_else(|| panic!("the request carries no API Gateway v2 routeKey: {req:?}"))
}

/// `segment` as a JSON pointer token inside a URI fragment.
fn pointer_token(segment: &str) -> String {
    let escaped = segment.replace('~', "~0").replace('/', "~1");
    let mut out = String::new();
    for byte in escaped.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/…`) of the document; returns the object and the
/// JSON pointer (as URI-fragment tokens) where it lives.
fn resolve(value: &Value, at: Vec<String>) -> (&Value, Vec<String>) {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return (value, at);
    };
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local $refs are supported here: {reference}"));
    let target = document()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"));
    let tokens = pointer
        .split('/')
        .skip(1)
        .map(|t| pointer_token(&t.replace("~1", "/").replace("~0", "~")))
        .collect();
    resolve(target, tokens)
}

/// The documented response of `route` for `status`, and where it lives in the document.
fn documented_response(
    route: &str,
    status: StatusCode,
) -> Result<(&'static Value, Vec<String>), String> {
    let (method, path) = route
        .split_once(' ')
        .ok_or_else(|| format!("malformed route key {route:?}"))?;
    let item = document()["paths"]
        .get(path)
        .ok_or_else(|| format!("{route}: the path is not in api/openapi.yaml"))?;
    let mut method = method.to_ascii_lowercase();
    if method == "head" && item.get("head").is_none() && item.get("get").is_some() {
        // HEAD is answered like GET.
        method = "get".to_owned();
    }
    let base = vec!["paths".to_owned(), pointer_token(path)];
    let (response, at) = match item.get(&method) {
        Some(operation) => {
            let code = status.as_u16().to_string();
            let response = operation["responses"].get(&code).ok_or_else(|| {
                let documented: Vec<&String> = operation["responses"]
                    .as_object()
                    .map(|r| r.keys().collect())
                    .unwrap_or_default();
                format!("{route}: status {status} is not documented (documented: {documented:?})")
            })?;
            let mut at = base;
            at.extend([method, "responses".to_owned(), code]);
            (response, at)
        }
        // A method no route serves: only a function that refuses it as documented.
        None => match item.get("x-method-not-allowed") {
            Some(response) if status == StatusCode::METHOD_NOT_ALLOWED => {
                let mut at = base;
                at.push("x-method-not-allowed".to_owned());
                (response, at)
            }
            _ => {
                return Err(format!(
                    "{route}: the operation is not in api/openapi.yaml (answered {status})"
                ))
            }
        },
    };
    Ok(resolve(response, at))
}

/// The validator of the schema at `pointer` (URI-fragment tokens), compiled once.
fn validator(pointer: &[String]) -> Result<Arc<Validator>, String> {
    let fragment = format!("/{}", pointer.join("/"));
    let mut cache = CONTRACT
        .validators
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&fragment) {
        return Ok(found.clone());
    }
    let compiled = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(&CONTRACT.registry)
        .should_validate_formats(true)
        .build(&json!({ "$ref": format!("{SPEC_URI}#{fragment}") }))
        .map_err(|e| format!("the schema at #{fragment} does not compile: {e}"))?;
    let compiled = Arc::new(compiled);
    cache.insert(fragment, compiled.clone());
    Ok(compiled)
}

/// Checks one response against the contract: `Err` says what is wrong, where and with what.
pub fn check(
    route: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(), String> {
    let (response, at) = documented_response(route, status)?;
    let context = || format!("{route} answered {status}: {body}");
    if let Some(documented) = response.get("headers").and_then(Value::as_object) {
        for (name, header) in documented {
            let (header, _) = resolve(header, Vec::new());
            let required = header["required"].as_bool().unwrap_or(false);
            match headers.get(name.as_str()).map(|v| v.to_str()) {
                None if required => {
                    return Err(format!(
                        "the required header {name} is missing; {}",
                        context()
                    ))
                }
                None => {}
                Some(Err(_)) => return Err(format!("header {name} is not text; {}", context())),
                Some(Ok(value)) => {
                    let (schema, _) = resolve(&header["schema"], Vec::new());
                    let typed = match schema["type"].as_str() {
                        Some("integer") => value.parse::<i64>().map(Value::from).ok(),
                        _ => Some(Value::from(value)),
                    };
                    let valid = typed.is_some_and(|typed| {
                        jsonschema::options()
                            .build(schema)
                            .is_ok_and(|v| v.is_valid(&typed))
                    });
                    if !valid {
                        return Err(format!(
                            "header {name}: {value:?} does not match {schema}; {}",
                            context()
                        ));
                    }
                }
            }
        }
    }
    let Some(content) = response.get("content") else {
        return if body.is_null() {
            Ok(())
        } else {
            Err(format!("no body is documented; {}", context()))
        };
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content.get(content_type).is_none() {
        return Err(format!(
            "content type {content_type:?} is not documented; {}",
            context()
        ));
    }
    if content_type != JSON {
        return Err(format!("only JSON bodies are checked here; {}", context()));
    }
    let mut schema_at = at;
    schema_at.extend([
        "content".to_owned(),
        pointer_token(JSON),
        "schema".to_owned(),
    ]);
    let validator = validator(&schema_at)?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("  at {} : {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the body does not match #/{}:\n{}\n{}",
            schema_at.join("/"),
            errors.join("\n"),
            context()
        ))
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::http::header::{CONTENT_TYPE, RETRY_AFTER};
    use lambda_http::http::HeaderValue;
    use lambda_http::{Body, Response};
    use shared::error::ErrorCode;

    use super::*;
    use crate::harness::{api_request, invoke};

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        headers
    }

    const OPTIONS: &str = "POST /v1/auth/mfa/webauthn/options";

    /// The check passes what the document allows and refuses, with a message naming the place,
    /// everything else: it is a check that can fail.
    #[test]
    fn the_contract_refuses_what_it_does_not_document() {
        let json = json_headers();
        let not_found = json!({ "code": "challenge_not_found", "message": "gone" });
        check(OPTIONS, StatusCode::NOT_FOUND, &json, &not_found).expect("documented");
        let grant = json!({
            "token": null, "expires_at": "2026-04-15T12:00:00Z", "mfa_setup_required": false,
            "enrollment_required": true, "challenge_id": "5f0c3e3a-8a4c-4b8e-9d3e-2b1f0c9a7d11"
        });
        check(OPTIONS, StatusCode::OK, &json, &grant).expect("documented");

        let refused = |route: &str, status: StatusCode, headers: &HeaderMap, body: Value| {
            check(route, status, headers, &body).expect_err("must be refused")
        };
        // A body the schema refuses: the message names where.
        let err = refused(OPTIONS, StatusCode::OK, &json, json!({ "options": {} }));
        assert!(
            err.contains("does not match") && err.contains("/options"),
            "{err}"
        );
        // Formats are asserted, not just annotations.
        let mut bad_uuid = grant.clone();
        bad_uuid["challenge_id"] = json!("not-a-uuid");
        let err = refused(OPTIONS, StatusCode::OK, &json, bad_uuid);
        assert!(err.contains("challenge_id"), "{err}");
        let mut bad_time = grant.clone();
        bad_time["expires_at"] = json!("tomorrow");
        refused(OPTIONS, StatusCode::OK, &json, bad_time);
        // An undocumented field, a code the status does not list, the other surface's body.
        let mut extra = not_found.clone();
        extra["stack"] = json!("at main.rs:1");
        refused(OPTIONS, StatusCode::NOT_FOUND, &json, extra);
        let other_code = json!({ "code": "user_not_found", "message": "gone" });
        refused(OPTIONS, StatusCode::NOT_FOUND, &json, other_code);
        let v1 = json!({ "success": false, "code": "CHALLENGE_NOT_FOUND", "message": "gone" });
        refused(OPTIONS, StatusCode::NOT_FOUND, &json, v1);
        let v1_without_success = json!({ "code": "INVALID_REQUEST", "message": "bad" });
        refused(
            "POST /api/v1/auth/refresh",
            StatusCode::BAD_REQUEST,
            &json,
            v1_without_success,
        );
        // An undocumented status, route or method.
        let err = refused(OPTIONS, StatusCode::IM_A_TEAPOT, &json, not_found.clone());
        assert!(err.contains("not documented"), "{err}");
        let err = refused("POST /v1/nowhere", StatusCode::OK, &json, json!({}));
        assert!(err.contains("not in api/openapi.yaml"), "{err}");
        refused(
            "GET /v1/auth/mfa/webauthn/options",
            StatusCode::METHOD_NOT_ALLOWED,
            &json,
            json!({}),
        );
        // A 503 without Retry-After, and a body of another content type.
        let unavailable = json!({ "code": "store_unavailable", "message": "retry" });
        let err = refused(
            OPTIONS,
            StatusCode::SERVICE_UNAVAILABLE,
            &json,
            unavailable.clone(),
        );
        assert!(err.contains("Retry-After"), "{err}");
        let mut retry = json.clone();
        retry.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        check(
            OPTIONS,
            StatusCode::SERVICE_UNAVAILABLE,
            &retry,
            &unavailable,
        )
        .expect("documented");
        let mut text = HeaderMap::new();
        text.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        refused(OPTIONS, StatusCode::NOT_FOUND, &text, not_found);
    }

    /// `invoke` puts every reply through the check: a handler that answers outside the contract
    /// fails the test that called it.
    #[tokio::test]
    #[should_panic(expected = "API contract (api/openapi.yaml) violated")]
    async fn a_reply_outside_the_contract_fails_the_test() {
        let req = api_request("/v1/auth/mfa/webauthn/options", &[], &[], Some("{}".into()));
        invoke(req, |_| async {
            let mut response = Response::new(Body::from(r#"{"options": "nope"}"#));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            response
        })
        .await;
    }

    /// The two surfaces' code enums are exactly `ErrorCode::ALL`, split as the README's error
    /// table says (`seed`, `/api/v1` or `both`).
    #[test]
    fn the_error_code_enums_are_the_services_codes_per_surface() {
        let codes = |name: &str| -> BTreeSet<String> {
            document()["components"]["schemas"][name]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} enum"))
                .iter()
                .map(|c| c.as_str().expect("a code").to_owned())
                .collect()
        };
        let seed = codes("SeedErrorCode");
        let v1: BTreeSet<String> = codes("V1ErrorCode")
            .iter()
            .map(|c| {
                assert_eq!(c, &c.to_ascii_uppercase(), "/api/v1 codes are upper case");
                c.to_ascii_lowercase()
            })
            .collect();
        let all: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(&seed | &v1, all);
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let table = &readme[readme.find("## Error codes").expect("the error-code table")..];
        let mut rows = 0;
        for line in table.lines().skip_while(|l| !l.starts_with("| 400")) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [_, code, surface, ..] = cells[..] else {
                break;
            };
            let code = code.trim_matches('`');
            let (in_seed, in_v1) = match surface {
                "both" => (true, true),
                "seed" => (true, false),
                "`/api/v1`" => (false, true),
                other => panic!("surface {other:?} of {code}"),
            };
            assert_eq!(seed.contains(code), in_seed, "{code} in SeedErrorCode");
            assert_eq!(v1.contains(code), in_v1, "{code} in V1ErrorCode");
            rows += 1;
        }
        assert_eq!(rows, all.len());
    }
}
