//! `POST /api/v1/auth/refresh` `{"refresh_token"}`: rotation. The presented token is replaced
//! by a new one and a new access token is issued; the replaced token's hash is remembered, and
//! if it is ever presented again the whole session is revoked (the token was copied).

use lambda_http::{Body, Request, Response};
use shared::audit::{Audit, AuditEvent};
use shared::error::ApiError;
use shared::http::{json_body, request_id, respond_v1, v1_ok, ApiResult};
use shared::session::{
    access_token, find_session, hash_refresh_token, invalid_refresh_token, match_token,
    new_refresh_token, revoke_for_reuse, FoundSession, RefreshTokenRequest, TokenData, TokenMatch,
};
use shared::store::{Rotation, RotationOutcome};
use tracing::instrument;

const MESSAGE: &str = "Token refreshed";

/// Store, verifier, clock and the signing key, built once per cold start.
pub type State = shared::state::Issuing;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::TokenRefresh, &req);
    let result = refresh(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond_v1(result)
}

async fn refresh(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let store = &common.store;
    let body: RefreshTokenRequest = json_body(req)?;
    let FoundSession {
        session,
        tenant,
        matched,
    } = find_session(store, req, &body.refresh_token, audit, now).await?;
    match matched {
        TokenMatch::Unknown => return Err(invalid_refresh_token()),
        TokenMatch::Replaced => return Err(revoke_for_reuse(store, &session, now).await?),
        TokenMatch::Current if !session.is_live(now) => return Err(invalid_refresh_token()),
        TokenMatch::Current => {}
    }

    let Some(tenant) = tenant else {
        store
            .revoke_session(&session.session_id, "account_deleted", now, None)
            .await?;
        return Err(invalid_refresh_token());
    };
    // Refreshing slides the token's lifetime, never the session's: past the tenant's
    // `session_max_age_secs` the user signs in again.
    let expires_at = tenant.session_expiry(session.created_at, now);
    if expires_at <= now {
        store
            .revoke_session(&session.session_id, "max_age", now, None)
            .await?;
        return Err(invalid_refresh_token());
    }

    // Signed before the rotation: if signing fails, the presented refresh token stays the
    // current one, so the client's retry is not mistaken for a reuse.
    let (access, _) = access_token(&state.issuer.for_request(req)?, &tenant, &session, now).await?;
    let next = new_refresh_token(&session.session_id)?;
    let record = audit
        .success(now)
        .ok_or_else(|| ApiError::internal("audit without tenant"))?;
    // The user (for the response) is read beside the rotation, which checks it still exists.
    let rotation = Rotation {
        session: &session,
        new_hash: next.hash.clone(),
        now,
        expires_at,
    };
    let (user, rotated) = tokio::try_join!(
        store.get_user(&session.tenant_id, &session.user_id),
        store.rotate_refresh_token(&rotation, &record),
    )?;
    let user = match (rotated, user) {
        (RotationOutcome::Rotated, Some(user)) => {
            audit.committed();
            user
        }
        // Erased between the two reads: the session goes with the account.
        (RotationOutcome::Rotated, None) => return Err(invalid_refresh_token()),
        (RotationOutcome::UserGone, _) => {
            store
                .revoke_session(&session.session_id, "account_deleted", now, None)
                .await?;
            return Err(invalid_refresh_token());
        }
        (RotationOutcome::NotCurrent, _) => {
            // Another request rotated (or revoked) the session between our read and write.
            // If it was rotated with this very token, the token was used twice.
            let presented = hash_refresh_token(&body.refresh_token);
            return match store.get_session(&session.session_id).await? {
                Some(stored) if match_token(&stored, &presented) == TokenMatch::Replaced => {
                    Err(revoke_for_reuse(store, &stored, now).await?)
                }
                _ => Err(invalid_refresh_token()),
            };
        }
    };
    Ok(v1_ok(
        &TokenData {
            access_token: access,
            refresh_token: next.token,
            token_type: "bearer",
            expires_in: tenant.token_ttl_secs,
            user_id: user.user_id,
            email: user.email,
            display_name: user.display_name,
            message: MESSAGE,
        },
        MESSAGE,
    ))
}
