//! `GET /v1/admin/tenants/{tenant_id}/audit?user_id=&from=&to=&limit=&cursor=` (IAM): audit
//! records newest first, by tenant or user, within `from`..`to` (epoch seconds, inclusive),
//! a page at a time → `{"records": [...], "next_cursor": "…" | null}`.
//!
//! A tenant's records are sharded over days and buckets ([`shared::store::audit`]); a page may
//! hold fewer records than `limit` (even none) and still have a `next_cursor` when its budget of
//! days ran out before it filled. A `null` cursor is the end.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use shared::admin_http::{cursor_param, encode_cursor_of, iam_caller, page_limit, tenant_param};
use shared::error::ApiError;
use shared::http::{json_response, query_param, request_id, respond, ApiResult};
use shared::ids::UserId;
use shared::store::{tenant_user_key, AuditQuery, AuditRecord};
use tracing::instrument;

pub use shared::admin_http::AdminState as State;

#[instrument(skip_all, fields(request_id = %request_id(&req)))]
pub async fn handler(state: &State, req: Request) -> Response<Body> {
    respond(query(state, &req).await)
}

/// An optional query parameter, parsed or refused.
fn param<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>, ApiError> {
    query_param(req, name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::invalid_field(name, format!("{name} is malformed")))
        })
        .transpose()
}

async fn query(state: &State, req: &Request) -> ApiResult {
    iam_caller(state, req)?;
    let tenant = tenant_param(req)?;
    let user: Option<UserId> = param(req, "user_id")?;
    let (from, to): (Option<i64>, Option<i64>) = (param(req, "from")?, param(req, "to")?);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::invalid_field("to", "to must not be before from"));
        }
    }
    // Where the listing asked for resumes: the tenant, the event key below which it continues,
    // and for a user's listing the user-index key; of this tenant and user only.
    let tenant_key = tenant.to_string();
    let user_key = user.map(|user| tenant_user_key(&tenant, &user));
    let attributes: &[&str] = match user {
        Some(_) => &["tenant_id", "event_key", "tenant_user"],
        None => &["tenant_id", "event_key"],
    };
    let start = cursor_param(req, attributes, |attribute, value| match attribute {
        "tenant_id" => value == tenant_key,
        "tenant_user" => user_key.as_deref() == Some(value),
        _ => AuditRecord::is_event_key(value),
    })?;
    let before = start
        .as_ref()
        .and_then(|key| key.get("event_key"))
        .and_then(|value| value.as_s().ok())
        .cloned();
    let page = state
        .common
        .store
        .query_audit(AuditQuery {
            tenant: &tenant,
            user: user.as_ref(),
            from,
            to,
            limit: page_limit(req)?,
            before,
            now: state.common.now(),
        })
        .await?;
    let next_cursor = page.next.map(|event_key| {
        let user = user_key.as_deref().map(|key| ("tenant_user", key));
        let key = [
            ("tenant_id", tenant_key.as_str()),
            ("event_key", &event_key),
        ];
        encode_cursor_of(key.into_iter().chain(user))
    });
    // The partition key is the table's business, not the API's.
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|record| {
            let mut value = json!(record);
            if let Some(fields) = value.as_object_mut() {
                fields.remove("tenant_shard");
            }
            value
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "records": records, "next_cursor": next_cursor }),
    ))
}
