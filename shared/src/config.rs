//! Configuration read once at cold start. A missing or malformed setting stops start-up with a
//! message that names the variable, instead of failing the first request.

use std::env;

use crate::error::ApiError;

/// Environment variables that name the tables; `template.yaml` sets them on every function.
pub const TENANTS_TABLE: &str = "TENANTS_TABLE";
pub const USERS_TABLE: &str = "USERS_TABLE";
pub const CREDENTIALS_TABLE: &str = "CREDENTIALS_TABLE";
pub const CHALLENGES_TABLE: &str = "CHALLENGES_TABLE";
pub const BACKUP_CODES_TABLE: &str = "BACKUP_CODES_TABLE";
pub const SESSIONS_TABLE: &str = "SESSIONS_TABLE";
pub const DEVICES_TABLE: &str = "DEVICES_TABLE";
pub const AUDIT_TABLE: &str = "AUDIT_TABLE";

/// JWT settings: the issuer every token carries (empty: `https://<the API's domain>`, taken
/// from each request) and the audience every token carries and every verifier checks.
pub const JWT_ISSUER: &str = "JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
/// KMS keys (ids or ARNs, comma-separated) whose public halves are published in the JWKS and
/// accepted by the verifiers: the deployed stack's key source.
pub const JWT_KMS_KEY_IDS: &str = "JWT_KMS_KEY_IDS";
/// The KMS key that signs tokens (issuing functions only); one of `JWT_KMS_KEY_IDS`.
pub const JWT_KMS_SIGNING_KEY_ID: &str = "JWT_KMS_SIGNING_KEY_ID";
/// Without KMS: JWKS document (JSON) of the public keys tokens are accepted from…
pub const JWT_VERIFICATION_JWKS: &str = "JWT_VERIFICATION_JWKS";
/// …and the PKCS#8 PEM of the P-256 private key that signs them (issuing functions only).
pub const JWT_SIGNING_KEY: &str = "JWT_SIGNING_KEY";
/// Secrets Manager secret holding the key of the backup codes' keyed hashes (the pepper).
pub const BACKUP_CODE_PEPPER_SECRET_ID: &str = "BACKUP_CODE_PEPPER_SECRET_ID";
/// Secrets Manager secret from which each tenant's concealment key is derived.
pub const CONCEALMENT_SECRET_ID: &str = "CONCEALMENT_SECRET_ID";

/// What Lambda sets for the AWS SDK: the region and the execution role's credentials.
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// One endpoint for every AWS service (the local run and the tests: moto). Unset in Lambda.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// `off`: no DynamoDB connection is opened during Init ([`crate::state::warm_up`]).
pub const DYNAMODB_WARM_UP: &str = "DYNAMODB_WARM_UP";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The variable's value, or `None` when it is unset or blank.
pub fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub tenants: String,
    pub users: String,
    pub credentials: String,
    pub challenges: String,
    pub backup_codes: String,
    pub sessions: String,
    pub devices: String,
    pub audit: String,
}

