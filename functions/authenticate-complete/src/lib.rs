//! `POST /api/v1/webauthn/authenticate/complete` (seed 003) `{credential, email}`: finishes a
//! passwordless login. In the seed's order: the user by e-mail (the `email-index` GSI); the
//! challenge the assertion was made for (named by its clientDataJSON) and its expiry; the
//! credential under the user's key (ownership); the assertion (signature, client data, RP id,
//! origin, user verification, counter) and user handle; the device fingerprint; an access
//! token (the system JWT) and an opaque refresh token; then one transaction that consumes the
//! challenge, records the credential's use, trusts the device, opens the session and writes
//! the audit record. A failed attempt burns the challenge and is audited too.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{Audit, AuditEvent};
use shared::device::fingerprint;
use shared::error::ApiError;
use shared::http::{json_body, optional_tenant_header, request_id, respond_v1, v1_ok, ApiResult};
use shared::ids::SessionId;
use shared::passwordless::{parse_email, resolve_user, unknown_user, LoginCeremony};
use shared::session::{access_token, new_refresh_token, TokenData};
use shared::store::{
    ChallengeKind, ChallengeRecord, ConsumeChallenge, DeviceSighting, LoginCommit,
    LoginCommitOutcome, SessionRecord, Store,
};
use shared::webauthn::webauthn_rs_proto::PublicKeyCredential;
use shared::webauthn::{
    challenge_from_client_data, credential_use, finish_authentication, key_amr,
    presented_credential_id,
};
use tracing::{instrument, Span};

const SUCCESS_MESSAGE: &str = "WebAuthn authentication successful";

/// Store, verifier, clock and the signing key, built once per cold start.
pub type State = shared::state::Issuing;

#[derive(Deserialize)]
struct CompleteRequest {
    credential: PublicKeyCredential,
    email: String,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id, credential_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::PasswordlessLogin, &req);
    audit.method = Some("passkey".into());
    let result = complete(state, &req, &mut audit).await;
    if let Err(err) = &result {
        // Success is audited inside the login transaction.
        audit
            .write(&state.common.store, Err(err), state.common.now())
            .await;
    }
    respond_v1(result)
}

/// Every 400 of this endpoint carries the seed's code; the message says what was wrong.
fn completion_failed(err: ApiError) -> ApiError {
    match err {
        ApiError::BadRequest {
            message, details, ..
        } => ApiError::BadRequest {
            code: "authentication_completion_failed",
            message,
            details,
        },
        other => other,
    }
}

fn challenge_not_found() -> ApiError {
    ApiError::not_found(
        "challenge_not_found",
        "the authentication challenge does not exist, has expired or was already used",
    )
}

fn invalid_credential() -> ApiError {
    ApiError::InvalidCredential {
        code: "invalid_credential",
        message: "the credential is not registered for this user".into(),
    }
}

fn invalid_assertion(reason: &str) -> ApiError {
    ApiError::InvalidCredential {
        code: "invalid_assertion",
        message: match reason {
            "user_verification_required" => {
                "the authenticator did not verify the user (PIN or biometric), which passwordless login requires"
            }
            "possible_cloned_authenticator" => {
                "the authenticator's signature counter went backwards; it may be cloned"
            }
            "user_handle_mismatch" => "the assertion's user handle names another user",
            _ => "the assertion could not be verified",
        }
        .into(),
    }
}

