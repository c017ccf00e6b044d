//! Registration ceremonies on top of webauthn-rs: which options each method type gets, how the
//! pending state is stored, and how results become credential records.
//!
//! webauthn-rs verifies but does not consume state: `finish_*` accepts the same state any number
//! of times. Single use is the store's job (`Store::consume_challenge`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, WebauthnError,
};
use webauthn_rs_proto::{
    AuthenticatorAttachment, CredentialProtectionPolicy, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialHints, PublicKeyCredentialRequestOptions, ResidentKeyRequirement,
};

use crate::error::{ApiError, ErrorCode};
use crate::ids::CredentialId;
use crate::store::{CounterRule, CredentialRecord, CredentialUse, UserRecord};
use crate::tenant::{MethodType, Tenant, UserVerification};

pub use webauthn_rs::prelude::AuthenticationResult;
pub use webauthn_rs_proto;

/// webauthn-rs state of a registration in progress, tagged by the API that produced it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "api", content = "state", rename_all = "snake_case")]
pub enum RegistrationState {
    Passkey(PasskeyRegistration),
    SecurityKey(SecurityKeyRegistration),
}

pub struct StartedRegistration {
    /// Bare PublicKeyCredentialCreationOptions, for `parseCreationOptionsFromJSON`.
    pub options: PublicKeyCredentialCreationOptions,
    pub state: RegistrationState,
    /// base64url challenge: the key the pending state is stored under.
    pub challenge: String,
}

/// Options for enrolling `method` for `user`, excluding the credentials already registered.
pub fn start_registration(
    tenant: &Tenant,
    user: &UserRecord,
    method: MethodType,
    existing: &[CredentialRecord],
) -> Result<StartedRegistration, ApiError> {
    let webauthn = tenant.webauthn()?;
    let exclude: Vec<_> = existing
        .iter()
        .map(|c| c.credential_id.as_bytes().to_vec())
        .collect();
    let exclude = (!exclude.is_empty()).then_some(exclude);
    let user_id = *user.user_id.as_uuid();
    let started = |e: WebauthnError| ApiError::internal(format!("start registration: {e}"));

    let (ccr, state) = match (method, tenant.user_verification) {
        // Security keys whose tenant demands PIN/biometric get the UV-required ceremony.
        (MethodType::WebauthnPasskey, _)
        | (MethodType::WebauthnFido, UserVerification::Required) => {
            let (ccr, state) = webauthn
                .start_passkey_registration(user_id, &user.email, &user.display_name, exclude)
                .map_err(started)?;
            (ccr, RegistrationState::Passkey(state))
        }
        (MethodType::WebauthnFido, UserVerification::Preferred) => {
            let (ccr, state) = webauthn
                .start_securitykey_registration(
                    user_id,
                    &user.email,
                    &user.display_name,
                    exclude,
                    None,
                    None,
                )
                .map_err(started)?;
            (ccr, RegistrationState::SecurityKey(state))
        }
    };

    let mut options = ccr.public_key;
    shape_options(&mut options, method);
    let challenge = URL_SAFE_NO_PAD.encode(&options.challenge);
    Ok(StartedRegistration {
        options,
        state,
        challenge,
    })
}

