//! Least privilege, per function. `CALLS` is the table of what each function's code calls —
//! DynamoDB operations on tables and indexes, KMS keys, Secrets Manager secrets — derived by
//! reading the code: handler → `shared` functions → `Store` methods → SDK operations.
//!
//! - `policies_allow_exactly_what_the_code_calls` resolves every function's `Policies` in
//!   `template.yaml` (under each step of a key rotation) and asserts equality both ways: every
//!   call in the table is allowed, and every allowed (action, resource) is in the table.
//! - `the_environment_names_exactly_the_keys_and_secrets_the_policy_allows` ties the
//!   KMS and Secrets Manager variables of each function to its permissions.
//! - `the_code_calls_nothing_the_table_lacks` drives every function against moto through a
//!   client that records each request's (action, table), and asserts that what the code
//!   really did is in the table — so the table cannot drift from the code unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use lambda_http::http::StatusCode;
use serde_json::{json, Value as Json};
use serde_yaml::Value;
use shared::store::Store;

use crate::cfn::{intrinsic, Template};
use crate::harness::{self, Authenticator, TestApp, ORIGIN};

/// The KMS key of `SigningKeySlot` (`TokenKeyA` or `TokenKeyB`).
const SIGNING_KEY: &str = "<signing key>";
/// Every KMS key of `PublishedKeySlots`.
const PUBLISHED_KEYS: &str = "<published keys>";
const PEPPER: &str = "BackupCodePepperSecret";

const GET: &str = "dynamodb:GetItem";
const PUT: &str = "dynamodb:PutItem";
const UPDATE: &str = "dynamodb:UpdateItem";
const DELETE: &str = "dynamodb:DeleteItem";
const CHECK: &str = "dynamodb:ConditionCheckItem";
const QUERY: &str = "dynamodb:Query";
const SCAN: &str = "dynamodb:Scan";
const BATCH_GET: &str = "dynamodb:BatchGetItem";
const BATCH_WRITE: &str = "dynamodb:BatchWriteItem";
const SIGN: &str = "kms:Sign";
const PUBLIC_KEY: &str = "kms:GetPublicKey";
const SECRET: &str = "secretsmanager:GetSecretValue";

type Calls = &'static [(&'static str, &'static str)];

