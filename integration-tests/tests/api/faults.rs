//! A failing store: a fault-injecting HTTP proxy between the SDK and moto throttles, fails,
//! drops or delays DynamoDB operations on demand, and the handlers, driven through real
//! ceremonies, must answer a prompt 503 `store_unavailable` with `Retry-After`, retry within
//! bounds, recover from a passing fault and leave no partial writes.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::config::{Credentials, Region};
use lambda_http::http::header::RETRY_AFTER;
use lambda_http::http::StatusCode;
use lambda_http::Request;
use serde_json::{json, Value};
use shared::store::client::{ATTEMPT_TIMEOUT, MAX_ATTEMPTS, OPERATION_TIMEOUT};
use shared::store::{configure_client, CredentialRecord, SessionRecord, Store, UserRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{self, api_request, call_function, Authenticator, Reply, TestApp};

const PASSKEY: &str = "webauthn_passkey";

/// Every failing request must be answered well inside the 10 s Lambda timeout
/// (`template.yaml`); past it, API Gateway answers a bare 5xx without `Retry-After`.
const ANSWER_BOUND: Duration = Duration::from_secs(8);

/// How long a slow store takes to answer: longer than a whole call may last, so no attempt of a
/// call ever sees the answer.
const SLOW_REPLY: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// A DynamoDB operation, as the SDK names it in `X-Amz-Target`; `Any` matches all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    GetItem,
    PutItem,
    DeleteItem,
    Query,
    BatchGetItem,
    BatchWriteItem,
    TransactWriteItems,
    /// KMS `Sign` (`TrentService.Sign`): the proxy fronts moto's KMS as well.
    Sign,
    Any,
}

impl Operation {
    fn matches(self, target: &str) -> bool {
        self == Operation::Any || format!("{self:?}") == target
    }
}

/// What the proxy does instead of (or before) forwarding a request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// 400 `ProvisionedThroughputExceededException`, as a throttled table answers.
    Throttle,
    /// 500 `InternalServerError`.
    ServerError,
    /// The connection is closed once the request is read, without an answer.
    Drop,
    /// The request is forwarded (and applied) only after this long, then answered.
    Slow(Duration),
    /// 400 `TransactionCanceledException` whose first item was throttled (`ThrottlingError`),
    /// as DynamoDB reports throttling inside a transaction.
    ThrottledTransaction,
}

struct Rule {
    operation: Operation,
    fault: Fault,
    /// How many more requests it applies to; `None`: all of them.
    remaining: Option<usize>,
}

#[derive(Default)]
struct Rules {
    rules: Vec<Rule>,
    /// Requests received per operation (`X-Amz-Target` without its prefix).
    seen: HashMap<String, usize>,
}

