//! Fifty concurrent uses of every single-use thing: a registration's pending state, an MFA
//! challenge, a passwordless login challenge, an enrollment grant, a backup code and a refresh
//! token. Exactly one use succeeds; every other one is refused with a 4xx error body (never a
//! 5xx); and the store shows the thing used exactly once. Everything is driven by the harness's
//! soft authenticators, the fifty handler calls joined on one task.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::codes::{BackupCodeHasher, LOCKOUT_SECS};
use shared::crypto::sha256_hex;
use shared::ids::ChallengeId;
use shared::session::session_of;
use shared::store::{
    AuditRecord, ChallengeKind, ChallengeRecord, CredentialRecord, SessionRecord, UserRecord,
};
use shared::tenant::MethodType;
use shared::webauthn::challenge_from_client_data;

use crate::harness::{api_request, invoke, Authenticator, Reply, TestApp, ORIGIN, PEPPER};

const USES: usize = 50;
const PASSKEY: &str = "webauthn_passkey";
const FIDO: &str = "webauthn_fido";

/// Checks that of `USES` answers exactly one is a 200 and none is a 5xx; returns the 200 and
/// the refusals.
fn exactly_one_success(replies: Vec<Reply>) -> (Reply, Vec<Reply>) {
    assert_eq!(replies.len(), USES);
    for reply in &replies {
        assert!(
            !reply.status.is_server_error(),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let (ok, refused): (Vec<Reply>, Vec<Reply>) = replies
        .into_iter()
        .partition(|r| r.status == StatusCode::OK);
    assert_eq!(ok.len(), 1, "successes: {ok:?}");
    (ok.into_iter().next().expect("one success"), refused)
}

async fn credentials_of(app: &TestApp, user: &UserRecord) -> Vec<CredentialRecord> {
    app.store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .expect("credentials")
}

async fn challenge_exists(app: &TestApp, key: &str) -> bool {
    app.store
        .get_challenge(key, app.clock_now())
        .await
        .expect("challenge lookup")
        .is_some()
}

/// The key of the pending state a credential's clientDataJSON names.
fn ceremony_key(kind: ChallengeKind, credential: &Value) -> String {
    let client_data = URL_SAFE_NO_PAD
        .decode(credential["response"]["clientDataJSON"].as_str().unwrap())
        .unwrap();
    let challenge = challenge_from_client_data(&client_data).expect("challenge");
    ChallengeRecord::ceremony_key(kind, &challenge)
}

async fn sessions_of(app: &TestApp, user: &UserRecord) -> Vec<SessionRecord> {
    let out = app
        .store
        .client()
        .scan()
        .table_name(&app.store.tables().sessions)
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

async fn audit_of(app: &TestApp, user: &UserRecord) -> Vec<AuditRecord> {
    app.store
        .list_audit_records(&user.tenant_id, Some(&user.user_id), 200)
        .await
        .expect("audit records")
        .into_iter()
        // Authentication outcomes only: enrollments are audited too.
        .filter(|r| r.event != "credential_registered")
        .collect()
}

/// An audit record's `(event, outcome, code)`.
type Outcome = (String, String, Option<String>);

/// How many audit records there are of each outcome, in order.
fn tally(records: &[AuditRecord]) -> Vec<(Outcome, usize)> {
    let mut counts = std::collections::BTreeMap::<Outcome, usize>::new();
    for r in records {
        *counts
            .entry((r.event.clone(), r.outcome.clone(), r.code.clone()))
            .or_default() += 1;
    }
    counts.into_iter().collect()
}

fn entry(event: &str, outcome: &str, code: Option<&str>, n: usize) -> (Outcome, usize) {
    (
        (
            event.to_owned(),
            outcome.to_owned(),
            code.map(str::to_owned),
        ),
        n,
    )
}

/// A new user of the app's tenant with a unique address and an enrolled passkey.
async fn passkey_user(app: &TestApp) -> (UserRecord, Authenticator) {
    let user = app
        .add_user(&format!("once-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let mut passkey = Authenticator::passkey();
    let reply = app.enroll_user(&user, &mut passkey, PASSKEY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (user, passkey)
}

#[tokio::test]
async fn fifty_completions_of_one_registration_store_one_credential() {
    let app = TestApp::new().await;
    let headers = app.auth_headers(&app.token());
    let mut key = Authenticator::security_key();
    let credential = app.registration_credential(&headers, FIDO, &mut key).await;
    let pending = ceremony_key(ChallengeKind::Registration, &credential);
    assert!(challenge_exists(&app, &pending).await);
    let body = json!({ "credential": credential, "device_name": "Key", "method_type": FIDO });

    let replies =
        futures::future::join_all((0..USES).map(|_| app.register_complete(&headers, &body))).await;
    let (ok, refused) = exactly_one_success(replies);
    for reply in &refused {
        reply.assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    }
    // The first enrollment: the winner, and only it, was shown the backup codes.
    assert_eq!(ok.body["codes"].as_array().map(Vec::len), Some(10));

    let stored = credentials_of(&app, &app.user).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(json!(stored[0].credential_id), credential["rawId"]);
    assert_eq!(stored[0].method_type, MethodType::WebauthnFido);
    assert_eq!(stored[0].use_count, 0);
    let by_id = app
        .store
        .find_credentials_by_id(&stored[0].credential_id)
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let codes = app
        .store
        .get_backup_codes(&app.tenant.tenant_id, &app.user.user_id)
        .await
        .unwrap()
        .expect("backup codes");
    assert_eq!((codes.remaining(), codes.used.len()), (10, 0));
    assert!(!challenge_exists(&app, &pending).await, "state consumed");
}

#[tokio::test]
async fn fifty_completions_of_one_mfa_challenge_issue_one_token() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    let enrolled = app.enroll(&mut key, FIDO, "Key").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let before = credentials_of(&app, &app.user).await.remove(0);

    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    let body = json!({ "challenge_id": challenge, "credential": credential });
    let replies = futures::future::join_all((0..USES).map(|_| app.mfa_complete(&[], &body))).await;
    let (ok, refused) = exactly_one_success(replies);
    for reply in &refused {
        reply.assert_error(StatusCode::NOT_FOUND, "challenge_not_found");
    }
    assert!(ok.body["token"].is_string(), "{}", ok.body);

    let after = credentials_of(&app, &app.user).await.remove(0);
    assert_eq!(after.use_count, before.use_count + 1);
    assert!(after.sign_count > before.sign_count, "{after:?}");
    assert_eq!(after.counter_regressions, 0);
    assert!(!challenge_exists(&app, &ChallengeKind::Mfa.key(&challenge)).await);
    // One success audited; the refusals named no tenant (no header, no challenge), so they
    // are only logged.
    assert_eq!(
        tally(&audit_of(&app, &app.user).await),
        [entry("mfa_webauthn", "success", None, 1)]
    );
    // The spent assertion answers no other challenge either, and changes nothing.
    let fresh = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": fresh }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    app.mfa_complete(
        &[],
        &json!({ "challenge_id": fresh, "credential": credential }),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_credential");
    let last = credentials_of(&app, &app.user).await.remove(0);
    assert_eq!(
        (last.sign_count, last.use_count),
        (after.sign_count, after.use_count)
    );
}

#[tokio::test]
async fn fifty_completions_of_one_passwordless_challenge_open_one_session() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let before = credentials_of(&app, &user).await.remove(0);
    let assertion = app.login_assertion(&user.email, &mut passkey).await;
    let pending = ceremony_key(ChallengeKind::Login, &assertion);
    assert!(challenge_exists(&app, &pending).await);

    let headers = app.tenant_headers();
    let replies = futures::future::join_all(
        (0..USES).map(|_| app.login_complete(&headers, &user.email, &assertion)),
    )
    .await;
    let (ok, refused) = exactly_one_success(replies);
    for reply in &refused {
        reply.assert_v1_error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_FOUND");
    }

    let refresh_token = ok.body["data"]["refresh_token"].as_str().unwrap();
    let sessions = sessions_of(&app, &user).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(Some(session.session_id), session_of(refresh_token));
    assert_eq!(
        session.refresh_token_hash,
        sha256_hex(refresh_token.as_bytes())
    );
    assert_eq!((session.rotations, session.revoked_at), (0, None));
    let after = credentials_of(&app, &user).await.remove(0);
    assert_eq!(after.use_count, before.use_count + 1);
    assert!(after.sign_count >= before.sign_count, "{after:?}");
    let devices = app
        .store
        .list_devices(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].seen_count, 1);
    assert!(
        !challenge_exists(&app, &pending).await,
        "challenge consumed"
    );
    // A failure is filed only when its request still read the challenge (audit provenance:
    // a missing challenge establishes no tenant); the others are logged only. So: one
    // success, and at most 49 failures, each CHALLENGE_NOT_FOUND.
    let tallied = tally(&audit_of(&app, &user).await);
    let success = entry("passwordless_login", "success", None, 1);
    assert!(tallied.contains(&success), "{tallied:?}");
    for (outcome, n) in tallied.iter().filter(|t| **t != success) {
        let expected = entry(
            "passwordless_login",
            "failure",
            Some("CHALLENGE_NOT_FOUND"),
            0,
        );
        assert_eq!(outcome, &expected.0, "{tallied:?}");
        assert!(*n < USES, "{tallied:?}");
    }
}

#[tokio::test]
async fn fifty_enrollments_with_one_grant_store_one_credential() {
    let app = TestApp::with_tenant(|t| t.required_methods = vec![MethodType::WebauthnFido]).await;
    let mut passkey = Authenticator::passkey();
    let enrolled = app.enroll(&mut passkey, PASSKEY, "Phone").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let login = app.mfa_login(&app.user, &mut passkey).await;
    assert_eq!(login.body["enrollment_required"], true, "{}", login.body);
    let grant = login.body["challenge_id"].as_str().unwrap().to_owned();
    let grant_id: ChallengeId = grant.parse().unwrap();

    // Options with the grant, no token, as the client of an `enrollment_required` login does.
    let tenant = app.tenant_headers();
    let req = api_request(
        "/v1/users/me/mfa/webauthn/register",
        &[("method_type", FIDO), ("challenge_id", &grant)],
        &tenant,
        None,
    );
    let options = invoke(req, |req| {
        register_options::handler(&app.register_options, req)
    })
    .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let credential = Authenticator::security_key()
        .register(&options.body["options"], ORIGIN)
        .unwrap();
    let pending = ceremony_key(ChallengeKind::Registration, &credential);
    let body = json!({
        "credential": credential, "device_name": "Key", "method_type": FIDO, "challenge_id": grant
    });

    let replies =
        futures::future::join_all((0..USES).map(|_| app.register_complete(&tenant, &body))).await;
    let (ok, refused) = exactly_one_success(replies);
    for reply in &refused {
        reply.assert_error(StatusCode::NOT_FOUND, "enrollment_not_found");
    }
    // Not the first enrollment: no codes shown again.
    assert_eq!(ok.body["codes"], json!([]));
    assert_eq!(ok.body["remaining"], 10);

    let stored = credentials_of(&app, &app.user).await;
    let keys: Vec<&CredentialRecord> = stored
        .iter()
        .filter(|c| c.method_type == MethodType::WebauthnFido)
        .collect();
    assert_eq!(keys.len(), 1, "{stored:?}");
    assert_eq!(json!(keys[0].credential_id), credential["rawId"]);
    assert_eq!(stored.len(), 2, "the passkey and the one security key");
    assert!(!challenge_exists(&app, &ChallengeKind::Enrollment.key(&grant_id)).await);
    assert!(!challenge_exists(&app, &pending).await);
}

#[tokio::test]
async fn fifty_redemptions_of_one_backup_code_pass_once() {
    let app = TestApp::new().await;
    let enrolled = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let codes: Vec<String> = serde_json::from_value(enrolled.body["codes"].clone()).unwrap();
    let (tenant, user) = (app.tenant.tenant_id, app.user.user_id);
    let before = app
        .store
        .get_backup_codes(&tenant, &user)
        .await
        .unwrap()
        .expect("codes");
    let slot = BackupCodeHasher::new(PEPPER)
        .unwrap()
        .find_slot(&tenant, &user, &codes[0], &before.codes)
        .expect("the code's slot");

    // Each redemption with a fresh challenge of its own: only the code is shared.
    let mut challenges = Vec::new();
    for _ in 0..USES {
        challenges.push(app.mfa_challenge(&app.user).await);
    }
    let replies =
        futures::future::join_all(challenges.iter().map(|c| app.backup_code(c, &codes[0]))).await;
    let (ok, refused) = exactly_one_success(replies);
    assert!(ok.body["token"].is_string(), "{}", ok.body);
    // A used code is a wrong code: the replays count toward the lockout, and once it is on
    // they are refused as locked.
    let mut locked = 0;
    for reply in &refused {
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "backup_codes_locked");
            locked += 1;
        } else {
            reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_backup_code");
        }
    }

    let now = app.clock_now();
    let after = app
        .store
        .get_backup_codes(&tenant, &user)
        .await
        .unwrap()
        .expect("codes");
    assert_eq!(
        after.used.iter().collect::<Vec<_>>(),
        [(&slot, &now)],
        "exactly the code's slot moved to `used`, once"
    );
    let mut expected = before.codes.clone();
    expected.remove(&slot);
    assert_eq!(after.codes, expected);
    if locked > 0 {
        assert_eq!(after.locked_until, Some(now + LOCKOUT_SECS));
    }
    for challenge in &challenges {
        assert!(!challenge_exists(&app, &ChallengeKind::Mfa.key(challenge)).await);
    }
    let audit = tally(&audit_of(&app, &app.user).await);
    let count = |outcome: &str, code: Option<&str>| {
        audit
            .iter()
            .find(|((_, o, c), _)| o == outcome && c.as_deref() == code)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count("success", None), 1, "{audit:?}");
    assert_eq!(count("failure", Some("backup_codes_locked")), locked);
    assert_eq!(
        count("failure", Some("invalid_backup_code")),
        USES - 1 - locked
    );
}

#[tokio::test]
async fn fifty_refreshes_with_one_token_rotate_once_and_end_the_session() {
    let app = TestApp::new().await;
    let (user, mut passkey) = passkey_user(&app).await;
    let login = app.passwordless_login(&user, &mut passkey, &[]).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = session_of(&token).expect("session id");
    app.clock.advance(60);

    let replies = futures::future::join_all((0..USES).map(|_| app.refresh(&[], &token))).await;
    let (ok, refused) = exactly_one_success(replies);
    // Every other use presented a token the session had already replaced: reuse, which is
    // taken for theft and ends the session.
    for reply in &refused {
        reply.assert_v1_error(StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED");
    }
    let next = ok.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(next, token);

    let now = app.clock_now();
    let session = app.store.get_session(&sid).await.unwrap().expect("session");
    assert_eq!(session.rotations, 1, "rotated exactly once");
    assert_eq!(session.refresh_token_hash, sha256_hex(next.as_bytes()));
    assert_eq!(
        session.previous_token_hashes,
        [sha256_hex(token.as_bytes())]
    );
    assert_eq!(session.last_refreshed_at, Some(now));
    assert_eq!(session.revoked_at, Some(now));
    assert_eq!(
        session.revoked_reason.as_deref(),
        Some("refresh_token_reuse")
    );
    assert_eq!(sessions_of(&app, &user).await.len(), 1);
    assert_eq!(
        tally(&audit_of(&app, &user).await),
        [
            entry("passwordless_login", "success", None, 1),
            entry(
                "token_refresh",
                "failure",
                Some("REFRESH_TOKEN_REUSED"),
                USES - 1
            ),
            entry("token_refresh", "success", None, 1),
        ]
    );
    // The winner's new token belongs to the revoked session: it no longer refreshes.
    app.refresh(&[], &next)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
}
