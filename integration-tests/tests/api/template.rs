//! The stack's hardening, read from `template.yaml`: no secret parameters, keys and secrets
//! as the Rust code expects them, a log group with retention and two alarms per function,
//! throttling of the unauthenticated routes, CORS, and an access log without secrets.

use std::collections::BTreeSet;

use serde_yaml::Value;

use crate::cfn::{intrinsic, Template};

/// `!Ref name` (short or long form) → `name`.
fn ref_name(value: &Value) -> Option<&str> {
    match intrinsic(value) {
        Some((name, arg)) if name == "Ref" => arg.as_str(),
        _ => None,
    }
}

#[test]
fn deploying_needs_no_secret_parameter() {
    let t = Template::load();
    for (name, p) in t.doc["Parameters"].as_mapping().expect("Parameters") {
        let name = name.as_str().unwrap();
        assert!(p["NoEcho"].is_null(), "{name} is a secret parameter");
        assert!(!p["Default"].is_null(), "{name} has no default");
    }
    for gone in ["JwtSigningKey", "JwtVerificationJwks", "BackupCodePepper"] {
        assert!(t.doc["Parameters"][gone].is_null(), "{gone} is back");
    }
    assert!(
        !has_key(&t.doc, "SecretString"),
        "a secret value written in the template"
    );
}

/// Whether a mapping anywhere in `value` has the key `key`.
fn has_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            .any(|(k, v)| k.as_str() == Some(key) || has_key(v, key)),
        Value::Sequence(items) => items.iter().any(|v| has_key(v, key)),
        Value::Tagged(tagged) => has_key(&tagged.value, key),
        _ => false,
    }
}

