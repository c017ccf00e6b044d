//! `authctl`: the operator CLI. JSON on stdout; on error a message on stderr and exit code 1.
//! The command logic lives here so tests can drive it against a test server.
//!
//! With no AWS settings it talks to the local run (`scripts/dev.sh`): DynamoDB at
//! `http://127.0.0.1:8000`, tables `passkey-local-*`, signing key `.local/jwt-signing-key.pem`.
//! Against AWS, pass `--aws` and set the table variables (`TENANTS_TABLE`, …) and, for
//! `token issue`, `JWT_ISSUER`, `JWT_AUDIENCE` and the key: `JWT_KMS_SIGNING_KEY_ID` (a KMS
//! key: the deployed stack's, or the local run's in moto) or `JWT_SIGNING_KEY` (a PEM).

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use shared::clock::{Clock, SystemClock};
use shared::config::{self, TableNames, TokenSettings};
use shared::ids::{TenantId, UserId};
use shared::jwt::Claims;
use shared::keys::{kms_client, TokenSigner};
use shared::store::schema::create_tables;
use shared::store::{Store, StoreError};
use shared::tenant::{MethodType, UserVerification};

/// Where the local run keeps its state; defaults of every command point here.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";
pub const LOCAL_TABLE_PREFIX: &str = "passkey-local";
pub const LOCAL_SIGNING_KEY: &str = ".local/jwt-signing-key.pem";
pub const LOCAL_ISSUER: &str = "http://localhost:3000";
pub const LOCAL_AUDIENCE: &str = "passkey-local";
const REGION: &str = "us-east-1";

