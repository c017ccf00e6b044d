//! `POST /api/v1/webauthn/authenticate/complete` (seed 003) `{credential, email}`: finishes a
//! passwordless login. Without `email` (a usernameless login begun with `{}`), `X-Tenant-ID`
//! names the tenant and the assertion's user handle the user; the rest is the same. In the seed's order: the user by e-mail (the `email-index` GSI); the
//! challenge the assertion was made for (named by its clientDataJSON) and its expiry, read
//! together with the credential under the user's key (ownership); the assertion (signature,
//! client data, RP id, origin, user verification, backup eligibility) and user handle; the
//! device fingerprint; an access token (the system JWT) and an opaque refresh token; then the
//! challenge is consumed and one transaction records the credential's use (its counter judged
//! against the live value), trusts the device, opens the session and writes the audit record.
//! A failed attempt burns the challenge it named. On a tenant that conceals unknown users,
//! every failure after the lookup is the same answer after the same store work.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{Audit, AuditEvent};
use shared::device::fingerprint;
use shared::error::{ApiError, ErrorCode};
use shared::http::{
    json_body, optional_tenant_header, request_id, respond_v1, tenant_header, v1_ok, ApiResult,
};
use shared::ids::{CredentialId, SessionId, UserId};
use shared::passwordless::{
    parse_email, resolve_user, tenant_not_found, unknown_user, LoginCeremony, LoginUser,
};
use shared::session::{access_token, new_refresh_token, TokenData};
use shared::store::{
    ChallengeKind, ChallengeRecord, ConsumeChallenge, CredentialRecord, DeviceSighting,
    LoginCommit, LoginCommitOutcome, SessionRecord, Store, UserRecord,
};
use shared::tenant::Tenant;
use shared::webauthn::webauthn_rs_proto::PublicKeyCredential;
use shared::webauthn::{
    challenge_from_client_data, credential_use, finish_authentication, key_amr,
    presented_credential_id, user_handle, AssertionRejected, AuthenticationResult,
    AuthenticationState,
};
use tracing::{instrument, Span};

const SUCCESS_MESSAGE: &str = "WebAuthn authentication successful";

/// Store, verifier, clock and the signing key, built once per cold start.
pub type State = shared::state::Issuing;

#[derive(Deserialize)]
struct CompleteRequest {
    credential: PublicKeyCredential,
    /// Absent: a usernameless login, whose user the assertion's user handle names.
    #[serde(default)]
    email: Option<String>,
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
            code: ErrorCode::AuthenticationCompletionFailed,
            message,
            details,
        },
        other => other,
    }
}

/// Why a login that got past the user lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginFailure {
    /// No pending login of this user for the assertion's challenge.
    ChallengeNotFound,
    /// The assertion was refused; `UnknownCredential` also when the credential is not one of
    /// the user's, or was deleted meanwhile.
    Rejected(AssertionRejected),
}

/// This surface's answer to a failed login. A tenant that conceals unknown users gets one
/// answer for all of them, so an unknown address, a user without passkeys, a wrong signature
/// and a foreign challenge cannot be told apart.
fn refusal(tenant: &Tenant, failure: LoginFailure) -> ApiError {
    let invalid_credential = |message: &'static str| ApiError::InvalidCredential {
        code: ErrorCode::InvalidCredential,
        message: message.into(),
    };
    if tenant.conceal_unknown_users {
        return invalid_credential("the credential could not be verified for this account");
    }
    let invalid_assertion = |message: &'static str| ApiError::InvalidCredential {
        code: ErrorCode::InvalidAssertion,
        message: message.into(),
    };
    match failure {
        LoginFailure::ChallengeNotFound => ApiError::not_found(
            ErrorCode::ChallengeNotFound,
            "the authentication challenge does not exist, has expired or was already used",
        ),
        LoginFailure::Rejected(AssertionRejected::UnknownCredential) => {
            invalid_credential("the credential is not registered for this user")
        }
        LoginFailure::Rejected(AssertionRejected::UserNotVerified) => invalid_assertion(
            "the authenticator did not verify the user (PIN or biometric), which passwordless login requires",
        ),
        LoginFailure::Rejected(AssertionRejected::CounterNotAdvanced) => invalid_assertion(
            "the authenticator's signature counter did not advance; it may be cloned",
        ),
        LoginFailure::Rejected(AssertionRejected::BackupEligibilityChanged) => invalid_assertion(
            "the authenticator reports another backup eligibility than at registration",
        ),
        LoginFailure::Rejected(AssertionRejected::UserHandleMismatch) => {
            invalid_assertion("the assertion's user handle names another user")
        }
        LoginFailure::Rejected(AssertionRejected::Invalid) => {
            invalid_assertion("the assertion could not be verified")
        }
    }
}