impl TableNames {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tenants: required(TENANTS_TABLE)?,
            users: required(USERS_TABLE)?,
            credentials: required(CREDENTIALS_TABLE)?,
            challenges: required(CHALLENGES_TABLE)?,
            backup_codes: required(BACKUP_CODES_TABLE)?,
            sessions: required(SESSIONS_TABLE)?,
            devices: required(DEVICES_TABLE)?,
            audit: required(AUDIT_TABLE)?,
        })
    }

    /// Names for a local or test deployment: `<prefix>-tenants`, `<prefix>-users`, …
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tenants: format!("{prefix}-tenants"),
            users: format!("{prefix}-users"),
            credentials: format!("{prefix}-credentials"),
            challenges: format!("{prefix}-challenges"),
            backup_codes: format!("{prefix}-backup-codes"),
            sessions: format!("{prefix}-sessions"),
            devices: format!("{prefix}-devices"),
            audit: format!("{prefix}-audit"),
        }
    }

    /// `<prefix>-…` names, each overridden by its environment variable when that is set.
    pub fn with_prefix_and_env(prefix: &str) -> Self {
        let mut names = Self::with_prefix(prefix);
        for var in Self::VARS {
            if let Some(value) = env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                if let Some(slot) = names.slot(var) {
                    *slot = value;
                }
            }
        }
        names
    }

    /// Every table variable `template.yaml` sets.
    pub const VARS: [&'static str; 8] = [
        TENANTS_TABLE,
        USERS_TABLE,
        CREDENTIALS_TABLE,
        CHALLENGES_TABLE,
        BACKUP_CODES_TABLE,
        SESSIONS_TABLE,
        DEVICES_TABLE,
        AUDIT_TABLE,
    ];

    fn slot(&mut self, var: &str) -> Option<&mut String> {
        match var {
            TENANTS_TABLE => Some(&mut self.tenants),
            USERS_TABLE => Some(&mut self.users),
            CREDENTIALS_TABLE => Some(&mut self.credentials),
            CHALLENGES_TABLE => Some(&mut self.challenges),
            BACKUP_CODES_TABLE => Some(&mut self.backup_codes),
            SESSIONS_TABLE => Some(&mut self.sessions),
            DEVICES_TABLE => Some(&mut self.devices),
            AUDIT_TABLE => Some(&mut self.audit),
            _ => None,
        }
    }

    /// The table an environment variable of `template.yaml` names.
    pub fn by_env_var(&self, var: &str) -> Option<&str> {
        self.env_vars()
            .into_iter()
            .find(|(v, _)| *v == var)
            .map(|(_, name)| name)
    }

    pub fn env_vars(&self) -> Vec<(&'static str, &str)> {
        vec![
            (TENANTS_TABLE, &self.tenants),
            (USERS_TABLE, &self.users),
            (CREDENTIALS_TABLE, &self.credentials),
            (CHALLENGES_TABLE, &self.challenges),
            (BACKUP_CODES_TABLE, &self.backup_codes),
            (SESSIONS_TABLE, &self.sessions),
            (DEVICES_TABLE, &self.devices),
            (AUDIT_TABLE, &self.audit),
        ]
    }
}

/// Issuer and audience of the system JWTs of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

/// Issuer and audience as configured: a fixed issuer, or none, and then each request's
/// issuer is `https://<domain>` of the API Gateway domain it came through, so a stack
/// deployed without settings issues tokens whose `iss` is its own URL, where it serves the
/// OpenID discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    pub issuer: Option<String>,
    pub audience: String,
}

impl TokenConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let issuer = optional(JWT_ISSUER);
        if let Some(issuer) = &issuer {
            let url = url::Url::parse(issuer).map_err(|e| ConfigError::Invalid {
                name: JWT_ISSUER,
                reason: e.to_string(),
            })?;
            if !matches!(url.scheme(), "https" | "http") || issuer.ends_with('/') {
                return Err(ConfigError::Invalid {
                    name: JWT_ISSUER,
                    reason: "must be an http(s) URL without a trailing slash".into(),
                });
            }
        }
        Ok(Self {
            issuer,
            audience: required(JWT_AUDIENCE)?,
        })
    }

    /// The settings of the request: the fixed issuer, or the API's domain.
    pub fn for_request(&self, req: &lambda_http::Request) -> Result<TokenSettings, ApiError> {
        let issuer = match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!("https://{}", api_domain(req)?),
        };
        Ok(TokenSettings {
            issuer,
            audience: self.audience.clone(),
        })
    }
}

impl From<&TokenSettings> for TokenConfig {
    fn from(settings: &TokenSettings) -> Self {
        settings.clone().into()
    }
}

impl From<TokenSettings> for TokenConfig {
    fn from(settings: TokenSettings) -> Self {
        Self {
            issuer: Some(settings.issuer),
            audience: settings.audience,
        }
    }
}

/// The domain API Gateway received the request on (`requestContext.domainName`): set by API
/// Gateway, not by the client. Checked to be a plain host name all the same.
fn api_domain(req: &lambda_http::Request) -> Result<String, ApiError> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let domain = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    domain
        .filter(|d| {
            !d.is_empty()
                && d.len() <= 253
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        })
        .ok_or_else(|| {
            ApiError::internal(format!(
                "{JWT_ISSUER} is not set and the request names no API domain"
            ))
        })
}

