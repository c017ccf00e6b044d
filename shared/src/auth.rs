//! Who is calling: the bearer token's user and tenant, checked against `X-Tenant-ID`.

use lambda_http::Request;

use crate::error::ApiError;
use crate::http::{bearer_token, tenant_header};
use crate::ids::{TenantId, UserId};
use crate::jwt::{Claims, TokenVerifier};
use crate::tenant::ensure_same_tenant;

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
    pub claims: Claims,
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
        claims,
    })
}
