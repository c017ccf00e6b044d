//! Test harness: one real DynamoDB-compatible server (moto) per test binary on a random port,
//! tables created from `template.yaml`, requests built as API Gateway HTTP API (payload 2.0)
//! events, and ceremonies performed by webauthn-authenticator-rs's software authenticators.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use lambda_http::http::{HeaderMap, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::clock::{Clock, ManualClock};
use shared::codes::BackupCodeHasher;
use shared::config::{TableNames, TokenSettings};
use shared::ids::{ChallengeId, TenantId};
use shared::jwt::{Claims, TokenVerifier};
use shared::keys::{KeyError, PublishedKeys, TokenSigner};
use shared::mfa::TokenIssuer;
use shared::passwordless::ConcealmentKey;
use shared::state::Common;
use shared::store::{Store, UserRecord};
use shared::tenant::Tenant;
use tokio::sync::OnceCell;
use url::Url;
use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions, RequestChallengeResponse,
};

use crate::contract;

pub const ORIGIN: &str = "http://localhost:3000";
pub const RP_ID: &str = "localhost";
pub const PEPPER: &[u8] = b"integration-tests-backup-code-pepper-0123456789";
pub const CONCEALMENT_SECRET: &[u8] = b"integration-tests-concealment-secret-0123456789";

/// The tests' PEM signing key: the production signer, with a blocking `sign` (a PEM key does
/// no I/O), so tests mint tokens without awaiting.
pub struct TestKey(TokenSigner);

impl TestKey {
    pub fn from_pem(pem: &str) -> Result<Self, shared::config::ConfigError> {
        TokenSigner::from_pem(pem).map(Self)
    }

    pub fn generate_pem() -> Result<String, aws_lc_rs::error::Unspecified> {
        TokenSigner::generate_pem()
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        futures::executor::block_on(self.0.sign(claims))
    }
}

impl std::ops::Deref for TestKey {
    type Target = TokenSigner;

    fn deref(&self) -> &TokenSigner {
        &self.0
    }
}

pub struct Env {
    /// The watcher shell; it outlives the tests and reaps moto itself.
    _moto: std::process::Child,
    pub endpoint: String,
    pub tables: TableNames,
    pub signing_pem: String,
}

static ENV: OnceCell<Env> = OnceCell::const_new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Starts moto's server; a shell watcher stops it when this test process exits.
fn spawn_moto(port: u16) -> std::process::Child {
    let python = std::env::var("MOTO_PYTHON").unwrap_or_else(|_| "python3".into());
    // scripts/moto_server.py: moto with requests applied one at a time, so conditional writes
    // are atomic as in DynamoDB (see the script).
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto_server.py");
    let script = r#""$0" "$3" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 &
child=$!
while kill -0 "$2" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null"#;
    Command::new("sh")
        .args([
            "-c",
            script,
            &python,
            &port.to_string(),
            &std::process::id().to_string(),
            server,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto server (pip install 'moto[server]', or set MOTO_PYTHON)")
}

/// A client of the test server with the production retries and timeouts.
/// A client of the test server with the functions' retry settings. Its timeouts are longer
/// than the functions': moto applies requests one at a time (`scripts/moto_server.py`), so
/// under the 50-way concurrency tests a call waits seconds in its queue, which DynamoDB never
/// makes it do. The fault tests (`faults.rs`) run with the functions' exact timeouts.
pub fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"));
    let queued = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build();
    let config = shared::store::configure_client(builder)
        .timeout_config(queued)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub async fn env() -> &'static Env {
    ENV.get_or_init(|| async {
        let port = free_port();
        let moto = spawn_moto(port);
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = client(&endpoint);
        let mut ready = false;
        for _ in 0..150 {
            if client.list_tables().send().await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ready, "moto server did not start on port {port}");
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
                .expect("template.yaml");
        let tables = TableNames::with_prefix("it");
        shared::store::schema::create_tables(&client, &template, &tables)
            .await
            .expect("tables from template.yaml");
        Env {
            _moto: moto,
            endpoint,
            tables,
            signing_pem: TokenSigner::generate_pem().expect("signing key"),
        }
    })
    .await
}

fn issuer(pem: &str) -> TokenIssuer {
    TokenIssuer {
        signer: TokenSigner::from_pem(pem).expect("key"),
        config: settings().into(),
    }
}

pub fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "https://auth.test".into(),
        audience: "passkey-tests".into(),
    }
}