/// Every function of the template and what its code calls: (IAM action, resource), the
/// resource a logical id, `Table/index/name`, or a key placeholder above. `TransactWriteItems`
/// appears as its items' actions (IAM authorizes a transaction item by item).
/// Bearer-token verification is `kms:GetPublicKey` on the published keys; issuing a token is
/// `kms:Sign` (and `kms:GetPublicKey`, for the `kid`) on the signing key.
const CALLS: &[(&str, Calls)] = &[
    (
        "RegisterOptionsFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS), // auth::authenticate
            (GET, "ChallengesTable"),     // auth::enrollment_grant (read, not consumed)
            (GET, "TenantsTable"),        // get_tenant
            (GET, "UsersTable"),          // get_user
            (QUERY, "CredentialsTable"),  // list_credentials (excludeCredentials)
            (GET, "SessionsTable"),       // Caller::session (a token's sid)
            (PUT, "ChallengesTable"),     // put_challenge (pending registration)
        ],
    ),
    (
        "RegisterCompleteFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS), // auth::authenticate
            (SECRET, PEPPER),             // BackupCodeHasher (first backup codes)
            (DELETE, "ChallengesTable"),  // consume_challenge: the registration, a grant
            (GET, "ChallengesTable"),     // enrollment_grant: a grant not consumed (mismatch)
            (GET, "TenantsTable"),
            (GET, "UsersTable"),
            (GET, "BackupCodesTable"), // get_backup_codes
            (QUERY, "CredentialsTable/index/credential-id-index"), // find_credentials_by_id
            (QUERY, "CredentialsTable"), // list_credentials
            (GET, "SessionsTable"),    // Caller::session
            (PUT, "CredentialsTable"), // save_new_credential (alone or in the transaction)
            (PUT, "BackupCodesTable"), // save_new_credential's transaction (first codes)
            (PUT, "AuditTable"),       // Audit::conclude
        ],
    ),
    (
        "MfaOptionsFunction",
        &[
            (GET, "ChallengesTable"), // get_challenge; consume_mfa_challenge on a mismatch
            (GET, "TenantsTable"),
            (QUERY, "CredentialsTable"), // challenges created before they kept the credentials
            (UPDATE, "ChallengesTable"), // attach_challenge_state
            (DELETE, "ChallengesTable"), // no authenticator: consume_mfa_challenge
            (PUT, "ChallengesTable"),    // ... then grant_enrollment
            (PUT, "AuditTable"),         // ... audited
        ],
    ),
    (
        "MfaCompleteFunction",
        &[
            (SIGN, SIGNING_KEY),
            (PUBLIC_KEY, SIGNING_KEY),
            (DELETE, "ChallengesTable"),  // consume_mfa_challenge
            (GET, "ChallengesTable"),     // ... a challenge not consumed (tenant mismatch)
            (UPDATE, "CredentialsTable"), // record_credential_use
            (GET, "CredentialsTable"),    // use_failure: clone or deleted?
            (QUERY, "CredentialsTable/index/credential-id-index"), // refusal: another tenant's?
            (PUT, "ChallengesTable"),     // mfa::conclude → grant_enrollment
            (PUT, "AuditTable"),
        ],
    ),
    (
        "BackupCodeCompleteFunction",
        &[
            (SIGN, SIGNING_KEY),
            (PUBLIC_KEY, SIGNING_KEY),
            (SECRET, PEPPER),
            (DELETE, "ChallengesTable"), // consume_mfa_challenge
            (GET, "ChallengesTable"),
            (GET, "TenantsTable"),
            (GET, "BackupCodesTable"), // get_backup_codes; record_backup_code_failure
            (QUERY, "CredentialsTable"), // list_credentials (policy)
            (UPDATE, "BackupCodesTable"), // redeem_backup_code_audited; failure counts
            (PUT, "ChallengesTable"),  // grant_enrollment
            (PUT, "AuditTable"),
        ],
    ),
    (
        "PasswordlessBeginFunction",
        &[
            (SECRET, "ConcealmentSecret"), // passwordless::concealed_options
            (GET, "TenantsTable"),         // resolve_user with X-Tenant-ID
            (QUERY, "UsersTable/index/email-index"),
            (BATCH_GET, "TenantsTable"), // resolve_user without it: get_tenants
            (QUERY, "CredentialsTable"),
            (GET, "DevicesTable"),    // device_trusted (bypass_mfa's fact)
            (PUT, "ChallengesTable"), // put_challenge (pending login)
        ],
    ),
    (
        "PasswordlessCompleteFunction",
        &[
            (SIGN, SIGNING_KEY),
            (PUBLIC_KEY, SIGNING_KEY),
            (GET, "TenantsTable"),
            (QUERY, "UsersTable/index/email-index"),
            (BATCH_GET, "TenantsTable"),
            (GET, "UsersTable"),          // usernameless: the user by handle
            (DELETE, "ChallengesTable"),  // the consume, beside the user lookup
            (QUERY, "CredentialsTable"),  // usernameless: the user's credentials
            (GET, "CredentialsTable"),    // use_failure
            (GET, "DevicesTable"),        // usernameless: device_trusted
            (UPDATE, "CredentialsTable"), // login transaction: the credential's use
            (UPDATE, "DevicesTable"),     // login transaction: the device
            (PUT, "SessionsTable"),       // login transaction: the session
            (PUT, "AuditTable"),          // login transaction; Audit::conclude of failures
        ],
    ),
    (
        "TokenRefreshFunction",
        &[
            (SIGN, SIGNING_KEY),
            (PUBLIC_KEY, SIGNING_KEY),
            (GET, "SessionsTable"), // session::find_session; after a lost rotation
            (GET, "TenantsTable"),  // find_session
            (GET, "UsersTable"),    // get_user
            (CHECK, "UsersTable"),  // rotate_refresh_token: the user still exists
            (UPDATE, "SessionsTable"), // rotate_refresh_token; revoke_session
            (PUT, "AuditTable"),    // rotate_refresh_token; Audit::conclude of failures
        ],
    ),
    (
        "LogoutFunction",
        &[
            (GET, "SessionsTable"),
            (GET, "TenantsTable"),
            (UPDATE, "SessionsTable"), // revoke_session
            (PUT, "AuditTable"),
        ],
    ),
    (
        "CredentialsListFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),  // account::account
            (GET, "SessionsTable"), // account::account (a token's sid)
            (QUERY, "CredentialsTable"),
        ],
    ),
    (
        "CredentialRenameFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (GET, "CredentialsTable"),    // credential_of
            (UPDATE, "CredentialsTable"), // rename_credential
            (PUT, "AuditTable"),
        ],
    ),
    (
        "CredentialDeleteFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (GET, "UsersTable"), // the user's groups, for the tenant's policies
            (QUERY, "CredentialsTable"), // account::delete_credential: list_credentials
            (DELETE, "CredentialsTable"), // delete_credential (transaction or alone)
            (CHECK, "CredentialsTable"), // ... the transaction's check that another remains
            (PUT, "AuditTable"),
        ],
    ),
    (
        "BackupCodesStatusFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (GET, "BackupCodesTable"),
        ],
    ),
    (
        "BackupCodesRegenerateFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (SECRET, PEPPER),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (GET, "UsersTable"), // the user's groups, for the tenant's policies
            (QUERY, "CredentialsTable"), // list_credentials: the tenant policy's principal
            (PUT, "BackupCodesTable"), // replace_backup_codes
            (PUT, "AuditTable"),
        ],
    ),
    (
        "SessionsListFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (QUERY, "SessionsTable/index/user-index"), // list_sessions
        ],
    ),
    (
        "SessionRevokeFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),    // account; revoke_own_session
            (UPDATE, "SessionsTable"), // revoke_session
            (PUT, "AuditTable"),
        ],
    ),
    (
        "SessionsRevokeOthersFunction",
        &[
            (PUBLIC_KEY, PUBLISHED_KEYS),
            (GET, "TenantsTable"),
            (GET, "SessionsTable"),
            (QUERY, "SessionsTable/index/user-index"), // admin::revoke_sessions
            (UPDATE, "SessionsTable"),
            (PUT, "AuditTable"),
        ],
    ),
    (
        "AdminUserCreateFunction",
        &[
            (GET, "TenantsTable"),                   // admin::create_user
            (QUERY, "UsersTable/index/email-index"), // find_user_by_email_in_tenant
            (PUT, "UsersTable"),                     // create_user
            (PUT, "AuditTable"),
        ],
    ),
    (
        "AdminUserFindFunction",
        &[(QUERY, "UsersTable/index/email-index")],
    ),
    (
        "AdminUserDeleteFunction",
        &[
            (UPDATE, "UsersTable"), // mark_user_deleted
            (DELETE, "UsersTable"), // erase_user: the record, last
            (QUERY, "CredentialsTable"),
            (QUERY, "BackupCodesTable"),
            (QUERY, "DevicesTable"),
            (QUERY, "SessionsTable/index/user-index"),
            (QUERY, "ChallengesTable/index/user-index"),
            (BATCH_WRITE, "CredentialsTable"),
            (BATCH_WRITE, "BackupCodesTable"),
            (BATCH_WRITE, "DevicesTable"),
            (BATCH_WRITE, "SessionsTable"),
            (BATCH_WRITE, "ChallengesTable"),
            (PUT, "AuditTable"),
        ],
    ),
    (
        "AdminMfaChallengeCreateFunction",
        &[
            (GET, "UsersTable"),
            (QUERY, "CredentialsTable"), // the credentials kept in the challenge
            (PUT, "ChallengesTable"),
        ],
    ),
    (
        "AdminUserSessionsRevokeFunction",
        &[
            (GET, "UsersTable"),
            (QUERY, "SessionsTable/index/user-index"),
            (UPDATE, "SessionsTable"),
            (PUT, "AuditTable"),
        ],
    ),
    ("AdminTenantCreateFunction", &[(PUT, "TenantsTable")]),
    ("AdminTenantGetFunction", &[(GET, "TenantsTable")]),
    (
        "AdminTenantUpdateFunction",
        &[(GET, "TenantsTable"), (PUT, "TenantsTable")], // read, then replace_tenant
    ),
    (
        "AdminUserCredentialsListFunction",
        &[(GET, "UsersTable"), (QUERY, "CredentialsTable")],
    ),
    (
        "AdminUserCredentialDeleteFunction",
        &[
            (GET, "CredentialsTable"),
            (DELETE, "CredentialsTable"),
            (PUT, "AuditTable"),
        ],
    ),
    ("AdminTenantsListFunction", &[(SCAN, "TenantsTable")]),
    ("AdminUserGetFunction", &[(GET, "UsersTable")]),
    (
        "AdminUserUpdateFunction",
        &[
            (UPDATE, "UsersTable"), // update_user, in a transaction with the audit record
            (GET, "UsersTable"),    // then read it back
            (PUT, "AuditTable"),
        ],
    ),
    (
        "AdminAuditQueryFunction",
        &[
            (QUERY, "AuditTable"),
            (QUERY, "AuditTable/index/user-index"),
            (GET, "TenantsTable"), // query_audit: the tenant's created_at bounds the days
        ],
    ),
    ("JwksFunction", &[(PUBLIC_KEY, PUBLISHED_KEYS)]),
    (
        "OpenidConfigurationFunction",
        &[(PUBLIC_KEY, PUBLISHED_KEYS)],
    ),
    // API Gateway verified the token; the function only reads the event.
    ("ExampleWhoamiFunction", &[]),
];

