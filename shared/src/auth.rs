//! Who is calling: the bearer token's user and tenant, checked against `X-Tenant-ID`.

use lambda_http::Request;

use crate::error::ApiError;
use crate::http::{bearer_token, tenant_header};
use crate::ids::{TenantId, UserId};
use crate::jwt::TokenVerifier;
use crate::store::{ChallengeKind, ConsumeChallenge, Store};
use crate::tenant::{ensure_same_tenant, MethodType};

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
}

/// Whether the request carries an `Authorization` header at all.
pub fn has_authorization(req: &Request) -> bool {
    req.headers()
        .contains_key(lambda_http::http::header::AUTHORIZATION)
}

/// The enrollment grant an MFA login returned with `enrollment_required` (its `challenge_id`):
/// it authorises exactly one enrollment of one method type, in place of a token.
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
        store
            .consume_challenge(ConsumeChallenge {
                key: &key,
                kind: ChallengeKind::Enrollment,
                tenant: None,
                user: None,
                method_type: Some(method),
                require_state: false,
                now,
            })
            .await?
    } else {
        store
            .get_challenge(&key, now)
            .await?
            .filter(|g| g.kind == ChallengeKind::Enrollment && g.method_type == Some(method))
    };
    let grant = grant.ok_or_else(|| {
        ApiError::not_found(
            "enrollment_not_found",
            "no enrollment grant for this method type (it may have expired or been used)",
        )
    })?;
    ensure_same_tenant(&header, &grant.tenant_id)?;
    Ok(Caller {
        tenant: grant.tenant_id,
        user: grant.user_id,
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
    let claims = verifier.verify(bearer_token(req)?, now)?;
    let header = tenant_header(req)?;
    ensure_same_tenant(&header, &claims.tenant_id)?;
    let allowed = match (claims.scope.as_deref(), accepts) {
        (None, _) => true,
        (Some(MFA_SETUP_SCOPE), Accepts::MfaSetup) => true,
        (Some(_), Accepts::MfaSetup | Accepts::FullAccess) => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            code: "insufficient_scope",
            message: "this token only allows MFA enrollment".into(),
        });
    }
    Ok(Caller {
        tenant: claims.tenant_id,
        user: claims.sub,
    })
}