#[derive(Parser)]
#[command(
    name = "authctl",
    version,
    about = "Operate the passkey and MFA service"
)]
pub struct Cli {
    /// Use the standard AWS configuration chain instead of the local run's DynamoDB.
    #[arg(long, global = true)]
    pub aws: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Tenants: one relying party each.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users of a tenant.
    #[command(subcommand)]
    User(UserCommand),
    /// System JWTs.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Registered authenticators.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Tables, created from template.yaml (local and test deployments).
    #[command(subcommand)]
    Tables(TablesCommand),
    /// JWT signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// MFA challenges, as the primary login creates them.
    #[command(subcommand, name = "mfa-challenge")]
    MfaChallenge(MfaChallengeCommand),
    /// Audit records of authentication outcomes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A user's passwordless sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Revokes every live session of the user.
    Revoke {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The newest records of a tenant, or of one of its users, newest first.
    List {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: Option<UserId>,
        /// How many records at most.
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
}

#[derive(Subcommand)]
pub enum MfaChallengeCommand {
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
        /// Seconds the challenge stays valid.
        #[arg(long, default_value_t = shared::mfa::MFA_CHALLENGE_TTL_SECS)]
        ttl: i64,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "rp-id")]
        rp_id: String,
        /// Allowed origin (repeat for several).
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        /// Enabled method types (default: both).
        #[arg(long = "method", value_parser = parse_method)]
        methods: Vec<MethodType>,
        /// User verification for security keys: preferred or required.
        #[arg(long = "user-verification", default_value = "preferred", value_parser = parse_uv)]
        user_verification: UserVerification,
        #[arg(long = "challenge-timeout", default_value_t = 300)]
        challenge_timeout_secs: u32,
        #[arg(long = "token-ttl", default_value_t = 900)]
        token_ttl_secs: u32,
        /// Passwordless login answers an unknown e-mail like a wrong credential (401) instead
        /// of 404 USER_NOT_FOUND. Clients must then send X-Tenant-ID.
        #[arg(long = "conceal-unknown-users")]
        conceal_unknown_users: bool,
        /// Lifetime of passwordless refresh tokens, in seconds (default 30 days).
        #[arg(long = "refresh-token-ttl", default_value_t = 30 * 86_400)]
        refresh_token_ttl_secs: u32,
        /// Days audit records are kept.
        #[arg(long = "audit-retention-days", default_value_t = 365)]
        audit_retention_days: u32,
        /// How recent a login must be to add an authenticator when the user has one, seconds.
        #[arg(long = "reauthentication-window", default_value_t = 600)]
        reauthentication_window_secs: u32,
        /// Absolute lifetime of a passwordless session, seconds (default 30 days).
        #[arg(long = "session-max-age", default_value_t = 30 * 86_400)]
        session_max_age_secs: u32,
        /// Users may delete their last authenticator (default: 409 last_factor).
        #[arg(long = "allow-removing-last-factor")]
        allow_removing_last_factor: bool,
        /// A user with no authenticator gets 404 no_credentials from MFA options instead of
        /// an enrollment grant for a first authenticator.
        #[arg(long = "no-first-enrollment-from-mfa")]
        no_first_enrollment_from_mfa: bool,
    },
    /// Changes settings: a JSON object of the admin API's tenant settings, e.g.
    /// `{"conceal_unknown_users": true}`. Validated like creation; never stored if invalid.
    Update {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        settings: String,
    },
    /// A tenant's settings (never its secret).
    Get {
        #[arg(long)]
        tenant: TenantId,
    },
    /// The tenant's Cedar policies (README: Tenant policies).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Stores the policy set in FILE, after validating it against the shipped schema (an
    /// invalid set is refused with the validator's messages and not stored). An empty file
    /// removes the tenant's set: the default rendered from its settings applies again.
    Set {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        file: PathBuf,
    },
    /// The tenant's current set: its own, or the default rendered from its settings.
    Get {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Evaluates a sample request (JSON, see shared::policy::SampleRequest) against the set in
    /// FILE, or the tenant's current set without --file. Nothing is stored.
    Test {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        request: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        email: String,
        #[arg(long = "display-name")]
        display_name: String,
        /// A group the user is in (`principal.groups` in the tenant's policies); repeat it.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Changes the user's display name or groups.
    Update {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
        #[arg(long = "display-name")]
        display_name: Option<String>,
        /// The user's groups, replacing the current ones; repeat it.
        #[arg(long = "group", conflicts_with = "clear_groups")]
        groups: Vec<String>,
        /// Takes the user out of every group.
        #[arg(long = "clear-groups")]
        clear_groups: bool,
    },
    /// Erases the user: credentials, backup codes, sessions, devices, pending challenges and
    /// the user record (audit records are kept). Safe to run again if interrupted.
    Delete {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    Issue {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
        /// Lifetime in seconds (default: the tenant's token lifetime).
        #[arg(long)]
        ttl: Option<u32>,
        #[arg(long = "signing-key", default_value = LOCAL_SIGNING_KEY)]
        signing_key: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum CredentialsCommand {
    List {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
    },
    /// Removes one credential (the last one too: the user enrolls again through MFA).
    Delete {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        user: UserId,
        /// The credential id, base64url.
        #[arg(long)]
        credential: String,
    },
}

#[derive(Subcommand)]
pub enum TablesCommand {
    Create {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Writes a new P-256 key (PKCS#8 PEM, mode 0600) unless the file exists; prints its JWKS.
    Generate {
        #[arg(long, default_value = LOCAL_SIGNING_KEY)]
        out: PathBuf,
    },
    /// Prints the JWKS of a key file.
    Jwks {
        #[arg(long, default_value = LOCAL_SIGNING_KEY)]
        key: PathBuf,
    },
}

fn parse_method(s: &str) -> Result<MethodType, String> {
    s.parse().map_err(|e: shared::ApiError| e.to_string())
}

fn parse_uv(s: &str) -> Result<UserVerification, String> {
    match s {
        "preferred" => Ok(UserVerification::Preferred),
        "required" => Ok(UserVerification::Required),
        other => Err(format!("expected preferred or required, not {other:?}")),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Where commands read and write: built from the environment by `main`, directly by tests.
pub struct Context {
    pub store: Store,
    pub token_settings: TokenSettings,
    /// `JWT_SIGNING_KEY`, which takes precedence over `--signing-key` files.
    pub signing_key_pem: Option<String>,
    /// `JWT_KMS_SIGNING_KEY_ID`: when set, tokens are signed by this KMS key instead.
    pub kms_signing_key: Option<(aws_sdk_kms::Client, String)>,
}

impl Context {
    pub async fn from_env(aws: bool) -> Result<Self, String> {
        let sdk = sdk_config(aws).await;
        Ok(Self {
            store: store(aws, &sdk)?,
            kms_signing_key: config::optional(config::JWT_KMS_SIGNING_KEY_ID)
                .map(|id| (kms_client(&sdk), id)),
            token_settings: TokenSettings {
                issuer: env_or(config::JWT_ISSUER, LOCAL_ISSUER),
                audience: env_or(config::JWT_AUDIENCE, LOCAL_AUDIENCE),
            },
            signing_key_pem: std::env::var(config::JWT_SIGNING_KEY)
                .ok()
                .filter(|v| !v.trim().is_empty()),
        })
    }
}

/// AWS's configuration with `--aws` (the standard chain: environment, profile, SSO, …; the
/// functions read only the environment); else the local run's endpoint and dummy credentials.
async fn sdk_config(aws: bool) -> aws_config::SdkConfig {
    if aws {
        aws_config::load_from_env().await
    } else {
        let endpoint = env_or("AWS_ENDPOINT_URL", LOCAL_ENDPOINT);
        let region = env_or("AWS_REGION", REGION);
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                env_or("AWS_ACCESS_KEY_ID", "local"),
                env_or("AWS_SECRET_ACCESS_KEY", "local"),
                None,
                None,
                "authctl-local",
            ))
            .load()
            .await
    }
}

fn store(aws: bool, sdk: &aws_config::SdkConfig) -> Result<Store, String> {
    let tables = if aws {
        TableNames::from_env().map_err(|e| e.to_string())?
    } else {
        TableNames::with_prefix_and_env(LOCAL_TABLE_PREFIX)
    };
    Ok(Store::new(config::dynamodb_client_from(sdk), tables))
}

fn store_err(e: StoreError) -> String {
    format!("store: {e}")
}

/// The KMS key when one is configured, else `JWT_SIGNING_KEY`, else the key file.
async fn signer(ctx: &Context, path: &Path) -> Result<TokenSigner, String> {
    if let Some((client, key_id)) = &ctx.kms_signing_key {
        return TokenSigner::from_kms(client.clone(), key_id)
            .await
            .map_err(|e| e.to_string());
    }
    let pem = match &ctx.signing_key_pem {
        Some(pem) => pem.clone(),
        None => std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read signing key {} ({e}); set JWT_SIGNING_KEY or run `authctl key generate`",
                path.display()
            )
        })?,
    };
    TokenSigner::from_pem(&pem).map_err(|e| e.to_string())
}

/// Runs one command; the JSON it returns is what `authctl` prints.
pub async fn run(command: Command, ctx: &Context) -> Result<Value, String> {
    let now = SystemClock.now();
    match command {
        Command::Tenant(TenantCommand::Create {
            name,
            rp_id,
            origins,
            methods,
            user_verification,
            challenge_timeout_secs,
            token_ttl_secs,
            conceal_unknown_users,
            refresh_token_ttl_secs,
            audit_retention_days,
            reauthentication_window_secs,
            session_max_age_secs,
            allow_removing_last_factor,
            no_first_enrollment_from_mfa,
        }) => {
            let settings = shared::admin::TenantSettings {
                name: Some(name),
                rp_id: Some(rp_id),
                origins: Some(origins),
                methods: (!methods.is_empty()).then_some(methods),
                user_verification: Some(user_verification),
                challenge_timeout_secs: Some(challenge_timeout_secs),
                token_ttl_secs: Some(token_ttl_secs),
                conceal_unknown_users: Some(conceal_unknown_users),
                refresh_token_ttl_secs: Some(refresh_token_ttl_secs),
                audit_retention_days: Some(audit_retention_days),
                reauthentication_window_secs: Some(reauthentication_window_secs),
                session_max_age_secs: Some(session_max_age_secs),
                allow_removing_last_factor: Some(allow_removing_last_factor),
                enroll_without_authenticator: Some(!no_first_enrollment_from_mfa),
                ..Default::default()
            };
            let tenant = shared::admin::create_tenant(&ctx.store, settings, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "tenant_id": tenant.tenant_id }))
        }
        Command::Tenant(TenantCommand::Update { tenant, settings }) => {
            let settings: shared::admin::TenantSettings =
                serde_json::from_str(&settings).map_err(|e| format!("--settings: {e}"))?;
            let tenant = shared::admin::update_tenant(&ctx.store, &tenant, settings)
                .await
                .map_err(|e| e.to_string())?;
            Ok(shared::admin::tenant_view(&tenant))
        }
        Command::Tenant(TenantCommand::Get { tenant }) => {
            let tenant = ctx
                .store
                .get_tenant(&tenant)
                .await
                .map_err(store_err)?
                .ok_or_else(|| format!("tenant {tenant} does not exist"))?;
            Ok(shared::admin::tenant_view(&tenant))
        }
        Command::Tenant(TenantCommand::Policy(command)) => policy(command, ctx).await,
        Command::User(UserCommand::Create {
            tenant,
            email,
            display_name,
            groups,
        }) => {
            let new = shared::admin::NewUser {
                email: &email,
                display_name: &display_name,
                groups: &groups,
            };
            let user = shared::admin::create_user(&ctx.store, &tenant, &new, now, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "user_id": user.user_id }))
        }
        Command::User(UserCommand::Update {
            tenant,
            user,
            display_name,
            groups,
            clear_groups,
        }) => {
            let groups = (clear_groups || !groups.is_empty()).then_some(groups.as_slice());
            let changes = shared::store::UserChanges {
                display_name: display_name.as_deref(),
                groups,
            };
            let user = shared::admin::update_user(&ctx.store, &tenant, &user, &changes, now, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(shared::admin::user_view(&user))
        }
        Command::User(UserCommand::Delete { tenant, user }) => {
            let erased = shared::admin::delete_user(&ctx.store, &tenant, &user, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "user_id": user, "deleted": true, "erased": erased }))
        }
        Command::Credentials(CredentialsCommand::Delete {
            tenant,
            user,
            credential,
        }) => {
            let id = shared::ids::CredentialId::from_base64url(&credential)
                .map_err(|_| "--credential must be base64url".to_owned())?;
            shared::admin::delete_credential(&ctx.store, &tenant, &user, &id, now, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "credential_id": id, "deleted": true }))
        }
        Command::Sessions(SessionsCommand::Revoke { tenant, user }) => {
            let revoked = shared::admin::revoke_sessions(&ctx.store, &tenant, &user, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "revoked": revoked }))
        }
        Command::Token(TokenCommand::Issue {
            tenant,
            user,
            ttl,
            signing_key,
        }) => {
            let key = signer(ctx, &signing_key).await?;
            let store = &ctx.store;
            let found_tenant = store
                .get_tenant(&tenant)
                .await
                .map_err(store_err)?
                .ok_or_else(|| format!("tenant {tenant} does not exist"))?;
            require_user(store, &tenant, &user).await?;
            let ttl = ttl.unwrap_or(found_tenant.token_ttl_secs);
            let mut claims = Claims::new(&ctx.token_settings, tenant, user, now, i64::from(ttl));
            // An operator minting a token vouches for the user now: a fresh authentication.
            claims.auth_time = Some(now);
            let token = key.sign(&claims).await.map_err(|e| e.to_string())?;
            Ok(json!({ "token": token }))
        }
        Command::Credentials(CredentialsCommand::List { tenant, user }) => {
            let records = ctx
                .store
                .list_credentials(&tenant, &user)
                .await
                .map_err(store_err)?;
            Ok(Value::Array(
                records
                    .into_iter()
                    .map(|c| {
                        json!({
                            "credential_id": c.credential_id,
                            "method_type": c.method_type,
                            "device_name": c.device_name,
                            "aaguid": c.aaguid,
                            // The model's name (and icon) when the AAGUID is a known one.
                            "authenticator": authenticators::lookup(&c.aaguid),
                            "backup_eligible": c.backup_eligible,
                            "backup_state": c.backup_state,
                            "transports": c.transports,
                            "sign_count": c.sign_count,
                            "user_verified": c.user_verified,
                            "created_at": c.created_at,
                            "last_used_at": c.last_used_at,
                            "use_count": c.use_count,
                        })
                    })
                    .collect(),
            ))
        }
        Command::Tables(TablesCommand::Create { template }) => {
            let yaml = std::fs::read_to_string(&template)
                .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
            let store = &ctx.store;
            let created = create_tables(store.client(), &yaml, store.tables())
                .await
                .map_err(|e| e.to_string())?;
            Ok(
                json!({ "created": created, "tables": store.tables().env_vars().into_iter().collect::<std::collections::BTreeMap<_, _>>() }),
            )
        }
        Command::Key(KeyCommand::Generate { out }) => {
            if !out.exists() {
                let pem = TokenSigner::generate_pem().map_err(|_| "key generation failed")?;
                write_private(&out, &pem)?;
            }
            let key = read_signing_key_file(&out)?;
            Ok(json!({ "kid": key.kid(), "path": out, "jwks": key.jwks() }))
        }
        Command::MfaChallenge(MfaChallengeCommand::Create { tenant, user, ttl }) => {
            let (id, _) = shared::admin::create_mfa_challenge(&ctx.store, &tenant, &user, ttl, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "challenge_id": id }))
        }
        Command::Audit(AuditCommand::List {
            tenant,
            user,
            limit,
        }) => {
            if !(1..=1000).contains(&limit) {
                return Err("limit must be between 1 and 1000".into());
            }
            let records = ctx
                .store
                .list_audit_records(&tenant, user.as_ref(), limit)
                .await
                .map_err(store_err)?;
            serde_json::to_value(records).map_err(|e| e.to_string())
        }
        Command::Key(KeyCommand::Jwks { key }) => {
            let key = read_signing_key_file(&key)?;
            serde_json::to_value(key.jwks()).map_err(|e| e.to_string())
        }
    }
}

