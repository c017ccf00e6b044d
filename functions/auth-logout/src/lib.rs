//! `POST /api/v1/auth/logout` `{"refresh_token"}`: ends the session the token belongs to. Its
//! refresh tokens stop working at once; access tokens already issued stay valid until they
//! expire (they are stateless JWTs, minutes long) and carry the session id as `sid`.

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::audit::{Audit, AuditEvent};
use shared::config::ConfigError;
use shared::http::{json_body, request_id, respond_v1, v1_ok, ApiResult};
use shared::session::{
    find_session, invalid_refresh_token, revoke_for_reuse, RefreshTokenRequest, TokenMatch,
};
use shared::state::Common;
use tracing::instrument;

pub struct State {
    pub common: Common,
}

impl State {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: Common::without_tokens_from_env().await?,
        })
    }
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::Logout, &req);
    let result = logout(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond_v1(result)
}

async fn logout(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let common = &state.common;
    let now = common.now();
    let store = &common.store;
    let body: RefreshTokenRequest = json_body(req)?;
    let found = find_session(store, req, &body.refresh_token, audit, now).await?;
    let session = found.session;
    match found.matched {
        TokenMatch::Unknown => Err(invalid_refresh_token()),
        TokenMatch::Replaced => Err(revoke_for_reuse(store, &session, now).await?),
        TokenMatch::Current => {
            // Logging out twice is not an error: the session is revoked either way. The audit
            // record is written with the revocation.
            let record = audit.success(now);
            if store
                .revoke_session(&session.session_id, "logout", now, record.as_ref())
                .await?
            {
                audit.committed();
            }
            Ok(v1_ok(
                &json!({ "session_id": session.session_id, "revoked": true }),
                "Logged out",
            ))
        }
    }
}