/// Adjusts the client-facing options; verification still runs against webauthn-rs's state.
fn shape_options(options: &mut PublicKeyCredentialCreationOptions, method: MethodType) {
    let selection = options
        .authenticator_selection
        .get_or_insert_with(Default::default);
    match method {
        MethodType::WebauthnPasskey => {
            // webauthn-rs asks for a non-discoverable credential; a passkey must be discoverable
            // so the user can sign in without typing a name.
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        MethodType::WebauthnFido => {
            selection.authenticator_attachment = Some(AuthenticatorAttachment::CrossPlatform);
            options.hints = Some(vec![PublicKeyCredentialHints::SecurityKey]);
            // Chromium rejects credProtect=userVerificationRequired unless userVerification is
            // "required" ("protection policy is inconsistent", kanidm/webauthn-rs#490). With UV
            // only preferred, ask for level 2 instead: consistent, and it still hides any
            // accidentally discoverable credential from enumeration without its id.
            let uv_required =
                selection.user_verification == webauthn_rs_proto::UserVerificationPolicy::Required;
            if let Some(protect) = options
                .extensions
                .as_mut()
                .and_then(|e| e.cred_protect.as_mut())
            {
                if !uv_required
                    && protect.credential_protection_policy
                        == CredentialProtectionPolicy::UserVerificationRequired
                {
                    protect.credential_protection_policy =
                        CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIDList;
                }
            }
        }
    }
}

/// Why an attestation was refused. Each surface maps it to its own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttestationRejected {
    /// The credential is one the user already has (it was in `excludeCredentials`).
    #[error("the credential is already registered")]
    AlreadyRegistered,
    /// The credential's public key uses an algorithm the options did not offer.
    #[error("the credential's algorithm was not offered")]
    AlgorithmNotOffered,
    #[error("the authenticator did not verify the user")]
    UserNotVerified,
    /// Anything else: challenge, origin, RP id hash, type, flags, format, signature.
    #[error("the attestation did not verify")]
    Invalid,
}

/// Verifies the attestation against the pending state. `already_registered` says whether the
/// presented credential id is stored already: webauthn-rs reports an excluded credential and
/// an algorithm that was not offered with one error, and this tells them apart.
pub fn finish_registration(
    tenant: &Tenant,
    state: &RegistrationState,
    credential: &RegisterPublicKeyCredential,
    already_registered: bool,
) -> Result<Result<Credential, AttestationRejected>, ApiError> {
    let webauthn = tenant.webauthn()?;
    let result = match state {
        RegistrationState::Passkey(s) => webauthn
            .finish_passkey_registration(credential, s)
            .map(Credential::from),
        RegistrationState::SecurityKey(s) => webauthn
            .finish_securitykey_registration(credential, s)
            .map(Credential::from),
    };
    Ok(result.map_err(|err| {
        tracing::info!(error = %err, "attestation rejected");
        match err {
            WebauthnError::CredentialAlteredAlgFromRequest if already_registered => {
                AttestationRejected::AlreadyRegistered
            }
            WebauthnError::CredentialAlteredAlgFromRequest => {
                AttestationRejected::AlgorithmNotOffered
            }
            WebauthnError::UserNotVerified => AttestationRejected::UserNotVerified,
            _ => AttestationRejected::Invalid,
        }
    }))
}

/// webauthn-rs state of an authentication in progress.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "api", content = "state", rename_all = "snake_case")]
pub enum AuthenticationState {
    /// User verification required.
    Passkey(PasskeyAuthentication),
    /// User verification preferred.
    SecurityKey(SecurityKeyAuthentication),
    /// Usernameless login: no credential listed, user verification required; the assertion's
    /// user handle names the user.
    Discoverable(DiscoverableAuthentication),
}

/// A passkey whose counter may legitimately go backwards: backup-eligible at registration
/// (synced), or one that registered with counter 0 as synced passkeys do. Decided from what
/// was registered, never from what an assertion claims: security keys never qualify, so a
/// counter that does not advance on one of them is treated as a cloned authenticator.
pub fn may_be_synced(record: &CredentialRecord) -> bool {
    record.backup_eligible
        || (record.method_type == MethodType::WebauthnPasskey
            && record.registration_sign_count == 0)
}

/// The webauthn-rs credential of a record, with the record's counter and flags. For a passkey
/// that may be synced the counter is left at 0, so webauthn-rs accepts any counter and
/// [`credential_use`] decides (and audits) instead. The backup-eligible flag is the one
/// registered: it never changes for a credential (WebAuthn L3 §6.1.3).
pub fn webauthn_credential(record: &CredentialRecord) -> Result<Credential, ApiError> {
    let mut credential: Credential =
        serde_json::from_str(&record.webauthn_credential).map_err(|e| {
            ApiError::internal(format!("stored credential {}: {e}", record.credential_id))
        })?;
    credential.counter = if may_be_synced(record) {
        0
    } else {
        record.sign_count
    };
    credential.backup_eligible = record.backup_eligible;
    credential.backup_state = record.backup_state;
    Ok(credential)
}