/// One isolated tenant with one user, and every function's state wired to moto.
pub struct TestApp {
    pub store: Store,
    pub clock: ManualClock,
    pub key: Arc<TestKey>,
    pub tenant: Tenant,
    pub user: UserRecord,
    pub register_options: register_options::State,
    pub register_complete: register_complete::State,
    pub mfa_options: mfa_options::State,
    pub mfa_complete: mfa_complete::State,
    pub backup_code_complete: backup_code_complete::State,
    pub jwks: jwks::State,
    pub authenticate_begin: authenticate_begin::State,
    pub authenticate_complete: authenticate_complete::State,
    pub auth_refresh: auth_refresh::State,
    pub auth_logout: auth_logout::State,
    /// The self-service functions (`/v1/users/me/…`).
    pub common: Common,
    pub backup_codes_regenerate: backup_codes_regenerate::State,
    /// The admin functions (`/v1/admin/…`), as deployed: IAM identity required.
    pub admin: shared::admin_http::AdminState,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_tenant(|_| {}).await
    }

    pub async fn with_tenant(configure: impl FnOnce(&mut Tenant)) -> Self {
        let env = env().await;
        let store = Store::new(client(&env.endpoint), env.tables.clone());
        Self::build(store, configure).await
    }

    /// A fresh tenant and user in `store`.
    pub async fn build(store: Store, configure: impl FnOnce(&mut Tenant)) -> Self {
        let env = env().await;
        let clock = ManualClock::starting_now();
        let key = Arc::new(TestKey::from_pem(&env.signing_pem).expect("key"));
        let verifier = Arc::new(TokenVerifier::new(&key.jwks(), settings()).expect("verifier"));
        let mut tenant = Tenant::new("Acme", RP_ID, vec![ORIGIN.into()], clock.now());
        configure(&mut tenant);
        let common = Common {
            store: store.clone(),
            tokens: verifier,
            clock: Arc::new(clock.clone()),
        };
        let published = PublishedKeys::new(key.jwks());
        let app = Self {
            store: store.clone(),
            clock: clock.clone(),
            key,
            user: UserRecord {
                tenant_id: tenant.tenant_id,
                user_id: shared::ids::UserId::new_random(),
                email: "alice@example.com".into(),
                display_name: "Alice".into(),
                created_at: clock.now(),
                deleted_at: None,
                groups: Vec::new(),
            },
            tenant,
            register_options: register_options::State {
                common: common.clone(),
            },
            register_complete: register_complete::State {
                common: common.clone(),
                backup_codes: BackupCodeHasher::new(PEPPER).expect("pepper"),
            },
            mfa_options: mfa_options::State {
                common: common.clone(),
            },
            mfa_complete: mfa_complete::State {
                common: common.clone(),
                issuer: issuer(&env.signing_pem),
            },
            backup_code_complete: backup_code_complete::State {
                common: common.clone(),
                issuer: issuer(&env.signing_pem),
                backup_codes: BackupCodeHasher::new(PEPPER).expect("pepper"),
            },
            authenticate_begin: authenticate_begin::State {
                common: common.clone(),
                concealment: ConcealmentKey::new(CONCEALMENT_SECRET).expect("secret"),
            },
            authenticate_complete: authenticate_complete::State {
                common: common.clone(),
                issuer: issuer(&env.signing_pem),
            },
            auth_refresh: auth_refresh::State {
                common: common.clone(),
                issuer: issuer(&env.signing_pem),
            },
            backup_codes_regenerate: backup_codes_regenerate::State {
                common: common.clone(),
                backup_codes: BackupCodeHasher::new(PEPPER).expect("pepper"),
            },
            auth_logout: auth_logout::State {
                common: common.clone(),
            },
            admin: shared::admin_http::AdminState {
                common: common.clone(),
                without_iam: false,
            },
            common,
            jwks: jwks::State::new(&published, &settings().into()).expect("jwks state"),
        };
        // Best effort: a store that is down on purpose has no tenant.
        let _ = app.store.create_tenant(&app.tenant).await;
        let _ = app.store.create_user(&app.user, None).await;
        app
    }

    pub async fn add_user(&self, email: &str) -> UserRecord {
        let user = UserRecord {
            tenant_id: self.tenant.tenant_id,
            user_id: shared::ids::UserId::new_random(),
            email: email.into(),
            display_name: email.into(),
            created_at: self.clock.now(),
            deleted_at: None,
            groups: Vec::new(),
        };
        self.store.create_user(&user, None).await.expect("user");
        user
    }

    /// Claims of a token for a user who has just logged in (`auth_time` now).
    pub fn claims_for(&self, user: &UserRecord) -> Claims {
        let mut claims = Claims::new(
            &settings(),
            user.tenant_id,
            user.user_id,
            self.clock.now(),
            900,
        );
        claims.auth_time = Some(self.clock.now());
        claims
    }

    pub fn token_for(&self, user: &UserRecord) -> String {
        self.key.sign(&self.claims_for(user)).expect("token")
    }

    pub fn token(&self) -> String {
        self.token_for(&self.user)
    }

    pub fn auth_headers(&self, token: &str) -> Vec<(String, String)> {
        auth_headers(token, &self.tenant.tenant_id)
    }

    pub async fn register_options(
        &self,
        headers: &[(String, String)],
        method: Option<&str>,
    ) -> Reply {
        let query: Vec<(&str, &str)> = method.map(|m| vec![("method_type", m)]).unwrap_or_default();
        let req = api_request("/v1/users/me/mfa/webauthn/register", &query, headers, None);
        invoke(req, |req| {
            register_options::handler(&self.register_options, req)
        })
        .await
    }

    pub async fn register_complete(&self, headers: &[(String, String)], body: &Value) -> Reply {
        let req = api_request(
            "/v1/users/me/mfa/webauthn/register/complete",
            &[],
            headers,
            Some(body.to_string()),
        );
        invoke(req, |req| {
            register_complete::handler(&self.register_complete, req)
        })
        .await
    }

    pub async fn register_complete_raw(&self, headers: &[(String, String)], body: &str) -> Reply {
        let req = api_request(
            "/v1/users/me/mfa/webauthn/register/complete",
            &[],
            headers,
            Some(body.to_owned()),
        );
        invoke(req, |req| {
            register_complete::handler(&self.register_complete, req)
        })
        .await
    }

    /// Options → authenticator: the credential JSON a browser would post to complete.
    pub async fn registration_credential(
        &self,
        headers: &[(String, String)],
        method: &str,
        authenticator: &mut Authenticator,
    ) -> Value {
        let options = self.register_options(headers, Some(method)).await;
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        authenticator
            .register(&options.body["options"], ORIGIN)
            .expect("authenticator registers")
    }

    /// Options → authenticator → complete, for the app's user. Returns the completion reply.
    pub async fn enroll(
        &self,
        authenticator: &mut Authenticator,
        method: &str,
        device: &str,
    ) -> Reply {
        let headers = self.auth_headers(&self.token());
        let credential = self
            .registration_credential(&headers, method, authenticator)
            .await;
        self.register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": device, "method_type": method }),
        )
        .await
    }
}