/// The AWS settings of a function, read once at cold start. Credentials come from the
/// environment only (Lambda sets the execution role's there; they last for the execution
/// environment's lifetime): no profile files, SSO, web identity, container or instance metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(optional)
    }

    /// The settings from `lookup` (a variable's non-blank value); tests give a map.
    pub fn from_lookup(
        lookup: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let need = |name| lookup(name).ok_or(ConfigError::Missing(name));
        let endpoint_url = lookup(AWS_ENDPOINT_URL);
        if let Some(url) = &endpoint_url {
            let parsed = url::Url::parse(url).map_err(|e| ConfigError::Invalid {
                name: AWS_ENDPOINT_URL,
                reason: e.to_string(),
            })?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(ConfigError::Invalid {
                    name: AWS_ENDPOINT_URL,
                    reason: "must be an http(s) URL".into(),
                });
            }
        }
        Ok(Self {
            region: need(AWS_REGION)?,
            access_key_id: need(AWS_ACCESS_KEY_ID)?,
            secret_access_key: need(AWS_SECRET_ACCESS_KEY)?,
            session_token: lookup(AWS_SESSION_TOKEN),
            endpoint_url,
        })
    }

    /// The SDK configuration: these credentials, region and endpoint, and [`https_client`].
    /// Retries, timeouts, the identity cache and the sleep implementation are the SDK's
    /// defaults for the behaviour version, as with `aws_config`; the store sets its own
    /// retries and timeouts ([`crate::store::configure_client`]).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "Environment",
        );
        let mut builder = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(https_client(self.endpoint_url.as_deref()));
        builder.set_endpoint_url(self.endpoint_url.clone());
        builder.build()
    }
}

/// The Amazon Trust Services roots (PEM): every AWS endpoint's certificate chains to one.
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-roots.pem");

/// The SDK's HTTPS client (hyper, rustls on aws-lc-rs), trusting the five Amazon roots instead
/// of the system bundle, which the SDK's default client reads and parses (about 140
/// certificates) when it first connects. An `https` `AWS_ENDPOINT_URL` may be any server, so
/// with one the system's roots are trusted as well (`SSL_CERT_FILE` names another bundle).
pub fn https_client(endpoint_url: Option<&str>) -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let custom_https_endpoint = endpoint_url.is_some_and(|url| url.starts_with("https:"));
    let trust_store = TrustStore::empty()
        .with_native_roots(custom_https_endpoint)
        .with_pem_certificate(AMAZON_ROOTS);
    let tls_context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .expect("a TLS context without server names");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context)
        .build_https()
}

/// Longest time Init waits for the DynamoDB warm-up; in-region it takes milliseconds.
pub const WARM_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1_500);

/// One request through `client`'s HTTP connection pool, as [`crate::state::warm_up`] describes:
/// a `GetItem` whose HTTP request is replaced, after signing, by `GET /` without a body, sent
/// once (no retry) within [`WARM_UP_TIMEOUT`]. The answer and any error are ignored.
pub async fn warm_up_connection(client: &aws_sdk_dynamodb::Client) {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    // The client's timeouts with a shorter total: the connect and read timeouts select the
    // connection pool (the HTTP client keeps one per pair), which must be the store's.
    let timeouts = client
        .config()
        .timeout_config()
        .map(|t| t.to_builder())
        .unwrap_or_default()
        .operation_timeout(WARM_UP_TIMEOUT)
        .build();
    let started = std::time::Instant::now();
    let outcome = client
        .get_item()
        .table_name("warm-up")
        .customize()
        .interceptor(HealthCheckRequest)
        .config_override(
            aws_sdk_dynamodb::Config::builder()
                .retry_config(RetryConfig::disabled())
                .timeout_config(timeouts),
        )
        .send()
        .await;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        answered = outcome.is_ok() || matches!(&outcome, Err(e) if e.raw_response().is_some()),
        "DynamoDB connection warm-up"
    );
}

