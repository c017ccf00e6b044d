//! Passwordless sessions: opaque refresh tokens, their hashes, and the access tokens issued
//! for a session. A refresh token is `rt1_` + base64url(session id ‖ 256 random bits): the
//! session id makes the lookup a key read, the random part is the secret. Only its SHA-256 is
//! stored; a plain hash suffices because the token carries 256 bits of entropy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::crypto::{constant_time_eq, random_bytes, sha256_hex};
use crate::error::{ApiError, ErrorCode};
use crate::http::optional_tenant_header;
use crate::ids::{SessionId, UserId};
use crate::jwt::Claims;
use crate::mfa::Minter;
use crate::store::{SessionRecord, Store};
use crate::tenant::{ensure_same_tenant, Tenant};

const REFRESH_TOKEN_PREFIX: &str = "rt1_";
const SECRET_BYTES: usize = 32;

/// A freshly minted refresh token and the hash that is stored in its place.
pub struct NewRefreshToken {
    pub token: String,
    pub hash: String,
}

impl std::fmt::Debug for NewRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewRefreshToken(..)")
    }
}

pub fn new_refresh_token(session: &SessionId) -> Result<NewRefreshToken, ApiError> {
    let mut raw = session.as_uuid().as_bytes().to_vec();
    raw.extend_from_slice(&random_bytes::<SECRET_BYTES>()?);
    let token = format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    Ok(NewRefreshToken {
        hash: hash_refresh_token(&token),
        token,
    })
}

pub fn hash_refresh_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The session a refresh token names, if it has the token's shape.
pub fn session_of(token: &str) -> Option<SessionId> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim().strip_prefix(REFRESH_TOKEN_PREFIX)?)
        .ok()?;
    if raw.len() != 16 + SECRET_BYTES {
        return None;
    }
    uuid::Uuid::from_slice(&raw[..16]).ok().map(SessionId::from)
}

/// How a presented token relates to its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMatch {
    Current,
    /// A token this session already replaced: someone kept a copy.
    Replaced,
    Unknown,
}

pub fn match_token(session: &SessionRecord, presented_hash: &str) -> TokenMatch {
    if constant_time_eq(&session.refresh_token_hash, presented_hash) {
        return TokenMatch::Current;
    }
    let replaced = session
        .previous_token_hashes
        .iter()
        .fold(false, |found, h| {
            found | constant_time_eq(h, presented_hash)
        });
    if replaced {
        TokenMatch::Replaced
    } else {
        TokenMatch::Unknown
    }
}

/// An access token (the system JWT) for a session: the login's time and methods, and `sid`.
pub async fn access_token(
    issuer: &Minter<'_>,
    tenant: &Tenant,
    session: &SessionRecord,
    now: i64,
) -> Result<(String, Claims), ApiError> {
    let mut claims = issuer.claims(tenant, session.user_id, now);
    claims.auth_time = Some(session.auth_time);
    claims.amr = session.amr.clone();
    claims.sid = Some(session.session_id);
    Ok((issuer.sign(&claims).await?, claims))
}

/// `data` of a successful passwordless login (seed 003) or refresh.
#[derive(Debug, Serialize)]
pub struct TokenData {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u32,
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub message: &'static str,
}

/// A refresh token's session, its tenant (`None` if deleted since), and how the token relates
/// to the session.
pub struct FoundSession {
    pub session: SessionRecord,
    pub tenant: Option<Tenant>,
    pub matched: TokenMatch,
}