impl TestApp {
    pub async fn mfa_challenge(&self, user: &UserRecord) -> ChallengeId {
        // As the admin API does: the user's credentials go into the challenge.
        let credentials = self
            .store
            .list_credentials(&user.tenant_id, &user.user_id)
            .await
            .expect("credentials");
        self.store
            .create_mfa_challenge(
                &user.tenant_id,
                &user.user_id,
                credentials,
                user.groups.clone(),
                self.clock.now(),
                300,
            )
            .await
            .expect("MFA challenge")
    }

    pub async fn mfa_options(&self, headers: &[(String, String)], body: &Value) -> Reply {
        let req = api_request(
            "/v1/auth/mfa/webauthn/options",
            &[],
            headers,
            Some(body.to_string()),
        );
        invoke(req, |req| mfa_options::handler(&self.mfa_options, req)).await
    }

    pub async fn mfa_complete(&self, headers: &[(String, String)], body: &Value) -> Reply {
        let req = api_request(
            "/v1/auth/mfa/webauthn/complete",
            &[],
            headers,
            Some(body.to_string()),
        );
        invoke(req, |req| mfa_complete::handler(&self.mfa_complete, req)).await
    }

    pub async fn backup_code(&self, challenge: &ChallengeId, code: &str) -> Reply {
        let body = serde_json::json!({ "challenge_id": challenge, "code": code });
        let req = api_request(
            "/v1/auth/mfa/backup_code/complete",
            &[],
            &[],
            Some(body.to_string()),
        );
        invoke(req, |req| {
            backup_code_complete::handler(&self.backup_code_complete, req)
        })
        .await
    }

    pub async fn jwks_document(&self) -> Reply {
        let req = api_call("GET", "/.well-known/jwks.json", &[], &[], &[], None);
        invoke(req, |req| jwks::handler(&self.jwks, req)).await
    }