/// The steps of a key rotation (README), with the example API on so its function is checked.
const ROTATION: &[(&str, &str)] = &[("A", "A"), ("A", "A,B"), ("B", "A,B"), ("B", "B")];

fn template_at(signing: &str, published: &str) -> Template {
    Template::load().with(&[
        ("SigningKeySlot", signing),
        ("PublishedKeySlots", published),
        ("CreateExampleApi", "true"),
        ("TokenAlgorithm", "RS256"),
    ])
}

type Grant = (String, String);

/// The table's row for `function`, with the key placeholders resolved under `t`.
fn expected(t: &Template, function: &str) -> BTreeSet<Grant> {
    let (_, calls) = CALLS
        .iter()
        .find(|(f, _)| *f == function)
        .unwrap_or_else(|| panic!("{function} is not in the IAM table (iam.rs CALLS)"));
    let signing = if t.condition("SignWithA") {
        "TokenKeyA"
    } else {
        "TokenKeyB"
    };
    let published: Vec<&str> = ["TokenKeyA", "TokenKeyB"]
        .into_iter()
        .filter(|k| t.exists(k))
        .collect();
    let mut grants = BTreeSet::new();
    for (action, resource) in calls.iter() {
        let resources = match *resource {
            SIGNING_KEY => vec![signing],
            PUBLISHED_KEYS => published.clone(),
            other => vec![other],
        };
        for r in resources {
            assert!(
                grants.insert((action.to_string(), r.to_owned())),
                "{function}: ({action}, {r}) is in the table twice"
            );
        }
    }
    grants
}

