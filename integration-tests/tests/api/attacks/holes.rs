//! The holes a security review found, each attacked as it was found: clone detection switched
//! off (a stale counter snapshot), user enumeration on concealing tenants, enrollment with the
//! token of an ended session, audit rows filed by anyone, values past DynamoDB's limits, and
//! the smaller findings (parallel backup-code guesses, tenant header vs single-use state,
//! session lifetime, secrets in challenge items). Backup-eligibility flips are in `assertion`.

use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use shared::store::{ChallengeKind, UserRecord};

use super::forge::{b64, complete_body, FIDO, PASSKEY};
use crate::faults::Operation;
use crate::harness::{api_request, auth_headers, invoke, Authenticator, TestApp, ORIGIN};

/// A new user of the app's tenant with a unique address and an enrolled passkey.
async fn passkey_user(app: &TestApp) -> (UserRecord, Authenticator) {
    let user = app
        .add_user(&format!("user-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let mut passkey = Authenticator::passkey();
    let reply = app.enroll_user(&user, &mut passkey, PASSKEY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (user, passkey)
}

async fn stored_counter(app: &TestApp, user: &UserRecord) -> (u32, u64) {
    let records = app
        .store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    (records[0].sign_count, records[0].use_count)
}

fn with_signature_of(credential: &Value, other: &Value) -> Value {
    let mut credential = credential.clone();
    credential["response"]["signature"] = other["response"]["signature"].clone();
    credential
}

// ---- 1b. The counter is judged against the live value, never a snapshot ----

/// Options copy the counter into the MFA state. A clone that answers those options after the
/// genuine key has moved on presents a counter above the snapshot but below the live value:
/// refused as a possible clone, and the stored counter does not go down.
#[tokio::test]
async fn hole_1b_a_clone_answering_stale_options_cannot_lower_the_live_counter() {
    let app = TestApp::new().await;
    let mut original = Authenticator::security_key();
    let enrolled = app.enroll(&mut original, FIDO, "Key").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let mut clone = original.clone_security_key();
    // The clone's MFA options are issued now, with the counter at its registration value.
    let (stale, clone_assertion) = {
        let challenge = app.mfa_challenge(&app.user).await;
        let options = app
            .mfa_options(&[], &json!({ "challenge_id": challenge }))
            .await;
        (challenge, options.body["options"].clone())
    };
    // The genuine key logs in three times meanwhile.
    for _ in 0..3 {
        let reply = app.mfa_login(&app.user, &mut original).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let (live, uses) = stored_counter(&app, &app.user).await;
    assert!(live >= 3);
    // The clone signs the stale options: its counter (1) is above the snapshot (0).
    let credential = clone.authenticate(&clone_assertion, ORIGIN).unwrap();
    app.mfa_complete(&[], &complete_body(&stale, &credential))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "possible_cloned_authenticator");
    assert_eq!(stored_counter(&app, &app.user).await, (live, uses));
}

// ---- 2. Concealment: every failure looks the same ----

/// The four ways a client could tell addresses apart on a concealing tenant, answered alike.
#[tokio::test]
async fn hole_2_every_login_failure_on_a_concealing_tenant_has_one_answer() {
    let app = TestApp::with_tenant(|t| t.conceal_unknown_users = true).await;
    let headers = app.tenant_headers();
    let (alice, mut alice_key) = passkey_user(&app).await;
    let (mallory, mut mallory_key) = passkey_user(&app).await;
    let bare = app
        .add_user(&format!("bare-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4());
    let mut answers = Vec::new();

    // (a) A real user's allowCredentials[0] with a bad signature.
    let begun = app.login_begin(&headers, &alice.email).await;
    let genuine = alice_key
        .authenticate(&begun.body["data"]["options"], ORIGIN)
        .unwrap();
    let other = app.login_assertion(&alice.email, &mut alice_key).await;
    let bad_signature = with_signature_of(&genuine, &other);
    answers.push(
        app.login_complete(&headers, &alice.email, &bad_signature)
            .await,
    );
    // (a) An unknown address's stand-in id, with a signature by someone's key.
    for email in [&ghost, &bare.email] {
        let begun = app.login_begin(&headers, email).await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        let options = &begun.body["data"]["options"];
        let stand_in = options["allowCredentials"][0]["id"].clone();
        let mut signed_bymallory = options.clone();
        let mallory_id = app
            .store
            .list_credentials(&app.tenant.tenant_id, &mallory.user_id)
            .await
            .unwrap()[0]
            .credential_id
            .to_base64url();
        signed_bymallory["allowCredentials"] = json!([{ "type": "public-key", "id": mallory_id }]);
        let mut assertion = mallory_key.authenticate(&signed_bymallory, ORIGIN).unwrap();
        assertion["id"] = stand_in.clone();
        assertion["rawId"] = stand_in;
        answers.push(app.login_complete(&headers, email, &assertion).await);
    }
    // (b) Alice's pending challenge presented with another address.
    let alices = app.login_assertion(&alice.email, &mut alice_key).await;
    answers.push(app.login_complete(&headers, &ghost, &alices).await);

    let first = &answers[0];
    first.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
    for answer in &answers[1..] {
        assert_eq!(
            (answer.status, &answer.body),
            (first.status, &first.body),
            "every failure must be the same answer"
        );
    }
    // (b) The foreign challenge was burnt, as any failed attempt's is.
    app.login_complete(&headers, &alice.email, &alices)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
}

/// Stand-in options have the shape of real ones: the same keys, 16–64-byte ids, one or more.
#[tokio::test]
async fn hole_2_stand_in_options_have_the_shape_of_real_options() {
    let app = TestApp::with_tenant(|t| t.conceal_unknown_users = true).await;
    let (alice, _) = passkey_user(&app).await;
    let real = app.login_begin(&app.tenant_headers(), &alice.email).await;
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let real_options = &real.body["data"]["options"];
    let mut counts = std::collections::BTreeSet::new();
    for i in 0..12 {
        let ghost = format!("ghost-{i}-{}@example.com", uuid::Uuid::new_v4());
        let begun = app.login_begin(&app.tenant_headers(), &ghost).await;
        let options = &begun.body["data"]["options"];
        assert_eq!(keys(options), keys(real_options));
        let allowed = options["allowCredentials"].as_array().unwrap();
        counts.insert(allowed.len());
        for entry in allowed {
            // Real entries have `transports` when the client reported them.
            let mut entry_keys = keys(entry);
            entry_keys.retain(|k| k != "transports");
            assert_eq!(entry_keys, keys(&real_options["allowCredentials"][0]));
            let id = super::forge::unb64(entry["id"].as_str().unwrap());
            assert!((16..=64).contains(&id.len()), "{}", id.len());
        }
        // Asking again shows the same stand-ins, as it would for a real user.
        let again = app.login_begin(&app.tenant_headers(), &ghost).await;
        assert_eq!(
            again.body["data"]["options"]["allowCredentials"],
            options["allowCredentials"]
        );
    }
    assert!(counts.len() > 1, "always {counts:?} stand-ins");
}

// ---- 3. A token outlives its session: not for enrollment ----

async fn passwordless_tokens(app: &TestApp) -> (UserRecord, Value) {
    let (user, mut passkey) = passkey_user(app).await;
    let reply = app.passwordless_login(&user, &mut passkey, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (user, reply.body["data"].clone())
}

#[tokio::test]
async fn hole_3_the_access_token_of_a_logged_out_session_cannot_enroll() {
    let app = TestApp::new().await;
    let (user, tokens) = passwordless_tokens(&app).await;
    let headers = auth_headers(tokens["access_token"].as_str().unwrap(), &user.tenant_id);
    // Live session, recent login: a second passkey may be added.
    let mut second = Authenticator::passkey();
    let options = app.register_options(&headers, Some(PASSKEY)).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let pending = second.register(&options.body["options"], ORIGIN).unwrap();

    let logout = app
        .logout(&[], tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    app.register_options(&headers, Some(PASSKEY))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_revoked");
    app.register_complete(
        &headers,
        &json!({ "credential": pending, "device_name": "late", "method_type": PASSKEY }),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "session_revoked");
    let stored = app
        .store
        .list_credentials(&user.tenant_id, &user.user_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "nothing was added after logout");
}

#[tokio::test]
async fn hole_3_a_session_revoked_for_refresh_token_reuse_cannot_enroll() {
    let app = TestApp::new().await;
    let (user, tokens) = passwordless_tokens(&app).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(&[], first).await.status, StatusCode::OK);
    app.refresh(&[], first)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED");
    let headers = auth_headers(tokens["access_token"].as_str().unwrap(), &user.tenant_id);
    app.register_options(&headers, Some(FIDO))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_revoked");
}

#[tokio::test]
async fn hole_3_adding_an_authenticator_needs_a_recent_login_but_the_first_does_not() {
    let app = TestApp::new().await;
    let window = i64::from(app.tenant.reauthentication_window_secs);
    let old_token = |app: &TestApp| {
        let mut claims = app.claims_for(&app.user);
        claims.auth_time = Some(app.clock_now() - window - 1);
        app.key.sign(&claims).unwrap()
    };
    // The first enrollment works with an old login…
    let headers = app.auth_headers(&old_token(&app));
    let mut first = Authenticator::passkey();
    let credential = app
        .registration_credential(&headers, PASSKEY, &mut first)
        .await;
    let reply = app
        .register_complete(
            &headers,
            &json!({ "credential": credential, "device_name": "first", "method_type": PASSKEY }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // …a second one does not, and a token without auth_time counts as old.
    app.register_options(&headers, Some(FIDO))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    let mut no_auth_time = app.claims_for(&app.user);
    no_auth_time.auth_time = None;
    let bare = app.auth_headers(&app.key.sign(&no_auth_time).unwrap());
    app.register_options(&bare, Some(FIDO))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    // Options fetched with a fresh login, completion with an old one: refused at completion.
    let fresh = app.auth_headers(&app.token());
    let mut key = Authenticator::security_key();
    let pending = app.registration_credential(&fresh, FIDO, &mut key).await;
    app.register_complete(
        &headers,
        &json!({ "credential": pending, "device_name": "second", "method_type": FIDO }),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "reauthentication_required");
    // Within the window it works.
    let reply = app
        .enroll(&mut Authenticator::security_key(), FIDO, "second")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

// ---- 4. Audit rows only under a tenant a record established ----

#[tokio::test]
async fn hole_4_unauthenticated_callers_cannot_file_audit_rows_under_a_tenant() {
    let app = TestApp::new().await;
    let headers = app.tenant_headers();
    let huge_id = b64(&vec![7u8; 100_000]);
    let fake = json!({ "id": huge_id, "rawId": huge_id, "type": "public-key",
        "response": { "clientDataJSON": b64(b"{}"), "authenticatorData": "AA", "signature": "AA" } });
    let unknown_challenge = shared::ids::ChallengeId::new_random();
    let attempts = [
        (
            "/v1/auth/mfa/webauthn/complete",
            json!({ "challenge_id": unknown_challenge, "credential": fake }),
        ),
        (
            "/v1/auth/mfa/backup_code/complete",
            json!({ "challenge_id": unknown_challenge, "code": "AAAA-BBBB-CCCC" }),
        ),
        (
            "/api/v1/webauthn/authenticate/complete",
            json!({ "email": "ghost@example.com", "credential": fake }),
        ),
        (
            "/api/v1/auth/refresh",
            json!({ "refresh_token": "rt1_not-a-token" }),
        ),
        (
            "/api/v1/auth/logout",
            json!({ "refresh_token": "rt1_not-a-token" }),
        ),
    ];
    for (path, body) in attempts {
        let req = api_request(path, &[], &headers, Some(body.to_string()));
        let reply = invoke(req, |req| async {
            match path {
                "/v1/auth/mfa/webauthn/complete" => {
                    mfa_complete::handler(&app.mfa_complete, req).await
                }
                "/v1/auth/mfa/backup_code/complete" => {
                    backup_code_complete::handler(&app.backup_code_complete, req).await
                }
                "/api/v1/webauthn/authenticate/complete" => {
                    authenticate_complete::handler(&app.authenticate_complete, req).await
                }
                "/api/v1/auth/refresh" => auth_refresh::handler(&app.auth_refresh, req).await,
                _ => auth_logout::handler(&app.auth_logout, req).await,
            }
        })
        .await;
        assert!(reply.status.is_client_error(), "{path}: {}", reply.body);
    }
    let rows = app
        .store
        .list_audit_records(&app.tenant.tenant_id, None, 100)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

// ---- 5. Values past DynamoDB's limits are 400s before the store ----

#[tokio::test]
async fn hole_5_oversized_values_get_a_400_before_reaching_the_store() {
    let app = TestApp::new().await;
    let (alice, mut key) = passkey_user(&app).await;
    let headers = app.tenant_headers();
    let genuine = app.login_assertion(&alice.email, &mut key).await;

    // A credential id over the stored-key limit.
    let mut long_id = genuine.clone();
    long_id["rawId"] = json!(b64(&[1u8; 2000]));
    let reply = app.login_complete(&headers, &alice.email, &long_id).await;
    reply.assert_v1_error(StatusCode::BAD_REQUEST, "AUTHENTICATION_COMPLETION_FAILED");
    assert_eq!(reply.body["details"]["field"], "credential");
    // A challenge of 3000 bytes in clientDataJSON (it would be part of a key).
    let mut long_challenge = genuine.clone();
    let data = json!({ "type": "webauthn.get", "challenge": b64(&[2u8; 3000]), "origin": ORIGIN });
    long_challenge["response"]["clientDataJSON"] = json!(b64(data.to_string().as_bytes()));
    app.login_complete(&headers, &alice.email, &long_challenge)
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "AUTHENTICATION_COMPLETION_FAILED");
    // An e-mail address past RFC 5321's 320 characters (a GSI key).
    let long_email = format!("{}@example.com", "a".repeat(3000));
    app.login_begin(&headers, &long_email)
        .await
        .assert_v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    // A body past 64 KiB (items stay far below 400 KB).
    let body = json!({ "email": alice.email, "padding": "x".repeat(70 * 1024) }).to_string();
    let req = api_request(
        "/api/v1/webauthn/authenticate/begin",
        &[],
        &headers,
        Some(body),
    );
    invoke(req, |req| {
        authenticate_begin::handler(&app.authenticate_begin, req)
    })
    .await
    .assert_v1_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    // A device name of 10 000 characters.
    let mut second = Authenticator::security_key();
    let auth = app.auth_headers(&app.token_for(&alice));
    let pending = app.registration_credential(&auth, FIDO, &mut second).await;
    app.register_complete(
        &auth,
        &json!({ "credential": pending, "device_name": "n".repeat(10_000), "method_type": FIDO }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A 100 KiB fingerprint is not stored: the login uses the user agent instead.
    let fingerprint = vec![("x-device-fingerprint".to_owned(), "f".repeat(100 * 1024))];
    let reply = app.passwordless_login(&alice, &mut key, &fingerprint).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let devices = app
        .store
        .list_devices(&alice.tenant_id, &alice.user_id)
        .await
        .unwrap();
    assert!(devices.iter().all(|d| d.fingerprint_source == "user_agent"));
}

// ---- Smaller findings ----

/// Twenty wrong codes at once: the count and the lock are one conditional write, so no more
/// than the allowed number are answered "wrong"; the rest, and then the right code, are locked.
#[tokio::test]
async fn parallel_wrong_backup_codes_get_no_more_than_the_allowed_evaluations() {
    let app = TestApp::new().await;
    let reply = app
        .enroll(&mut Authenticator::security_key(), FIDO, "Key")
        .await;
    let right = reply.body["codes"][0].as_str().unwrap().to_owned();
    let mut challenges = Vec::new();
    for _ in 0..20 {
        challenges.push(app.mfa_challenge(&app.user).await);
    }
    let wrong = ["0000-0000-0001", "0000-0000-0002", "0000-0000-0003"];
    let replies = futures::future::join_all(
        challenges
            .iter()
            .enumerate()
            .map(|(i, c)| app.backup_code(c, wrong[i % wrong.len()])),
    )
    .await;
    let evaluated = replies
        .iter()
        .filter(|r| r.body["code"] == "invalid_backup_code")
        .count();
    let locked = replies
        .iter()
        .filter(|r| r.body["code"] == "backup_codes_locked")
        .count();
    let max = shared::codes::MAX_FAILED_ATTEMPTS as usize;
    assert_eq!(evaluated, max - 1, "{replies:?}");
    assert_eq!(locked, 20 - (max - 1), "{replies:?}");
    let challenge = app.mfa_challenge(&app.user).await;
    app.backup_code(&challenge, &right)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "backup_codes_locked");
}

/// A request naming another tenant in `X-Tenant-ID` is refused without using up the MFA
/// challenge or the enrollment grant it presented: the rightful request still works.
#[tokio::test]
async fn a_mismatched_tenant_header_leaves_single_use_state_for_its_rightful_use() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    let reply = app.enroll(&mut key, FIDO, "Key").await;
    let code = reply.body["codes"][0].as_str().unwrap().to_owned();
    let elsewhere = vec![(
        "x-tenant-id".to_owned(),
        shared::ids::TenantId::new_random().to_string(),
    )];

    let (challenge, credential) = app.mfa_assertion(&app.user, &mut key).await;
    let body = complete_body(&challenge, &credential);
    app.mfa_complete(&elsewhere, &body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    let ok = app.mfa_complete(&app.tenant_headers(), &body).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    let challenge = app.mfa_challenge(&app.user).await;
    let body = json!({ "challenge_id": challenge, "code": code });
    let req = |headers: &[(String, String)]| {
        api_request(
            "/v1/auth/mfa/backup_code/complete",
            &[],
            headers,
            Some(body.to_string()),
        )
    };
    invoke(req(&elsewhere), |req| {
        backup_code_complete::handler(&app.backup_code_complete, req)
    })
    .await
    .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    let ok = invoke(req(&[]), |req| {
        backup_code_complete::handler(&app.backup_code_complete, req)
    })
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // An enrollment grant: consumed only with its own tenant's header.
    let (grant, _) = app
        .store
        .create_challenge(
            ChallengeKind::Enrollment,
            &app.tenant.tenant_id,
            &app.user.user_id,
            Some(shared::tenant::MethodType::WebauthnPasskey),
            app.clock_now(),
            300,
        )
        .await
        .unwrap();
    let grant_query = [
        ("method_type", PASSKEY),
        ("challenge_id", &grant.to_string()),
    ];
    let req = api_request(
        "/v1/users/me/mfa/webauthn/register",
        &grant_query,
        &app.tenant_headers(),
        None,
    );
    let options = invoke(req, |req| {
        register_options::handler(&app.register_options, req)
    })
    .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let mut passkey = Authenticator::passkey();
    let credential = passkey.register(&options.body["options"], ORIGIN).unwrap();
    let complete = json!({ "credential": credential, "device_name": "granted",
        "method_type": PASSKEY, "challenge_id": grant });
    app.register_complete(&elsewhere, &complete)
        .await
        .assert_error(StatusCode::FORBIDDEN, "tenant_mismatch");
    let ok = app
        .register_complete(&app.tenant_headers(), &complete)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

/// Refreshing slides the refresh token's lifetime but not the session's: past the tenant's
/// `session_max_age_secs` the refresh is refused even with a current token.
#[tokio::test]
async fn sessions_end_at_their_absolute_age_however_often_they_are_refreshed() {
    let app = TestApp::with_tenant(|t| {
        t.refresh_token_ttl_secs = 7 * 86_400;
        t.session_max_age_secs = 10 * 86_400;
    })
    .await;
    let (_, tokens) = passwordless_tokens(&app).await;
    let mut token = tokens["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(5 * 86_400);
    let reply = app.refresh(&[], &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    token = reply.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Day 10 + 1 s: within the new token's 7 days, past the session's 10.
    app.clock.advance(5 * 86_400 + 1);
    app.refresh(&[], &token)
        .await
        .assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_REFRESH_TOKEN");
}

/// MFA options copy the tenant into the challenge item; neither holds a secret (concealment
/// keys derive from a deployment secret in Secrets Manager, not from the tenants table).
#[tokio::test]
async fn mfa_challenge_and_tenant_items_carry_no_secret() {
    let app = TestApp::new().await;
    let mut key = Authenticator::security_key();
    assert_eq!(
        app.enroll(&mut key, FIDO, "Key").await.status,
        StatusCode::OK
    );
    let challenge = app.mfa_challenge(&app.user).await;
    let options = app
        .mfa_options(&[], &json!({ "challenge_id": challenge }))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let item = app
        .store
        .get_challenge(&ChallengeKind::Mfa.key(&challenge), app.clock_now())
        .await
        .unwrap()
        .unwrap();
    let state = item.state.unwrap();
    assert!(!state.contains("\"secret\""), "{state}");
    let tenant = app
        .store
        .client()
        .get_item()
        .table_name(&app.store.tables().tenants)
        .key(
            "tenant_id",
            aws_sdk_dynamodb::types::AttributeValue::S(app.tenant.tenant_id.to_string()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!tenant.contains_key("secret"), "{tenant:?}");
}

// ---- 2. Concealment: the same store work ----

/// Every concealed failure makes the same DynamoDB calls, counted by a proxy between the SDK
/// and the store: the answer's timing is set by the same round trips whatever the address.
#[tokio::test]
async fn hole_2_concealed_failures_make_the_same_store_calls() {
    let (app, proxy) = crate::faults::proxied_app(|t| t.conceal_unknown_users = true).await;
    let headers = app.tenant_headers();
    let (alice, mut alice_key) = passkey_user(&app).await;
    let bare = app
        .add_user(&format!("bare-{}@example.com", uuid::Uuid::new_v4()))
        .await;
    let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4());

    let mut calls = Vec::new();
    // Begin: a real user, an unknown address, a user without passkeys.
    for email in [&alice.email, &ghost, &bare.email] {
        proxy.reset();
        let begun = app.login_begin(&headers, email).await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        calls.push(("begin", proxy.seen_all()));
    }
    // Complete: a wrong signature on alice's pending challenge, presented for alice, for an
    // unknown address and for a user without passkeys (a foreign challenge for both).
    for email in [&alice.email, &ghost, &bare.email] {
        let genuine = app.login_assertion(&alice.email, &mut alice_key).await;
        let other = app.login_assertion(&alice.email, &mut alice_key).await;
        let bad_signature = with_signature_of(&genuine, &other);
        proxy.reset();
        let reply = app.login_complete(&headers, email, &bad_signature).await;
        reply.assert_v1_error(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL");
        calls.push(("complete", proxy.seen_all()));
    }
    for kind in ["begin", "complete"] {
        let of_kind: Vec<_> = calls.iter().filter(|(k, _)| *k == kind).collect();
        for (_, seen) in &of_kind[1..] {
            assert_eq!(seen, &of_kind[0].1, "{kind}: {calls:?}");
        }
    }
}

/// Without `X-Tenant-ID`, an address known only to a concealing tenant costs the same calls
/// as an address nobody has.
#[tokio::test]
async fn hole_2c_a_header_less_lookup_costs_the_same_for_concealed_and_unknown_addresses() {
    let (app, proxy) = crate::faults::proxied_app(|t| t.conceal_unknown_users = true).await;
    let (hidden, _) = passkey_user(&app).await;
    let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4());
    let mut seen = Vec::new();
    for email in [&hidden.email, &ghost] {
        proxy.reset();
        app.login_begin(&[], email)
            .await
            .assert_v1_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
        seen.push(proxy.seen_all());
        assert_eq!(proxy.seen(Operation::BatchGetItem), 1, "{seen:?}");
    }
    assert_eq!(seen[0], seen[1]);
}