    /// Options for a fresh MFA challenge, then the authenticator's assertion for them.
    pub async fn mfa_assertion(
        &self,
        user: &UserRecord,
        authenticator: &mut Authenticator,
    ) -> (ChallengeId, Value) {
        let challenge = self.mfa_challenge(user).await;
        let options = self
            .mfa_options(&[], &serde_json::json!({ "challenge_id": challenge }))
            .await;
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let credential = authenticator
            .authenticate(&options.body["options"], ORIGIN)
            .expect("authenticator signs");
        (challenge, credential)
    }

    /// A whole second-factor login; returns the completion's reply.
    pub async fn mfa_login(&self, user: &UserRecord, authenticator: &mut Authenticator) -> Reply {
        let (challenge, credential) = self.mfa_assertion(user, authenticator).await;
        self.mfa_complete(
            &[],
            &serde_json::json!({ "challenge_id": challenge, "credential": credential }),
        )
        .await
    }

    /// Enrolls an authenticator for `user` (not necessarily the app's user) with a token.
    pub async fn enroll_user(
        &self,
        user: &UserRecord,
        authenticator: &mut Authenticator,
        method: &str,
    ) -> Reply {
        let headers = auth_headers(&self.token_for(user), &user.tenant_id);
        let credential = self
            .registration_credential(&headers, method, authenticator)
            .await;
        self.register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "device", "method_type": method }),
        )
        .await
    }
}

/// The `/api/v1` passwordless surface.
impl TestApp {
    /// `X-Tenant-ID` of this app's tenant, as a client of a concealing tenant sends it.
    pub fn tenant_headers(&self) -> Vec<(String, String)> {
        vec![("x-tenant-id".into(), self.tenant.tenant_id.to_string())]
    }

    pub async fn login_begin(&self, headers: &[(String, String)], email: &str) -> Reply {
        let body = json!({ "email": email }).to_string();
        self.login_begin_raw(headers, body).await
    }

    pub async fn login_begin_raw(&self, headers: &[(String, String)], body: String) -> Reply {
        let req = api_request(
            "/api/v1/webauthn/authenticate/begin",
            &[],
            headers,
            Some(body),
        );
        invoke(req, |req| {
            authenticate_begin::handler(&self.authenticate_begin, req)
        })
        .await
    }

    pub async fn login_complete_raw(&self, headers: &[(String, String)], body: String) -> Reply {
        let req = api_request(
            "/api/v1/webauthn/authenticate/complete",
            &[],
            headers,
            Some(body),
        );
        invoke(req, |req| {
            authenticate_complete::handler(&self.authenticate_complete, req)
        })
        .await
    }

    pub async fn login_complete(
        &self,
        headers: &[(String, String)],
        email: &str,
        credential: &Value,
    ) -> Reply {
        let body = json!({ "credential": credential, "email": email }).to_string();
        self.login_complete_raw(headers, body).await
    }

    /// Begin (with this tenant's header) → the authenticator's assertion for the options.
    pub async fn login_assertion(&self, email: &str, authenticator: &mut Authenticator) -> Value {
        let begun = self.login_begin(&self.tenant_headers(), email).await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        authenticator
            .authenticate(&begun.body["data"]["options"], ORIGIN)
            .expect("authenticator signs")
    }

    /// A whole passwordless login of `user` with `extra` headers; returns the completion reply.
    pub async fn passwordless_login(
        &self,
        user: &UserRecord,
        authenticator: &mut Authenticator,
        extra: &[(String, String)],
    ) -> Reply {
        let credential = self.login_assertion(&user.email, authenticator).await;
        let mut headers = self.tenant_headers();
        headers.extend_from_slice(extra);
        self.login_complete(&headers, &user.email, &credential)
            .await
    }

    pub async fn refresh(&self, headers: &[(String, String)], token: &str) -> Reply {
        let body = json!({ "refresh_token": token }).to_string();
        let req = api_request("/api/v1/auth/refresh", &[], headers, Some(body));
        invoke(req, |req| auth_refresh::handler(&self.auth_refresh, req)).await
    }

    pub async fn logout(&self, headers: &[(String, String)], token: &str) -> Reply {
        let body = json!({ "refresh_token": token }).to_string();
        let req = api_request("/api/v1/auth/logout", &[], headers, Some(body));
        invoke(req, |req| auth_logout::handler(&self.auth_logout, req)).await
    }
}

pub fn auth_headers(token: &str, tenant: &TenantId) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("x-tenant-id".into(), tenant.to_string()),
    ]
}

/// A POST exactly as API Gateway hands it to the function (HTTP API, payload 2.0).
pub fn api_request(
    path: &str,
    query: &[(&str, &str)],
    headers: &[(String, String)],
    body: Option<String>,
) -> Request {
    api_call("POST", path, &[], query, headers, body)
}