/// The session a presented refresh token names. Fills the audit context, and checks an
/// `X-Tenant-ID` header against the session's tenant.
pub async fn find_session(
    store: &Store,
    req: &Request,
    token: &str,
    audit: &mut Audit,
    now: i64,
) -> Result<FoundSession, ApiError> {
    let header = optional_tenant_header(req)?;
    let id = session_of(token).ok_or_else(invalid_refresh_token)?;
    // With `X-Tenant-ID` (the documented client), the tenant is read beside the session.
    let (session, named) = tokio::try_join!(store.get_session(&id), async {
        match &header {
            Some(tenant) => store.tenant(tenant, now).await,
            None => Ok(None),
        }
    })?;
    let session = session.ok_or_else(invalid_refresh_token)?;
    // The session, a record this service wrote, establishes the tenant: the attempt is filed.
    audit.tenant = Some(session.tenant_id);
    audit.user = Some(session.user_id);
    audit.session = Some(id);
    audit.credential = Some(session.credential_id.clone());
    audit.device_hash = session.device_hash.clone();
    let tenant = match named {
        Some(tenant) if tenant.tenant_id == session.tenant_id => Some(tenant),
        _ => store.tenant(&session.tenant_id, now).await?,
    };
    if let Some(tenant) = &tenant {
        audit.tenant(tenant);
    }
    if let Some(header) = header {
        ensure_same_tenant(&header, &session.tenant_id)?;
    }
    let matched = match_token(&session, &hash_refresh_token(token));
    Ok(FoundSession {
        session,
        tenant,
        matched,
    })
}

/// A replaced refresh token came back: whoever holds the session's tokens cannot be told from
/// the thief, so the whole session ends.
pub async fn revoke_for_reuse(
    store: &Store,
    session: &SessionRecord,
    now: i64,
) -> Result<ApiError, ApiError> {
    store
        .revoke_session(&session.session_id, "refresh_token_reuse", now, None)
        .await?;
    tracing::warn!(
        event = "refresh_token_reuse",
        session_id = %session.session_id,
        "a replaced refresh token was presented; session revoked"
    );
    Ok(refresh_token_reused())
}

/// The `{"refresh_token"}` body of refresh and logout.
#[derive(Deserialize)]
pub struct RefreshTokenRequest {
    pub refresh_token: String,
}

pub fn invalid_refresh_token() -> ApiError {
    ApiError::unauthenticated_with(
        ErrorCode::InvalidRefreshToken,
        "the refresh token is not valid, has expired or its session has ended",
    )
}

pub fn refresh_token_reused() -> ApiError {
    ApiError::unauthenticated_with(
        ErrorCode::RefreshTokenReused,
        "this refresh token was already used; the session has been revoked, sign in again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(hash: &str, previous: &[&str]) -> SessionRecord {
        SessionRecord {
            session_id: SessionId::new_random(),
            tenant_user: String::new(),
            tenant_id: crate::ids::TenantId::new_random(),
            user_id: UserId::new_random(),
            credential_id: crate::ids::CredentialId::from_bytes(vec![1]),
            device_hash: None,
            amr: vec![],
            auth_time: 0,
            source_ip: None,
            user_agent: None,
            created_at: 0,
            last_refreshed_at: None,
            refresh_token_hash: hash.into(),
            previous_token_hashes: previous.iter().map(|s| s.to_string()).collect(),
            rotations: 0,
            expires_at: 10,
            revoked_at: None,
            revoked_reason: None,
        }
    }

    #[test]
    fn tokens_name_their_session_and_carry_256_random_bits() {
        let id = SessionId::new_random();
        let a = new_refresh_token(&id).unwrap();
        let b = new_refresh_token(&id).unwrap();
        assert_eq!(session_of(&a.token), Some(id));
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert!(!a.hash.contains(&a.token));
        assert_eq!(session_of("rt1_short"), None);
        assert_eq!(session_of(&a.token.replace("rt1_", "rt2_")), None);
        assert_eq!(session_of(&format!("{}AA", a.token)), None);
    }

    #[test]
    fn matching_tells_current_from_replaced() {
        let s = session("c", &["p1", "p2"]);
        assert_eq!(match_token(&s, "c"), TokenMatch::Current);
        assert_eq!(match_token(&s, "p2"), TokenMatch::Replaced);
        assert_eq!(match_token(&s, "x"), TokenMatch::Unknown);
    }
}
