//! `GET /v1/admin/tenants/{tenant_id}/users/{user_id}/credentials` (IAM): the user's
//! credentials, as the user sees them in self-service.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::account::CredentialView;
use shared::admin_http::{iam_caller, tenant_param, user_param};
use shared::error::{found, ErrorCode};
use shared::http::{json_response, request_id, respond, ApiResult};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(list(state, &req).await)
}

async fn list(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let (tenant, user) = (tenant_param(req)?, user_param(req)?);
    let store = &state.common.store;
    let (record, credentials) = tokio::try_join!(
        store.get_user(&tenant, &user),
        store.list_credentials(&tenant, &user),
    )?;
    found(record, ErrorCode::UserNotFound, "the user does not exist")?;
    let credentials: Vec<CredentialView> = credentials.iter().map(CredentialView::from).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "credentials": credentials }),
    ))
}