/// Every (action, resource) the function's `Policies` allow, under `t`'s parameters.
fn allowed(t: &Template, function: &str, resource: &Value) -> BTreeSet<Grant> {
    let props = &resource["Properties"];
    assert!(props["Role"].is_null(), "{function} has its own Role");
    let mut grants = BTreeSet::new();
    for policy in props["Policies"].as_sequence().into_iter().flatten() {
        let statements = policy["Statement"].as_sequence().unwrap_or_else(|| {
            panic!("{function}: a policy that is not an inline document: {policy:?}")
        });
        for statement in statements {
            let keys: BTreeSet<&str> = statement
                .as_mapping()
                .expect("statement")
                .keys()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                keys.iter()
                    .all(|k| ["Effect", "Action", "Resource", "Sid"].contains(k)),
                "{function}: unsupported statement keys {keys:?}"
            );
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{function}");
            let actions: Vec<String> = t
                .items(&statement["Action"])
                .into_iter()
                .map(|a| a.as_str().expect("action").to_owned())
                .collect();
            let resources: Vec<String> = t
                .items(&statement["Resource"])
                .into_iter()
                .map(|r| t.arn(r))
                .collect();
            assert!(
                !resources.is_empty(),
                "{function}: a statement without resources"
            );
            for action in &actions {
                for resource in &resources {
                    grants.insert((action.clone(), resource.clone()));
                }
            }
        }
    }
    grants
}

#[test]
fn policies_allow_exactly_what_the_code_calls() {
    let globals = &Template::load().doc["Globals"]["Function"];
    assert!(
        globals["Policies"].is_null() && globals["Role"].is_null(),
        "Globals grant nothing: permissions are per function"
    );
    for (signing, published) in ROTATION {
        let t = template_at(signing, published);
        let functions = t.functions();
        let names: BTreeSet<&str> = functions.iter().map(|(id, _)| *id).collect();
        let table: BTreeSet<&str> = CALLS.iter().map(|(f, _)| *f).collect();
        assert_eq!(names, table, "the template's functions are the table's");
        for (function, resource) in functions {
            let allowed = allowed(&t, function, resource);
            let expected = expected(&t, function);
            let missing: Vec<_> = expected.difference(&allowed).collect();
            let surplus: Vec<_> = allowed.difference(&expected).collect();
            assert!(
                missing.is_empty() && surplus.is_empty(),
                "{function} (signing {signing}, published {published}):\n  \
                 the code calls, the policy does not allow: {missing:?}\n  \
                 the policy allows, the code does not call: {surplus:?}"
            );
        }
    }
}

/// The function's `Environment.Variables` entry, if any.
fn env_var<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    let value = &resource["Properties"]["Environment"]["Variables"][name];
    (!value.is_null()).then_some(value)
}

#[test]
fn the_environment_names_exactly_the_keys_and_secrets_the_policy_allows() {
    for (signing, published) in ROTATION {
        let t = template_at(signing, published);
        // Every function verifies against (or publishes) the keys of JWT_KMS_KEY_IDS.
        let ids = &t.doc["Globals"]["Function"]["Environment"]["Variables"]["JWT_KMS_KEY_IDS"];
        let (join, arg) = intrinsic(ids).expect("JWT_KMS_KEY_IDS is a !Join");
        assert_eq!(join, "Join");
        assert_eq!(arg[0].as_str(), Some(","));
        let keys: Vec<String> = t.items(&arg[1]).into_iter().map(|k| t.arn(k)).collect();
        let published_keys: Vec<String> = ["TokenKeyA", "TokenKeyB"]
            .into_iter()
            .filter(|k| t.exists(k))
            .map(str::to_owned)
            .collect();
        assert_eq!(keys, published_keys, "JWT_KMS_KEY_IDS under {published}");
        for (function, resource) in t.functions() {
            let grants = allowed(&t, function, resource);
            let signs: BTreeSet<&str> = grants
                .iter()
                .filter(|(a, _)| a == SIGN)
                .map(|(_, r)| r.as_str())
                .collect();
            let signing_var = env_var(resource, "JWT_KMS_SIGNING_KEY_ID").map(|v| t.arn(v));
            assert_eq!(
                signing_var.as_deref().into_iter().collect::<BTreeSet<_>>(),
                signs,
                "{function}: JWT_KMS_SIGNING_KEY_ID names the one key it may sign with"
            );
            let secrets: BTreeSet<&str> = grants
                .iter()
                .filter(|(a, _)| a == SECRET)
                .map(|(_, r)| r.as_str())
                .collect();
            let mut named = BTreeSet::new();
            for (var, secret) in [
                ("BACKUP_CODE_PEPPER_SECRET_ID", PEPPER),
                ("CONCEALMENT_SECRET_ID", "ConcealmentSecret"),
            ] {
                if let Some(value) = env_var(resource, var) {
                    assert_eq!(t.arn(value), secret, "{function}: {var}");
                    named.insert(secret);
                }
            }
            assert_eq!(
                named, secrets,
                "{function}: secret variables and permissions"
            );
        }
    }
}