/// A parsed, bounded request: nothing here has touched the store yet.
struct Attempt {
    body: CompleteRequest,
    email: Option<String>,
    presented: CredentialId,
    key: String,
}

fn parse(req: &Request) -> Result<Attempt, ApiError> {
    let body: CompleteRequest = json_body(req).map_err(completion_failed)?;
    let email = body
        .email
        .as_deref()
        .map(parse_email)
        .transpose()
        .map_err(completion_failed)?;
    let presented = presented_credential_id(&body.credential.raw_id).map_err(completion_failed)?;
    let challenge = challenge_from_client_data(&body.credential.response.client_data_json)
        .map_err(completion_failed)?;
    let key = ChallengeRecord::ceremony_key(ChallengeKind::Login, &challenge);
    Ok(Attempt {
        body,
        email,
        presented,
        key,
    })
}

async fn complete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let store = &common.store;
    let header = optional_tenant_header(req)?;
    let attempt = parse(req)?;
    let span = Span::current();
    span.record("credential_id", tracing::field::display(&attempt.presented));

    // 1. User lookup: by e-mail, or (usernameless) by the assertion's user handle.
    let login = match &attempt.email {
        Some(email) => Claim::Email(resolve_user(store, header, email, now).await?),
        None => usernameless(store, req, &attempt.body.credential, now).await?,
    };
    let tenant = login.tenant();
    span.record("tenant_id", tracing::field::display(tenant.tenant_id));

    // 2–4. Challenge, credential, assertion.
    let verified = match verify(store, &login, &attempt, audit, now).await? {
        Ok(verified) => verified,
        Err(failure) => {
            burn(store, &attempt.key, now).await;
            return Err(refusal(tenant, failure));
        }
    };
    span.record("user_id", tracing::field::display(verified.user.user_id));
    open_session(state, req, tenant, &verified, &attempt, audit, now).await
}

/// Whom the request says is logging in.
enum Claim {
    /// The seed's flow: the user an e-mail address names.
    Email(LoginUser),
    /// Usernameless: the tenant `X-Tenant-ID` names and the user id in the assertion's user
    /// handle (nil without one); `user` is `None` when no user of the tenant has that id.
    Handle {
        tenant: Tenant,
        user_id: UserId,
        user: Option<UserRecord>,
    },
}

impl Claim {
    fn tenant(&self) -> &Tenant {
        match self {
            Claim::Email(login) => login.tenant(),
            Claim::Handle { tenant, .. } => tenant,
        }
    }

    /// The user the presented credential is read under.
    fn user_id(&self) -> UserId {
        match self {
            Claim::Email(login) => login.user_id(),
            Claim::Handle { user_id, .. } => *user_id,
        }
    }

    fn known(&self) -> Option<&UserRecord> {
        match self {
            Claim::Email(login) => login.known(),
            Claim::Handle { user, .. } => user.as_ref(),
        }
    }

    /// Whether a login challenge stored for `owner` with `state` was issued for this kind of
    /// login: an e-mail login takes its user's challenge (or, on a concealing tenant, a
    /// stand-in's), a usernameless login only a usernameless challenge. Anything else is
    /// another login's challenge.
    fn issued_for(&self, owner: UserId, state: Option<&AuthenticationState>) -> bool {
        let discoverable = matches!(state, Some(AuthenticationState::Discoverable(_)));
        match self {
            Claim::Email(login) => {
                let stand_in = login.tenant().conceal_unknown_users && owner == unknown_user();
                (owner == login.user_id() || stand_in) && !discoverable
            }
            Claim::Handle { .. } => owner == unknown_user() && discoverable,
        }
    }
}

/// The usernameless claim: `X-Tenant-ID` is required (the tenant's RP issued the challenge),
/// and the user handle names the user within it.
async fn usernameless(
    store: &Store,
    req: &Request,
    credential: &PublicKeyCredential,
    now: i64,
) -> Result<Claim, ApiError> {
    let tenant_id = tenant_header(req).map_err(completion_failed)?;
    let user_id = user_handle(credential).map_or_else(unknown_user, UserId::from);
    let (tenant, user) = tokio::try_join!(
        store.tenant(&tenant_id, now),
        store.get_user(&tenant_id, &user_id),
    )?;
    Ok(Claim::Handle {
        tenant: tenant.ok_or_else(tenant_not_found)?,
        user_id,
        user,
    })
}

/// What a verified assertion established.
struct Verified {
    user: UserRecord,
    credential: CredentialRecord,
    result: AuthenticationResult,
}

