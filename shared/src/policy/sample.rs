//! A sample request as JSON, for trying a policy set without storing it
//! (`authctl tenant policy test --request R.json`):
//!
//! ```json
//! {
//!   "action": "register",
//!   "user": { "authenticators": ["webauthn_passkey"], "has_backup_codes": true,
//!             "groups": ["admins"] },
//!   "authenticator": { "method_type": "webauthn_fido", "aaguid": "…",
//!                      "attestation_format": "packed", "backup_eligible": false,
//!                      "user_verified": true },
//!   "method_type": "webauthn_fido",
//!   "context": { "uv": true, "device_trusted": false, "auth_age_secs": 30,
//!                "enrollment_grant": false, "source_ip": "192.0.2.1" }
//! }
//! ```
//!
//! `authenticator` is required by the actions whose resource is an authenticator (`register`,
//! `bypass_mfa`, `add_authenticator`, `delete_authenticator`), `method_type` by
//! `waive_method`.

use std::net::IpAddr;

use serde::Deserialize;
use uuid::Uuid;

use super::{Action, AuthenticatorFacts, Decision, Facts, Question, Subject};
use crate::ids::{TenantId, UserId};
use crate::tenant::MethodType;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleUser {
    #[serde(default)]
    pub authenticators: Vec<MethodType>,
    #[serde(default)]
    pub has_backup_codes: Option<bool>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleAuthenticator {
    pub method_type: MethodType,
    #[serde(default)]
    pub aaguid: Option<Uuid>,
    #[serde(default)]
    pub attestation_format: Option<String>,
    #[serde(default)]
    pub backup_eligible: Option<bool>,
    #[serde(default)]
    pub user_verified: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleContext {
    #[serde(default)]
    pub uv: Option<bool>,
    #[serde(default)]
    pub device_trusted: Option<bool>,
    #[serde(default)]
    pub auth_age_secs: Option<i64>,
    #[serde(default)]
    pub enrollment_grant: Option<bool>,
    #[serde(default)]
    pub source_ip: Option<IpAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    pub action: String,
    #[serde(default)]
    pub user: SampleUser,
    #[serde(default)]
    pub authenticator: Option<SampleAuthenticator>,
    #[serde(default)]
    pub method_type: Option<MethodType>,
    #[serde(default)]
    pub context: SampleContext,
}

impl SampleRequest {
    /// Evaluates this request against `text` (parsed now, not cached, not stored).
    pub fn evaluate(&self, tenant: TenantId, text: &str) -> Result<Decision, String> {
        let action = Action::ALL
            .into_iter()
            .find(|a| a.as_str() == self.action)
            .ok_or_else(|| format!("unknown action {:?}", self.action))?;
        let authenticator = self.authenticator.as_ref().map(|a| AuthenticatorFacts {
            id: "sample".to_owned(),
            method_type: Some(a.method_type),
            aaguid: a.aaguid,
            attestation_format: a.attestation_format.clone(),
            backup_eligible: a.backup_eligible,
            user_verified: a.user_verified,
        });
        let question = question(action, authenticator.as_ref(), self.method_type)?;
        let subject = Subject {
            tenant,
            user: UserId::new_random(),
            authenticators: self.user.authenticators.clone(),
            has_backup_codes: self.user.has_backup_codes,
            groups: self.user.groups.clone(),
        };
        let facts = Facts {
            uv: self.context.uv,
            device_trusted: self.context.device_trusted,
            auth_age_secs: self.context.auth_age_secs,
            enrollment_grant: self.context.enrollment_grant,
            source_ip: self.context.source_ip,
        };
        super::decide_with_text(text, &subject, &question, &facts).map_err(|e| e.to_string())
    }
}

fn question(
    action: Action,
    authenticator: Option<&AuthenticatorFacts>,
    method: Option<MethodType>,
) -> Result<Question<'_>, String> {
    let needs = |what: &str| format!("action {} needs \"{what}\"", action.as_str());
    let authenticator = || authenticator.ok_or_else(|| needs("authenticator"));
    Ok(match action {
        Action::Register => Question::Register(authenticator()?),
        Action::FullAccess => Question::FullAccess,
        Action::WaiveMethod => Question::WaiveMethod(method.ok_or_else(|| needs("method_type"))?),
        Action::BypassMfa => Question::BypassMfa(authenticator()?),
        Action::AddAuthenticator => Question::AddAuthenticator(authenticator()?),
        Action::DeleteAuthenticator => Question::DeleteAuthenticator(authenticator()?),
        Action::RegenerateBackupCodes => Question::RegenerateBackupCodes,
    })
}
