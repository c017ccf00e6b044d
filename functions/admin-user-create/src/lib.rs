//! `POST /v1/admin/tenants/{tenant_id}/users` `{"email", "display_name", "groups"?}` (IAM):
//! creates a user;
//! the address is normalised and unique within the tenant (409 `already_exists`). Audited.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::admin::user_view;
use shared::admin::{create_user, NewUser};
use shared::admin_http::{iam_caller, tenant_param};
use shared::audit::{Audit, AuditEvent};
use shared::http::{json_body, json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[derive(Deserialize)]
struct CreateRequest {
    email: String,
    display_name: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    let mut audit = Audit::new(AuditEvent::UserCreated, &req);
    let result = create(state, &req, &mut audit).await;
    audit.conclude(&state.common, &result).await;
    respond(result)
}

async fn create(state: &State, req: &Request, audit: &mut Audit) -> ApiResult {
    let now = state.common.now();
    let actor = iam_caller(state, req)?;
    let tenant = tenant_param(req)?;
    let body: CreateRequest = json_body(req)?;
    // create_user files the attempt once it has read the tenant.
    let mut filed = audit.clone();
    filed.actor = Some(actor);
    let user = create_user(
        &state.common.store,
        &tenant,
        &NewUser {
            email: &body.email,
            display_name: &body.display_name,
            groups: &body.groups,
        },
        now,
        Some(&mut filed),
    )
    .await?;
    *audit = filed;
    Ok(json_response(StatusCode::OK, &user_view(&user)))
}