/// True when an accepted assertion did not advance the stored counter.
pub fn counter_regressed(record: &CredentialRecord, result: &AuthenticationResult) -> bool {
    (result.counter() > 0 || record.sign_count > 0) && result.counter() <= record.sign_count
}

/// What an accepted assertion changes on its credential. Only the backup *state* is taken
/// from the assertion. The counter is written with a condition on the live stored value
/// ([`CounterRule`]), so a stale copy of the credential can never lower it.
pub fn credential_use(
    record: &CredentialRecord,
    result: &AuthenticationResult,
    now: i64,
) -> CredentialUse {
    let rule = if !may_be_synced(record) {
        CounterRule::MustAdvance
    } else if counter_regressed(record, result) {
        tracing::warn!(
            event = "counter_regression_allowed",
            stored = record.sign_count,
            presented = result.counter(),
            "signature counter did not advance on a passkey that may be synced"
        );
        CounterRule::Regressed
    } else {
        CounterRule::AdvanceIfHigher
    };
    CredentialUse {
        sign_count: result.counter(),
        backup_state: result.backup_state(),
        rule,
        now,
    }
}

/// The RFC 8176 method of the key: `swk` for a synced (backup-eligible) passkey, else `hwk`.
pub fn key_amr(record: &CredentialRecord) -> &'static str {
    if record.backup_eligible && record.method_type == MethodType::WebauthnPasskey {
        "swk"
    } else {
        "hwk"
    }
}

pub struct StartedAuthentication {
    /// Bare PublicKeyCredentialRequestOptions, for `parseRequestOptionsFromJSON`.
    pub options: PublicKeyCredentialRequestOptions,
    pub state: AuthenticationState,
}

/// Request options allowing exactly `records`. User verification is required when the caller
/// demands it (passwordless login), when the tenant requires it, or when every allowed
/// credential was registered with it (passkeys): webauthn-rs refuses an unverified assertion
/// from such a credential, so asking for less would only make honest clients fail. Otherwise
/// it is preferred.
pub fn start_authentication(
    tenant: &Tenant,
    records: &[CredentialRecord],
    require_uv: bool,
) -> Result<StartedAuthentication, ApiError> {
    let webauthn = tenant.webauthn()?;
    let credentials = records
        .iter()
        .map(webauthn_credential)
        .collect::<Result<Vec<_>, _>>()?;
    let all_registered_with_uv = credentials
        .iter()
        .all(|c| c.registration_policy == webauthn_rs_proto::UserVerificationPolicy::Required);
    let user_verification = if require_uv || all_registered_with_uv {
        UserVerification::Required
    } else {
        tenant.user_verification
    };
    let started = |e: WebauthnError| ApiError::internal(format!("start authentication: {e}"));
    let (rcr, state) = match user_verification {
        UserVerification::Required => {
            let passkeys: Vec<Passkey> = credentials.into_iter().map(Passkey::from).collect();
            let (rcr, state) = webauthn
                .start_passkey_authentication(&passkeys)
                .map_err(started)?;
            (rcr, AuthenticationState::Passkey(state))
        }
        UserVerification::Preferred => {
            let keys: Vec<SecurityKey> = credentials.into_iter().map(SecurityKey::from).collect();
            let (rcr, state) = webauthn
                .start_securitykey_authentication(&keys)
                .map_err(started)?;
            (rcr, AuthenticationState::SecurityKey(state))
        }
    };
    let mut options = rcr.public_key;
    // The security-key hint would steer browsers away from platform passkeys in the list.
    if records
        .iter()
        .any(|r| r.method_type == MethodType::WebauthnPasskey)
    {
        options.hints = None;
    }
    Ok(StartedAuthentication { options, state })
}

