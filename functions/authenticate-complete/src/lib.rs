//! `POST /api/v1/webauthn/authenticate/complete` (seed 003) `{credential, email}`: finishes a
//! passwordless login. Without `email` (a usernameless login begun with `{}`), `X-Tenant-ID`
//! names the tenant and the assertion's user handle the user; the rest is the same.
//!
//! Two sequential store round trips (README, Performance shape). First, together: the user by
//! e-mail (the `email-index` GSI; usernameless: the user and the presented credential by key)
//! and the challenge the assertion was made for (named by its clientDataJSON), taken by a
//! delete that returns it (its expiry is then checked by the code). The e-mail login's credential comes from the snapshot
//! `begin` kept with the challenge. Then, with no store call: the challenge's tenant, user and
//! expiry; the assertion (signature, client data, RP id, origin, user verification, backup
//! eligibility) and user handle; the device fingerprint; the tenant's `bypass_mfa` policy (may
//! this login stand alone? `403 POLICY_DENIED` with notices if not); an access token (the
//! system JWT) and an opaque refresh token. Second: one transaction records the credential's use (its counter
//! judged against the live value, and failing if it was deleted meanwhile), trusts the device,
//! opens the session and writes the audit record. Every attempt spends the challenge it named.
//! On a tenant that conceals unknown users, every failure after the lookup is the same answer
//! after the same store work.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::audit::{Audit, AuditEvent};
use shared::device::{fingerprint, DeviceFingerprint};
use shared::error::{ApiError, ErrorCode, Refusal};
use shared::http::{
    client_info, json_body, optional_tenant_header, request_id, respond_v1, tenant_header, v1_ok,
    ApiResult,
};
use shared::ids::{CredentialId, SessionId, TenantId, UserId};
use shared::passwordless::{
    parse_email, resolve_user, tenant_not_found, unknown_user, LoginCeremony, LoginUser,
};
use shared::policy::{may_bypass_mfa, Facts, UserFacts};
use shared::session::{access_token, new_refresh_token, TokenData};
use shared::store::{
    ChallengeKind, ChallengeRecord, CredentialRecord, DeviceSighting, LoginCommit,
    LoginCommitOutcome, SessionRecord, Store, UserRecord,
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
    let attempt = parse(req)?;
    // Usernameless needs the header: checked before anything is consumed.
    let header = match attempt.email {
        Some(_) => optional_tenant_header(req)?,
        None => Some(tenant_header(req).map_err(completion_failed)?),
    };
    let span = Span::current();
    span.record("credential_id", tracing::field::display(&attempt.presented));

    // 1. Together: the user (by e-mail, or by the assertion's user handle) and the challenge,
    //    consumed. Both always run, so every attempt spends the challenge it named.
    let (login, challenge) = tokio::join!(
        claim(store, req, &attempt, header, now),
        store.take_challenge(&attempt.key, ChallengeKind::Login),
    );
    let (login, challenge) = (login?, challenge?);
    let tenant = login.tenant();
    span.record("tenant_id", tracing::field::display(tenant.tenant_id));
    let device = device_of(req, tenant);
    audit.device_hash = Some(device.hash.clone());

    // 2–4. The challenge's ceremony, the credential, the assertion: no store call.
    let verified = match verify(&login, challenge, &attempt, &device, audit, now)? {
        Ok(verified) => verified,
        Err(failure) => return Err(refusal(tenant, failure)),
    };
    span.record("user_id", tracing::field::display(verified.user.user_id));
    may_stand_alone(req, tenant, &verified)?;
    // 5–10. One transaction.
    open_session(state, req, tenant, &verified, &device, audit, now).await
}

/// The device fingerprint of the request (README, Device fingerprint).
fn device_of(req: &Request, tenant: &Tenant) -> DeviceFingerprint {
    let client = client_info(req);
    fingerprint(req, &tenant.tenant_id, client.user_agent.as_deref())
}

/// The tenant's `bypass_mfa` policy: may this verified login stand alone, without a second
/// factor? A denial is 403 `POLICY_DENIED` with the policies' notices; the challenge is spent
/// and nothing else is written.
fn may_stand_alone(req: &Request, tenant: &Tenant, verified: &Verified) -> Result<(), ApiError> {
    let facts = Facts {
        uv: Some(verified.result.user_verified()),
        device_trusted: Some(verified.device_trusted),
        ..Facts::of_request(req)
    };
    let user = UserFacts::new(&verified.credentials, &verified.user.groups);
    let decision = may_bypass_mfa(tenant, &user, &verified.credential, &facts)?;
    if decision.allowed {
        return Ok(());
    }
    tracing::info!(
        event = "passwordless_policy_denied",
        "the tenant's policy requires a second factor"
    );
    Err(ApiError::policy_denied(
        Refusal::Forbidden,
        "this tenant's policy does not allow this login without a second factor",
        decision.notices,
    ))
}

/// The user lookup: by e-mail, or (usernameless) by the assertion's user handle.
async fn claim(
    store: &Store,
    req: &Request,
    attempt: &Attempt,
    header: Option<TenantId>,
    now: i64,
) -> Result<Claim, ApiError> {
    match (&attempt.email, header) {
        (Some(email), header) => Ok(Claim::Email(resolve_user(store, header, email, now).await?)),
        (None, Some(tenant_id)) => usernameless(store, req, tenant_id, attempt, now).await,
        (None, None) => Err(completion_failed(ApiError::invalid_field(
            "X-Tenant-ID",
            "a usernameless login needs the X-Tenant-ID header",
        ))),
    }
}

