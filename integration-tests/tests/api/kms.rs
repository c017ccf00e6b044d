//! Keys in KMS, as deployed: moto's KMS signs (ES256 with ECC_NIST_P256, RS256 with RSA_2048)
//! and its `GetPublicKey` builds the JWKS. Tokens from real logins verify with the published
//! keys alone; rotation publishes a key before it signs and drops it after; a KMS failure is a
//! retryable 503 that loses nothing; and an independent verifier (PyJWT), starting from the
//! issuer and following the discovery document, accepts the tokens and refuses them once
//! their key is no longer published.

use std::sync::{Arc, RwLock};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use lambda_http::http::StatusCode;
use serde_json::Value;
use shared::config::{TokenConfig, TokenSettings};
use shared::jwt::TokenVerifier;
use shared::keys::{kms_client, PublishedKeys, TokenSigner};
use shared::mfa::TokenIssuer;
use shared::state::Issuing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::faults::{Fault, FaultProxy, Operation};
use crate::harness::{api_call, env, invoke, me, settings, Authenticator, TestApp};

const PASSKEY: &str = "webauthn_passkey";

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

async fn kms() -> aws_sdk_kms::Client {
    kms_client(&sdk_config(&env().await.endpoint).await)
}

/// A new asymmetric signing key in moto's KMS; its ARN.
async fn create_key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    kms.create_key()
        .key_spec(spec)
        .key_usage(KeyUsageType::SignVerify)
        .description("integration-tests token key")
        .send()
        .await
        .expect("create key")
        .key_metadata
        .expect("metadata")
        .arn
        .expect("arn")
}

async fn issuer(kms: &aws_sdk_kms::Client, key: &str, config: TokenConfig) -> TokenIssuer {
    TokenIssuer {
        signer: TokenSigner::from_kms(kms.clone(), key)
            .await
            .expect("KMS signer"),
        config,
    }
}

async fn verifier(kms: &aws_sdk_kms::Client, published: &[&str]) -> TokenVerifier {
    let ids: Vec<String> = published.iter().map(|k| (*k).to_owned()).collect();
    let keys = PublishedKeys::from_kms(kms, &ids)
        .await
        .expect("public keys");
    TokenVerifier::new(keys.jwks(), settings()).expect("verifier")
}

/// The app with every token-issuing function signing with `key` in KMS, and the self-service
/// functions (`me`) verifying against the `published` KMS keys only.
async fn kms_app(kms: &aws_sdk_kms::Client, key: &str, published: &[&str]) -> TestApp {
    let mut app = TestApp::new().await;
    let issuing = |app: &TestApp| {
        let common = app.common.clone();
        let kms = kms.clone();
        let key = key.to_owned();
        async move {
            Issuing {
                common,
                issuer: issuer(&kms, &key, settings().into()).await,
            }
        }
    };
    app.authenticate_complete = issuing(&app).await;
    app.auth_refresh = issuing(&app).await;
    app.mfa_complete = issuing(&app).await;
    app.common.tokens = Arc::new(verifier(kms, published).await);
    app
}

/// Enrolls a passkey (with the harness's PEM token) and logs in without a password.
async fn login(app: &TestApp) -> Value {
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let reply = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["data"].clone()
}

fn alg_of(token: &str) -> jsonwebtoken::Algorithm {
    jsonwebtoken::decode_header(token).expect("header").alg
}

/// A self-service call with a token of `owner`'s user, answered by `app`'s functions (whose
/// published keys decide).
async fn list_credentials_of(app: &TestApp, owner: &TestApp, token: &str) -> StatusCode {
    me(
        app,
        "GET",
        "/v1/users/me/mfa/webauthn/credentials",
        &[],
        &owner.auth_headers(token),
        None,
    )
    .await
    .status
}

async fn list_credentials(app: &TestApp, token: &str) -> StatusCode {
    list_credentials_of(app, app, token).await
}

