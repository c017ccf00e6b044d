//! `PATCH /v1/admin/tenants/{tenant_id}/users/{user_id}` `{"display_name"?, "groups"?}` (IAM):
//! renames the user (1–200 characters) or replaces their groups (the tenant's policies read
//! them as `principal.groups`; at least one field). The e-mail address is not changed here.
//! A change is audited (`user_updated`).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::admin::update_user;
use shared::admin::user_view;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use shared::store::UserChanges;
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    display_name: Option<String>,
    groups: Option<Vec<String>>,
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::UserUpdated, &req);
    let result = update(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn update(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let actor = iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let body: UpdateRequest = json_body(req)?;
    audit.actor = Some(actor);
    let changes = UserChanges {
        display_name: body.display_name.as_deref(),
        groups: body.groups.as_deref(),
    };
    let now = state.common.now();
    let user = update_user(
        &state.common.store,
        &tenant,
        &user,
        &changes,
        now,
        Some(audit),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &user_view(&user)))
}