/// The table rejects a policy that allows one action too many, and one that lacks one.
#[test]
fn the_check_catches_a_surplus_and_a_missing_permission() {
    let t = template_at("A", "A");
    let (_, jwks) = t
        .functions()
        .into_iter()
        .find(|(id, _)| *id == "AdminTenantGetFunction")
        .unwrap();
    let mut widened = jwks.clone();
    let actions = &mut widened["Properties"]["Policies"][0]["Statement"][0]["Action"];
    actions
        .as_sequence_mut()
        .unwrap()
        .push(Value::String("dynamodb:PutItem".into()));
    assert_ne!(
        allowed(&t, "AdminTenantGetFunction", &widened),
        expected(&t, "AdminTenantGetFunction")
    );
    let mut narrowed = jwks.clone();
    narrowed["Properties"]["Policies"][0]["Statement"][0]["Action"] = Value::Sequence(Vec::new());
    assert_ne!(
        allowed(&t, "AdminTenantGetFunction", &narrowed),
        expected(&t, "AdminTenantGetFunction")
    );
}

/// What the recording client saw, per function.
#[derive(Debug, Default)]
struct Recording {
    /// The function whose handler is running; requests outside one (test set-up) are ignored.
    current: Option<String>,
    calls: BTreeMap<String, BTreeSet<Grant>>,
}

/// An interceptor on the test's DynamoDB client: turns each request into the (IAM action,
/// resource) pairs IAM authorizes it by, attributed to the running function.
#[derive(Clone, Debug)]
struct Recorder {
    state: Arc<Mutex<Recording>>,
    /// Physical table name → logical id.
    tables: Arc<BTreeMap<String, String>>,
}

impl Recorder {
    fn grants(&self, operation: &str, body: &Json) -> Vec<Grant> {
        let table = |name: &str| {
            self.tables
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("<unknown table {name}>"))
        };
        let action = |name: &str| format!("dynamodb:{name}");
        match operation {
            // IAM authorizes each item of a transaction by its own action.
            "TransactWriteItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| {
                    [
                        ("Put", "PutItem"),
                        ("Update", "UpdateItem"),
                        ("Delete", "DeleteItem"),
                        ("ConditionCheck", "ConditionCheckItem"),
                    ]
                    .into_iter()
                    .filter(|(kind, _)| !item[kind].is_null())
                    .map(|(kind, name)| {
                        (
                            action(name),
                            table(item[kind]["TableName"].as_str().unwrap_or("?")),
                        )
                    })
                    .collect::<Vec<_>>()
                })
                .collect(),
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| (action(operation), table(name)))
                .collect(),
            _ => {
                let mut resource = table(body["TableName"].as_str().unwrap_or("?"));
                if let Some(index) = body["IndexName"].as_str() {
                    resource = format!("{resource}/index/{index}");
                }
                vec![(action(operation), resource)]
            }
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "IamRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split_once('.'))
            .map_or("<no target>", |(_, op)| op)
            .to_owned();
        let body: Json = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Json::Null);
        let grants = self.grants(&operation, &body);
        let mut state = self.state.lock().expect("recording");
        if let Some(function) = state.current.clone() {
            state.calls.entry(function).or_default().extend(grants);
        }
        Ok(())
    }
}

/// Runs `step` as `function`: the requests it makes are recorded under that function. The
/// step is boxed at once: the scenario awaits dozens of handlers, whose futures would otherwise
/// all be laid out in the test's own and overflow the test thread's stack in debug builds.
fn as_function<'a, T: 'a>(
    rec: &'a Recorder,
    function: &str,
    step: impl Future<Output = T> + 'a,
) -> Pin<Box<dyn Future<Output = T> + 'a>> {
    let step = Box::pin(step);
    let function = function.to_owned();
    Box::pin(async move {
        rec.state.lock().expect("recording").current = Some(function);
        let out = step.await;
        rec.state.lock().expect("recording").current = None;
        out
    })
}