/// Any method on a route, with its path parameters, as API Gateway hands it to the function.
/// `route` is the template's path (`/v1/…/{credential_id}`); the raw path has the values.
pub fn api_call(
    method: &str,
    route: &str,
    path_params: &[(&str, &str)],
    query: &[(&str, &str)],
    headers: &[(String, String)],
    body: Option<String>,
) -> Request {
    api_call_as(None, method, route, path_params, query, headers, body)
}

/// [`api_call`] as an IAM principal, as API Gateway's `AWS_IAM` authorizer passes it on.
pub fn api_call_as(
    iam_arn: Option<&str>,
    method: &str,
    route: &str,
    path_params: &[(&str, &str)],
    query: &[(&str, &str)],
    headers: &[(String, String)],
    body: Option<String>,
) -> Request {
    let mut path = route.to_owned();
    for (name, value) in path_params {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    let path = path.as_str();
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), json!("application/json"));
    for (k, v) in headers {
        header_map.insert(k.to_lowercase(), json!(v));
    }
    let raw_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
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
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "23/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0
        },
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        event["queryStringParameters"] = query
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if let Some(arn) = iam_arn {
        event["requestContext"]["authorizer"] = json!({ "iam": {
            "accountId": "123456789012",
            "callerId": "AROATEST:tests",
            "userArn": arn,
            "userId": "AROATEST:tests"
        }});
    }
    if !path_params.is_empty() {
        event["pathParameters"] = path_params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// A handler's response as the client sees it, checked against the API contract.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body exactly as sent.
    pub raw: Vec<u8>,
    /// Only [`invoke`] makes a `Reply`, so none escapes the contract check.
    _checked: (),
}

/// Calls `handler` with `req`, as API Gateway would, and checks the answer against
/// `api/openapi.yaml` for the request's route (its `routeKey`): an undocumented route or status,
/// a missing required header, another content type or a body the documented schema refuses
/// fails the test, naming route, status, the failing place and the body.
pub async fn invoke<F, Fut>(req: Request, handler: F) -> Reply
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    try_invoke(req, handler)
        .await
        .unwrap_or_else(|violation| panic!("{violation}"))
}

/// [`invoke`], with the contract violation as `Err` instead of a panic.
pub async fn try_invoke<F, Fut>(req: Request, handler: F) -> Result<Reply, String>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let route = contract::route_key(&req);
    // Boxed: the handlers' futures are large, and a test awaiting many of them in one
    // function would otherwise hold them all in its own frame (debug builds overflow the stack).
    let (parts, raw) = Box::pin(handler(req)).await.into_parts();
    let raw = raw.as_ref();
    let violated = |what: String| format!("API contract (api/openapi.yaml) violated: {what}");
    let body: Value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw).map_err(|e| {
            violated(format!(
                "{route} answered {} with a body that is not JSON ({e}): {:?}",
                parts.status,
                String::from_utf8_lossy(raw)
            ))
        })?
    };
    contract::check(&route, parts.status, &parts.headers, &body).map_err(violated)?;
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        raw: raw.to_vec(),
        _checked: (),
    })
}

impl Reply {
    /// Asserts a seed-shaped error body `{code, message, details?, notices?}` with this status and code.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        let obj = self.body.as_object().expect("object");
        assert!(obj
            .keys()
            .all(|k| ["code", "message", "details", "notices"].contains(&k.as_str())));
    }
}

impl Reply {
    /// Asserts an `/api/v1` error: `{success: false, code, message, details?, notices?}`.
    pub fn assert_v1_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        let obj = self.body.as_object().expect("object");
        assert!(obj.keys().all(|k| {
            ["success", "code", "message", "details", "notices"].contains(&k.as_str())
        }));
    }
}

/// The browser plus authenticator: a software passkey (user-verifying) or security key.
pub enum Authenticator {
    Passkey(SoftPasskey),
    SecurityKey(Box<SoftToken>),
    /// A passkey that keeps its credentials: see [`ResidentPasskey`].
    Resident(ResidentPasskey),
}

