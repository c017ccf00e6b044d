//! Audit of authentication outcomes. A handler fills an [`Audit`] as it learns who is logging
//! in (tenant, user, credential, device, session); at the end every outcome, success or each
//! failure kind, becomes one record in the audit table and one structured log line with the
//! same fields. Tokens, codes and assertions are never part of it.
//!
//! Without a known tenant (an unknown challenge or e-mail and no `X-Tenant-ID`) there is no
//! tenant to file the record under: the outcome is logged only.

use lambda_http::Request;

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::http::{client_info, request_id, ApiResult, ClientInfo, Surface};
use crate::ids::{CredentialId, SessionId, TenantId, UserId};
use crate::state::Common;
use crate::store::{AuditRecord, Store};
use crate::tenant::Tenant;

/// Retention when the tenant's own setting is not at hand (its record could not be read).
pub const DEFAULT_RETENTION_SECS: i64 = 365 * 86_400;

/// What was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    PasswordlessLogin,
    MfaWebauthn,
    MfaBackupCode,
    /// MFA options for a user with no authenticator: the MFA challenge traded for a grant to
    /// enroll the first one.
    MfaFirstEnrollment,
    TokenRefresh,
    Logout,
    CredentialRenamed,
    CredentialDeleted,
    BackupCodesRegenerated,
    SessionRevoked,
    UserCreated,
    /// An operator changed a user's display name or groups.
    UserUpdated,
    UserDeleted,
    CredentialRegistered,
}

impl AuditEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditEvent::PasswordlessLogin => "passwordless_login",
            AuditEvent::MfaWebauthn => "mfa_webauthn",
            AuditEvent::MfaBackupCode => "mfa_backup_code",
            AuditEvent::MfaFirstEnrollment => "mfa_first_enrollment",
            AuditEvent::TokenRefresh => "token_refresh",
            AuditEvent::Logout => "logout",
            AuditEvent::CredentialRenamed => "credential_renamed",
            AuditEvent::CredentialDeleted => "credential_deleted",
            AuditEvent::BackupCodesRegenerated => "backup_codes_regenerated",
            AuditEvent::SessionRevoked => "session_revoked",
            AuditEvent::UserCreated => "user_created",
            AuditEvent::UserUpdated => "user_updated",
            AuditEvent::UserDeleted => "user_deleted",
            AuditEvent::CredentialRegistered => "credential_registered",
        }
    }

    /// The surface the event happens on: its records carry codes as that surface writes them.
    pub fn surface(&self) -> Surface {
        match self {
            AuditEvent::PasswordlessLogin | AuditEvent::TokenRefresh | AuditEvent::Logout => {
                Surface::V1
            }
            AuditEvent::MfaWebauthn
            | AuditEvent::MfaBackupCode
            | AuditEvent::MfaFirstEnrollment
            | AuditEvent::CredentialRenamed
            | AuditEvent::CredentialDeleted
            | AuditEvent::BackupCodesRegenerated
            | AuditEvent::SessionRevoked
            | AuditEvent::UserCreated
            | AuditEvent::UserUpdated
            | AuditEvent::UserDeleted
            | AuditEvent::CredentialRegistered => Surface::Seed,
        }
    }
}

/// The context of one attempt, filled in as the handler learns it.
#[derive(Clone, Debug)]
pub struct Audit {
    pub event: AuditEvent,
    pub tenant: Option<TenantId>,
    pub user: Option<UserId>,
    pub method: Option<String>,
    pub credential: Option<CredentialId>,
    pub device_hash: Option<String>,
    pub session: Option<SessionId>,
    /// Who made an account change (`user:<id>`), when it is not simply the user logging in.
    pub actor: Option<String>,
    /// What an account change was made to (a credential id, a session id, `backup_codes`).
    pub target: Option<String>,
    pub retention_secs: i64,
    pub client: ClientInfo,
    pub request_id: String,
    /// The success record was written with the handler's change ([`Audit::committed`]).
    pub committed: bool,
    /// The failure record was written with the handler's last write
    /// ([`Audit::failure_committed`]).
    pub failure_committed: bool,
}

impl Audit {
    pub fn new(event: AuditEvent, req: &Request) -> Self {
        Self {
            event,
            tenant: None,
            user: None,
            method: None,
            credential: None,
            device_hash: None,
            session: None,
            actor: None,
            target: None,
            retention_secs: DEFAULT_RETENTION_SECS,
            client: client_info(req),
            request_id: request_id(req),
            committed: false,
            failure_committed: false,
        }
    }

    /// The tenant is known: its id, and its retention setting.
    pub fn tenant(&mut self, tenant: &Tenant) {
        self.tenant = Some(tenant.tenant_id);
        self.retention_secs = tenant.audit_retention_secs();
    }

    /// The record of this attempt succeeding, for a handler to write in the same transaction
    /// as its change (no extra round trip); it then calls [`Audit::committed`].
    pub fn success(&self, now: i64) -> Option<AuditRecord> {
        self.record(Ok(()), now)
    }

    /// The success record is stored: concluding with success writes nothing more.
    pub fn committed(&mut self) {
        self.committed = true;
    }