/// The function behind `method route` of the passkey API.
fn function_of(method: &str, route: &str) -> String {
    Template::load()
        .routes()
        .into_iter()
        .find(|(api, m, p, _)| api == "PasskeyHttpApi" && m == method && p == route)
        .map(|(_, _, _, f)| f)
        .unwrap_or_else(|| panic!("no route {method} {route}"))
}

async fn me(
    app: &TestApp,
    rec: &Recorder,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    headers: &[(String, String)],
    body: Option<Json>,
) -> harness::Reply {
    let function = function_of(method, route);
    as_function(
        rec,
        &function,
        harness::me(app, method, route, params, headers, body),
    )
    .await
}

const ARN: &str = "arn:aws:sts::123456789012:assumed-role/operator/iam-tests";

async fn admin(
    app: &TestApp,
    rec: &Recorder,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<Json>,
) -> harness::Reply {
    let function = function_of(method, route);
    let call = harness::admin(app, Some(ARN), method, route, params, query, body);
    as_function(rec, &function, call).await
}

fn ok(reply: &harness::Reply) -> &Json {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    &reply.body
}

/// Registration options → authenticator → completion, with `headers` (a token or a grant).
async fn enroll(
    app: &TestApp,
    rec: &Recorder,
    headers: &[(String, String)],
    query: &[(&str, &str)],
    authenticator: &mut Authenticator,
    body: Json,
) -> harness::Reply {
    let req = harness::api_request("/v1/users/me/mfa/webauthn/register", query, headers, None);
    let options = as_function(
        rec,
        "RegisterOptionsFunction",
        harness::invoke(req, |req| {
            register_options::handler(&app.register_options, req)
        }),
    )
    .await;
    let credential = authenticator
        .register(&ok(&options)["options"], ORIGIN)
        .expect("authenticator registers");
    let mut body = body;
    body["credential"] = credential;
    as_function(
        rec,
        "RegisterCompleteFunction",
        app.register_complete(headers, &body),
    )
    .await
}