/// A discoverable passkey, as a phone or laptop keeps one: `SoftPasskey` does every signature,
/// and this remembers what its storage would (credential id → the user handle the
/// registration named), so it can answer options with an empty `allowCredentials` and return
/// the user handle with each assertion. The user handle is not signed data: the browser
/// passes the stored one on beside the signed authenticator data.
pub struct ResidentPasskey {
    key: SoftPasskey,
    /// (credential id, user handle), in registration order.
    resident: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Authenticator {
    pub fn passkey() -> Self {
        // `true`: the soft authenticator reports user verification, as a passkey does.
        Authenticator::Passkey(SoftPasskey::new(true))
    }

    /// A passkey that keeps its credentials, for usernameless login.
    pub fn resident_passkey() -> Self {
        Authenticator::Resident(ResidentPasskey {
            key: SoftPasskey::new(true),
            resident: Vec::new(),
        })
    }

    pub fn passkey_without_uv() -> Self {
        Authenticator::Passkey(SoftPasskey::new(false))
    }

    /// A security key with a PIN: it verifies the user when asked to.
    pub fn security_key_with_uv() -> Self {
        Authenticator::SecurityKey(Box::new(SoftToken::new(true).expect("soft token").0))
    }

    pub fn security_key() -> Self {
        Authenticator::SecurityKey(Box::new(SoftToken::new(false).expect("soft token").0))
    }

    /// A copy with the same keys and counter: what cloning a security key amounts to.
    pub fn clone_security_key(&self) -> Self {
        match self {
            Authenticator::SecurityKey(token) => Authenticator::SecurityKey(Box::new(
                SoftToken::from_cbor(&token.to_cbor().expect("cbor")).expect("clone"),
            )),
            Authenticator::Passkey(_) | Authenticator::Resident(_) => {
                panic!("only soft tokens can be cloned")
            }
        }
    }

    /// `navigator.credentials.get()` from the request options JSON the API returned.
    pub fn authenticate(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let mut options: PublicKeyCredentialRequestOptions =
            serde_json::from_value(options.clone()).map_err(|e| e.to_string())?;
        let origin = Url::parse(origin).map_err(|e| e.to_string())?;
        // A resident passkey picks its own credential when the RP lists none (usernameless).
        let mut handle = None;
        if let Authenticator::Resident(passkey) = &*self {
            let listed = |id: &Vec<u8>| {
                options.allow_credentials.is_empty()
                    || options.allow_credentials.iter().any(|c| c.id[..] == id[..])
            };
            let (id, user) = passkey
                .resident
                .iter()
                .find(|(id, _)| listed(id))
                .ok_or("no resident credential for these options")?;
            options.allow_credentials = vec![webauthn_rs_proto::AllowCredentials {
                type_: "public-key".into(),
                id: id.clone(),
                transports: None,
            }];
            handle = Some(user.clone());
        }
        let rcr = RequestChallengeResponse {
            public_key: options,
            mediation: None,
        };
        let mut credential = match self {
            Authenticator::Passkey(a) => a.do_authentication(origin, rcr),
            Authenticator::SecurityKey(a) => a.as_mut().do_authentication(origin, rcr),
            Authenticator::Resident(a) => a.key.do_authentication(origin, rcr),
        }
        .map_err(|e| format!("{e:?}"))?;
        if let Some(handle) = handle {
            credential.response.user_handle = Some(handle);
        }
        serde_json::to_value(credential).map_err(|e| e.to_string())
    }

    /// `navigator.credentials.create()` from the options JSON the API returned; returns the
    /// credential JSON a browser would post back.
    pub fn register(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let mut options: PublicKeyCredentialCreationOptions =
            serde_json::from_value(options.clone()).map_err(|e| e.to_string())?;
        if let (Authenticator::Passkey(_) | Authenticator::Resident(_), Some(selection)) =
            (&*self, options.authenticator_selection.as_mut())
        {
            // SoftPasskey keeps no resident keys and refuses WebAuthn L1's `requireResidentKey`.
            // Browsers since L2 follow `residentKey` instead, which SoftPasskey ignores; so the
            // client clears the legacy flag. Tests assert the server sends both.
            selection.require_resident_key = false;
        }
        let origin = Url::parse(origin).map_err(|e| e.to_string())?;
        let user_handle = options.user.id.to_vec();
        let ccr = CreationChallengeResponse {
            public_key: options,
        };
        let credential = match self {
            Authenticator::Passkey(a) => a.do_registration(origin, ccr),
            Authenticator::SecurityKey(a) => a.as_mut().do_registration(origin, ccr),
            Authenticator::Resident(a) => {
                let credential = a.key.do_registration(origin, ccr);
                if let Ok(credential) = &credential {
                    a.resident.push((credential.raw_id.to_vec(), user_handle));
                }
                credential
            }
        }
        .map_err(|e| format!("{e:?}"))?;
        serde_json::to_value(credential).map_err(|e| e.to_string())
    }
}

impl TestApp {
    pub fn clock_now(&self) -> i64 {
        self.clock.now()
    }
}

/// The function's handler, as its Lambda binary calls it, its answer checked against the API
/// contract (`Err` says how it broke it); `None` for an unknown function.
pub async fn dispatch(
    app: &TestApp,
    function: &str,
    req: Request,
) -> Option<Result<Reply, String>> {
    let (c, a) = (&app.common, &app.admin);
    Some(match function {
        "register-options" => {
            try_invoke(req, |req| {
                register_options::handler(&app.register_options, req)
            })
            .await
        }
        "register-complete" => {
            try_invoke(req, |req| {
                register_complete::handler(&app.register_complete, req)
            })
            .await
        }
        "mfa-options" => try_invoke(req, |req| mfa_options::handler(&app.mfa_options, req)).await,
        "mfa-complete" => {
            try_invoke(req, |req| mfa_complete::handler(&app.mfa_complete, req)).await
        }
        "backup-code-complete" => {
            try_invoke(req, |req| {
                backup_code_complete::handler(&app.backup_code_complete, req)
            })
            .await
        }
        "jwks" => try_invoke(req, |req| jwks::handler(&app.jwks, req)).await,
        "openid-configuration" => {
            let keys = shared::keys::PublishedKeys::new(app.key.jwks());
            let state = openid_configuration::State::new(&keys, settings().into());
            try_invoke(req, |req| openid_configuration::handler(&state, req)).await
        }
        "example-whoami" => {
            try_invoke(req, |req| {
                example_whoami::handler(&example_whoami::State, req)
            })
            .await
        }
        "authenticate-begin" => {
            try_invoke(req, |req| {
                authenticate_begin::handler(&app.authenticate_begin, req)
            })
            .await
        }
        "authenticate-complete" => {
            try_invoke(req, |req| {
                authenticate_complete::handler(&app.authenticate_complete, req)
            })
            .await
        }
        "auth-refresh" => {
            try_invoke(req, |req| auth_refresh::handler(&app.auth_refresh, req)).await
        }
        "auth-logout" => try_invoke(req, |req| auth_logout::handler(&app.auth_logout, req)).await,
        "credentials-list" => try_invoke(req, |req| credentials_list::handler(c, req)).await,
        "credential-rename" => try_invoke(req, |req| credential_rename::handler(c, req)).await,
        "credential-delete" => try_invoke(req, |req| credential_delete::handler(c, req)).await,
        "backup-codes-status" => try_invoke(req, |req| backup_codes_status::handler(c, req)).await,
        "backup-codes-regenerate" => {
            try_invoke(req, |req| {
                backup_codes_regenerate::handler(&app.backup_codes_regenerate, req)
            })
            .await
        }
        "sessions-list" => try_invoke(req, |req| sessions_list::handler(c, req)).await,
        "session-revoke" => try_invoke(req, |req| session_revoke::handler(c, req)).await,
        "sessions-revoke-others" => {
            try_invoke(req, |req| sessions_revoke_others::handler(c, req)).await
        }
        "admin-user-create" => try_invoke(req, |req| admin_user_create::handler(a, req)).await,
        "admin-user-find" => try_invoke(req, |req| admin_user_find::handler(a, req)).await,
        "admin-user-delete" => try_invoke(req, |req| admin_user_delete::handler(a, req)).await,
        "admin-mfa-challenge-create" => {
            try_invoke(req, |req| admin_mfa_challenge_create::handler(a, req)).await
        }
        "admin-user-sessions-revoke" => {
            try_invoke(req, |req| admin_user_sessions_revoke::handler(a, req)).await
        }
        "admin-tenant-create" => try_invoke(req, |req| admin_tenant_create::handler(a, req)).await,
        "admin-tenant-get" => try_invoke(req, |req| admin_tenant_get::handler(a, req)).await,
        "admin-tenant-update" => try_invoke(req, |req| admin_tenant_update::handler(a, req)).await,
        "admin-user-credentials-list" => {
            try_invoke(req, |req| admin_user_credentials_list::handler(a, req)).await
        }
        "admin-user-credential-delete" => {
            try_invoke(req, |req| admin_user_credential_delete::handler(a, req)).await
        }
        "admin-tenants-list" => try_invoke(req, |req| admin_tenants_list::handler(a, req)).await,
        "admin-user-get" => try_invoke(req, |req| admin_user_get::handler(a, req)).await,
        "admin-user-update" => try_invoke(req, |req| admin_user_update::handler(a, req)).await,
        "admin-audit-query" => try_invoke(req, |req| admin_audit_query::handler(a, req)).await,
        _ => return None,
    })
}

/// [`dispatch`] for a function that exists and an answer that must keep the API contract.
pub async fn call_function(app: &TestApp, function: &str, req: Request) -> Reply {
    dispatch(app, function, req)
        .await
        .unwrap_or_else(|| panic!("no function {function}"))
        .unwrap_or_else(|violation| panic!("{violation}"))
}

/// The self-service routes (`/v1/users/me/…`).
/// Calls the self-service function behind `method route`, as API Gateway would.
pub async fn me(
    app: &TestApp,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    headers: &[(String, String)],
    body: Option<Value>,
) -> Reply {
    let req = api_call(
        method,
        route,
        params,
        &[],
        headers,
        body.map(|b| b.to_string()),
    );
    let c = &app.common;
    let key = (method.to_owned(), route.to_owned());
    invoke(req, |req| async move {
        match (key.0.as_str(), key.1.as_str()) {
            ("GET", "/v1/users/me/mfa/webauthn/credentials") => {
                credentials_list::handler(c, req).await
            }
            ("PATCH", "/v1/users/me/mfa/webauthn/credentials/{credential_id}") => {
                credential_rename::handler(c, req).await
            }
            ("DELETE", "/v1/users/me/mfa/webauthn/credentials/{credential_id}") => {
                credential_delete::handler(c, req).await
            }
            ("GET", "/v1/users/me/mfa/backup_codes") => backup_codes_status::handler(c, req).await,
            ("POST", "/v1/users/me/mfa/backup_codes") => {
                backup_codes_regenerate::handler(&app.backup_codes_regenerate, req).await
            }
            ("GET", "/v1/users/me/sessions") => sessions_list::handler(c, req).await,
            ("DELETE", "/v1/users/me/sessions") => sessions_revoke_others::handler(c, req).await,
            ("DELETE", "/v1/users/me/sessions/{session_id}") => {
                session_revoke::handler(c, req).await
            }
            other => panic!("no function for {other:?}"),
        }
    })
    .await
}

/// Calls the admin function behind `method route`, as API Gateway passes a request signed by
/// `iam_arn` (or, with `None`, an unsigned one).
pub async fn admin(
    app: &TestApp,
    iam_arn: Option<&str>,
    method: &str,
    route: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let body = body.map(|b| b.to_string());
    let req = api_call_as(iam_arn, method, route, params, query, &[], body);
    let s = &app.admin;
    let key = (method.to_owned(), route.to_owned());
    invoke(req, |req| async move {
        match (key.0.as_str(), key.1.as_str()) {
            ("POST", "/v1/admin/tenants") => admin_tenant_create::handler(s, req).await,
            ("GET", "/v1/admin/tenants") => admin_tenants_list::handler(s, req).await,
            ("GET", "/v1/admin/tenants/{tenant_id}") => admin_tenant_get::handler(s, req).await,
            ("PATCH", "/v1/admin/tenants/{tenant_id}") => {
                admin_tenant_update::handler(s, req).await
            }
            ("POST", "/v1/admin/tenants/{tenant_id}/users") => {
                admin_user_create::handler(s, req).await
            }
            ("GET", "/v1/admin/tenants/{tenant_id}/users") => {
                admin_user_find::handler(s, req).await
            }
            ("GET", "/v1/admin/tenants/{tenant_id}/users/{user_id}") => {
                admin_user_get::handler(s, req).await
            }
            ("PATCH", "/v1/admin/tenants/{tenant_id}/users/{user_id}") => {
                admin_user_update::handler(s, req).await
            }
            ("DELETE", "/v1/admin/tenants/{tenant_id}/users/{user_id}") => {
                admin_user_delete::handler(s, req).await
            }
            ("POST", "/v1/admin/tenants/{tenant_id}/users/{user_id}/mfa-challenges") => {
                admin_mfa_challenge_create::handler(s, req).await
            }
            ("GET", "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials") => {
                admin_user_credentials_list::handler(s, req).await
            }
            (
                "DELETE",
                "/v1/admin/tenants/{tenant_id}/users/{user_id}/credentials/{credential_id}",
            ) => admin_user_credential_delete::handler(s, req).await,
            ("DELETE", "/v1/admin/tenants/{tenant_id}/users/{user_id}/sessions") => {
                admin_user_sessions_revoke::handler(s, req).await
            }
            ("GET", "/v1/admin/tenants/{tenant_id}/audit") => {
                admin_audit_query::handler(s, req).await
            }
            other => panic!("no admin function for {other:?}"),
        }
    })
    .await
}
