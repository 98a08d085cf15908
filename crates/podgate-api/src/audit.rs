//! The audit routes (`GET /v1/audit` for admins, `GET /v1/sandboxes/{id}/events` for a
//! sandbox's owner), and the audit of requests forwarded to agents.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::routing::get;
use axum::{Json, Router};
use podgate_core::audit::AuditFilter;
use podgate_core::audit::Event;
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

/// The audit action of a request forwarded to a sandbox's agent; reads are not audited.
pub fn forwarded_action(method: &Method, agent_path: &str) -> Option<&'static str> {
    let p = agent_path;
    match *method {
        Method::GET if p == "/v1/processes/stream" => Some("process.start"),
        Method::GET if p.ends_with("/attach") => Some("process.attach"),
        Method::GET if p == "/v1/tunnel" => Some("tunnel.open"),
        Method::GET => None,
        _ if p.starts_with("/v1/files") => Some("file.write"),
        Method::POST if p == "/v1/processes" => Some("process.start"),
        Method::POST if p.ends_with("/signal") => Some("process.signal"),
        Method::DELETE if p.starts_with("/v1/processes/") => Some("process.kill"),
        _ => Some("sandbox.request"),
    }
}

/// Records a forwarded request that changed something, with the agent's status.
pub async fn record_forwarded(
    st: &AppState,
    caller: &podgate_core::Caller,
    sandbox_id: &str,
    method: &Method,
    agent_path: &str,
    path_and_query: &str,
    status: u16,
) {
    let Some(action) = forwarded_action(method, agent_path) else { return };
    // The query decoded, so that paths read as they are (`path=/tmp/x`, not `%2Ftmp%2Fx`).
    let detail = match path_and_query.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> =
                form_urlencoded::parse(query.as_bytes()).map(|(k, v)| format!("{k}={v}")).collect();
            format!("{method} {path} {}", pairs.join(" "))
        }
        None => format!("{method} {path_and_query}"),
    };
    let result = if status < 400 { "ok".to_string() } else { format!("http_{status}") };
    st.sandboxes.audit().record(Event::by(caller, action).sandbox(sandbox_id).result(&result).detail(detail)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_not_audited() {
        assert_eq!(forwarded_action(&Method::GET, "/v1/files"), None);
        assert_eq!(forwarded_action(&Method::GET, "/v1/files/watch"), None);
        assert_eq!(forwarded_action(&Method::PUT, "/v1/files"), Some("file.write"));
        assert_eq!(forwarded_action(&Method::POST, "/v1/files/move"), Some("file.write"));
        assert_eq!(forwarded_action(&Method::GET, "/v1/processes/stream"), Some("process.start"));
        assert_eq!(forwarded_action(&Method::DELETE, "/v1/processes/p-1"), Some("process.kill"));
        assert_eq!(forwarded_action(&Method::GET, "/v1/tunnel"), Some("tunnel.open"));
    }
}
