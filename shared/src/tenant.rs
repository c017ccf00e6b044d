//! Tenants: one relying party each, with its own origins, methods and policies. Every request
//! names its tenant in `X-Tenant-ID`; it must agree with the token and with the stored records.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::error::ApiError;
use crate::ids::TenantId;

/// The two kinds of authenticator a user can enroll (seed 001 `method_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodType {
    /// A passkey: discoverable, user-verifying (platform or synced, or a roaming key with a PIN).
    WebauthnPasskey,
    /// A FIDO security key used as a second factor.
    WebauthnFido,
}

impl MethodType {
    pub const ALL: [MethodType; 2] = [MethodType::WebauthnPasskey, MethodType::WebauthnFido];

    pub fn as_str(&self) -> &'static str {
        match self {
            MethodType::WebauthnPasskey => "webauthn_passkey",
            MethodType::WebauthnFido => "webauthn_fido",
        }
    }
}

impl fmt::Display for MethodType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodType {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MethodType::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "method_type",
                    format!("method_type must be webauthn_passkey or webauthn_fido, not {s:?}"),
                )
            })
    }
}

/// Whether security-key ceremonies must verify the user (PIN/biometric) or only prefer it.
/// Passkey ceremonies always require user verification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    Required,
    #[default]
    Preferred,
}

fn default_methods() -> Vec<MethodType> {
    MethodType::ALL.to_vec()
}

fn default_challenge_timeout() -> u32 {
    300
}

fn default_token_ttl() -> u32 {
    900
}

fn default_min_authenticators() -> u32 {
    1
}

fn default_refresh_token_ttl() -> u32 {
    30 * 86_400
}

fn default_audit_retention_days() -> u32 {
    365
}

fn default_reauthentication_window() -> u32 {
    600
}

fn default_session_max_age() -> u32 {
    30 * 86_400
}

fn default_enroll_without_authenticator() -> bool {
    true
}

fn default_config_cache_secs() -> u32 {
    60
}

/// Longest [`Tenant::config_cache_secs`]: how stale a container's copy of the settings may be.
pub const MAX_CONFIG_CACHE_SECS: u32 = 300;

/// A tenant as stored in the tenants table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub name: String,
    /// WebAuthn relying party id: the registrable domain credentials are scoped to.
    pub rp_id: String,
    /// Exact origins (`scheme://host[:port]`) allowed in clientDataJSON.
    pub origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<MethodType>,
    #[serde(default)]
    pub user_verification: UserVerification,
    /// How long a ceremony may take between options and completion.
    #[serde(default = "default_challenge_timeout")]
    pub challenge_timeout_secs: u32,
    /// Lifetime of the system JWTs issued for this tenant.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u32,
    /// MFA policy: a user with fewer registered authenticators completes MFA with
    /// `mfa_setup_required` and a token that only allows enrolling more (so one can be lost).
    #[serde(default = "default_min_authenticators")]
    pub min_authenticators: u32,
    /// MFA policy: method types every user must have; a user missing one completes MFA with
    /// `enrollment_required`, no token, and a challenge that authorises exactly that enrollment.
    #[serde(default)]
    pub required_methods: Vec<MethodType>,
    /// MFA policy: a user with no authenticator at all may spend the MFA challenge (the proof
    /// of the primary login) on an enrollment grant for any enabled method type, instead of
    /// being stuck at 404 `no_credentials` (Cognito's MFA_SETUP). Tenants stored before the
    /// setting existed read as `true`.
    #[serde(default = "default_enroll_without_authenticator")]
    pub enroll_without_authenticator: bool,
    /// Passwordless login: answer an unknown e-mail exactly like a wrong credential (401
    /// `INVALID_CREDENTIAL`, after the same work) instead of 404 `USER_NOT_FOUND`, so the API
    /// does not tell which addresses have accounts. Clients must then send `X-Tenant-ID`.
    #[serde(default)]
    pub conceal_unknown_users: bool,
    /// Lifetime of a passwordless session's refresh token; each rotation starts it again.
    #[serde(default = "default_refresh_token_ttl")]
    pub refresh_token_ttl_secs: u32,
    /// How long audit records of this tenant are kept (DynamoDB TTL).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// How recent a login (`auth_time`) must be to add an authenticator when the user
    /// already has one.
    #[serde(default = "default_reauthentication_window")]
    pub reauthentication_window_secs: u32,
    /// Absolute lifetime of a passwordless session: refreshing slides the refresh token's
    /// lifetime, but never past this age of the session.
    #[serde(default = "default_session_max_age")]
    pub session_max_age_secs: u32,
    /// Whether a user may delete their last authenticator (then only backup codes or a new
    /// enrollment are left). Off by default: 409 `last_factor`.
    #[serde(default)]
    pub allow_removing_last_factor: bool,
    /// How long a function instance may use its copy of these settings before reading them
    /// again (0 to 300 s, default 60): a change takes up to this long to apply everywhere.
    #[serde(default = "default_config_cache_secs")]
    pub config_cache_secs: u32,
    /// The tenant's Cedar policy set ([`crate::policy`]), validated against the shipped schema
    /// when written. Absent: the default set rendered from `min_authenticators`,
    /// `required_methods` and `reauthentication_window_secs` ([`crate::policy::default_policies`]),
    /// which those settings then only feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<String>,
    pub created_at: i64,
}

