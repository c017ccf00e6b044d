//! Who is calling: the bearer token's user and tenant, checked against `X-Tenant-ID`.

use lambda_http::Request;

use crate::error::{ApiError, ErrorCode, Refusal};
use crate::http::{bearer_token, tenant_header};
use crate::ids::{SessionId, TenantId, UserId};
use crate::jwt::TokenVerifier;
use crate::policy::{self, AuthenticatorFacts, Facts, Question, Subject, UserFacts};
use crate::store::{ChallengeKind, ConsumeChallenge, SessionRecord, Store};
use crate::tenant::{ensure_same_tenant, MethodType, Tenant};

/// The scope of a restricted token that may only enroll MFA methods.
pub const MFA_SETUP_SCOPE: &str = "mfa_setup";

/// Which tokens an endpoint accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// Only unrestricted tokens.
    FullAccess,
    /// Unrestricted tokens and `mfa_setup` tokens (the MFA enrollment endpoints).
    MfaSetup,
}

#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantId,
    pub user: UserId,
    /// How the caller proved who they are.
    pub proof: Proof,
}

/// What authenticated a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A system JWT: the session it belongs to (`sid`, passwordless logins) and when the user
    /// authenticated (`auth_time`; absent on tokens minted by an operator).
    Token {
        session: Option<SessionId>,
        auth_time: Option<i64>,
    },
    /// An enrollment grant (MFA `enrollment_required`): good for exactly one enrollment.
    Grant,
}

impl Caller {
    /// The session the caller's token names, if any: read it in the same round trip as the
    /// records the endpoint needs, then [`Caller::check_enrollment`] judges it.
    pub async fn session(&self, store: &Store) -> Result<Option<SessionRecord>, ApiError> {
        match &self.proof {
            Proof::Token {
                session: Some(id), ..
            } => Ok(Some(
                store.get_session(id).await?.ok_or_else(session_revoked)?,
            )),
            Proof::Token { session: None, .. } | Proof::Grant => Ok(None),
        }
    }

    /// Whether this caller may add `adding` now: a live session (see
    /// [`Caller::check_session`]) and the tenant's `add_authenticator` policy (by default a
    /// recent login when the user already has an authenticator; the first enrollment and
    /// enrollment grants are not held to it).
    pub fn check_enrollment(
        &self,
        tenant: &Tenant,
        session: Option<&SessionRecord>,
        user: &UserFacts<'_>,
        adding: &AuthenticatorFacts,
        facts: &Facts,
        now: i64,
    ) -> Result<(), ApiError> {
        self.check_session(session, now)?;
        self.check_change(tenant, user, &Question::AddAuthenticator(adding), facts)
    }

    /// A token of a passwordless session works only while that session is live (logout or a
    /// detected refresh-token reuse ends it). `session` is what [`Caller::session`] read.
    pub fn check_session(&self, session: Option<&SessionRecord>, now: i64) -> Result<(), ApiError> {
        if let Some(session) = session {
            let ours = session.tenant_id == self.tenant && session.user_id == self.user;
            if !ours || !session.is_live(now) {
                return Err(session_revoked());
            }
        }
        Ok(())
    }

    /// The circumstances of this caller's request, for the tenant's policies: the age of the
    /// token's login (`auth_time`; absent on tokens minted by an operator), whether an
    /// enrollment grant stands in for a token, and the source IP.
    pub fn facts(&self, req: &Request, now: i64) -> Facts {
        let mut facts = Facts::of_request(req);
        match &self.proof {
            Proof::Token { auth_time, .. } => {
                facts.auth_age_secs = auth_time.map(|at| now.saturating_sub(at));
            }
            Proof::Grant => facts.enrollment_grant = Some(true),
        }
        facts
    }

    /// A sensitive change (adding or deleting an authenticator, regenerating backup codes):
    /// the tenant's policies decide, by default a login within its
    /// `reauthentication_window_secs`. Refused: 401 `reauthentication_required` with the
    /// policies' notices. `user` is what the endpoint read of the caller.
    pub fn check_change(
        &self,
        tenant: &Tenant,
        user: &UserFacts<'_>,
        question: &Question<'_>,
        facts: &Facts,
    ) -> Result<(), ApiError> {
        let subject = Subject::of(self.tenant, self.user, user);
        let decision = policy::decide(tenant, &subject, question, facts)?;
        if decision.allowed {
            return Ok(());
        }
        Err(ApiError::policy_denied(
            Refusal::Reauthenticate,
            "this change needs a recent login; sign in again and retry",
            decision.notices,
        ))
    }