impl Rules {
    /// Counts the request and returns the fault of the first live rule that matches it.
    fn on_request(&mut self, target: &str) -> Option<Fault> {
        *self.seen.entry(target.to_owned()).or_default() += 1;
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.operation.matches(target) && r.remaining != Some(0))?;
        if let Some(left) = rule.remaining.as_mut() {
            *left -= 1;
        }
        Some(rule.fault)
    }
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of the test moto server.
pub struct FaultProxy {
    pub endpoint: String,
    rules: Arc<Mutex<Rules>>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start() -> Self {
        let upstream = harness::env()
            .await
            .endpoint
            .trim_start_matches("http://")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let shared = rules.clone();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, upstream.clone(), shared.clone()));
            }
        });
        Self {
            endpoint,
            rules,
            server,
        }
    }

    /// Applies `fault` to the next `times` requests of `operation` (all of them if `None`).
    /// Rules are tried in the order they were added.
    pub fn fail(&self, operation: Operation, fault: Fault, times: Option<usize>) {
        self.rules.lock().unwrap().rules.push(Rule {
            operation,
            fault,
            remaining: times,
        });
    }

    /// No more faults, and counts start again from zero.
    pub fn reset(&self) {
        let mut rules = self.rules.lock().unwrap();
        rules.rules.clear();
        rules.seen.clear();
    }

    /// Every operation received since the start or the last reset, with its count.
    pub fn seen_all(&self) -> std::collections::BTreeMap<String, usize> {
        let rules = self.rules.lock().unwrap();
        rules.seen.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Requests of `operation` received since the start or the last reset, faulted or not.
    pub fn seen(&self, operation: Operation) -> usize {
        let rules = self.rules.lock().unwrap();
        rules
            .seen
            .iter()
            .filter(|(target, _)| operation.matches(target))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One HTTP/1.1 message: its start line and headers (without the blank line), and its body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// The operation name of a DynamoDB request: `DynamoDB_20120810.GetItem` → `GetItem`.
    fn operation(&self) -> String {
        let target = self.header("x-amz-target").unwrap_or_default();
        target.rsplit('.').next().unwrap_or_default().to_owned()
    }

    /// The bytes to send: the same start line and headers, except that the body is framed by
    /// a correct `Content-Length` and the connection is kept or closed as `connection` says.
    fn to_bytes(&self, connection: &str) -> Vec<u8> {
        let mut lines = self.head.lines();
        let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
        for line in lines {
            let name = line.split(':').next().unwrap_or_default().trim();
            if ![
                "content-length",
                "transfer-encoding",
                "connection",
                "keep-alive",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// A DynamoDB error answer with the JSON protocol's `__type` and `x-amzn-ErrorType`.
    fn dynamodb_error(status: &str, error_type: &str, mut body: Value) -> Self {
        body["__type"] = json!(format!("com.amazonaws.dynamodb.v20120810#{error_type}"));
        Message {
            head: format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\n\
                 x-amzn-ErrorType: {error_type}\r\nx-amzn-RequestId: {}",
                uuid::Uuid::new_v4()
            ),
            body: body.to_string().into_bytes(),
        }
    }
}

/// A buffered connection to read HTTP/1.1 messages from.
struct Reader<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// Reads more bytes; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The bytes up to `delimiter`, which is consumed too; `None` if the stream ends first
    /// with nothing buffered.
    async fn until(&mut self, delimiter: &[u8]) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self
                .buf
                .windows(delimiter.len())
                .position(|w| w == delimiter)
            {
                let taken = self.buf.drain(..at + delimiter.len()).take(at).collect();
                return Ok(Some(taken));
            }
            if !self.fill().await? {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
        }
    }

    async fn exactly(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// One message; `None` if the peer closed the connection between messages. A body is
    /// framed by `Content-Length` or chunked encoding; a response without either ends with the
    /// connection.
    async fn message(&mut self, response: bool) -> io::Result<Option<Message>> {
        let Some(head) = self.until(b"\r\n\r\n").await? else {
            return Ok(None);
        };
        let mut message = Message {
            head: String::from_utf8_lossy(&head).into_owned(),
            body: Vec::new(),
        };
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        if let Some(len) = message.header("content-length") {
            let len = len.parse().map_err(|e| invalid(format!("{e}")))?;
            message.body = self.exactly(len).await?;
        } else if message
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line = self
                    .until(b"\r\n")
                    .await?
                    .ok_or_else(|| invalid("eof".into()))?;
                let line = String::from_utf8_lossy(&line).into_owned();
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16).map_err(|e| invalid(format!("{e}")))?;
                if size == 0 {
                    // Trailers, up to the blank line.
                    while !self.until(b"\r\n").await?.unwrap_or_default().is_empty() {}
                    break;
                }
                let chunk = self.exactly(size + 2).await?;
                message.body.extend_from_slice(&chunk[..size]);
            }
        } else if response {
            while self.fill().await? {}
            message.body = std::mem::take(&mut self.buf);
        }
        Ok(Some(message))
    }
}