#[test]
fn token_keys_and_secrets_are_what_the_code_expects() {
    for (algorithm, spec) in [("ES256", "ECC_NIST_P256"), ("RS256", "RSA_2048")] {
        let t =
            Template::load().with(&[("TokenAlgorithm", algorithm), ("PublishedKeySlots", "A,B")]);
        for key in ["TokenKeyA", "TokenKeyB"] {
            let r = t.resource(key);
            assert_eq!(r["Type"].as_str(), Some("AWS::KMS::Key"));
            let p = &r["Properties"];
            assert_eq!(t.choose(&p["KeySpec"]).and_then(Value::as_str), Some(spec));
            assert_eq!(p["KeyUsage"].as_str(), Some("SIGN_VERIFY"));
            assert_eq!(p["PendingWindowInDays"].as_u64(), Some(7));
            assert_eq!(
                r["DeletionPolicy"].as_str(),
                Some("Delete"),
                "{key}: retired keys go"
            );
            let statements = p["KeyPolicy"]["Statement"].as_sequence().unwrap();
            assert_eq!(
                statements.len(),
                1,
                "{key}: only the account administers it"
            );
            let principal = &statements[0]["Principal"]["AWS"];
            let (sub, arg) = intrinsic(principal).expect("a !Sub principal");
            assert_eq!(sub, "Sub");
            assert_eq!(
                arg.as_str(),
                Some("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
            );
        }
    }
    let t = Template::load();
    for secret in ["BackupCodePepperSecret", "ConcealmentSecret"] {
        let r = t.resource(secret);
        assert_eq!(r["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
        let generate = &r["Properties"]["GenerateSecretString"];
        assert_eq!(generate["PasswordLength"].as_u64(), Some(64));
        assert_eq!(generate["ExcludePunctuation"].as_bool(), Some(true));
        assert!(r["Properties"]["SecretString"].is_null());
        assert_eq!(r["DeletionPolicy"].as_str(), Some("Retain"), "{secret}");
    }
    // Each slot exists exactly while it is published, in every rotation step.
    for (published, a, b) in [("A", true, false), ("A,B", true, true), ("B", false, true)] {
        let t = Template::load().with(&[("PublishedKeySlots", published)]);
        assert_eq!((t.exists("TokenKeyA"), t.exists("TokenKeyB")), (a, b));
    }
}

#[test]
fn every_function_has_a_log_group_with_retention_and_two_alarms() {
    let t = Template::load();
    let all = t.all_resources();
    let functions: Vec<_> = all
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .collect();
    assert!(functions.len() >= 34);
    let globals = &t.doc["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(globals["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(ref_name(&globals["ApplicationLogLevel"]), Some("LogLevel"));
    for (id, function) in functions {
        let name = id.strip_suffix("Function").expect("ids end in Function");
        let condition = &function["Condition"];
        let group_id = format!("{name}LogGroup");
        assert_eq!(
            ref_name(&function["Properties"]["LoggingConfig"]["LogGroup"]),
            Some(group_id.as_str()),
            "{id} logs to {group_id}"
        );
        let group = t.resource(&group_id);
        assert_eq!(
            group["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{group_id}"
        );
        assert_eq!(
            &group["Condition"], condition,
            "{group_id} exists with {id}"
        );
        assert_eq!(
            ref_name(&group["Properties"]["RetentionInDays"]),
            Some("LogRetentionDays"),
            "{group_id}"
        );
        for metric in ["Errors", "Throttles"] {
            let alarm_id = format!("{name}{metric}Alarm");
            let alarm = t.resource(&alarm_id);
            assert_eq!(
                alarm["Type"].as_str(),
                Some("AWS::CloudWatch::Alarm"),
                "{alarm_id}"
            );
            assert_eq!(
                &alarm["Condition"], condition,
                "{alarm_id} exists with {id}"
            );
            let p = &alarm["Properties"];
            assert_eq!(p["Namespace"].as_str(), Some("AWS/Lambda"));
            assert_eq!(p["MetricName"].as_str(), Some(metric));
            assert_eq!(p["Dimensions"][0]["Name"].as_str(), Some("FunctionName"));
            assert_eq!(ref_name(&p["Dimensions"][0]["Value"]), Some(*id));
            assert_eq!(p["Threshold"].as_u64(), Some(0));
            assert_eq!(
                p["ComparisonOperator"].as_str(),
                Some("GreaterThanThreshold")
            );
            assert_alarm_notifies(&alarm_id);
        }
    }
}

/// The alarm notifies AlarmTopicArn, and only when it is set.
fn assert_alarm_notifies(alarm_id: &str) {
    for (topic, notified) in [
        ("", false),
        ("arn:aws:sns:us-east-1:123456789012:ops", true),
    ] {
        let t = Template::load().with(&[("AlarmTopicArn", topic)]);
        for actions in ["AlarmActions", "OKActions"] {
            let p = &t.resource(alarm_id)["Properties"][actions];
            let targets: Vec<String> = t.items(p).iter().map(|v| t.scalar(v)).collect();
            let expected: Vec<String> = notified.then(|| topic.to_owned()).into_iter().collect();
            assert_eq!(targets, expected, "{alarm_id} {actions}");
        }
    }
}

#[test]
fn the_api_alarms_on_its_share_of_5xx_answers() {
    let t = Template::load();
    let p = &t.resource("HttpApi5xxRateAlarm")["Properties"];
    let metrics = p["Metrics"].as_sequence().expect("metric math");
    let names: BTreeSet<&str> = metrics
        .iter()
        .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["5xx", "Count"]));
    for m in metrics.iter().filter(|m| !m["MetricStat"].is_null()) {
        let dimension = &m["MetricStat"]["Metric"]["Dimensions"][0];
        assert_eq!(dimension["Name"].as_str(), Some("ApiId"));
        assert_eq!(ref_name(&dimension["Value"]), Some("PasskeyHttpApi"));
    }
    let returned: Vec<&Value> = metrics
        .iter()
        .filter(|m| m["ReturnData"].as_bool() != Some(false))
        .collect();
    assert_eq!(returned.len(), 1);
    assert!(returned[0]["Expression"]
        .as_str()
        .is_some_and(|e| e.contains("errors / requests")));
    assert_alarm_notifies("HttpApi5xxRateAlarm");
}

/// The routes anyone can call without a token or IAM signature.
const UNAUTHENTICATED: &[&str] = &[
    "POST /v1/auth/mfa/webauthn/options",
    "POST /v1/auth/mfa/webauthn/complete",
    "POST /v1/auth/mfa/backup_code/complete",
    "POST /api/v1/webauthn/authenticate/begin",
    "POST /api/v1/webauthn/authenticate/complete",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
];

#[test]
fn unauthenticated_routes_have_their_own_throttling() {
    let t = Template::load();
    let api = &t.resource("PasskeyHttpApi")["Properties"];
    let defaults = &api["DefaultRouteSettings"];
    assert_eq!(
        ref_name(&defaults["ThrottlingRateLimit"]),
        Some("ThrottlingRateLimit")
    );
    assert_eq!(
        ref_name(&defaults["ThrottlingBurstLimit"]),
        Some("ThrottlingBurstLimit")
    );
    let routes: BTreeSet<String> = t
        .routes()
        .into_iter()
        .filter(|(api, ..)| api == "PasskeyHttpApi")
        .map(|(_, method, path, _)| format!("{method} {path}"))
        .collect();
    let settings = api["RouteSettings"].as_mapping().expect("RouteSettings");
    let keys: BTreeSet<String> = settings
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = UNAUTHENTICATED.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys, expected);
    for (key, s) in settings {
        let key = key.as_str().unwrap();
        assert!(routes.contains(key), "RouteSettings names no route: {key}");
        assert_eq!(
            ref_name(&s["ThrottlingRateLimit"]),
            Some("UnauthenticatedRateLimit")
        );
        assert_eq!(
            ref_name(&s["ThrottlingBurstLimit"]),
            Some("UnauthenticatedBurstLimit")
        );
    }
}

#[test]
fn cors_is_off_by_default_and_covers_what_the_routes_use() {
    let cors_of = |t: &Template| {
        t.choose(&t.resource("PasskeyHttpApi")["Properties"]["CorsConfiguration"])
            .cloned()
    };
    assert!(
        cors_of(&Template::load()).is_none(),
        "no CORS without AllowedOrigins"
    );
    let t = Template::load().with(&[("AllowedOrigins", "https://app.example.com")]);
    let cors = cors_of(&t).expect("CORS with AllowedOrigins");
    let (split, _) = intrinsic(&cors["AllowOrigins"]).expect("origins split from the parameter");
    assert_eq!(split, "Split");
    let methods: BTreeSet<String> = cors["AllowMethods"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    for (api, method, path, _) in t.routes() {
        if api == "PasskeyHttpApi" {
            assert!(methods.contains(&method), "CORS lacks {method} ({path})");
        }
    }
    let headers: BTreeSet<String> = cors["AllowHeaders"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_lowercase())
        .collect();
    for header in [
        "authorization",
        "content-type",
        "x-tenant-id",
        "x-device-fingerprint",
    ] {
        assert!(headers.contains(header), "CORS lacks the {header} header");
    }
    assert_eq!(cors["AllowCredentials"].as_bool(), Some(false));
    assert!(cors["MaxAge"].as_u64().is_some());
}

#[test]
fn the_access_log_is_json_without_secrets() {
    let t = Template::load();
    let settings = &t.resource("PasskeyHttpApi")["Properties"]["AccessLogSettings"];
    let (getatt, arg) = intrinsic(&settings["DestinationArn"]).expect("!GetAtt group");
    assert_eq!(getatt, "GetAtt");
    assert_eq!(arg.as_str(), Some("HttpApiAccessLogGroup.Arn"));
    let group = &t.resource("HttpApiAccessLogGroup")["Properties"];
    assert_eq!(
        ref_name(&group["RetentionInDays"]),
        Some("LogRetentionDays")
    );
    let format = settings["Format"].as_str().expect("format");
    let line: serde_json::Value = serde_json::from_str(format).expect("a JSON format");
    for field in [
        "requestId",
        "ip",
        "routeKey",
        "status",
        "responseLatency",
        "integrationErrorMessage",
    ] {
        assert!(line.get(field).is_some(), "the access log lacks {field}");
    }
    for secret in ["header", "body", "querystring", "authorizer.claims", "path"] {
        assert!(
            !format.to_lowercase().contains(secret),
            "the access log may carry a secret ({secret})"
        );
    }
}

/// `[workspace.metadata.lambda.watch.router]` of the root Cargo.toml (the local run's routes):
/// (method, path, function).
fn router_routes() -> BTreeSet<(String, String, String)> {
    let cargo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .expect("Cargo.toml");
    let mut routes = BTreeSet::new();
    let mut in_router = false;
    let mut path = String::new();
    for line in cargo.lines().map(str::trim) {
        if line.starts_with('[') && !line.starts_with("[workspace.metadata.lambda.watch.router]") {
            in_router = false;
        }
        if line == "[workspace.metadata.lambda.watch.router]" {
            in_router = true;
            continue;
        }
        if !in_router {
            continue;
        }
        if let Some(rest) = line.strip_prefix('"') {
            path = rest.split('"').next().unwrap_or_default().to_owned();
        } else if line.starts_with("{ method") {
            let field = |name: &str| {
                line.split(&format!("{name} = \""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .unwrap_or_default()
                    .to_owned()
            };
            routes.insert((field("method"), path.clone(), field("function")));
        }
    }
    routes
}

/// One route table: every route of `template.yaml` (with the optional example API) is served
/// by the local run's router with the same function, and the other way round; it is an
/// operation of `api/openapi.yaml` whose `operationId` is that function, and the other way
/// round; every crate under `functions/` is deployed; and the README names every route.
#[test]
fn template_router_functions_and_readme_agree_on_the_routes() {
    let t = Template::load().with(&[("CreateExampleApi", "true"), ("TokenAlgorithm", "RS256")]);
    let template: BTreeSet<(String, String, String)> = t
        .routes()
        .into_iter()
        .map(|(_, method, path, id)| {
            let binary = t.resource(&id)["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"))
                .to_owned();
            (method, path, binary)
        })
        .collect();
    let router = router_routes();
    assert!(!router.is_empty(), "the router section was not found");
    assert_eq!(
        template.difference(&router).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "routes of template.yaml missing from the cargo-lambda router"
    );
    assert_eq!(
        router.difference(&template).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "routes of the cargo-lambda router missing from template.yaml"
    );
    let crates: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions"))
            .expect("functions/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
    let deployed: BTreeSet<String> = template.iter().map(|(_, _, f)| f.clone()).collect();
    assert_eq!(crates, deployed, "functions/ and the template's functions");
    // api/openapi.yaml: the same operations, each named (operationId) for its function.
    let spec = crate::contract::operations();
    assert_eq!(
        template.difference(&spec).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "routes of template.yaml missing from api/openapi.yaml (or another operationId)"
    );
    assert_eq!(
        spec.difference(&template).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "operations of api/openapi.yaml that template.yaml does not route (or another function)"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    for (method, path, function) in &template {
        assert!(
            readme.contains(path.as_str()),
            "README.md does not name {method} {path} ({function})"
        );
    }
}