/// Request options for a usernameless login: an empty `allowCredentials`, so the browser
/// offers the RP's discoverable credentials (passkeys), also in autofill (conditional
/// mediation); user verification required.
pub fn start_discoverable_authentication(
    tenant: &Tenant,
) -> Result<StartedAuthentication, ApiError> {
    let (rcr, state) = tenant
        .webauthn()?
        .start_discoverable_authentication()
        .map_err(|e| ApiError::internal(format!("start discoverable authentication: {e}")))?;
    Ok(StartedAuthentication {
        options: rcr.public_key,
        state: AuthenticationState::Discoverable(state),
    })
}

/// The user an assertion's `userHandle` names: this service registers credentials with the
/// user id's 16 bytes as the WebAuthn user handle. `None` when absent or not a user id.
pub fn user_handle(credential: &PublicKeyCredential) -> Option<Uuid> {
    credential
        .response
        .user_handle
        .as_deref()
        .and_then(|handle| Uuid::from_slice(handle).ok())
}

/// Why an assertion was refused. Each surface maps it to its own error, exhaustively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionRejected {
    /// The credential is not one the ceremony allows (unknown, another user's, not listed).
    #[error("the credential is not allowed in this ceremony")]
    UnknownCredential,
    #[error("the authenticator did not verify the user")]
    UserNotVerified,
    /// The signature counter did not advance on an authenticator that must advance it.
    #[error("the signature counter did not advance")]
    CounterNotAdvanced,
    /// The backup-eligible flag differs from the one registered (L3 §6.1.3: it never changes).
    #[error("the backup eligibility differs from registration")]
    BackupEligibilityChanged,
    /// The assertion's `userHandle` names another user than the credential's owner.
    #[error("the user handle names another user")]
    UserHandleMismatch,
    /// Anything else: signature, client data type/challenge/origin, RP id hash, flags.
    #[error("the assertion did not verify")]
    Invalid,
}

/// Verifies an assertion against the state: signature, client data (type, challenge, origin),
/// RP id hash, user presence, allowed credential, user verification and counter (webauthn-rs),
/// then that a `userHandle` names the credential's owner and that the backup-eligible flag is
/// the registered one (this crate). The outer error is
/// a server fault; the inner one the client's.
pub fn finish_authentication(
    tenant: &Tenant,
    state: &AuthenticationState,
    credential: &PublicKeyCredential,
    registered: &[CredentialRecord],
) -> Result<Result<AuthenticationResult, AssertionRejected>, ApiError> {
    let webauthn = tenant.webauthn()?;
    let result = match state {
        AuthenticationState::Passkey(s) => webauthn.finish_passkey_authentication(credential, s),
        AuthenticationState::SecurityKey(s) => {
            webauthn.finish_securitykey_authentication(credential, s)
        }
        AuthenticationState::Discoverable(s) => {
            // No list in the state: the credential is the registered one with the presented id.
            let presented = credential.get_credential_id();
            let Some(record) = registered
                .iter()
                .find(|r| r.credential_id.as_bytes() == presented)
            else {
                return Ok(Err(AssertionRejected::UnknownCredential));
            };
            webauthn.finish_discoverable_authentication_v2(
                credential,
                s.clone(),
                webauthn_credential(record)?,
            )
        }
    };
    let result = match result {
        Ok(result) => result,
        Err(err) => {
            tracing::info!(error = %err, "assertion rejected");
            return Ok(Err(match err {
                WebauthnError::CredentialNotFound => AssertionRejected::UnknownCredential,
                WebauthnError::CredentialPossibleCompromise => {
                    AssertionRejected::CounterNotAdvanced
                }
                WebauthnError::UserNotVerified => AssertionRejected::UserNotVerified,
                WebauthnError::CredentialBackupEligibilityInconsistent => {
                    AssertionRejected::BackupEligibilityChanged
                }
                _ => AssertionRejected::Invalid,
            }));
        }
    };
    let Some(record) = registered
        .iter()
        .find(|r| r.credential_id.as_bytes() == result.cred_id().as_slice())
    else {
        return Ok(Err(AssertionRejected::UnknownCredential));
    };
    // §7.2 step 6: a user handle, when present, must name the credential's owner.
    let handle_matches = credential
        .response
        .user_handle
        .as_deref()
        .is_none_or(|handle| handle == record.user_id.as_uuid().as_bytes());
    if !handle_matches {
        return Ok(Err(AssertionRejected::UserHandleMismatch));
    }
    // webauthn-rs lets a passkey "upgrade" to backup-eligible; the flag is fixed at
    // registration, and leniency for synced passkeys must not be claimable by an assertion.
    if result.backup_eligible() != record.backup_eligible {
        tracing::warn!(
            event = "backup_eligibility_changed",
            registered = record.backup_eligible,
            "assertion claims another backup eligibility than registered"
        );
        return Ok(Err(AssertionRejected::BackupEligibilityChanged));
    }
    Ok(Ok(result))
}