/// Serves one client connection (the SDK keeps connections alive): each request is counted,
/// then faulted or forwarded to moto on a fresh connection.
async fn serve(mut client: TcpStream, upstream: String, rules: Arc<Mutex<Rules>>) {
    let mut pending = Vec::new();
    loop {
        let mut reader = Reader {
            stream: &mut client,
            buf: std::mem::take(&mut pending),
        };
        let request = match reader.message(false).await {
            Ok(Some(request)) => request,
            _ => return,
        };
        pending = reader.buf;
        let fault = rules.lock().unwrap().on_request(&request.operation());
        let response = match fault {
            None => forward(&upstream, &request).await,
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                forward(&upstream, &request).await
            }
            Some(Fault::Drop) => return,
            Some(Fault::Throttle) => Ok(Message::dynamodb_error(
                "400 Bad Request",
                "ProvisionedThroughputExceededException",
                json!({ "message": "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API." }),
            )),
            Some(Fault::ServerError) => Ok(Message::dynamodb_error(
                "500 Internal Server Error",
                "InternalServerError",
                json!({ "message": "Internal server error" }),
            )),
            Some(Fault::ThrottledTransaction) => Ok(throttled_transaction(&request)),
        };
        let Ok(mut response) = response else { return };
        if let Some(rest) = response.head.strip_prefix("HTTP/1.0 ") {
            response.head = format!("HTTP/1.1 {rest}");
        }
        if client
            .write_all(&response.to_bytes("keep-alive"))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends the request to moto with `Connection: close` and reads its whole answer.
async fn forward(upstream: &str, request: &Message) -> io::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.write_all(&request.to_bytes("close")).await?;
    Reader {
        stream: &mut stream,
        buf: Vec::new(),
    }
    .message(true)
    .await?
    .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
}

/// The cancellation of a transaction whose first item was throttled; one reason per item.
fn throttled_transaction(request: &Message) -> Message {
    let items = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1);
    let mut reasons = vec![
        json!({ "Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your table or index." }),
    ];
    reasons.resize(items.max(1), json!({ "Code": "None" }));
    let codes: Vec<&str> = reasons.iter().filter_map(|r| r["Code"].as_str()).collect();
    Message::dynamodb_error(
        "400 Bad Request",
        "TransactionCanceledException",
        json!({
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
            "CancellationReasons": reasons,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// An app whose store goes through the proxy
// ---------------------------------------------------------------------------------------------

/// The production retry and timeout settings (`configure_client`), with a retry quota of its
/// own: the SDK shares one quota among all clients of a process by default, and the other
/// tests' faults would use it up and change how often this client retries.
fn proxied_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    static CLIENTS: AtomicUsize = AtomicUsize::new(0);
    let builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"));
    let partition = format!("faults-{}", CLIENTS.fetch_add(1, Ordering::Relaxed));
    let config = configure_client(builder)
        .retry_partition(RetryPartition::new(partition))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

struct Faulty {
    app: TestApp,
    proxy: FaultProxy,
    /// The same tables, read directly from moto, past the proxy.
    moto: Store,
}

async fn faulty_app() -> Faulty {
    faulty_app_with(|_| {}).await
}

/// A tenant configured by `configure`, whose handlers reach moto through a fresh proxy.
pub async fn proxied_app(
    configure: impl FnOnce(&mut shared::tenant::Tenant),
) -> (TestApp, FaultProxy) {
    let faulty = faulty_app_with(configure).await;
    (faulty.app, faulty.proxy)
}

async fn faulty_app_with(configure: impl FnOnce(&mut shared::tenant::Tenant)) -> Faulty {
    let env = harness::env().await;
    let proxy = FaultProxy::start().await;
    let store = Store::new(proxied_client(&proxy.endpoint), env.tables.clone());
    let app = TestApp::build(store, configure).await;
    let moto = Store::new(harness::client(&env.endpoint), env.tables.clone());
    let stored = moto
        .get_user(&app.tenant.tenant_id, &app.user.user_id)
        .await;
    assert!(
        stored.unwrap().is_some(),
        "the user is stored through the proxy"
    );
    proxy.reset();
    Faulty { app, proxy, moto }
}

// ---------------------------------------------------------------------------------------------
// The endpoints, called with raw responses (headers included)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    RegisterOptions,
    RegisterComplete,
    MfaOptions,
    MfaComplete,
    BackupCodeComplete,
    PasswordlessBegin,
    PasswordlessComplete,
    Refresh,
    Logout,
}

impl Endpoint {
    /// The `/api/v1` surface: `{success: false, …}` bodies with upper-case codes.
    fn is_v1(self) -> bool {
        matches!(
            self,
            Endpoint::PasswordlessBegin
                | Endpoint::PasswordlessComplete
                | Endpoint::Refresh
                | Endpoint::Logout
        )
    }
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
            Endpoint::BackupCodeComplete => "backup-code-complete",
            Endpoint::PasswordlessBegin => "authenticate-begin",
            Endpoint::PasswordlessComplete => "authenticate-complete",
            Endpoint::Refresh => "auth-refresh",
            Endpoint::Logout => "auth-logout",
        }
    }
}