#[tokio::test]
async fn the_code_calls_nothing_the_table_lacks() {
    let env = harness::env().await;
    let tables: BTreeMap<String, String> =
        shared::store::schema::parse_template(crate::cfn::TEMPLATE)
            .expect("tables")
            .into_iter()
            .map(|t| {
                let name = env.tables.by_env_var(&t.env_var).expect("table name");
                (name.to_owned(), t.logical_id)
            })
            .collect();
    let rec = Recorder {
        state: Arc::default(),
        tables: Arc::new(tables),
    };
    let base = harness::client(&env.endpoint);
    let config = base.config().to_builder().interceptor(rec.clone()).build();
    let store = Store::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        env.tables.clone(),
    );
    let app = Box::pin(TestApp::build(store, |_| {})).await;
    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let tenant_only = app.tenant_headers();
    let another_tenant = vec![("x-tenant-id".to_owned(), uuid::Uuid::new_v4().to_string())];

    // The first enrollment, with an operator's token: a passkey and the backup codes, in one
    // transaction.
    let mut passkey = Authenticator::passkey();
    let body = json!({ "device_name": "Phone", "method_type": "webauthn_passkey" });
    let query = [("method_type", "webauthn_passkey")];
    let headers = app.auth_headers(&app.token());
    let first = enroll(&app, &rec, &headers, &query, &mut passkey, body).await;
    let codes = ok(&first)["codes"].clone();

    // Passwordless without X-Tenant-ID (the cross-tenant lookup, with a batch read of the
    // tenants), for an address only this test uses: Dave has no authenticator, and presents
    // an assertion of Alice's (refused, her challenge burnt). Then four sessions of Alice.
    let email = app.user.email.clone();
    let dave = app
        .add_user(&format!("dave-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let begin = app.login_begin(&[], &dave.email);
    let begun = as_function(&rec, "PasswordlessBeginFunction", begin).await;
    begun.assert_v1_error(StatusCode::NOT_FOUND, "NO_CREDENTIALS");
    let mut logins = Vec::new();
    for attempt in 0..5 {
        let begin = app.login_begin(&tenant_only, &email);
        let begun = as_function(&rec, "PasswordlessBeginFunction", begin).await;
        let credential = passkey
            .authenticate(&ok(&begun)["data"]["options"], ORIGIN)
            .expect("passkey signs");
        if attempt == 0 {
            let complete = app.login_complete(&[], &dave.email, &credential);
            let refused = as_function(&rec, "PasswordlessCompleteFunction", complete).await;
            assert!(refused.status.is_client_error(), "{}", refused.body);
            continue;
        }
        let complete = app.login_complete(&tenant_only, &email, &credential);
        let login = as_function(&rec, "PasswordlessCompleteFunction", complete).await;
        logins.push(ok(&login)["data"].clone());
    }
    // A usernameless completion (the user and credential read by key), of an e-mail login's
    // challenge: refused, and the challenge spent.
    let begin = app.login_begin(&tenant_only, &email);
    let begun = as_function(&rec, "PasswordlessBeginFunction", begin).await;
    let credential = passkey
        .authenticate(&ok(&begun)["data"]["options"], ORIGIN)
        .expect("passkey signs");
    let body = json!({ "credential": credential }).to_string();
    let complete = app.login_complete_raw(&tenant_only, body);
    let refused = as_function(&rec, "PasswordlessCompleteFunction", complete).await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    let token = |i: usize| {
        logins[i]["refresh_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let refreshed = as_function(&rec, "TokenRefreshFunction", app.refresh(&[], &token(0))).await;
    let access = ok(&refreshed)["data"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    ok(&as_function(&rec, "LogoutFunction", app.logout(&[], &token(1))).await);

    // A second enrollment with the session's token (its `sid` is read): a security key.
    let headers = app.auth_headers(&access);
    let mut key = Authenticator::security_key();
    let body = json!({ "device_name": "Key", "method_type": "webauthn_fido" });
    let query = [("method_type", "webauthn_fido")];
    ok(&enroll(&app, &rec, &headers, &query, &mut key, body).await);

    // MFA with the security key; a completion naming another tenant first (the challenge is
    // read, not consumed); then backup codes, a wrong one first.
    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge });
    let options = as_function(&rec, "MfaOptionsFunction", app.mfa_options(&[], &body)).await;
    let credential = key
        .authenticate(&ok(&options)["options"], ORIGIN)
        .expect("key signs");
    let body = json!({ "challenge_id": challenge, "credential": credential });
    let mismatch = app.mfa_complete(&another_tenant, &body);
    as_function(&rec, "MfaCompleteFunction", mismatch).await;
    let done = as_function(&rec, "MfaCompleteFunction", app.mfa_complete(&[], &body)).await;
    ok(&done);
    for code in ["AAAA-BBBB-CCCC", codes[0].as_str().expect("a code")] {
        let challenge = app.mfa_challenge(&app.user).await;
        as_function(
            &rec,
            "BackupCodeCompleteFunction",
            app.backup_code(&challenge, code),
        )
        .await;
    }

    // A user with no authenticator: MFA options trade the challenge for a grant, which
    // enrolls without a token.
    let bob = app.add_user("bob@example.com").await;
    let challenge = app.mfa_challenge(&bob).await;
    let body = json!({ "challenge_id": challenge });
    let granted = as_function(&rec, "MfaOptionsFunction", app.mfa_options(&[], &body)).await;
    let grant = ok(&granted)["challenge_id"]
        .as_str()
        .expect("grant")
        .to_owned();
    let body =
        json!({ "device_name": "Bob", "method_type": "webauthn_passkey", "challenge_id": grant });
    let query = [
        ("method_type", "webauthn_passkey"),
        ("challenge_id", grant.as_str()),
    ];
    let mut bobs_passkey = Authenticator::passkey();
    ok(&enroll(&app, &rec, &tenant_only, &query, &mut bobs_passkey, body).await);

    // Self-service.
    const CREDENTIALS: &str = "/v1/users/me/mfa/webauthn/credentials";
    const CREDENTIAL: &str = "/v1/users/me/mfa/webauthn/credentials/{credential_id}";
    let listed = me(&app, &rec, "GET", CREDENTIALS, &[], &headers, None).await;
    let ids: Vec<String> = ok(&listed)["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| c["credential_id"].as_str().expect("id").to_owned())
        .collect();
    let rename = Some(json!({ "device_name": "Renamed" }));
    let param = [("credential_id", ids[1].as_str())];
    ok(&me(&app, &rec, "PATCH", CREDENTIAL, &param, &headers, rename).await);
    ok(&me(&app, &rec, "DELETE", CREDENTIAL, &param, &headers, None).await);
    const CODES: &str = "/v1/users/me/mfa/backup_codes";
    ok(&me(&app, &rec, "GET", CODES, &[], &headers, None).await);
    ok(&me(&app, &rec, "POST", CODES, &[], &headers, None).await);
    ok(&me(
        &app,
        &rec,
        "GET",
        "/v1/users/me/sessions",
        &[],
        &headers,
        None,
    )
    .await);
    let sid = shared::session::session_of(&token(2))
        .expect("session")
        .to_string();
    let param = [("session_id", sid.as_str())];
    let session = "/v1/users/me/sessions/{session_id}";
    ok(&me(&app, &rec, "DELETE", session, &param, &headers, None).await);
    let others = me(
        &app,
        &rec,
        "DELETE",
        "/v1/users/me/sessions",
        &[],
        &headers,
        None,
    )
    .await;
    assert_eq!(ok(&others)["revoked"].as_array().map(Vec::len), Some(1));

    // The key set.
    as_function(&rec, "JwksFunction", app.jwks_document()).await;

    // The admin API.
    const TENANTS: &str = "/v1/admin/tenants";
    const TENANT: &str = "/v1/admin/tenants/{tenant_id}";
    const USERS: &str = "/v1/admin/tenants/{tenant_id}/users";
    const USER: &str = "/v1/admin/tenants/{tenant_id}/users/{user_id}";
    let t = [("tenant_id", tenant.as_str())];
    let tu = [("tenant_id", tenant.as_str()), ("user_id", user.as_str())];
    let bob_id = bob.user_id.to_string();
    let tb = [("tenant_id", tenant.as_str()), ("user_id", bob_id.as_str())];
    let settings = json!({ "name": "Other", "rp_id": "localhost", "origins": [ORIGIN] });
    ok(&admin(&app, &rec, "POST", TENANTS, &[], &[], Some(settings)).await);
    ok(&admin(&app, &rec, "GET", TENANTS, &[], &[("limit", "2")], None).await);
    ok(&admin(&app, &rec, "GET", TENANT, &t, &[], None).await);
    let rename = Some(json!({ "name": "Acme Renamed" }));
    ok(&admin(&app, &rec, "PATCH", TENANT, &t, &[], rename).await);
    let carol = json!({ "email": "carol@example.com", "display_name": "Carol" });
    let created = admin(&app, &rec, "POST", USERS, &t, &[], Some(carol)).await;
    let carol_id = ok(&created)["user_id"].as_str().expect("id").to_owned();
    let find = [("email", "carol@example.com")];
    ok(&admin(&app, &rec, "GET", USERS, &t, &find, None).await);
    ok(&admin(&app, &rec, "GET", USER, &tu, &[], None).await);
    let rename = Some(json!({ "display_name": "Alice A." }));
    ok(&admin(&app, &rec, "PATCH", USER, &tu, &[], rename).await);
    let challenges = "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges";
    ok(&admin(&app, &rec, "POST", challenges, &tu, &[], None).await);
    let sessions = "/v1/admin/tenants/{tenant_id}/users/{user_id}/sessions";
    ok(&admin(&app, &rec, "DELETE", sessions, &tu, &[], None).await);
    let audit = "/v1/admin/tenants/{tenant_id}/audit";
    ok(&admin(&app, &rec, "GET", audit, &t, &[], None).await);
    ok(&admin(
        &app,
        &rec,
        "GET",
        audit,
        &t,
        &[("user_id", user.as_str())],
        None,
    )
    .await);
    // Bob's credential, listed and removed by an operator.
    let credentials = "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials";
    let bobs = admin(&app, &rec, "GET", credentials, &tb, &[], None).await;
    let bobs_id = ok(&bobs)["credentials"][0]["credential_id"]
        .as_str()
        .expect("Bob's credential")
        .to_owned();
    let credential = "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials/{credential_id}";
    let tbc = [
        ("tenant_id", tenant.as_str()),
        ("user_id", bob_id.as_str()),
        ("credential_id", bobs_id.as_str()),
    ];
    ok(&admin(&app, &rec, "DELETE", credential, &tbc, &[], None).await);
    // Erase Alice (a credential, codes, sessions, a device, a challenge) and Carol (nothing).
    ok(&admin(&app, &rec, "DELETE", USER, &tu, &[], None).await);
    let tc = [
        ("tenant_id", tenant.as_str()),
        ("user_id", carol_id.as_str()),
    ];
    ok(&admin(&app, &rec, "DELETE", USER, &tc, &[], None).await);

    // What each function really called is in its row of the table.
    let recorded = std::mem::take(&mut rec.state.lock().expect("recording").calls);
    let t = template_at("A", "A");
    let mut unexercised = Vec::new();
    for (function, calls) in CALLS {
        let table: BTreeSet<Grant> = expected(&t, function)
            .into_iter()
            .filter(|(action, _)| action.starts_with("dynamodb:"))
            .collect();
        let seen = recorded.get(*function).cloned().unwrap_or_default();
        let beyond: Vec<_> = seen.difference(&table).collect();
        assert!(
            beyond.is_empty(),
            "{function} called what its row of the IAM table lacks: {beyond:?}"
        );
        let dynamodb = calls.iter().any(|(a, _)| a.starts_with("dynamodb:"));
        assert!(
            !dynamodb || !seen.is_empty(),
            "the scenario never ran {function}"
        );
        unexercised.extend(
            table
                .difference(&seen)
                .map(|g| format!("{function}: {g:?}")),
        );
    }
    // Failure paths the scenario does not take (a clone, a lost race, a tenant mismatch) are
    // the rest of the table; they are checked by reading the code, and listed here.
    eprintln!(
        "table rows not exercised by this scenario:\n  {}",
        unexercised.join("\n  ")
    );
}