    /// The record of the failure the handler is about to return was stored with its last
    /// write (e.g. a counted wrong code): concluding with that failure writes nothing more.
    pub fn failure_committed(&mut self) {
        self.failure_committed = true;
    }

    /// The record of this attempt ending with `outcome`; `None` without a tenant.
    pub fn record(&self, outcome: Result<(), &ApiError>, now: i64) -> Option<AuditRecord> {
        let tenant = self.tenant?;
        let (outcome, code) = self.outcome(outcome);
        let event_key = AuditRecord::event_key(now);
        Some(AuditRecord {
            tenant_id: tenant,
            tenant_shard: AuditRecord::shard_key(&tenant, &event_key),
            event_key,
            tenant_user: self
                .user
                .map(|user| crate::store::tenant_user_key(&tenant, &user)),
            user_id: self.user,
            at: now,
            time: rfc3339(now),
            event: self.event.as_str().to_owned(),
            outcome: outcome.to_owned(),
            code,
            method: self.method.clone(),
            credential_id: self.credential.clone(),
            device_hash: self.device_hash.clone(),
            session_id: self.session,
            actor: self.actor.clone(),
            target: self.target.clone(),
            ip: self.client.ip.clone(),
            user_agent: self.client.user_agent.clone(),
            request_id: self.request_id.clone(),
            expires_at: now + self.retention_secs,
        })
    }

    fn outcome(&self, outcome: Result<(), &ApiError>) -> (&'static str, Option<String>) {
        match outcome {
            Ok(()) => ("success", None),
            Err(err) => ("failure", Some(self.event.surface().code(err.code()))),
        }
    }

    /// The structured log line of an outcome (always written, tenant or not).
    pub fn log(&self, outcome: Result<(), &ApiError>) {
        let (result, code) = self.outcome(outcome);
        let text = |v: Option<String>| v.unwrap_or_default();
        tracing::info!(
            audit = true,
            event = self.event.as_str(),
            outcome = result,
            code = text(code),
            tenant_id = text(self.tenant.map(|t| t.to_string())),
            user_id = text(self.user.map(|u| u.to_string())),
            method = text(self.method.clone()),
            credential_id = text(self.credential.as_ref().map(|c| c.to_string())),
            device_hash = text(self.device_hash.clone()),
            session_id = text(self.session.map(|s| s.to_string())),
            actor = text(self.actor.clone()),
            target = text(self.target.clone()),
            ip = text(self.client.ip.clone()),
            user_agent = text(self.client.user_agent.clone()),
            "authentication audit"
        );
    }

    /// Logs the outcome and stores its record. A failed write is logged, never returned: the
    /// client's answer does not depend on the audit trail being reachable, and waits for it
    /// at most one attempt of the store client ([`Store::attempt_timeout`]): the write comes
    /// after the handler's own work, and when that work met an unavailable store (and so used
    /// up to a whole call's time) an unbounded write would push the 503 toward the Lambda
    /// timeout.
    pub async fn write(&self, store: &Store, outcome: Result<(), &ApiError>, now: i64) {
        self.log(outcome);
        if (outcome.is_ok() && self.committed) || (outcome.is_err() && self.failure_committed) {
            return;
        }
        let Some(record) = self.record(outcome, now) else {
            return;
        };
        let limit = store.attempt_timeout();
        let written = tokio::time::timeout(limit, store.put_audit_record(&record));
        let error = match written.await {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("timed out after {limit:?}"),
        };
        tracing::error!(error = %error, event = self.event.as_str(), "audit record not written");
    }
}

impl Audit {
    /// Audits a handler's result (success or the error the client gets).
    pub async fn conclude(&self, common: &Common, result: &ApiResult) {
        let outcome = result.as_ref().map(|_| ());
        self.write(&common.store, outcome, common.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(event: AuditEvent) -> Audit {
        Audit {
            event,
            tenant: Some(TenantId::new_random()),
            user: None,
            method: None,
            credential: None,
            device_hash: None,
            session: None,
            actor: None,
            target: None,
            retention_secs: 86_400,
            client: ClientInfo::default(),
            request_id: "r".into(),
            committed: false,
            failure_committed: false,
        }
    }

    #[test]
    fn codes_follow_the_surface_style() {
        let err = ApiError::not_found(crate::error::ErrorCode::UserNotFound, "no");
        let v1 = audit(AuditEvent::PasswordlessLogin)
            .record(Err(&err), 10)
            .unwrap();
        assert_eq!(v1.code.as_deref(), Some("USER_NOT_FOUND"));
        assert_eq!(v1.outcome, "failure");
        assert_eq!(v1.expires_at, 10 + 86_400);
        let mfa = audit(AuditEvent::MfaWebauthn)
            .record(Err(&err), 10)
            .unwrap();
        assert_eq!(mfa.code.as_deref(), Some("user_not_found"));
        let ok = audit(AuditEvent::MfaWebauthn).record(Ok(()), 10).unwrap();
        assert_eq!((ok.outcome.as_str(), ok.code), ("success", None));
    }

    #[test]
    fn no_tenant_no_record() {
        let mut a = audit(AuditEvent::Logout);
        a.tenant = None;
        assert!(a.record(Ok(()), 0).is_none());
    }
}
