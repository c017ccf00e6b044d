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
    AuthenticationResult, Credential, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, WebauthnError,
};
use webauthn_rs_proto::{
    AuthenticatorAttachment, CredentialProtectionPolicy, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialHints, PublicKeyCredentialRequestOptions, ResidentKeyRequirement,
};

use crate::error::ApiError;
use crate::ids::CredentialId;
use crate::store::{CredentialRecord, CredentialUse, UserRecord};
use crate::tenant::{MethodType, Tenant, UserVerification};

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

/// Verifies the attestation against the pending state.
pub fn finish_registration(
    tenant: &Tenant,
    state: &RegistrationState,
    credential: &RegisterPublicKeyCredential,
) -> Result<Credential, ApiError> {
    let webauthn = tenant.webauthn()?;
    let result = match state {
        RegistrationState::Passkey(s) => webauthn
            .finish_passkey_registration(credential, s)
            .map(Credential::from),
        RegistrationState::SecurityKey(s) => webauthn
            .finish_securitykey_registration(credential, s)
            .map(Credential::from),
    };
    result.map_err(|err| {
        tracing::info!(error = %err, "attestation rejected");
        match err {
            // webauthn-rs's name for "this credential is in excludeCredentials".
            WebauthnError::CredentialAlteredAlgFromRequest => ApiError::conflict(
                "credential_already_registered",
                "this authenticator is already registered for the user",
            ),
            WebauthnError::UserNotVerified => ApiError::bad_request(
                "invalid_attestation",
                "the authenticator did not verify the user, which this enrollment requires",
            ),
            _ => ApiError::bad_request(
                "invalid_attestation",
                "the attestation could not be verified against the pending enrollment",
            ),
        }
    })
}

/// webauthn-rs state of an authentication in progress.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "api", content = "state", rename_all = "snake_case")]
pub enum AuthenticationState {
    /// User verification required.
    Passkey(PasskeyAuthentication),
    /// User verification preferred.
    SecurityKey(SecurityKeyAuthentication),
}

/// A passkey whose counter may legitimately go backwards: backup-eligible (synced), or one that
/// registered with counter 0 as synced passkeys do. Security keys never qualify: a counter that
/// does not advance on one of them suggests a cloned authenticator.
pub fn may_be_synced(record: &CredentialRecord) -> bool {
    record.backup_eligible
        || (record.method_type == MethodType::WebauthnPasskey
            && record.registration_sign_count == 0)
}

/// The webauthn-rs credential of a record, with the record's live counter and flags. For a
/// passkey that may be synced the counter is left at 0, so webauthn-rs accepts any counter and
/// [`counter_regressed`] decides (and audits) instead.
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

/// What an accepted assertion changes on its credential. A counter that did not advance is
/// allowed here only for a passkey that may be synced (webauthn-rs rejects it on a security
/// key as possibly cloned), and is logged and counted.
pub fn credential_use(
    record: &CredentialRecord,
    result: &AuthenticationResult,
    now: i64,
) -> CredentialUse {
    let regressed = counter_regressed(record, result);
    if regressed {
        tracing::warn!(
            event = "counter_regression_allowed",
            stored = record.sign_count,
            presented = result.counter(),
            "signature counter did not advance on a passkey that may be synced"
        );
    }
    CredentialUse {
        sign_count: record.sign_count.max(result.counter()),
        backup_eligible: result.backup_eligible(),
        backup_state: result.backup_state(),
        counter_regressed: regressed,
        now,
    }
}

/// The RFC 8176 method of the key: `swk` for a synced (backup-eligible) passkey, else `hwk`.
pub fn key_amr(record: &CredentialRecord, backup_eligible: bool) -> &'static str {
    if backup_eligible && record.method_type == MethodType::WebauthnPasskey {
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

/// Verifies an assertion against the state: signature, client data (type, challenge, origin),
/// RP id, allowed credential, user verification and counter.
pub fn finish_authentication(
    tenant: &Tenant,
    state: &AuthenticationState,
    credential: &PublicKeyCredential,
) -> Result<AuthenticationResult, ApiError> {
    let webauthn = tenant.webauthn()?;
    let result = match state {
        AuthenticationState::Passkey(s) => webauthn.finish_passkey_authentication(credential, s),
        AuthenticationState::SecurityKey(s) => {
            webauthn.finish_securitykey_authentication(credential, s)
        }
    };
    result.map_err(|err| {
        tracing::info!(error = %err, "assertion rejected");
        match err {
            WebauthnError::CredentialPossibleCompromise => ApiError::InvalidCredential {
                code: "possible_cloned_authenticator",
                message: "the authenticator's signature counter went backwards; it may be cloned"
                    .into(),
            },
            WebauthnError::UserNotVerified => ApiError::InvalidCredential {
                code: "user_verification_required",
                message: "the authenticator did not verify the user, which this login requires"
                    .into(),
            },
            _ => ApiError::InvalidCredential {
                code: "invalid_credential",
                message: "the credential could not be verified".into(),
            },
        }
    })
}

#[derive(Deserialize)]
struct ClientData {
    challenge: String,
}

/// Longest challenge accepted from a clientDataJSON. This service issues 32-byte challenges; a
/// longer one names no pending ceremony, and a key built from a very long one is more than
/// DynamoDB accepts (2048 bytes), which would fail the request as a server error.
pub const MAX_CHALLENGE_BYTES: usize = 64;

/// Longest credential id accepted as `rawId`. WebAuthn allows 1023 bytes, but the id's
/// base64url form is the credentials table's sort key, at most 1024 bytes in DynamoDB.
pub const MAX_CREDENTIAL_ID_BYTES: usize = 768;

/// The credential id a client presents as `rawId`. An empty or longer one can name no stored
/// credential, and DynamoDB refuses it as a key (a server error instead of the client's).
pub fn presented_credential_id(raw_id: &[u8]) -> Result<CredentialId, ApiError> {
    if raw_id.is_empty() || raw_id.len() > MAX_CREDENTIAL_ID_BYTES {
        return Err(ApiError::invalid_field(
            "credential",
            format!("credential.rawId must be 1 to {MAX_CREDENTIAL_ID_BYTES} bytes"),
        ));
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
    if bytes.len() > MAX_CHALLENGE_BYTES {
        return Err(ApiError::invalid_field(
            "credential",
            "the challenge in clientDataJSON is longer than any this service issues",
        ));
    }
    Ok(URL_SAFE_NO_PAD.encode(bytes))
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
            "invalid_request"
        );
        assert!(challenge_from_client_data(br#"{"challenge":"**"}"#).is_err());
        let longest = format!(r#"{{"challenge":"{}"}}"#, "A".repeat(86));
        assert!(challenge_from_client_data(longest.as_bytes()).is_ok());
        let longer = format!(r#"{{"challenge":"{}"}}"#, "A".repeat(88));
        assert!(challenge_from_client_data(longer.as_bytes()).is_err());
    }

    #[test]
    fn presented_credential_ids_fit_a_store_key() {
        assert!(presented_credential_id(&[]).is_err());
        assert!(presented_credential_id(&[7; MAX_CREDENTIAL_ID_BYTES]).is_ok());
        assert!(presented_credential_id(&[7; MAX_CREDENTIAL_ID_BYTES + 1]).is_err());
        assert_eq!(
            presented_credential_id(&[7; MAX_CREDENTIAL_ID_BYTES])
                .unwrap()
                .to_base64url()
                .len(),
            1024
        );
    }

    #[test]
    fn aaguid_of_garbage_is_nil() {
        assert_eq!(aaguid(b"not cbor"), Uuid::nil());
    }
}