async fn complete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let store = &common.store;
    let header = optional_tenant_header(req)?;
    audit.tenant = header;
    let body: CompleteRequest = json_body(req).map_err(completion_failed)?;
    let email = parse_email(&body.email).map_err(completion_failed)?;
    let presented = presented_credential_id(&body.credential.raw_id).map_err(completion_failed)?;
    audit.credential = Some(presented.clone());
    let span = Span::current();
    span.record("credential_id", tracing::field::display(&presented));

    // 1. User lookup.
    let login = resolve_user(store, header, &email).await?;
    let tenant = login.tenant();
    audit.tenant(tenant);
    audit.user = login.known().map(|u| u.user_id);
    span.record("tenant_id", tracing::field::display(tenant.tenant_id));
    if let Some(user) = login.known() {
        span.record("user_id", tracing::field::display(user.user_id));
    }

    // 2. The challenge this assertion answers: the user's, or the stand-in one a concealing
    // tenant handed out for this address.
    let challenge = challenge_from_client_data(&body.credential.response.client_data_json)
        .map_err(completion_failed)?;
    let key = ChallengeRecord::ceremony_key(ChallengeKind::Login, &challenge);
    let record = store
        .get_challenge(&key, now)
        .await?
        .filter(|c| c.kind == ChallengeKind::Login && c.tenant_id == tenant.tenant_id)
        .filter(|c| {
            c.user_id == login.user_id()
                || (tenant.conceal_unknown_users && c.user_id == unknown_user())
        })
        .ok_or_else(challenge_not_found)?;
    let consume = ConsumeChallenge {
        key: &key,
        kind: ChallengeKind::Login,
        tenant: Some(&tenant.tenant_id),
        user: Some(&record.user_id),
        method_type: None,
        require_state: false,
        now,
    };

    // 3. Credential lookup: found under the user's key, or not theirs.
    let credential = store
        .get_credential(&tenant.tenant_id, &record.user_id, &presented)
        .await?;
    let (Some(credential), Some(user)) = (credential, login.known()) else {
        burn(store, &consume).await;
        return Err(invalid_credential());
    };

    // 4. Assertion verification.
    let ceremony: LoginCeremony = serde_json::from_str(record.state.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::internal(format!("stored login state: {e}")))?;
    let Some(auth) = ceremony.auth else {
        burn(store, &consume).await;
        return Err(invalid_credential());
    };
    let result = match finish_authentication(tenant, &auth, &body.credential) {
        Ok(result) => result,
        Err(err) => {
            burn(store, &consume).await;
            return Err(invalid_assertion(err.code()));
        }
    };
    let handle_matches = body
        .credential
        .response
        .user_handle
        .as_deref()
        .is_none_or(|handle| handle == user.user_id.as_uuid().as_bytes());
    if !handle_matches || result.cred_id().as_slice() != credential.credential_id.as_bytes() {
        burn(store, &consume).await;
        return Err(invalid_assertion("user_handle_mismatch"));
    }
    let used = credential_use(&credential, &result, now);

    // 5. Device trust.
    let client = audit.client.clone();
    let device = fingerprint(req, &tenant.tenant_id, client.user_agent.as_deref());
    audit.device_hash = Some(device.hash.clone());
    audit.method = Some(credential.method_type.as_str().to_owned());

    // 6. Tokens and 7. the session they belong to.
    let session_id = SessionId::new_random();
    let refresh = new_refresh_token(&session_id)?;
    let session = SessionRecord {
        session_id,
        tenant_id: tenant.tenant_id,
        user_id: user.user_id,
        credential_id: credential.credential_id.clone(),
        device_hash: Some(device.hash.clone()),
        // RFC 8176: the key, a verified user; possession plus PIN or biometric is multi-factor.
        amr: vec![
            key_amr(&credential, result.backup_eligible()).to_owned(),
            "user".to_owned(),
            "mfa".to_owned(),
        ],
        auth_time: now,
        source_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        created_at: now,
        last_refreshed_at: None,
        refresh_token_hash: refresh.hash.clone(),
        previous_token_hashes: Vec::new(),
        rotations: 0,
        expires_at: now + i64::from(tenant.refresh_token_ttl_secs),
        revoked_at: None,
        revoked_reason: None,
    };
    let (access, _) = access_token(&state.issuer, tenant, &session, now)?;
    audit.session = Some(session_id);

    // 8–10. Credential update, challenge consumption and audit, with the above, at once.
    let audit_record = audit
        .record(Ok(()), now)
        .ok_or_else(|| ApiError::internal("audit record without a tenant"))?;
    let sighting = DeviceSighting {
        tenant_id: tenant.tenant_id,
        user_id: user.user_id,
        device_hash: device.hash.clone(),
        fingerprint_source: device.source,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        credential_id: credential.credential_id.clone(),
        now,
    };
    let outcome = store
        .commit_login(&LoginCommit {
            challenge: consume,
            credential: &credential,
            used: &used,
            device: &sighting,
            session: &session,
            audit: &audit_record,
        })
        .await?;
    match outcome {
        LoginCommitOutcome::Committed => {}
        LoginCommitOutcome::ChallengeGone => return Err(challenge_not_found()),
        LoginCommitOutcome::CredentialGone => return Err(invalid_credential()),
    }
    audit.log(Ok(()));
    Ok(v1_ok(
        &TokenData {
            access_token: access,
            refresh_token: refresh.token,
            token_type: "bearer",
            expires_in: tenant.token_ttl_secs,
            user_id: user.user_id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            message: SUCCESS_MESSAGE,
        },
        SUCCESS_MESSAGE,
    ))
}

/// A failed attempt uses up its challenge: the client starts over with a fresh one.
async fn burn(store: &Store, consume: &ConsumeChallenge<'_>) {
    if let Err(err) = store.consume_challenge(consume.clone()).await {
        tracing::warn!(error = %err, "could not discard the challenge of a failed login");
    }
}