impl Tenant {
    pub fn new(name: &str, rp_id: &str, origins: Vec<String>, created_at: i64) -> Self {
        Self {
            tenant_id: TenantId::new_random(),
            name: name.to_owned(),
            rp_id: rp_id.to_owned(),
            origins,
            methods: default_methods(),
            user_verification: UserVerification::default(),
            challenge_timeout_secs: default_challenge_timeout(),
            token_ttl_secs: default_token_ttl(),
            min_authenticators: default_min_authenticators(),
            required_methods: Vec::new(),
            enroll_without_authenticator: default_enroll_without_authenticator(),
            conceal_unknown_users: false,
            refresh_token_ttl_secs: default_refresh_token_ttl(),
            audit_retention_days: default_audit_retention_days(),
            reauthentication_window_secs: default_reauthentication_window(),
            session_max_age_secs: default_session_max_age(),
            allow_removing_last_factor: false,
            config_cache_secs: default_config_cache_secs(),
            policies: None,
            created_at,
        }
    }

    /// Seconds an audit record of this tenant is kept.
    pub fn audit_retention_secs(&self) -> i64 {
        i64::from(self.audit_retention_days) * 86_400
    }

    /// When a passwordless session opened at `created_at` has to end for good, and when its
    /// refresh token refreshed at `now` expires: the refresh lifetime, capped by that.
    pub fn session_expiry(&self, created_at: i64, now: i64) -> i64 {
        let absolute = created_at + i64::from(self.session_max_age_secs);
        (now + i64::from(self.refresh_token_ttl_secs)).min(absolute)
    }

    pub fn allows(&self, method: MethodType) -> bool {
        self.methods.contains(&method)
    }

    /// Whether a user with no authenticator may trade the MFA challenge for an enrollment
    /// grant: the setting is on and there is a method type to enroll.
    pub fn allows_first_enrollment_from_mfa(&self) -> bool {
        self.enroll_without_authenticator && !self.methods.is_empty()
    }

    /// Checks what an operator may set; the CLI calls it before writing.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("tenant name must not be empty".into());
        }
        if self.origins.is_empty() {
            return Err("at least one origin is required".into());
        }
        if !(30..=3600).contains(&self.challenge_timeout_secs) {
            return Err("challenge timeout must be between 30 and 3600 seconds".into());
        }
        if !(60..=86_400).contains(&self.token_ttl_secs) {
            return Err("token lifetime must be between 60 and 86400 seconds".into());
        }
        if self.min_authenticators > 10 {
            return Err("at most 10 authenticators can be required".into());
        }
        if !(300..=90 * 86_400).contains(&self.refresh_token_ttl_secs) {
            return Err("refresh token lifetime must be between 300 seconds and 90 days".into());
        }
        if !(60..=86_400).contains(&self.reauthentication_window_secs) {
            return Err("the re-authentication window must be between 60 seconds and 1 day".into());
        }
        if !(300..=365 * 86_400).contains(&self.session_max_age_secs) {
            return Err("the session maximum age must be between 300 seconds and 365 days".into());
        }
        if !(1..=3650).contains(&self.audit_retention_days) {
            return Err("audit retention must be between 1 and 3650 days".into());
        }
        if self.config_cache_secs > MAX_CONFIG_CACHE_SECS {
            return Err(format!(
                "the configuration cache time must be between 0 and {MAX_CONFIG_CACHE_SECS} seconds"
            ));
        }
        if let Some(m) = self.required_methods.iter().find(|m| !self.allows(**m)) {
            return Err(format!("required method {m} is not enabled"));
        }
        if let Some(text) = &self.policies {
            crate::policy::validate_policies(text)
                .map_err(|errors| format!("invalid policies: {}", errors.join("; ")))?;
        }
        self.webauthn().map(|_| ()).map_err(|e| e.to_string())
    }

    /// The relying-party configuration for this tenant's ceremonies.
    pub fn webauthn(&self) -> Result<Webauthn, ApiError> {
        let origins = self
            .origins
            .iter()
            .map(|o| Url::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::internal(format!("tenant {} origin: {e}", self.tenant_id)))?;
        let (first, rest) = origins.split_first().ok_or_else(|| {
            ApiError::internal(format!("tenant {} has no origin", self.tenant_id))
        })?;
        let mut builder = WebauthnBuilder::new(&self.rp_id, first)
            .map_err(|e| ApiError::internal(format!("tenant {} rp: {e}", self.tenant_id)))?
            .rp_name(&self.name)
            .timeout(Duration::from_secs(u64::from(self.challenge_timeout_secs)));
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        builder
            .build()
            .map_err(|e| ApiError::internal(format!("tenant {} webauthn: {e}", self.tenant_id)))
    }
}

