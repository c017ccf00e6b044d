//! The end of a passwordless login. The handler has already consumed the challenge (a
//! conditional delete that returned it: of any number of concurrent completions exactly one
//! gets it, so a replay can never open a second session). Then one transaction records the
//! credential's use, judged against its live counter, trusts the device, opens the session and
//! writes the audit record: all of them or none. (Should that transaction fail, the login fails
//! with its challenge spent; the client begins again.)

use super::credentials::credential_use_write;
use super::{
    cancelled, to_item, transact_put, AuditRecord, CounterRule, CredentialRecord, CredentialUse,
    DeviceSighting, SessionRecord, Store, StoreError, UseOutcome,
};

pub struct LoginCommit<'a> {
    pub credential: &'a CredentialRecord,
    pub used: &'a CredentialUse,
    pub device: &'a DeviceSighting,
    pub session: &'a SessionRecord,
    pub audit: &'a AuditRecord,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginCommitOutcome {
    Committed,
    /// The credential was deleted in the meantime: nothing was written.
    CredentialGone,
    /// The credential's live counter is not below the presented one (possible clone): nothing
    /// was written.
    CounterNotAdvanced,
}

impl Store {
    pub async fn commit_login(
        &self,
        commit: &LoginCommit<'_>,
    ) -> Result<LoginCommitOutcome, StoreError> {
        let mut used = commit.used.clone();
        loop {
            match self.login_transaction(commit, &used).await? {
                true => return Ok(LoginCommitOutcome::Committed),
                // A synced passkey whose higher counter was written meanwhile: a regression.
                false if used.rule == CounterRule::AdvanceIfHigher => {
                    used = used.as_regression();
                }
                false => {
                    return Ok(match self.use_failure(commit.credential).await? {
                        UseOutcome::CounterNotAdvanced => LoginCommitOutcome::CounterNotAdvanced,
                        UseOutcome::Recorded | UseOutcome::CredentialGone => {
                            LoginCommitOutcome::CredentialGone
                        }
                    })
                }
            }
        }
    }

    /// The login's writes in one transaction, retried on conflicts with concurrent ones.
    /// `false` when the credential's condition failed (nothing was written).
    async fn login_transaction(
        &self,
        commit: &LoginCommit<'_>,
        used: &CredentialUse,
    ) -> Result<bool, StoreError> {
        let tables = self.tables();
        let items = vec![
            credential_use_write(commit.credential, used).transact_update(&tables.credentials)?,
            commit.device.upsert().transact_update(&tables.devices)?,
            transact_put(
                &tables.sessions,
                to_item(commit.session)?,
                "attribute_not_exists(session_id)",
            )?,
            transact_put(
                &tables.audit,
                to_item(commit.audit)?,
                "attribute_not_exists(event_key)",
            )?,
        ];
        // Only the credential's condition (item 0) can fail in a way that is an answer; the
        // session and audit keys are new, so a failure there is a fault.
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(0) => Ok(false),
            Err(i) => Err(cancelled(vec![format!(
                "ConditionalCheckFailed at item {i}"
            )])),
        }
    }
}