/// Whom the request says is logging in.
enum Claim {
    /// The seed's flow: the user an e-mail address names. The credential is taken from the
    /// snapshot `begin` kept with the challenge.
    Email(LoginUser),
    /// Usernameless: the tenant `X-Tenant-ID` names and the user id in the assertion's user
    /// handle (nil without one); `user` is `None` when no user of the tenant has that id.
    /// `credentials` are that user's, and `device_trusted` whether they have logged in from
    /// this request's device before.
    Handle {
        tenant: Tenant,
        user: Option<UserRecord>,
        credentials: Vec<CredentialRecord>,
        device_trusted: bool,
    },
}

impl Claim {
    fn tenant(&self) -> &Tenant {
        match self {
            Claim::Email(login) => login.tenant(),
            Claim::Handle { tenant, .. } => tenant,
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

    /// The user's registered credentials: the challenge's snapshot (e-mail login) or as read
    /// beside the user (usernameless). The login transaction checks that the one used still
    /// exists and judges its counter against the live value.
    fn credentials(&self, challenge: &mut ChallengeRecord) -> Vec<CredentialRecord> {
        match self {
            Claim::Email(_) => challenge.credentials.take().unwrap_or_default(),
            Claim::Handle { credentials, .. } => credentials.clone(),
        }
    }

    /// Whether the user has logged in from the request's device before: as `begin` found it,
    /// if this is the device `begin` was asked from (e-mail login), or as read beside the user
    /// (usernameless).
    fn device_trusted(&self, ceremony: &LoginCeremony, device: &DeviceFingerprint) -> bool {
        match self {
            Claim::Email(_) => ceremony.device_trusted(&device.hash),
            Claim::Handle { device_trusted, .. } => *device_trusted,
        }
    }
}

/// The usernameless claim: `X-Tenant-ID` is required (the tenant's RP issued the challenge),
/// and the user handle names the user within it; the user, their credentials and this
/// device's record are read together.
async fn usernameless(
    store: &Store,
    req: &Request,
    tenant_id: TenantId,
    attempt: &Attempt,
    now: i64,
) -> Result<Claim, ApiError> {
    let user_id = user_handle(&attempt.body.credential).map_or_else(unknown_user, UserId::from);
    let client = client_info(req);
    let device = fingerprint(req, &tenant_id, client.user_agent.as_deref());
    let (tenant, user, credentials, device_trusted) = tokio::try_join!(
        store.tenant(&tenant_id, now),
        store.get_user(&tenant_id, &user_id),
        store.list_credentials(&tenant_id, &user_id),
        store.device_trusted(&tenant_id, &user_id, &device.hash),
    )?;
    Ok(Claim::Handle {
        tenant: tenant.ok_or_else(tenant_not_found)?,
        user,
        credentials,
        device_trusted,
    })
}

/// What a verified assertion established.
struct Verified {
    user: UserRecord,
    credential: CredentialRecord,
    result: AuthenticationResult,
    /// All of the user's credentials (the policy's view of the user).
    credentials: Vec<CredentialRecord>,
    device_trusted: bool,
}

/// Verifies the assertion against the consumed challenge (`None`: missing or already used).
/// No store call: every failure has done the same store work (the lookup and the consume),
/// whoever the address names.
fn verify(
    login: &Claim,
    challenge: Option<ChallengeRecord>,
    attempt: &Attempt,
    device: &DeviceFingerprint,
    audit: &mut Audit,
    now: i64,
) -> Result<Result<Verified, LoginFailure>, ApiError> {
    let tenant = login.tenant();
    let Some(mut challenge) = challenge.filter(|c| c.tenant_id == tenant.tenant_id) else {
        return Ok(Err(LoginFailure::ChallengeNotFound));
    };
    // The challenge, a record this service wrote, establishes the tenant: the attempt is filed.
    audit.tenant(tenant);
    audit.credential = Some(attempt.presented.clone());
    let ceremony: LoginCeremony =
        serde_json::from_str(challenge.state.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::internal(format!("stored login state: {e}")))?;
    if !login.issued_for(challenge.user_id, ceremony.auth.as_ref()) {
        // Another login's challenge: it was exposed, and is spent like a failure's.
        return Ok(Err(LoginFailure::ChallengeNotFound));
    }
    audit.user = login.known().map(|u| u.user_id);
    if challenge.expires_at <= now {
        return Ok(Err(LoginFailure::ChallengeNotFound));
    }
    let credentials = login.credentials(&mut challenge);
    let credential = credentials
        .iter()
        .find(|c| c.credential_id == attempt.presented)
        .cloned();
    let device_trusted = login.device_trusted(&ceremony, device);
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
        credentials,
        device_trusted,
    }))
}

/// Steps 5–10: device, tokens, session, and one transaction.
async fn open_session(
    state: &State,
    req: &Request,
    tenant: &Tenant,
    verified: &Verified,
    device: &DeviceFingerprint,
    audit: &mut Audit,
    now: i64,
) -> ApiResult {
    let Verified {
        user,
        credential,
        result,
        ..
    } = verified;
    let used = credential_use(credential, result, now);
    let client = audit.client.clone();

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
            credential,
            used: &used,
            device: &sighting,
            session: &session,
            audit: &audit_record,
        })
        .await?;
    let failure = match outcome {
        LoginCommitOutcome::Committed => None,
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