/// `X-Tenant-ID` must name the tenant the token was issued for.
pub fn ensure_same_tenant(header: &TenantId, token: &TenantId) -> Result<(), ApiError> {
    if header == token {
        Ok(())
    } else {
        Err(ApiError::TenantMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant::new("Acme", "localhost", vec!["http://localhost:3000".into()], 0)
    }

    #[test]
    fn method_types_parse_exactly() {
        assert_eq!(
            "webauthn_fido".parse::<MethodType>().unwrap(),
            MethodType::WebauthnFido
        );
        let err = "sms".parse::<MethodType>().unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidRequest);
    }

    #[test]
    fn a_valid_tenant_builds_a_relying_party() {
        assert!(tenant().validate().is_ok());
        let mut bad = tenant();
        bad.origins = vec!["not a url".into()];
        assert!(bad.validate().is_err());
        bad.origins.clear();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn tenants_stored_before_first_enrollment_from_mfa_existed_allow_it() {
        let mut stored = serde_json::to_value(tenant()).unwrap();
        stored
            .as_object_mut()
            .unwrap()
            .remove("enroll_without_authenticator");
        let read: Tenant = serde_json::from_value(stored).unwrap();
        assert!(read.enroll_without_authenticator);
        assert!(read.allows_first_enrollment_from_mfa());
        let mut off = read.clone();
        off.enroll_without_authenticator = false;
        assert!(off.validate().is_ok());
        assert!(!off.allows_first_enrollment_from_mfa());
        let mut nothing_to_enroll = read;
        nothing_to_enroll.methods.clear();
        assert!(!nothing_to_enroll.allows_first_enrollment_from_mfa());
    }

    #[test]
    fn tenants_stored_before_policies_read_the_default_set_of_their_settings() {
        let mut stored = tenant();
        stored.min_authenticators = 2;
        stored.required_methods = vec![MethodType::WebauthnFido];
        let mut json = serde_json::to_value(&stored).unwrap();
        assert!(json.get("policies").is_none(), "absent, not null");
        json.as_object_mut().unwrap().remove("policies");
        let read: Tenant = serde_json::from_value(json).unwrap();
        assert_eq!(read.policies, None);
        let text = read.policy_text();
        assert_eq!(text, crate::policy::default_policies(&read));
        assert!(text.contains("principal.authenticator_count < 2"));
        assert!(text.contains(r#"context.method_type == "webauthn_fido""#));
    }

    #[test]
    fn an_invalid_policy_set_makes_the_tenant_invalid() {
        let mut t = tenant();
        t.policies = Some("permit(principal, action, resource);".into());
        assert!(t.validate().is_ok());
        t.policies =
            Some(r#"permit(principal, action == Passkey::Action::"fly", resource);"#.into());
        let err = t.validate().unwrap_err();
        assert!(err.starts_with("invalid policies:"), "{err}");
    }

    #[test]
    fn mismatched_tenants_are_refused() {
        let a = TenantId::new_random();
        let b = TenantId::new_random();
        assert!(ensure_same_tenant(&a, &a).is_ok());
        assert_eq!(
            ensure_same_tenant(&a, &b).unwrap_err().code(),
            crate::error::ErrorCode::TenantMismatch
        );
    }
}