async fn read_tenant(ctx: &Context, tenant: &TenantId) -> Result<shared::tenant::Tenant, String> {
    ctx.store
        .get_tenant(tenant)
        .await
        .map_err(store_err)?
        .ok_or_else(|| format!("tenant {tenant} does not exist"))
}

fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn policy(command: PolicyCommand, ctx: &Context) -> Result<Value, String> {
    match command {
        PolicyCommand::Set { tenant, file } => {
            let settings = shared::admin::TenantSettings {
                policies: Some(read_file(&file)?),
                ..Default::default()
            };
            let tenant = shared::admin::update_tenant(&ctx.store, &tenant, settings)
                .await
                .map_err(|e| e.to_string())?;
            Ok(policy_view(&tenant))
        }
        PolicyCommand::Get { tenant } => Ok(policy_view(&read_tenant(ctx, &tenant).await?)),
        PolicyCommand::Test {
            tenant,
            file,
            request,
        } => {
            let tenant = read_tenant(ctx, &tenant).await?;
            let text = match file {
                Some(file) => read_file(&file)?,
                None => tenant.policy_text().into_owned(),
            };
            shared::policy::validate_policies(&text)
                .map_err(|errors| format!("policies: {}", errors.join("; ")))?;
            let request: shared::policy::SampleRequest =
                serde_json::from_str(&read_file(&request)?)
                    .map_err(|e| format!("--request: {e}"))?;
            let decision = request.evaluate(tenant.tenant_id, &text)?;
            Ok(json!({ "allowed": decision.allowed, "notices": decision.notices }))
        }
    }
}

/// The tenant's current policy set and whether it is the default.
fn policy_view(tenant: &shared::tenant::Tenant) -> Value {
    json!({
        "tenant_id": tenant.tenant_id,
        "default": tenant.policies.is_none(),
        "policies": tenant.policy_text(),
    })
}

async fn require_user(store: &Store, tenant: &TenantId, user: &UserId) -> Result<(), String> {
    match store.get_user(tenant, user).await.map_err(store_err)? {
        Some(_) => Ok(()),
        None => Err(format!("user {user} does not exist in tenant {tenant}")),
    }
}

fn read_signing_key_file(path: &Path) -> Result<TokenSigner, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    TokenSigner::from_pem(&pem).map_err(|e| e.to_string())
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