/// Turns the signed request into the endpoint's health check, `GET /`: no action, no body.
#[derive(Debug)]
struct HealthCheckRequest;

impl aws_sdk_dynamodb::config::Intercept for HealthCheckRequest {
    fn name(&self) -> &'static str {
        "HealthCheckRequest"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        request.set_method("GET")?;
        request.take_body();
        for header in ["content-type", "content-length", "x-amz-target"] {
            request.headers_mut().remove(header);
        }
        Ok(())
    }
}

/// The DynamoDB client of an SDK configuration (region, credentials, `AWS_ENDPOINT_URL`) loaded
/// once at cold start, with the store's explicit retries and timeouts ([`crate::store::client`]).
pub fn dynamodb_client_from(sdk_config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let builder = aws_sdk_dynamodb::config::Builder::from(sdk_config);
    aws_sdk_dynamodb::Client::from_conf(crate::store::configure_client(builder).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&'static str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const LAMBDA: [(&str, &str); 4] = [
        (AWS_REGION, "eu-west-1"),
        (AWS_ACCESS_KEY_ID, "ASIAEXAMPLE"),
        (AWS_SECRET_ACCESS_KEY, "secret"),
        (AWS_SESSION_TOKEN, "token"),
    ];

    #[test]
    fn aws_settings_come_from_what_lambda_sets() {
        let settings = AwsSettings::from_lookup(lookup(&LAMBDA)).unwrap();
        assert_eq!(settings.region, "eu-west-1");
        assert_eq!(settings.session_token.as_deref(), Some("token"));
        assert_eq!(settings.endpoint_url, None);
        let sdk = settings.sdk_config();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(sdk.credentials_provider().is_some());
        assert!(sdk.http_client().is_some());
        assert_eq!(sdk.endpoint_url(), None);
        assert!(!format!("{settings:?}").contains("secret"));
    }

    #[test]
    fn the_endpoint_override_reaches_every_client() {
        let mut vars = LAMBDA.to_vec();
        vars.push((AWS_ENDPOINT_URL, "http://127.0.0.1:5000"));
        let sdk = AwsSettings::from_lookup(lookup(&vars))
            .unwrap()
            .sdk_config();
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5000"));
        vars.pop();
        vars.push((AWS_ENDPOINT_URL, "localhost:5000"));
        assert!(matches!(
            AwsSettings::from_lookup(lookup(&vars)),
            Err(ConfigError::Invalid {
                name: AWS_ENDPOINT_URL,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_region_or_credential_names_the_variable() {
        for missing in [AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY] {
            let vars: Vec<_> = LAMBDA
                .iter()
                .copied()
                .filter(|(n, _)| *n != missing)
                .collect();
            let err = AwsSettings::from_lookup(lookup(&vars)).unwrap_err();
            assert!(matches!(err, ConfigError::Missing(name) if name == missing));
            assert!(err.to_string().contains(missing), "{err}");
        }
        // The session token is optional (long-term keys on a developer machine).
        let vars: Vec<_> = LAMBDA
            .iter()
            .copied()
            .filter(|(n, _)| *n != AWS_SESSION_TOKEN)
            .collect();
        assert_eq!(
            AwsSettings::from_lookup(lookup(&vars))
                .unwrap()
                .session_token,
            None
        );
    }

    #[test]
    fn the_amazon_roots_are_five_certificates() {
        let blocks = pem::parse_many(AMAZON_ROOTS).unwrap();
        assert_eq!(blocks.len(), 5);
        assert!(blocks.iter().all(|b| b.tag() == "CERTIFICATE"));
    }

    #[test]
    fn every_table_env_var_maps_to_its_name() {
        let names = TableNames::with_prefix("t");
        assert_eq!(names.env_vars().len(), TableNames::VARS.len());
        for (var, name) in names.env_vars() {
            assert_eq!(names.by_env_var(var), Some(name));
        }
        assert_eq!(names.by_env_var("OTHER"), None);
    }
}