    /// May the user enroll `adding` (the tenant's `register` policy)? Refused: 403
    /// `policy_denied` with the policies' notices. `user` is what the endpoint read of the
    /// caller.
    pub fn check_registration(
        &self,
        tenant: &Tenant,
        user: &UserFacts<'_>,
        adding: &AuthenticatorFacts,
        facts: &Facts,
    ) -> Result<(), ApiError> {
        let subject = Subject::of(self.tenant, self.user, user);
        let decision = policy::decide(tenant, &subject, &Question::Register(adding), facts)?;
        if decision.allowed {
            return Ok(());
        }
        Err(ApiError::policy_denied(
            Refusal::Forbidden,
            "the tenant's policies do not allow this registration",
            decision.notices,
        ))
    }

    /// The session the token belongs to, if any.
    pub fn session_id(&self) -> Option<SessionId> {
        match &self.proof {
            Proof::Token { session, .. } => *session,
            Proof::Grant => None,
        }
    }
}

fn session_revoked() -> ApiError {
    ApiError::unauthenticated_with(
        ErrorCode::SessionRevoked,
        "the session this token belongs to has ended; sign in again",
    )
}

/// Whether the request carries an `Authorization` header at all.
pub fn has_authorization(req: &Request) -> bool {
    req.headers()
        .contains_key(lambda_http::http::header::AUTHORIZATION)
}

/// The enrollment grant an MFA login returned with `enrollment_required` (its `challenge_id`):
/// it authorises exactly one enrollment, in place of a token: of the method type it names, or
/// of any type (the endpoint still checks the tenant enables it) when it names none — the
/// grant MFA options give a user who has no authenticator yet.
/// `consume` takes it for good (registration completion); otherwise it is only checked.
pub async fn enrollment_grant(
    req: &Request,
    store: &Store,
    grant_id: &str,
    method: MethodType,
    consume: bool,
    now: i64,
) -> Result<Caller, ApiError> {
    let id = crate::mfa::parse_challenge_id(grant_id)?;
    let header = tenant_header(req)?;
    let key = ChallengeKind::Enrollment.key(&id);
    let grant = if consume {
        // The header is part of the condition: a request naming another tenant leaves the
        // grant for its rightful use.
        store
            .consume_challenge(ConsumeChallenge {
                key: &key,
                kind: ChallengeKind::Enrollment,
                tenant: Some(&header),
                user: None,
                method_type: Some(method),
                // A grant that names no method type is good for any.
                any_method_if_unset: true,
                require_state: false,
                now,
            })
            .await?
    } else {
        None
    };
    let grant = match grant {
        Some(grant) => grant,
        None => {
            let live = store
                .get_challenge(&key, now)
                .await?
                .filter(|g| {
                    g.kind == ChallengeKind::Enrollment
                        && g.method_type.is_none_or(|granted| granted == method)
                })
                .ok_or_else(|| {
                    ApiError::not_found(
                        ErrorCode::EnrollmentNotFound,
                        "no enrollment grant for this method type (it may have expired or been used)",
                    )
                })?;
            ensure_same_tenant(&header, &live.tenant_id)?;
            if consume {
                // It matched after all: consumed by a concurrent request in between.
                return Err(ApiError::not_found(
                    ErrorCode::EnrollmentNotFound,
                    "no enrollment grant for this method type (it may have expired or been used)",
                ));
            }
            live
        }
    };
    Ok(Caller {
        tenant: grant.tenant_id,
        user: grant.user_id,
        proof: Proof::Grant,
    })
}

/// 401 for a bad token, 400 for a missing or malformed `X-Tenant-ID`, 403 `tenant_mismatch`
/// when the header names another tenant, 403 `insufficient_scope` for a restricted token.
pub fn authenticate(
    req: &Request,
    verifier: &TokenVerifier,
    now: i64,
    accepts: Accepts,
) -> Result<Caller, ApiError> {
    let claims = verifier.verify_for(req, bearer_token(req)?, now)?;
    let header = tenant_header(req)?;
    ensure_same_tenant(&header, &claims.tenant_id)?;
    let allowed = match (claims.scope.as_deref(), accepts) {
        (None, _) => true,
        (Some(MFA_SETUP_SCOPE), Accepts::MfaSetup) => true,
        (Some(_), Accepts::MfaSetup | Accepts::FullAccess) => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            code: ErrorCode::InsufficientScope,
            message: "this token only allows MFA enrollment".into(),
        });
    }
    Ok(Caller {
        tenant: claims.tenant_id,
        user: claims.sub,
        proof: Proof::Token {
            session: claims.sid,
            auth_time: claims.auth_time,
        },
    })
}
