//! The operator CLI's contract: each command's JSON, against the test server.

use authctl::{run, Cli, Context};
use clap::Parser;
use lambda_http::http::StatusCode;
use serde_json::Value;
use shared::ids::{CredentialId, TenantId, UserId};
use shared::jwt::TokenVerifier;

use crate::harness::{settings, Authenticator, TestApp};

async fn authctl(ctx: &Context, args: &[&str]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(std::iter::once("authctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    run(cli.command, ctx).await
}

fn context(app: &TestApp) -> Context {
    Context {
        store: app.store.clone(),
        token_settings: settings(),
        kms_signing_key: None,
        signing_key_pem: None,
    }
}

#[tokio::test]
async fn operators_create_tenants_users_and_tokens_that_the_api_accepts() {
    let app = TestApp::new().await;
    let dir = std::env::temp_dir().join(format!("authctl-{}", uuid::Uuid::new_v4()));
    let key_path = dir.join("key.pem");
    let key_path = key_path.to_str().unwrap();
    let ctx = context(&app);

    let generated = authctl(&ctx, &["key", "generate", "--out", key_path])
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Generating again keeps the existing key.
    let again = authctl(&ctx, &["key", "generate", "--out", key_path])
        .await
        .unwrap();
    assert_eq!(generated["kid"], again["kid"]);
    let jwks = authctl(&ctx, &["key", "jwks", "--key", key_path])
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], generated["kid"]);

    let tenant = authctl(
        &ctx,
        &[
            "tenant",
            "create",
            "--name",
            "Shop",
            "--rp-id",
            "localhost",
            "--origin",
            "http://localhost:3000",
            "--origin",
            "http://localhost:5173",
        ],
    )
    .await
    .unwrap();
    let tenant_id: TenantId = tenant["tenant_id"].as_str().unwrap().parse().unwrap();
    let stored = app.store.get_tenant(&tenant_id).await.unwrap().unwrap();
    assert_eq!(stored.origins.len(), 2);
    assert!(stored.enroll_without_authenticator);

    let user = authctl(
        &ctx,
        &[
            "user",
            "create",
            "--tenant",
            &tenant_id.to_string(),
            "--email",
            " Bob@Example.com ",
            "--display-name",
            "Bob",
        ],
    )
    .await
    .unwrap();
    let user_id: UserId = user["user_id"].as_str().unwrap().parse().unwrap();
    let stored = app
        .store
        .get_user(&tenant_id, &user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.email, "bob@example.com");
    // The same email twice in one tenant is refused.
    assert!(authctl(
        &ctx,
        &[
            "user",
            "create",
            "--tenant",
            &tenant_id.to_string(),
            "--email",
            "bob@example.com",
            "--display-name",
            "B"
        ],
    )
    .await
    .is_err());

    let token = authctl(
        &ctx,
        &[
            "token",
            "issue",
            "--tenant",
            &tenant_id.to_string(),
            "--user",
            &user_id.to_string(),
            "--ttl",
            "120",
            "--signing-key",
            key_path,
        ],
    )
    .await
    .unwrap();
    let verifier = TokenVerifier::from_jwks_json(&jwks.to_string(), settings()).unwrap();
    let claims = verifier
        .verify(
            token["token"].as_str().unwrap(),
            &settings(),
            app.clock_now(),
        )
        .unwrap();
    assert_eq!((claims.tenant_id, claims.sub), (tenant_id, user_id));
    assert_eq!(claims.exp - claims.iat, 120);

    // Unknown users get no token; bad ids are refused by the parser.
    assert!(authctl(
        &ctx,
        &[
            "token",
            "issue",
            "--tenant",
            &tenant_id.to_string(),
            "--user",
            &UserId::new_random().to_string(),
            "--signing-key",
            key_path
        ],
    )
    .await
    .is_err());
    assert!(authctl(
        &ctx,
        &[
            "user",
            "create",
            "--tenant",
            "nope",
            "--email",
            "a@b.c",
            "--display-name",
            "A"
        ]
    )
    .await
    .is_err());
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn credentials_list_shows_metadata_but_no_key_material() {
    let app = TestApp::new().await;
    let ctx = context(&app);
    let args = [
        "credentials",
        "list",
        "--tenant",
        &app.tenant.tenant_id.to_string(),
        "--user",
        &app.user.user_id.to_string(),
    ];
    assert_eq!(authctl(&ctx, &args).await.unwrap(), Value::Array(vec![]));
    let reply = app
        .enroll(&mut Authenticator::security_key(), "webauthn_fido", "Key")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = authctl(&ctx, &args).await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["method_type"], "webauthn_fido");
    assert_eq!(list[0]["device_name"], "Key");
    assert_eq!(list[0]["use_count"], 0);
    assert!(list[0].get("webauthn_credential").is_none());
    // A software authenticator's AAGUID is in no list of authenticator models.
    assert_eq!(list[0].get("authenticator"), Some(&Value::Null));

    // A credential whose AAGUID is a known model shows the model's name.
    let mut records = app
        .store
        .list_credentials(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap();
    let mut yubikey = records.remove(0);
    yubikey.credential_id = CredentialId::from_bytes(vec![7; 16]);
    yubikey.aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap();
    app.store
        .save_new_credential(&yubikey, None, None)
        .await
        .unwrap();
    let list = authctl(&ctx, &args).await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let listed = list
        .iter()
        .find(|c| c["aaguid"] == yubikey.aaguid.to_string())
        .unwrap();
    assert_eq!(listed["authenticator"]["name"], "YubiKey 5 Series");
    let icon = &listed["authenticator"]["icon"];
    assert!(
        icon.is_null() || icon.as_str().unwrap().starts_with("data:image/"),
        "{icon}"
    );
}

#[tokio::test]
async fn invalid_tenants_are_refused_before_anything_is_written() {
    let app = TestApp::new().await;
    let ctx = context(&app);
    let err = authctl(
        &ctx,
        &[
            "tenant",
            "create",
            "--name",
            "X",
            "--rp-id",
            "localhost",
            "--origin",
            "not a url",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.contains("origin"), "{err}");
    assert!(authctl(
        &ctx,
        &[
            "tenant",
            "create",
            "--name",
            "X",
            "--rp-id",
            "localhost",
            "--origin",
            "http://localhost",
            "--method",
            "sms"
        ]
    )
    .await
    .is_err());
}

#[tokio::test]
async fn operators_list_audit_records_per_tenant_and_user() {
    let app = TestApp::new().await;
    let ctx = context(&app);
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, "webauthn_passkey", "laptop").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let ok = app.passwordless_login(&app.user, &mut passkey, &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A failure of an unknown address, filed under the tenant without a user.
    app.login_complete(
        &app.tenant_headers(),
        "ghost@example.com",
        &serde_json::json!({}),
    )
    .await;
    let ghost = app
        .login_begin(&app.tenant_headers(), "ghost@example.com")
        .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);

    let tenant = app.tenant.tenant_id.to_string();
    let user = app.user.user_id.to_string();
    let mine = authctl(
        &ctx,
        &["audit", "list", "--tenant", &tenant, "--user", &user],
    )
    .await
    .unwrap();
    let mine = mine.as_array().unwrap();
    // Newest first: the login, then the enrollment before it.
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[1]["event"], "credential_registered");
    assert_eq!(mine[1]["actor"], format!("user:{user}"));
    assert_eq!(mine[1]["target"], mine[0]["credential_id"]);
    assert_eq!(mine[0]["event"], "passwordless_login");
    assert_eq!(mine[0]["outcome"], "success");
    assert_eq!(mine[0]["user_id"], user.as_str());
    let all = authctl(&ctx, &["audit", "list", "--tenant", &tenant])
        .await
        .unwrap();
    let all = all.as_array().unwrap();
    // The malformed attempt only named the tenant in its header: logged, not filed.
    assert_eq!(all.len(), 2, "{all:?}");
    let limited = authctl(
        &ctx,
        &["audit", "list", "--tenant", &tenant, "--limit", "1"],
    )
    .await
    .unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert!(authctl(
        &ctx,
        &["audit", "list", "--tenant", &tenant, "--limit", "0"]
    )
    .await
    .is_err());
}

#[tokio::test]
async fn tenant_create_sets_the_passwordless_settings() {
    let app = TestApp::new().await;
    let ctx = context(&app);
    let created = authctl(
        &ctx,
        &[
            "tenant",
            "create",
            "--name",
            "Quiet",
            "--rp-id",
            "localhost",
            "--origin",
            "http://localhost:3000",
            "--conceal-unknown-users",
            "--refresh-token-ttl",
            "3600",
            "--audit-retention-days",
            "30",
        ],
    )
    .await
    .unwrap();
    let id: TenantId = created["tenant_id"].as_str().unwrap().parse().unwrap();
    let tenant = app.store.get_tenant(&id).await.unwrap().unwrap();
    assert!(tenant.conceal_unknown_users);
    assert_eq!(tenant.refresh_token_ttl_secs, 3600);
    assert_eq!(tenant.audit_retention_days, 30);
    let refused = authctl(
        &ctx,
        &[
            "tenant",
            "create",
            "--name",
            "Bad",
            "--rp-id",
            "localhost",
            "--origin",
            "http://localhost:3000",
            "--refresh-token-ttl",
            "10",
        ],
    )
    .await;
    assert!(refused.unwrap_err().contains("refresh token lifetime"));
}
