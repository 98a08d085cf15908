//! Terminal routes: open (create or select) a terminal and get a session token, list, delete,
//! share read-only, exchange a share token, the JWKS, and signing-key rotation.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use podgate_core::sessions::Jwks;
use podgate_core::terminals::IssuedToken;
use podgate_types::terminal::{
    ExchangeShare, OpenTerminalRequest, ShareToken, TerminalInfo, TerminalSession, TerminalSpec,
};

use crate::extract::{ApiJson, Authed};
use crate::{ApiError, AppState};

/// Terminal routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sandboxes/{id}/terminals", post(open_terminal).get(list_terminals))
        .route("/v1/sandboxes/{id}/terminals/{tid}", delete(delete_terminal))
        .route("/v1/sandboxes/{id}/terminals/{tid}/share", post(share_terminal).delete(revoke_shares))
        .route("/v1/sandboxes/{id}/terminals/{tid}/connect", get(crate::gateway::connect))
        .route("/v1/terminal-sessions", post(exchange_share))
        .route("/v1/admin/signing-keys", post(rotate_keys))
        .route("/.well-known/jwks.json", get(jwks))
}

fn session(sandbox_id: String, t: IssuedToken) -> TerminalSession {
    TerminalSession {
        url: format!("/v1/sandboxes/{sandbox_id}/terminals/{}/connect", t.claims.tid),
        sandbox_id,
        terminal_id: t.claims.tid,
        token: t.token,
        expires_at: t.claims.exp,
        read_only: t.claims.read_only,
    }
}

/// Starts a terminal (or selects one with `terminal_id`) and returns a single-use session token
/// for its WebSocket.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/terminals", tag = "terminals", request_body = OpenTerminalRequest,
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 201, body = TerminalSession), (status = 404, body = podgate_types::api::ErrorBody),
        (status = 409, body = podgate_types::api::ErrorBody, description = "sandbox not running"),
        (status = 422, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn open_terminal(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OpenTerminalRequest>,
) -> Result<(StatusCode, Json<TerminalSession>), ApiError> {
    let tid = match req.terminal_id {
        Some(t) => t,
        None => {
            let spec = TerminalSpec {
                cmd: req.cmd,
                cols: req.cols,
                rows: req.rows,
                term: req.term,
                env: req.env,
                cwd: req.cwd,
            };
            st.terminals.create(&caller, &id, &spec).await?.1.id
        }
    };
    let (sandbox_id, issued) = st.terminals.session(&caller, &id, &tid, req.read_only).await?;
    Ok((StatusCode::CREATED, Json(session(sandbox_id, issued))))
}

/// The sandbox's terminals.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/terminals", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = Vec<TerminalInfo>), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_terminals(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Vec<TerminalInfo>>, ApiError> {
    Ok(Json(st.terminals.list(&caller, &id).await?))
}

/// Ends a terminal and its processes.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/terminals/{tid}", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name"), ("tid" = String, Path, description = "terminal id")),
    responses((status = 204), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_terminal(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, tid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.terminals.delete(&caller, &id, &tid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A read-only share token for a terminal, valid for an hour and exchangeable for session tokens.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/terminals/{tid}/share", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name"), ("tid" = String, Path, description = "terminal id")),
    responses((status = 201, body = ShareToken), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn share_terminal(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, tid)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ShareToken>), ApiError> {
    let t = st.terminals.share(&caller, &id, &tid).await?;
    Ok((StatusCode::CREATED, Json(ShareToken { share_token: t.token, expires_at: t.claims.exp })))
}

/// Revokes every read-only share link of a terminal issued so far (links also die with the API
/// token that asked for them).
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/terminals/{tid}/share", tag = "terminals",
    params(("id" = String, Path, description = "sandbox id or name"), ("tid" = String, Path, description = "terminal id")),
    responses((status = 204, description = "revoked"), (status = 404, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_shares(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
    Path((id, tid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.terminals.revoke_shares(&caller, &id, &tid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchanges a share token for a read-only, single-use session token (no bearer token needed).
#[utoipa::path(post, path = "/v1/terminal-sessions", tag = "terminals", request_body = ExchangeShare,
    responses((status = 201, body = TerminalSession), (status = 401, body = podgate_types::api::ErrorBody)))]
pub async fn exchange_share(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ExchangeShare>,
) -> Result<(StatusCode, Json<TerminalSession>), ApiError> {
    match st.terminals.exchange_share(&req.share_token).await {
        Ok(t) => Ok((StatusCode::CREATED, Json(session(t.claims.sid.clone(), t)))),
        Err(r) => {
            st.metrics.gateway_refused(r.as_str());
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                format!("share token refused: {}", r.as_str()),
            ))
        }
    }
}

/// Public keys that verify session tokens.
pub async fn jwks(State(st): State<Arc<AppState>>) -> Result<Json<Jwks>, ApiError> {
    Ok(Json(st.terminals.tokens().jwks().await?))
}

/// Admin: makes a new signing key current; the previous keys keep verifying for two hours.
#[utoipa::path(post, path = "/v1/admin/signing-keys", tag = "admin",
    responses((status = 201, description = "the new key id"), (status = 403, body = podgate_types::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_keys(
    State(st): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let kid = st.terminals.rotate_keys(&caller).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "kid": kid }))))
}