#[derive(Deserialize)]
struct ClientData {
    challenge: String,
}

/// Longest challenge accepted from a client (ours are 32 bytes). It becomes part of a
/// DynamoDB key, whose limit is 2048 bytes.
pub const MAX_CHALLENGE_BYTES: usize = 64;

/// WebAuthn's limit on a credential id (L3 §7.1 step 25: at most 1023 bytes).
pub const WEBAUTHN_MAX_CREDENTIAL_ID_BYTES: usize = 1023;

/// The longest credential id this service stores: its base64url form is the Credentials
/// table's sort key, which DynamoDB limits to 1024 bytes (768 bytes → 1024 characters).
/// Real authenticators' ids are 16 to a few hundred bytes.
pub const MAX_CREDENTIAL_ID_BYTES: usize = 768;

/// The presented credential id, refused before it is stored, logged or used as a key when it
/// is empty or longer than this service stores (a tighter bound than WebAuthn's 1023 bytes).
pub fn presented_credential_id(raw_id: &[u8]) -> Result<CredentialId, ApiError> {
    const _: () = assert!(MAX_CREDENTIAL_ID_BYTES.div_ceil(3) * 4 <= 1024);
    const _: () = assert!(MAX_CREDENTIAL_ID_BYTES <= WEBAUTHN_MAX_CREDENTIAL_ID_BYTES);
    if raw_id.is_empty() || raw_id.len() > MAX_CREDENTIAL_ID_BYTES {
        return Err(ApiError::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: format!(
                "credential.rawId must be 1 to {MAX_CREDENTIAL_ID_BYTES} bytes (WebAuthn allows \
                 up to {WEBAUTHN_MAX_CREDENTIAL_ID_BYTES}; this service stores ids up to \
                 {MAX_CREDENTIAL_ID_BYTES})"
            )
            .into(),
            details: Some(serde_json::json!({
                "field": "credential",
                "max_bytes": MAX_CREDENTIAL_ID_BYTES,
            })),
        });
    }
    Ok(CredentialId::from_bytes(raw_id.to_vec()))
}