/// Reads the challenge and the credential together and verifies the assertion. Every failure
/// here has done the same store work (two key reads), whoever the address names.
async fn verify(
    store: &Store,
    login: &Claim,
    attempt: &Attempt,
    audit: &mut Audit,
    now: i64,
) -> Result<Result<Verified, LoginFailure>, ApiError> {
    let tenant = login.tenant();
    let user_id = login.user_id();
    let (challenge, credential) = tokio::try_join!(
        store.read_challenge(&attempt.key),
        store.get_credential(&tenant.tenant_id, &user_id, &attempt.presented),
    )?;
    let Some(challenge) =
        challenge.filter(|c| c.kind == ChallengeKind::Login && c.tenant_id == tenant.tenant_id)
    else {
        return Ok(Err(LoginFailure::ChallengeNotFound));
    };
    // The challenge, a record this service wrote, establishes the tenant: the attempt is filed.
    audit.tenant(tenant);
    audit.credential = Some(attempt.presented.clone());
    let ceremony: LoginCeremony =
        serde_json::from_str(challenge.state.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::internal(format!("stored login state: {e}")))?;
    if !login.issued_for(challenge.user_id, ceremony.auth.as_ref()) {
        // Another login's challenge: it was exposed, so it is burnt like a failure.
        return Ok(Err(LoginFailure::ChallengeNotFound));
    }
    audit.user = login.known().map(|u| u.user_id);
    if challenge.expires_at <= now {
        return Ok(Err(LoginFailure::ChallengeNotFound));
    }
    let (Some(credential), Some(user), Some(auth)) = (credential, login.known(), ceremony.auth)
    else {
        return Ok(Err(LoginFailure::Rejected(
            AssertionRejected::UnknownCredential,
        )));
    };
    audit.method = Some(credential.method_type.as_str().to_owned());
    let registered = std::slice::from_ref(&credential);
    let result = match finish_authentication(tenant, &auth, &attempt.body.credential, registered)? {
        Ok(result) => result,
        Err(rejected) => return Ok(Err(LoginFailure::Rejected(rejected))),
    };
    Ok(Ok(Verified {
        user: user.clone(),
        credential,
        result,
    }))
}

/// Steps 5–10: device, tokens, session, then the challenge consumed and one transaction.
async fn open_session(
    state: &State,
    req: &Request,
    tenant: &Tenant,
    verified: &Verified,
    attempt: &Attempt,
    audit: &mut Audit,
    now: i64,
) -> ApiResult {
    let Verified {
        user,
        credential,
        result,
    } = verified;
    let used = credential_use(credential, result, now);
    let client = audit.client.clone();
    let device = fingerprint(req, &tenant.tenant_id, client.user_agent.as_deref());
    audit.device_hash = Some(device.hash.clone());

    let session_id = SessionId::new_random();
    let refresh = new_refresh_token(&session_id)?;
    let session = SessionRecord {
        session_id,
        tenant_user: SessionRecord::key_for(&tenant.tenant_id, &user.user_id),
        tenant_id: tenant.tenant_id,
        user_id: user.user_id,
        credential_id: credential.credential_id.clone(),
        device_hash: Some(device.hash.clone()),
        // RFC 8176: the key, a verified user; possession plus PIN or biometric is multi-factor.
        amr: vec![
            key_amr(credential).to_owned(),
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
        expires_at: tenant.session_expiry(now, now),
        revoked_at: None,
        revoked_reason: None,
    };
    let (access, _) = access_token(&state.issuer.for_request(req)?, tenant, &session, now).await?;
    audit.session = Some(session_id);

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
    let outcome = state
        .common
        .store
        .commit_login(&LoginCommit {
            challenge: consume(&attempt.key, now),
            credential,
            used: &used,
            device: &sighting,
            session: &session,
            audit: &audit_record,
        })
        .await?;
    let failure = match outcome {
        LoginCommitOutcome::Committed => None,
        LoginCommitOutcome::ChallengeGone => Some(LoginFailure::ChallengeNotFound),
        LoginCommitOutcome::CredentialGone => {
            Some(LoginFailure::Rejected(AssertionRejected::UnknownCredential))
        }
        LoginCommitOutcome::CounterNotAdvanced => Some(LoginFailure::Rejected(
            AssertionRejected::CounterNotAdvanced,
        )),
    };
    if let Some(failure) = failure {
        return Err(refusal(tenant, failure));
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

/// The conditional delete that takes a login challenge: any live login challenge under the
/// key (verification already tied it to this user and tenant).
fn consume(key: &str, now: i64) -> ConsumeChallenge<'_> {
    ConsumeChallenge {
        key,
        kind: ChallengeKind::Login,
        tenant: None,
        user: None,
        method_type: None,
        any_method_if_unset: false,
        require_state: false,
        now,
    }
}

/// A failed attempt uses up the challenge it named (if there is one): the client starts over
/// with a fresh one. The delete is made whether or not the challenge exists, so every failure
/// costs the same.
async fn burn(store: &Store, key: &str, now: i64) {
    if let Err(err) = store.consume_challenge(consume(key, now)).await {
        tracing::warn!(error = %err, "could not discard the challenge of a failed login");
    }
}
