//! `POST /v1/users/me/mfa/webauthn/register/complete` (seed 001): verifies the attestation
//! against the pending enrollment, stores the credential and, on the first enrollment, returns
//! the user's backup codes (the only time they are ever shown).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::account::device_name;
use shared::audit::{Audit, AuditEvent};
use shared::auth::{authenticate, enrollment_grant, has_authorization, Accepts, Caller, Proof};
use shared::codes::{self, BackupCodeHasher, BACKUP_CODE_COUNT};
use shared::config::ConfigError;
use shared::error::{found, ApiError, ErrorCode};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use shared::policy::{AuthenticatorFacts, UserFacts};
use shared::state::Common;
use shared::store::{
    AuditRecord, BackupCodesRecord, ChallengeKind, ChallengeRecord, ConsumeChallenge,
    SaveCredentialOutcome,
};
use shared::tenant::MethodType;
use shared::webauthn::webauthn_rs_proto::RegisterPublicKeyCredential;
use shared::webauthn::{
    attestation_format, challenge_from_client_data, credential_record, finish_registration,
    presented_credential_id, AttestationRejected, NewCredential, RegistrationState,
};
use tracing::{instrument, Span};

pub struct State {
    pub common: Common,
    pub backup_codes: BackupCodeHasher,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = shared::state::sdk_config().await?;
        Ok(Self {
            backup_codes: BackupCodeHasher::from_env(&sdk).await?,
            common: Common::verifying(&sdk).await?,
        })
    }
}

#[derive(Deserialize)]
struct CompleteRequest {
    credential: RegisterPublicKeyCredential,
    device_name: String,
    method_type: String,
    /// An enrollment grant, for callers without a token (MFA `enrollment_required`).
    #[serde(default)]
    challenge_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct CompleteResponse {
    codes: Vec<String>,
    remaining: usize,
}

#[instrument(skip_all, fields(request_id = %request_id(&req), tenant_id, user_id, method_type, credential_id))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::CredentialRegistered, &req);
    let result = register_complete(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

/// Whether the body carries a `challenge_id` (an enrollment grant).
fn names_a_grant(req: &Request) -> bool {
    serde_json::from_slice::<serde_json::Value>(req.body().as_ref())
        .ok()
        .is_some_and(|v| v.get("challenge_id").is_some_and(|g| !g.is_null()))
}

async fn register_complete(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    // Without a token the only other credential is an enrollment grant in the body; a request
    // with neither is unauthenticated before anything else.
    let token_caller = match has_authorization(req) || !names_a_grant(req) {
        true => Some(authenticate(req, &common.tokens, now, Accepts::MfaSetup)?),
        false => None,
    };
    // Everything the request alone can get wrong is refused before any state is used.
    let body: CompleteRequest = json_body(req)?;
    let method: MethodType = body.method_type.parse()?;
    let device_name = device_name(&body.device_name)?;
    let challenge = challenge_from_client_data(&body.credential.response.client_data_json)?;
    let caller = match (token_caller, &body.challenge_id) {
        (Some(caller), _) => caller,
        (None, Some(grant)) => {
            enrollment_grant(req, &common.store, grant, method, true, now).await?
        }
        (None, None) => {
            return Err(ApiError::unauthenticated(
                "an Authorization: Bearer token is required",
            ))
        }
    };
    let presented_id = presented_credential_id(&body.credential.raw_id)?;
    let span = Span::current();
    span.record("tenant_id", tracing::field::display(caller.tenant));
    span.record("user_id", tracing::field::display(caller.user));
    span.record("method_type", method.as_str());
    span.record("credential_id", tracing::field::display(&presented_id));

    let store = &common.store;
    let key = ChallengeRecord::ceremony_key(ChallengeKind::Registration, &challenge);
    let consume = ConsumeChallenge {
        key: &key,
        kind: ChallengeKind::Registration,
        tenant: Some(&caller.tenant),
        user: Some(&caller.user),
        method_type: Some(method),
        any_method_if_unset: false,
        require_state: true,
        now,
    };
    let (pending, tenant, user, backup_codes, same_id, existing, session) = tokio::try_join!(
        async { Ok(store.consume_challenge(consume).await?) },
        async { Ok(store.tenant(&caller.tenant, now).await?) },
        async { Ok(store.get_user(&caller.tenant, &caller.user).await?) },
        async { Ok(store.get_backup_codes(&caller.tenant, &caller.user).await?) },
        async { Ok(store.find_credentials_by_id(&presented_id).await?) },
        async { Ok(store.list_credentials(&caller.tenant, &caller.user).await?) },
        caller.session(store),
    )?;
    let pending = found(
        pending,
        ErrorCode::EnrollmentNotFound,
        "no pending enrollment for this user and method type (it may have expired or been used)",
    )?;
    let tenant = found(
        tenant,
        ErrorCode::TenantNotFound,
        "the tenant does not exist",
    )?;
    let user = found(user, ErrorCode::UserNotFound, "the user does not exist")?;
    // The tenant record (of the token's or the grant's tenant) establishes the tenant: from
    // here on the attempt is filed, with who added what.
    audit.tenant(&tenant);
    audit.user = Some(caller.user);
    audit.method = Some(method.as_str().to_owned());
    audit.actor = Some(match caller.proof {
        Proof::Token { .. } => format!("user:{}", caller.user),
        Proof::Grant => "enrollment_grant".to_owned(),
    });
    audit.target = Some(presented_id.to_base64url());
    audit.credential = Some(presented_id.clone());
    let facts = caller.facts(req, now);
    let adding = AuthenticatorFacts::planned(method);
    let read = UserFacts {
        has_backup_codes: Some(backup_codes.is_some()),
        ..UserFacts::new(&existing, &user.groups)
    };
    caller.check_enrollment(&tenant, session.as_ref(), &read, &adding, &facts, now)?;

    let state_data: RegistrationState =
        serde_json::from_str(pending.state.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::internal(format!("stored registration state: {e}")))?;
    let credential =
        finish_registration(&tenant, &state_data, &body.credential, !same_id.is_empty())?
            .map_err(refusal)?;
    if credential.cred_id.as_slice() != presented_id.as_bytes() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidAttestation,
            "rawId does not match the credential in the attestation",
        ));
    }
    if !same_id.is_empty() {
        // WebAuthn §7.1 step 26: a credential id registered to any account is refused.
        return Err(duplicate());
    }

    let record = credential_record(
        NewCredential {
            tenant: &tenant,
            user: &user,
            method,
            device_name,
            now,
        },
        &credential,
        &body.credential.response.attestation_object,
    )?;
    // The attested authenticator, before anything is stored.
    let attested = AuthenticatorFacts {
        attestation_format: attestation_format(&body.credential.response.attestation_object),
        ..AuthenticatorFacts::of(&record)
    };
    caller.check_registration(&tenant, &read, &attested, &facts)?;

    // The audit record of the success is written with the credential (one round trip).
    let success = audit.success(now);
    let response = match backup_codes {
        Some(existing) => {
            save(store, &record, None, success.as_ref()).await?;
            CompleteResponse {
                codes: Vec::new(),
                remaining: existing.remaining(),
            }
        }
        None => first_enrollment(state, &caller, &record, now, success.as_ref()).await?,
    };
    audit.committed();
    tracing::info!(
        first_enrollment = !response.codes.is_empty(),
        "credential registered"
    );
    Ok(json_response(StatusCode::OK, &response))
}