/// The challenge a client signed, read from its clientDataJSON: it names the pending state to
/// consume. Trusting it is safe because verification compares it with that state.
pub fn challenge_from_client_data(client_data_json: &[u8]) -> Result<String, ApiError> {
    let data: ClientData = serde_json::from_slice(client_data_json).map_err(|_| {
        ApiError::invalid_field(
            "credential",
            "credential.response.clientDataJSON is not valid",
        )
    })?;
    let bytes = URL_SAFE_NO_PAD
        .decode(data.challenge.trim_end_matches('='))
        .map_err(|_| {
            ApiError::invalid_field(
                "credential",
                "the challenge in clientDataJSON is not base64url",
            )
        })?;
    if bytes.is_empty() || bytes.len() > MAX_CHALLENGE_BYTES {
        return Err(ApiError::invalid_field(
            "credential",
            format!("the challenge in clientDataJSON must be 1 to {MAX_CHALLENGE_BYTES} bytes"),
        ));
    }
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The attestation statement format (`fmt`: `packed`, `none`, …) of an attestation object.
pub fn attestation_format(attestation_object: &[u8]) -> Option<String> {
    let Ok(serde_cbor_2::Value::Map(map)) = serde_cbor_2::from_slice(attestation_object) else {
        return None;
    };
    map.into_iter().find_map(|(k, v)| match (k, v) {
        (serde_cbor_2::Value::Text(k), serde_cbor_2::Value::Text(v)) if k == "fmt" => Some(v),
        _ => None,
    })
}

/// The authenticator model id (AAGUID) from an attestation object; nil when absent.
pub fn aaguid(attestation_object: &[u8]) -> Uuid {
    const AT_FLAG: u8 = 0x40;
    let Ok(serde_cbor_2::Value::Map(map)) = serde_cbor_2::from_slice(attestation_object) else {
        return Uuid::nil();
    };
    let auth_data = map.iter().find_map(|(k, v)| match (k, v) {
        (serde_cbor_2::Value::Text(k), serde_cbor_2::Value::Bytes(v)) if k == "authData" => Some(v),
        _ => None,
    });
    match auth_data {
        Some(data) if data.len() >= 53 && data[32] & AT_FLAG != 0 => {
            Uuid::from_slice(&data[37..53]).unwrap_or_default()
        }
        _ => Uuid::nil(),
    }
}

/// What a new registration stores.
pub struct NewCredential<'a> {
    pub tenant: &'a Tenant,
    pub user: &'a UserRecord,
    pub method: MethodType,
    pub device_name: String,
    pub now: i64,
}

pub fn credential_record(
    new: NewCredential<'_>,
    credential: &Credential,
    attestation_object: &[u8],
) -> Result<CredentialRecord, ApiError> {
    let transports = credential
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let webauthn_credential = serde_json::to_string(credential)
        .map_err(|e| ApiError::internal(format!("serialize credential: {e}")))?;
    Ok(CredentialRecord {
        tenant_user: CredentialRecord::key_for(&new.tenant.tenant_id, &new.user.user_id),
        credential_id: CredentialId::from_bytes(credential.cred_id.to_vec()),
        tenant_id: new.tenant.tenant_id,
        user_id: new.user.user_id,
        method_type: new.method,
        device_name: new.device_name,
        aaguid: aaguid(attestation_object),
        backup_eligible: credential.backup_eligible,
        backup_state: credential.backup_state,
        transports,
        sign_count: credential.counter,
        registration_sign_count: credential.counter,
        counter_regressions: 0,
        user_verified: credential.user_verified,
        created_at: new.now,
        last_used_at: None,
        use_count: 0,
        webauthn_credential,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_read_from_client_data() {
        let json =
            br#"{"type":"webauthn.create","challenge":"AAEC_w","origin":"http://localhost:3000"}"#;
        assert_eq!(challenge_from_client_data(json).unwrap(), "AAEC_w");
        assert_eq!(
            challenge_from_client_data(b"{}").unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
        let long = format!(r#"{{"challenge":"{}"}}"#, "A".repeat(200));
        assert!(challenge_from_client_data(long.as_bytes()).is_err());
        assert!(presented_credential_id(&[0; 768]).is_ok());
        assert!(presented_credential_id(&[0; 769]).is_err());
        assert!(presented_credential_id(&[0; 1024]).is_err());
        assert!(presented_credential_id(&[]).is_err());
        assert!(challenge_from_client_data(br#"{"challenge":"**"}"#).is_err());
    }

    #[test]
    fn aaguid_of_garbage_is_nil() {
        assert_eq!(aaguid(b"not cbor"), Uuid::nil());
        assert_eq!(attestation_format(b"not cbor"), None);
    }
}