#[tokio::test]
async fn logins_signed_in_kms_verify_with_the_published_keys_alone() {
    let kms = kms().await;
    for (spec, alg) in [
        (KeySpec::EccNistP256, jsonwebtoken::Algorithm::ES256),
        (KeySpec::Rsa2048, jsonwebtoken::Algorithm::RS256),
    ] {
        let key = create_key(&kms, spec).await;
        let app = kms_app(&kms, &key, &[&key]).await;
        let data = login(&app).await;
        let access = data["access_token"].as_str().expect("access token");
        assert_eq!(alg_of(access), alg);
        // A verifier that knows nothing but the published JWKS accepts it...
        let claims = verifier(&kms, &[&key])
            .await
            .verify(access, &settings(), app.clock_now())
            .expect("verifies with the JWKS");
        assert_eq!(claims.sub, app.user.user_id);
        // ...and so does the service itself, on a self-service route.
        assert_eq!(list_credentials(&app, access).await, StatusCode::OK);
        // A token of the harness's PEM key is not accepted by the KMS-keyed functions.
        assert_eq!(
            list_credentials(&app, &app.token()).await,
            StatusCode::UNAUTHORIZED
        );
        // The refreshed token is KMS-signed too.
        let refresh = data["refresh_token"].as_str().expect("refresh token");
        let refreshed = app.refresh(&app.tenant_headers(), refresh).await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
        let access = refreshed.body["data"]["access_token"].as_str().unwrap();
        assert_eq!(alg_of(access), alg);
        assert_eq!(list_credentials(&app, access).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_mfa_login_is_signed_in_kms() {
    let kms = kms().await;
    let key = create_key(&kms, KeySpec::EccNistP256).await;
    let app = kms_app(&kms, &key, &[&key]).await;
    let mut key_a = Authenticator::security_key();
    let mut key_b = Authenticator::passkey();
    for (authenticator, method) in [(&mut key_a, "webauthn_fido"), (&mut key_b, PASSKEY)] {
        let enrolled = app.enroll(authenticator, method, "device").await;
        assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    }
    let reply = app.mfa_login(&app.user, &mut key_a).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let token = reply.body["token"].as_str().expect("token");
    verifier(&kms, &[&key])
        .await
        .verify(token, &settings(), app.clock_now())
        .expect("verifies with the JWKS");
}

#[tokio::test]
async fn rotation_publishes_a_key_before_it_signs_and_drops_it_after() {
    let kms = kms().await;
    let (a, b) = (
        create_key(&kms, KeySpec::EccNistP256).await,
        create_key(&kms, KeySpec::EccNistP256).await,
    );
    // A key that is not published may not sign: the issuing functions refuse to start.
    assert!(
        TokenSigner::from_kms_published(kms.clone(), &b, std::slice::from_ref(&a))
            .await
            .is_err()
    );

    // 1. A signs and is the only key published.
    let app = kms_app(&kms, &a, &[&a]).await;
    let token_a = login(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // 2. B is published while A still signs: A's tokens keep working everywhere.
    let both = verifier(&kms, &[&a, &b]).await;
    both.verify(&token_a, &settings(), app.clock_now())
        .expect("A's token during the overlap");
    // 3. B signs; A stays published until A's tokens have expired.
    assert!(
        TokenSigner::from_kms_published(kms.clone(), &b, &[a.clone(), b.clone()])
            .await
            .is_ok()
    );
    let app_b = kms_app(&kms, &b, &[&a, &b]).await;
    let token_b = login(&app_b).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        list_credentials_of(&app_b, &app, &token_a).await,
        StatusCode::OK
    );
    assert_eq!(list_credentials(&app_b, &token_b).await, StatusCode::OK);
    // 4. A is dropped: its tokens are refused, B's are not.
    let only_b = kms_app(&kms, &b, &[&b]).await;
    assert_eq!(
        list_credentials_of(&only_b, &app, &token_a).await,
        StatusCode::UNAUTHORIZED
    );
    only_b
        .common
        .tokens
        .verify(&token_b, &settings(), only_b.clock_now())
        .expect("B's token after the rotation");
}

#[tokio::test]
async fn a_kms_failure_is_a_retryable_503_and_the_refresh_token_survives_it() {
    let kms_direct = kms().await;
    let key = create_key(&kms_direct, KeySpec::EccNistP256).await;
    let proxy = FaultProxy::start().await;
    let kms = kms_client(&sdk_config(&proxy.endpoint).await);
    let app = kms_app(&kms, &key, &[&key]).await;
    let data = login(&app).await;
    let refresh = data["refresh_token"].as_str().unwrap();

    proxy.fail(Operation::Sign, Fault::ServerError, None);
    let failed = app.refresh(&app.tenant_headers(), refresh).await;
    failed.assert_v1_error(StatusCode::SERVICE_UNAVAILABLE, "SIGNING_UNAVAILABLE");
    assert!(proxy.seen(Operation::Sign) >= 1);

    // Nothing was rotated: the same refresh token works once KMS answers again, and is not
    // mistaken for a reused one.
    proxy.reset();
    let retried = app.refresh(&app.tenant_headers(), refresh).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
}

/// Serves `/.well-known/openid-configuration` and `/.well-known/jwks.json` over HTTP from the
/// real handlers, whose published keys the test can swap.
struct KeyServer {
    issuer: String,
    states: Arc<RwLock<Arc<(jwks::State, openid_configuration::State)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    /// Binds the port (the issuer is its URL) and publishes `keys`; `serve` starts answering.
    async fn start(keys: &PublishedKeys) -> (Self, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let config = Self::config_for(&issuer);
        let server = Self {
            issuer,
            states: Arc::new(RwLock::new(Arc::new(Self::states(keys, &config)))),
            task: tokio::spawn(async {}),
        };
        (server, listener)
    }

    fn config_for(issuer: &str) -> TokenConfig {
        TokenSettings {
            issuer: issuer.to_owned(),
            audience: settings().audience,
        }
        .into()
    }

    fn config(&self) -> TokenConfig {
        Self::config_for(&self.issuer)
    }

    fn states(
        keys: &PublishedKeys,
        config: &TokenConfig,
    ) -> (jwks::State, openid_configuration::State) {
        (
            jwks::State::new(keys, config).expect("jwks"),
            openid_configuration::State::new(keys, config.clone()),
        )
    }

    fn publish(&self, keys: &PublishedKeys) {
        *self.states.write().unwrap() = Arc::new(Self::states(keys, &self.config()));
    }

    fn serve(&mut self, listener: TcpListener) {
        let states = self.states.clone();
        self.task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let states = states.read().unwrap().clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let req = api_call("GET", &path, &[], &[], &[], None);
                    let reply = match path.as_str() {
                        "/.well-known/jwks.json" => {
                            invoke(req, |req| jwks::handler(&states.0, req)).await
                        }
                        "/.well-known/openid-configuration" => {
                            invoke(req, |req| openid_configuration::handler(&states.1, req)).await
                        }
                        _ => {
                            let _ = socket
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    };
                    let body = reply.body.to_string().into_bytes();
                    let head = format!(
                        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        reply.status,
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PyJWT, told only the issuer, the audience and the token: `(valid, its JSON report)`.
async fn independent_verifier(issuer: &str, audience: &str, token: &str) -> (bool, Value) {
    let python = std::env::var("MOTO_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/oidc_verify.py");
    let output = tokio::process::Command::new(python)
        .args([script, issuer, audience, token])
        .output()
        .await
        .expect("python with PyJWT (scripts/install-tools.sh)");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "verifier output: {} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

#[tokio::test]
async fn an_independent_verifier_follows_discovery_and_refuses_dropped_keys() {
    let kms = kms().await;
    let es = create_key(&kms, KeySpec::EccNistP256).await;
    let rs = create_key(&kms, KeySpec::Rsa2048).await;
    let published = PublishedKeys::from_kms(&kms, &[es.clone(), rs.clone()])
        .await
        .unwrap();
    let (mut server, listener) = KeyServer::start(&published).await;
    server.serve(listener);
    let audience = settings().audience;

    let mut tokens = Vec::new();
    for key in [&es, &rs] {
        // Tokens from real logins, with the server's URL as their issuer.
        let mut app = TestApp::new().await;
        app.authenticate_complete = Issuing {
            common: app.common.clone(),
            issuer: issuer(&kms, key, server.config()).await,
        };
        let access = login(&app).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (valid, report) = independent_verifier(&server.issuer, &audience, &access).await;
        assert!(valid, "{report}");
        assert_eq!(report["sub"], app.user.user_id.to_string());
        assert_eq!(report["alg"], format!("{:?}", alg_of(&access)));
        tokens.push(access);
    }
    // A wrong audience is refused by the independent verifier too.
    let (valid, report) =
        independent_verifier(&server.issuer, "another-audience", &tokens[0]).await;
    assert!(!valid, "{report}");

    // The ES256 key is removed from the JWKS: its token is refused, the RS256 one is not.
    server.publish(
        &PublishedKeys::from_kms(&kms, std::slice::from_ref(&rs))
            .await
            .unwrap(),
    );
    let (valid, report) = independent_verifier(&server.issuer, &audience, &tokens[0]).await;
    assert!(!valid, "{report}");
    let (valid, report) = independent_verifier(&server.issuer, &audience, &tokens[1]).await;
    assert!(valid, "{report}");
}

/// The pepper and the concealment secret come from Secrets Manager (moto), as deployed: the
/// values the stack generates are read and used, a missing secret stops start-up.
#[tokio::test]
async fn secrets_are_read_from_secrets_manager() {
    use shared::codes::BackupCodeHasher;
    use shared::config::{BACKUP_CODE_PEPPER_SECRET_ID, CONCEALMENT_SECRET_ID};
    use shared::passwordless::ConcealmentKey;
    use shared::secrets::{secret_value, secrets_client};

    let client = secrets_client(&sdk_config(&env().await.endpoint).await);
    // As the template's GenerateSecretString makes it: 64 characters, no punctuation.
    let generated = client
        .get_random_password()
        .password_length(64)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap()
        .random_password
        .unwrap();
    let name = format!("it-pepper-{}", uuid::Uuid::new_v4());
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string(&generated)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let pepper = secret_value(&client, &arn, BACKUP_CODE_PEPPER_SECRET_ID)
        .await
        .unwrap();
    assert_eq!(pepper, generated.as_bytes());
    let hasher = BackupCodeHasher::new(&pepper).unwrap();
    let direct = BackupCodeHasher::new(generated.as_bytes()).unwrap();
    let (t, u) = (
        shared::ids::TenantId::new_random(),
        shared::ids::UserId::new_random(),
    );
    assert_eq!(hasher.hash(&t, &u, "ABCD"), direct.hash(&t, &u, "ABCD"));
    ConcealmentKey::new(&pepper).unwrap();

    let missing = secret_value(&client, "no-such-secret", CONCEALMENT_SECRET_ID)
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains(CONCEALMENT_SECRET_ID),
        "{missing}"
    );
}