/// Stores the credential together with ten fresh backup codes, which are returned in clear
/// this once. If a concurrent enrollment created the codes first, this one gets none.
async fn first_enrollment(
    state: &State,
    caller: &Caller,
    record: &shared::store::CredentialRecord,
    now: i64,
    audit: Option<&AuditRecord>,
) -> Result<CompleteResponse, ApiError> {
    let store = &state.common.store;
    let plain = codes::generate(BACKUP_CODE_COUNT)
        .map_err(|_| ApiError::internal("random number generator failed"))?;
    let hashes = plain
        .iter()
        .map(|code| state.backup_codes.hash(&caller.tenant, &caller.user, code))
        .collect();
    let codes_record = BackupCodesRecord::new(&caller.tenant, &caller.user, hashes, now);
    match store
        .save_new_credential(record, Some(&codes_record), audit)
        .await?
    {
        SaveCredentialOutcome::Saved => Ok(CompleteResponse {
            remaining: plain.len(),
            codes: plain,
        }),
        SaveCredentialOutcome::DuplicateCredential => Err(duplicate()),
        SaveCredentialOutcome::BackupCodesAlreadyExist => {
            save(store, record, None, audit).await?;
            let remaining = store
                .get_backup_codes(&caller.tenant, &caller.user)
                .await?
                .map_or(0, |c| c.remaining());
            Ok(CompleteResponse {
                codes: Vec::new(),
                remaining,
            })
        }
    }
}

async fn save(
    store: &shared::store::Store,
    record: &shared::store::CredentialRecord,
    codes: Option<&BackupCodesRecord>,
    audit: Option<&AuditRecord>,
) -> Result<(), ApiError> {
    match store.save_new_credential(record, codes, audit).await? {
        SaveCredentialOutcome::Saved => Ok(()),
        SaveCredentialOutcome::DuplicateCredential => Err(duplicate()),
        SaveCredentialOutcome::BackupCodesAlreadyExist => Err(ApiError::internal(
            "backup codes conflict while saving without codes",
        )),
    }
}

/// The seed surface's answer to a refused attestation.
fn refusal(rejected: AttestationRejected) -> ApiError {
    match rejected {
        AttestationRejected::AlreadyRegistered => duplicate(),
        AttestationRejected::AlgorithmNotOffered => ApiError::bad_request(
            ErrorCode::InvalidAttestation,
            "the credential's public key algorithm is not one the registration options offered",
        ),
        AttestationRejected::UserNotVerified => ApiError::bad_request(
            ErrorCode::InvalidAttestation,
            "the authenticator did not verify the user, which this enrollment requires",
        ),
        AttestationRejected::Invalid => ApiError::bad_request(
            ErrorCode::InvalidAttestation,
            "the attestation could not be verified against the pending enrollment",
        ),
    }
}

fn duplicate() -> ApiError {
    ApiError::conflict(
        ErrorCode::CredentialAlreadyRegistered,
        "this authenticator is already registered",
    )
}