fn post(path: &str, headers: &[(String, String)], body: Value) -> Request {
    api_request(path, &[], headers, Some(body.to_string()))
}

/// A passwordless login of the app's user; returns its refresh token.
async fn login(app: &TestApp, passkey: &mut Authenticator) -> String {
    let reply = app.passwordless_login(&app.user, passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["data"]["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

/// One valid request for every endpoint, each far enough along its flow (enrolled
/// authenticator, issued challenge, signed assertion, live session) that only the store stands
/// between it and success. Made while the store still works.
async fn requests(app: &TestApp) -> Vec<(Endpoint, Request)> {
    let user = &app.user;
    let bearer = app.auth_headers(&app.token());
    let tenant = app.tenant_headers();
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let code = enrolled.body["codes"][0]
        .as_str()
        .expect("codes")
        .to_owned();
    let refresh_token = login(app, &mut passkey).await;
    let logout_token = login(app, &mut passkey).await;
    let attestation = app
        .registration_credential(&bearer, PASSKEY, &mut Authenticator::passkey())
        .await;
    let options_challenge = app.mfa_challenge(user).await;
    let (mfa_challenge, mfa_assertion) = app.mfa_assertion(user, &mut passkey).await;
    let backup_challenge = app.mfa_challenge(user).await;
    let login_assertion = app.login_assertion(&user.email, &mut passkey).await;
    vec![
        (
            Endpoint::RegisterOptions,
            api_request(
                "/v1/users/me/mfa/webauthn/register",
                &[("method_type", PASSKEY)],
                &bearer,
                None,
            ),
        ),
        (
            Endpoint::RegisterComplete,
            post(
                "/v1/users/me/mfa/webauthn/register/complete",
                &bearer,
                json!({ "credential": attestation, "device_name": "laptop", "method_type": PASSKEY }),
            ),
        ),
        (
            Endpoint::MfaOptions,
            post(
                "/v1/auth/mfa/webauthn/options",
                &[],
                json!({ "challenge_id": options_challenge }),
            ),
        ),
        (
            Endpoint::MfaComplete,
            post(
                "/v1/auth/mfa/webauthn/complete",
                &[],
                json!({ "challenge_id": mfa_challenge, "credential": mfa_assertion }),
            ),
        ),
        (
            Endpoint::BackupCodeComplete,
            post(
                "/v1/auth/mfa/backup_code/complete",
                &[],
                json!({ "challenge_id": backup_challenge, "code": code }),
            ),
        ),
        (
            Endpoint::PasswordlessBegin,
            post(
                "/api/v1/webauthn/authenticate/begin",
                &tenant,
                json!({ "email": user.email }),
            ),
        ),
        (
            Endpoint::PasswordlessComplete,
            post(
                "/api/v1/webauthn/authenticate/complete",
                &tenant,
                json!({ "credential": login_assertion, "email": user.email }),
            ),
        ),
        (
            Endpoint::Refresh,
            post(
                "/api/v1/auth/refresh",
                &tenant,
                json!({ "refresh_token": refresh_token }),
            ),
        ),
        (
            Endpoint::Logout,
            post(
                "/api/v1/auth/logout",
                &tenant,
                json!({ "refresh_token": logout_token }),
            ),
        ),
    ]
}

/// A 503 `store_unavailable` in the endpoint's error body, with `Retry-After: 1`, in time.
fn assert_store_unavailable(endpoint: Endpoint, elapsed: Duration, reply: Reply) {
    let retry_after = reply.headers.get(RETRY_AFTER).cloned();
    let context = format!("{endpoint:?} after {elapsed:?}: {}", reply.body);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{context}");
    if endpoint.is_v1() {
        reply.assert_v1_error(StatusCode::SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE");
    } else {
        reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    }
    let retry_after = retry_after.unwrap_or_else(|| panic!("no Retry-After: {context}"));
    assert_eq!(retry_after, "1", "{context}");
    assert!(elapsed < ANSWER_BOUND, "too slow: {context}");
}

/// Every endpoint, its store failing with `fault` on every operation, answers 503 in time.
async fn every_endpoint_answers_503_when_every_call(fault: Fault) {
    let Faulty { app, proxy, .. } = faulty_app().await;
    let requests = requests(&app).await;
    proxy.reset();
    proxy.fail(Operation::Any, fault, None);
    let app = &app;
    let answers =
        futures::future::join_all(requests.into_iter().map(|(endpoint, req)| async move {
            let started = Instant::now();
            let response = call(app, endpoint, req).await;
            (endpoint, started.elapsed(), response)
        }))
        .await;
    assert_eq!(answers.len(), 9);
    for (endpoint, elapsed, response) in answers {
        assert_store_unavailable(endpoint, elapsed, response);
    }
    assert!(
        proxy.seen(Operation::Any) >= 9,
        "every endpoint used the store"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_throttled_store_makes_every_endpoint_answer_503_with_retry_after() {
    every_endpoint_answers_503_when_every_call(Fault::Throttle).await;
}

#[tokio::test]
async fn a_store_failing_with_500_makes_every_endpoint_answer_503_with_retry_after() {
    every_endpoint_answers_503_when_every_call(Fault::ServerError).await;
}

#[tokio::test]
async fn a_store_dropping_connections_makes_every_endpoint_answer_503_with_retry_after() {
    every_endpoint_answers_503_when_every_call(Fault::Drop).await;
}

#[tokio::test]
async fn a_store_slower_than_the_timeouts_makes_every_endpoint_answer_503_in_time() {
    every_endpoint_answers_503_when_every_call(Fault::Slow(SLOW_REPLY)).await;
}

#[tokio::test]
async fn a_throttled_call_is_attempted_three_times_then_answered_503() {
    let Faulty { app, proxy, .. } = faulty_app().await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);

    // Register options reads, then stores its challenge with a single PutItem.
    proxy.reset();
    proxy.fail(Operation::PutItem, Fault::Throttle, None);
    let started = Instant::now();
    let req = api_request(
        "/v1/users/me/mfa/webauthn/register",
        &[("method_type", PASSKEY)],
        &app.auth_headers(&app.token()),
        None,
    );
    let response = call(&app, Endpoint::RegisterOptions, req).await;
    assert_store_unavailable(Endpoint::RegisterOptions, started.elapsed(), response);
    assert_eq!(proxy.seen(Operation::PutItem), MAX_ATTEMPTS as usize);

    // A second request gets its own three attempts, no more.
    let response = call(
        &app,
        Endpoint::PasswordlessBegin,
        post(
            "/api/v1/webauthn/authenticate/begin",
            &app.tenant_headers(),
            json!({ "email": app.user.email }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::PasswordlessBegin, started.elapsed(), response);
    assert_eq!(proxy.seen(Operation::PutItem), 2 * MAX_ATTEMPTS as usize);

    // The login transaction: three attempts of the one TransactWriteItems.
    proxy.reset();
    let credential = app.login_assertion(&app.user.email, &mut passkey).await;
    proxy.fail(Operation::TransactWriteItems, Fault::Throttle, None);
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::PasswordlessComplete,
        post(
            "/api/v1/webauthn/authenticate/complete",
            &app.tenant_headers(),
            json!({ "credential": credential, "email": app.user.email }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::PasswordlessComplete, started.elapsed(), response);
    assert_eq!(
        proxy.seen(Operation::TransactWriteItems),
        MAX_ATTEMPTS as usize
    );
}

#[tokio::test]
async fn a_slow_call_is_abandoned_at_each_attempt_timeout_and_ends_at_the_operation_timeout() {
    let Faulty { app, proxy, .. } = faulty_app().await;
    let challenge = app.mfa_challenge(&app.user).await;
    // MFA options starts with one GetItem of the challenge.
    proxy.fail(Operation::GetItem, Fault::Slow(SLOW_REPLY), None);
    let started = Instant::now();
    let req = post(
        "/v1/auth/mfa/webauthn/options",
        &[],
        json!({ "challenge_id": challenge }),
    );
    let response = call(&app, Endpoint::MfaOptions, req).await;
    let elapsed = started.elapsed();
    assert_store_unavailable(Endpoint::MfaOptions, elapsed, response);
    // Each attempt was given up after ATTEMPT_TIMEOUT (else one attempt would have waited for
    // the slow answer), and the call as a whole at OPERATION_TIMEOUT.
    assert_eq!(proxy.seen(Operation::GetItem), MAX_ATTEMPTS as usize);
    assert!(elapsed >= OPERATION_TIMEOUT, "{elapsed:?}");
    assert!(elapsed < OPERATION_TIMEOUT + ATTEMPT_TIMEOUT, "{elapsed:?}");
}

#[tokio::test]
async fn a_call_throttled_once_succeeds_on_the_sdk_retry() {
    let Faulty { app, proxy, moto } = faulty_app().await;
    let mut passkey = Authenticator::passkey();
    proxy.fail(Operation::TransactWriteItems, Fault::Throttle, Some(1));
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    assert_eq!(enrolled.body["codes"].as_array().map(Vec::len), Some(10));
    assert_eq!(proxy.seen(Operation::TransactWriteItems), 2);

    proxy.reset();
    proxy.fail(Operation::TransactWriteItems, Fault::Throttle, Some(1));
    proxy.fail(Operation::Query, Fault::Throttle, Some(1));
    let reply = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(proxy.seen(Operation::TransactWriteItems), 2);
    assert_eq!(sessions_of(&moto, &app.user).await.len(), 1);
    assert_eq!(credential_of(&moto, &app.user).await.use_count, 1);
}

/// `Retry-After` is honest: a request whose single-use write failed consumed nothing, and the
/// very same request succeeds once the store is back.
#[tokio::test]
async fn a_request_answered_503_succeeds_when_sent_again_unchanged() {
    let Faulty { app, proxy, .. } = faulty_app().await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);

    // MFA completion: consuming the challenge (a conditional DeleteItem) is throttled.
    let (challenge, assertion) = app.mfa_assertion(&app.user, &mut passkey).await;
    let body = json!({ "challenge_id": challenge, "credential": assertion });
    let path = "/v1/auth/mfa/webauthn/complete";
    proxy.fail(Operation::DeleteItem, Fault::Throttle, None);
    let started = Instant::now();
    let response = call(&app, Endpoint::MfaComplete, post(path, &[], body.clone())).await;
    assert_store_unavailable(Endpoint::MfaComplete, started.elapsed(), response);
    proxy.reset();
    let again = call(&app, Endpoint::MfaComplete, post(path, &[], body)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body["token"].is_string(), "{}", again.body);

    // Refresh: rotating the token (a transaction with its audit record) fails with 500s.
    let token = login(&app, &mut passkey).await;
    let body = json!({ "refresh_token": token });
    let path = "/api/v1/auth/refresh";
    proxy.fail(Operation::TransactWriteItems, Fault::ServerError, None);
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::Refresh,
        post(path, &app.tenant_headers(), body.clone()),
    )
    .await;
    assert_store_unavailable(Endpoint::Refresh, started.elapsed(), response);
    proxy.reset();
    let again = call(
        &app,
        Endpoint::Refresh,
        post(path, &app.tenant_headers(), body),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let rotated = again.body["data"]["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, token);
}

#[tokio::test]
async fn a_transaction_cancelled_for_throttling_is_503_not_a_server_error() {
    let Faulty { app, proxy, moto } = faulty_app().await;
    let user = &app.user;
    let bearer = app.auth_headers(&app.token());

    // The first enrollment's credential-and-codes transaction.
    let mut passkey = Authenticator::passkey();
    let attestation = app
        .registration_credential(&bearer, PASSKEY, &mut passkey)
        .await;
    proxy.fail(
        Operation::TransactWriteItems,
        Fault::ThrottledTransaction,
        None,
    );
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::RegisterComplete,
        post(
            "/v1/users/me/mfa/webauthn/register/complete",
            &bearer,
            json!({ "credential": attestation, "device_name": "phone", "method_type": PASSKEY }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::RegisterComplete, started.elapsed(), response);
    assert!(credentials_of(&moto, user).await.is_empty());

    // The login transaction.
    proxy.reset();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    proxy.fail(
        Operation::TransactWriteItems,
        Fault::ThrottledTransaction,
        None,
    );
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::PasswordlessComplete,
        post(
            "/api/v1/webauthn/authenticate/complete",
            &app.tenant_headers(),
            json!({ "credential": assertion, "email": user.email }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::PasswordlessComplete, started.elapsed(), response);
    assert!(sessions_of(&moto, user).await.is_empty());

    // Once the throttling passes, the login transaction goes through.
    proxy.reset();
    proxy.fail(
        Operation::TransactWriteItems,
        Fault::ThrottledTransaction,
        Some(1),
    );
    let reply = app.passwordless_login(user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(sessions_of(&moto, user).await.len(), 1);
}

#[tokio::test]
async fn a_failed_login_transaction_leaves_no_session_device_or_credential_use() {
    let Faulty { app, proxy, moto } = faulty_app().await;
    let user = &app.user;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let before = credential_of(&moto, user).await;

    app.clock.advance(60);
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    proxy.reset();
    proxy.fail(Operation::TransactWriteItems, Fault::ServerError, None);
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::PasswordlessComplete,
        post(
            "/api/v1/webauthn/authenticate/complete",
            &app.tenant_headers(),
            json!({ "credential": assertion, "email": user.email }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::PasswordlessComplete, started.elapsed(), response);
    assert_eq!(
        proxy.seen(Operation::TransactWriteItems),
        MAX_ATTEMPTS as usize
    );

    assert!(sessions_of(&moto, user).await.is_empty());
    let devices = moto
        .list_devices(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert!(devices.is_empty(), "{devices:?}");
    let after = credential_of(&moto, user).await;
    assert_eq!(after, before, "the credential's use is not recorded");
    assert_eq!(
        (after.sign_count, after.use_count, after.last_used_at),
        (before.sign_count, 0, None)
    );

    // The store is back: the user logs in afresh.
    proxy.reset();
    let reply = app.passwordless_login(user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(sessions_of(&moto, user).await.len(), 1);
    let devices = moto
        .list_devices(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    let used = credential_of(&moto, user).await;
    assert_eq!(
        (used.use_count, used.last_used_at),
        (1, Some(app.clock_now()))
    );
}

#[tokio::test]
async fn a_failed_first_registration_leaves_neither_credential_nor_backup_codes() {
    let Faulty { app, proxy, moto } = faulty_app().await;
    let user = &app.user;
    let bearer = app.auth_headers(&app.token());
    let mut passkey = Authenticator::passkey();
    let attestation = app
        .registration_credential(&bearer, PASSKEY, &mut passkey)
        .await;
    proxy.fail(Operation::TransactWriteItems, Fault::ServerError, None);
    let started = Instant::now();
    let response = call(
        &app,
        Endpoint::RegisterComplete,
        post(
            "/v1/users/me/mfa/webauthn/register/complete",
            &bearer,
            json!({ "credential": attestation, "device_name": "phone", "method_type": PASSKEY }),
        ),
    )
    .await;
    assert_store_unavailable(Endpoint::RegisterComplete, started.elapsed(), response);
    assert_eq!(
        proxy.seen(Operation::TransactWriteItems),
        MAX_ATTEMPTS as usize
    );
    assert!(credentials_of(&moto, user).await.is_empty());
    let codes = moto
        .get_backup_codes(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert!(codes.is_none(), "{codes:?}");

    // The store is back: the same user enrolls afresh and gets their codes.
    proxy.reset();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    assert_eq!(enrolled.body["codes"].as_array().map(Vec::len), Some(10));
    assert_eq!(credentials_of(&moto, user).await.len(), 1);
    let codes = moto
        .get_backup_codes(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
        .expect("backup codes");
    assert_eq!(codes.remaining(), 10);
}

// ---------------------------------------------------------------------------------------------
// Reading moto directly
// ---------------------------------------------------------------------------------------------

async fn credentials_of(moto: &Store, user: &UserRecord) -> Vec<CredentialRecord> {
    moto.list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
}

async fn credential_of(moto: &Store, user: &UserRecord) -> CredentialRecord {
    let mut records = credentials_of(moto, user).await;
    assert_eq!(records.len(), 1);
    records.remove(0)
}

async fn sessions_of(moto: &Store, user: &UserRecord) -> Vec<SessionRecord> {
    let out = moto
        .client()
        .scan()
        .table_name(&moto.tables().sessions)
        .filter_expression("user_id = :u")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::S(user.user_id.to_string()),
        )
        .send()
        .await
        .unwrap();
    serde_dynamo::from_items(out.items.unwrap_or_default()).unwrap()
}
