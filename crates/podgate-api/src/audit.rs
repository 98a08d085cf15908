//! The audit routes: `GET /v1/audit` for admins, `GET /v1/sandboxes/{id}/events` for a
//! sandbox's owner.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use podgate_core::audit::AuditFilter;
use podgate_types::api::AuditList;
use serde::Deserialize;

use crate::extract::Authed;
use crate::{ApiError, AppState};

/// Audit routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/audit", get(audit)).route("/v1/sandboxes/{id}/events", get(sandbox_events))
}

/// Filters of `GET /v1/audit`; times are unix milliseconds.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events of this user id.
    user: Option<String>,
    /// Events about this sandbox id.
    sandbox: Option<String>,
    /// Events of this action, e.g. `sandbox.create`.
    action: Option<String>,
    /// At or after this time.
    since: Option<i64>,
    /// Before this time.
    until: Option<i64>,
    /// At most this many, newest first [default and maximum: 1000].
    limit: Option<i64>,
}

/// Audit events, newest first (admins).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let f = AuditFilter {
        actor_id: q.user,
        sandbox_id: q.sandbox,
        action: q.action,
        since: q.since,
        until: q.until,
        oldest_first: false,
        limit: q.limit.unwrap_or(podgate_core::audit::MAX_EVENTS),
    };
    Ok(Json(AuditList { events: st.sandboxes.audit().query(&caller, f).await? }))
}

/// The recorded life of one sandbox, oldest first, by its id (also once deleted).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/events", tag = "audit",
    params(("id" = String, Path, description = "sandbox id")),
    responses((status = 200, body = AuditList), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn sandbox_events(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<AuditList>, ApiError> {
    Ok(Json(AuditList { events: st.sandboxes.audit().sandbox_events(&caller, &id).await? }))
}
