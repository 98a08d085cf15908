//! The E2B control plane (`spec/openapi.yml` of the E2B SDKs): create, connect, list, get, kill,
//! timeouts, pause and resume of sandboxes, and the template list, each a translation into the
//! core's `Sandboxes` service that podgate's own API uses. Callers authenticate with a podgate API
//! token in `X-API-Key` (an `e2b_` prefix is allowed, for clients that insist on one) or as a
//! bearer token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use podgate_core::Caller;
use podgate_core::access_tokens::Scope;
use podgate_types::api::{CreateSandboxRequest, ExtendRequest, NetworkMode, Sandbox};
use podgate_types::state::SandboxState;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::{E2bError, E2bState};

type St = State<Arc<E2bState>>;

/// The E2B sandbox timeout when a create does not give one (seconds).
const DEFAULT_TIMEOUT: u64 = 300;
/// The template E2B's SDKs ask for by default: podgate's default image.
const DEFAULT_TEMPLATE: &str = "base";

pub fn routes() -> Router<Arc<E2bState>> {
    Router::new()
        .route("/sandboxes", post(create).get(list_v1))
        .route("/v2/sandboxes", post(create).get(list_v2))
        .route("/sandboxes/{id}", get(detail).delete(kill))
        .route("/sandboxes/{id}/timeout", post(set_timeout))
        .route("/sandboxes/{id}/refreshes", post(refresh))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(resume))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/templates", get(templates))
        .route("/health", get(|| async { StatusCode::OK }))
        .merge(crate::observe::routes())
        .fallback(unsupported)
}

async fn unsupported(req: axum::extract::Request) -> Response {
    E2bError::unsupported(&format!("{} {}", req.method(), req.uri().path())).into_response()
}

/// A caller of the control plane.
pub struct ApiCaller(pub Caller);

impl FromRequestParts<Arc<E2bState>> for ApiCaller {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<E2bState>) -> Result<Self> {
        let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let token = header("x-api-key")
            .or_else(|| header("authorization").and_then(|h| h.strip_prefix("Bearer ")))
            .map(str::trim)
            .ok_or_else(|| E2bError::unauthenticated("missing X-API-Key: set E2B_API_KEY to a podgate API token"))?;
        let token = token.strip_prefix("e2b_").unwrap_or(token);
        let source = crate::source(&parts.extensions);
        let caller = st.auth.authenticate(token, source.as_deref()).await?;
        st.sandboxes.limiter().user(&caller).await?;
        Ok(ApiCaller(caller))
    }
}

/// A JSON body whose rejection is an E2B error; an empty body is `{}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Response> {
        let bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.map_err(|_| {
            // The rest of the body is unread: the connection closes after the answer.
            let mut r = E2bError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than 1 MiB").into_response();
            r.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            r
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| E2bError::bad_request(format!("invalid body: {e}")).into_response())
    }
}

/// `NewSandbox` (v1) and `NewSandboxV2`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: String,
    timeout: Option<u64>,
    #[serde(default)]
    auto_pause: bool,
    #[serde(default)]
    auto_resume: Option<serde_json::Value>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
    #[serde(default, rename = "allow_internet_access")]
    allow_internet_access: Option<bool>,
    #[serde(default)]
    network: Option<NetworkConfig>,
    #[serde(default)]
    mcp: Option<serde_json::Value>,
    #[serde(default)]
    iam: Option<serde_json::Value>,
    #[serde(default)]
    volume_mounts: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NetworkConfig {
    #[serde(default)]
    allow_out: Vec<String>,
    #[serde(default)]
    deny_out: Vec<String>,
    #[serde(default)]
    allow_public_traffic: Option<bool>,
    #[serde(default)]
    egress_proxy: Option<serde_json::Value>,
    #[serde(default)]
    rules: Option<serde_json::Value>,
}

/// The E2B `Sandbox` (create and connect answers).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct E2bSandbox {
    #[serde(rename = "templateID")]
    template_id: String,
    #[serde(rename = "sandboxID")]
    sandbox_id: String,
    #[serde(rename = "clientID")]
    client_id: &'static str,
    alias: String,
    envd_version: &'static str,
    envd_access_token: String,
    traffic_access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
}

/// The E2B `SandboxDetail` and `ListedSandbox`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "templateID")]
    template_id: String,
    #[serde(rename = "sandboxID")]
    sandbox_id: String,
    #[serde(rename = "clientID")]
    client_id: &'static str,
    alias: String,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    end_at: OffsetDateTime,
    cpu_count: u32,
    #[serde(rename = "memoryMB")]
    memory_mb: u64,
    #[serde(rename = "diskSizeMB")]
    disk_size_mb: u64,
    state: &'static str,
    metadata: BTreeMap<String, String>,
    envd_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    envd_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
}

/// E2B's state of a podgate sandbox: `paused`, or `running` for every other live state.
fn e2b_state(s: SandboxState) -> &'static str {
    if s == SandboxState::Paused { "paused" } else { "running" }
}

/// The podgate template or image an E2B template id names: E2B's default is podgate's default
/// image, a podgate template's name is that template, anything else an image.
async fn template_request(st: &E2bState, caller: &Caller, template: &str) -> Result<CreateSandboxRequest> {
    if template.is_empty() {
        return Err(E2bError::bad_request("templateID is required"));
    }
    if template == DEFAULT_TEMPLATE {
        return Ok(CreateSandboxRequest::default());
    }
    let templates = st.sandboxes.templates().list(caller).await?;
    if templates.iter().any(|t| t.name == template) {
        return Ok(CreateSandboxRequest { template: Some(template.to_string()), ..Default::default() });
    }
    Ok(CreateSandboxRequest { image: Some(template.to_string()), ..Default::default() })
}

fn refuse_unsupported(n: &NewSandbox) -> Result<()> {
    let set = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| !v.is_null());
    if n.auto_pause {
        return Err(E2bError::unsupported("autoPause (pausing a sandbox at its timeout)"));
    }
    if n.auto_resume
        .as_ref()
        .is_some_and(|v| v.as_bool() == Some(true) || v.get("enabled").and_then(|e| e.as_bool()) == Some(true))
    {
        return Err(E2bError::unsupported("autoResume (podgate resumes an idle-paused sandbox on use anyway)"));
    }
    if set(&n.mcp) {
        return Err(E2bError::unsupported("mcp"));
    }
    if set(&n.iam) {
        return Err(E2bError::unsupported("iam"));
    }
    if n.volume_mounts.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(E2bError::unsupported("volumeMounts (podgate sandboxes have a persistent /workspace instead)"));
    }
    if let Some(net) = &n.network
        && (!net.allow_out.is_empty() || !net.deny_out.is_empty() || set(&net.egress_proxy) || set(&net.rules))
    {
        return Err(E2bError::unsupported("per-sandbox network rules (podgate's egress rules are the admin's)"));
    }
    if n.network.as_ref().and_then(|n| n.allow_public_traffic) == Some(true) {
        return Err(E2bError::unsupported("allowPublicTraffic (sandbox ports always need a token)"));
    }
    Ok(())
}

async fn answer(st: &E2bState, caller: &Caller, sb: &Sandbox) -> Result<E2bSandbox> {
    let (envd_access_token, traffic_access_token) = st.sandboxes.access_tokens().issue_both(caller, &sb.id).await?;
    Ok(E2bSandbox {
        template_id: sb.image.clone(),
        sandbox_id: sb.id.clone(),
        client_id: "podgate",
        alias: sb.name.clone(),
        envd_version: crate::ENVD_VERSION,
        envd_access_token,
        traffic_access_token,
        domain: st.cfg.domain.clone(),
    })
}

fn detail_of(st: &E2bState, sb: &Sandbox, token: Option<String>) -> Detail {
    let mib = |m: Option<podgate_types::MemorySize>| m.map_or(0, |m| m.0 >> 20);
    Detail {
        template_id: sb.image.clone(),
        sandbox_id: sb.id.clone(),
        client_id: "podgate",
        alias: sb.name.clone(),
        started_at: sb.created_at,
        end_at: sb.expires_at.unwrap_or(sb.created_at),
        cpu_count: sb.cpu.map_or(1, |c| c.ceil().max(1.0) as u32),
        memory_mb: mib(sb.memory),
        disk_size_mb: mib(sb.disk),
        state: e2b_state(sb.state),
        metadata: sb.labels.clone(),
        envd_version: crate::ENVD_VERSION,
        envd_access_token: token,
        domain: st.cfg.domain.clone(),
    }
}

/// `POST /sandboxes`, `POST /v2/sandboxes`.
async fn create(State(st): St, ApiCaller(caller): ApiCaller, Body(n): Body<NewSandbox>) -> Result<Response> {
    refuse_unsupported(&n)?;
    let mut req = template_request(&st, &caller, &n.template_id).await?;
    req.ttl_seconds = Some(n.timeout.unwrap_or(DEFAULT_TIMEOUT));
    req.env.extend(n.env_vars);
    req.labels.extend(n.metadata);
    if n.allow_internet_access == Some(false) {
        req.network = Some(NetworkMode::None);
    }
    let sb = st.sandboxes.create(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(answer(&st, &caller, &sb).await?)).into_response())
}

/// `GET /sandboxes/{id}`.
async fn detail(State(st): St, ApiCaller(caller): ApiCaller, Path(id): Path<String>) -> Result<Json<Detail>> {
    let sb = st.sandboxes.get(&caller, &id).await?;
    let token = st.sandboxes.access_tokens().issue(&caller, &sb.id, Scope::Daemon).await?;
    Ok(Json(detail_of(&st, &sb, Some(token))))
}

/// `DELETE /sandboxes/{id}`.
async fn kill(State(st): St, ApiCaller(caller): ApiCaller, Path(id): Path<String>) -> Result<StatusCode> {
    st.sandboxes.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Timeout {
    timeout: Option<u64>,
}

/// `POST /sandboxes/{id}/timeout`: the sandbox ends `timeout` seconds from now.
async fn set_timeout(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Body(t): Body<Timeout>,
) -> Result<StatusCode> {
    let ttl = t.timeout.ok_or_else(|| E2bError::bad_request("timeout is required"))?;
    let req = ExtendRequest { ttl_seconds: Some(ttl), idle_timeout_seconds: None };
    st.sandboxes.lifecycle().extend(&caller, &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves the sandbox's end to `seconds` from now if that is later than its end now.
async fn extend_to_at_least(st: &E2bState, caller: &Caller, sb: &Sandbox, seconds: u64) -> Result<()> {
    let wanted = OffsetDateTime::now_utc() + time::Duration::seconds(seconds.min(i64::MAX as u64) as i64);
    if sb.expires_at.is_some_and(|end| end >= wanted) {
        return Ok(());
    }
    let req = ExtendRequest { ttl_seconds: Some(seconds), idle_timeout_seconds: None };
    st.sandboxes.lifecycle().extend(caller, &sb.id, req).await?;
    Ok(())
}

#[derive(Deserialize)]
struct Refresh {
    duration: Option<u64>,
}

/// `POST /sandboxes/{id}/refreshes`: keeps the sandbox alive `duration` seconds more (E2B's
/// default: its timeout again).
async fn refresh(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Body(r): Body<Refresh>,
) -> Result<StatusCode> {
    let sb = st.sandboxes.get(&caller, &id).await?;
    extend_to_at_least(&st, &caller, &sb, r.duration.unwrap_or(DEFAULT_TIMEOUT)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sandboxes/{id}/pause`.
async fn pause(State(st): St, ApiCaller(caller): ApiCaller, Path(id): Path<String>) -> Result<StatusCode> {
    let sb = st.sandboxes.get(&caller, &id).await?;
    if sb.state == SandboxState::Paused {
        return Err(E2bError::new(StatusCode::CONFLICT, format!("sandbox {id} is already paused")));
    }
    st.sandboxes.lifecycle().pause(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sandboxes/{id}/resume` (deprecated in E2B): a paused sandbox only.
async fn resume(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Body(t): Body<Timeout>,
) -> Result<Response> {
    let sb = st.sandboxes.get(&caller, &id).await?;
    if sb.state != SandboxState::Paused {
        return Err(E2bError::new(StatusCode::CONFLICT, format!("sandbox {id} is not paused")));
    }
    let sb = st.sandboxes.lifecycle().resume(&caller, &id).await?;
    if let Some(t) = t.timeout {
        extend_to_at_least(&st, &caller, &sb, t).await?;
    }
    Ok((StatusCode::CREATED, Json(answer(&st, &caller, &sb).await?)).into_response())
}

/// `POST /sandboxes/{id}/connect` and `/v2/…`: resumes a paused sandbox (201) or answers a
/// running one (200); `timeout` only ever lengthens its life.
async fn connect(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Body(t): Body<Timeout>,
) -> Result<Response> {
    let sb = st.sandboxes.get(&caller, &id).await?;
    let (status, sb) = if sb.state == SandboxState::Paused {
        (StatusCode::CREATED, st.sandboxes.lifecycle().resume(&caller, &id).await?)
    } else {
        (StatusCode::OK, sb)
    };
    if let Some(t) = t.timeout {
        extend_to_at_least(&st, &caller, &sb, t).await?;
    }
    Ok((status, Json(answer(&st, &caller, &sb).await?)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    metadata: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
    next_token: Option<String>,
}

/// The caller's sandboxes that match `q`'s metadata and state filters, newest first.
async fn matching(st: &E2bState, caller: &Caller, q: &ListQuery) -> Result<Vec<Sandbox>> {
    let wanted: Vec<(String, String)> = match q.metadata.as_deref() {
        Some(m) => url::form_urlencoded::parse(m.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        None => Vec::new(),
    };
    let states: Option<Vec<&str>> = q.state.as_deref().map(|s| s.split(',').map(str::trim).collect());
    if let Some(bad) = states.iter().flatten().find(|s| !matches!(**s, "running" | "paused")) {
        return Err(E2bError::bad_request(format!("unknown state {bad:?}: running or paused")));
    }
    let mut list: Vec<Sandbox> = st
        .sandboxes
        .list(caller)
        .await?
        .into_iter()
        .filter(|sb| sb.owner == caller.user_id || caller.role != podgate_core::Role::Admin)
        .filter(|sb| wanted.iter().all(|(k, v)| sb.labels.get(k) == Some(v)))
        .filter(|sb| states.as_ref().is_none_or(|s| s.contains(&e2b_state(sb.state))))
        .collect();
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(list)
}

/// `GET /sandboxes` (deprecated in E2B): the running sandboxes.
async fn list_v1(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Query(mut q): Query<ListQuery>,
) -> Result<Json<Vec<Detail>>> {
    q.state = Some("running".into());
    let list = matching(&st, &caller, &q).await?;
    Ok(Json(list.iter().map(|sb| detail_of(&st, sb, None)).collect()))
}

/// `GET /v2/sandboxes`: filtered by metadata and state, a page at a time (`limit`, and
/// `nextToken` from the `X-Next-Token` header).
async fn list_v2(State(st): St, ApiCaller(caller): ApiCaller, Query(q): Query<ListQuery>) -> Result<Response> {
    let list = matching(&st, &caller, &q).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let start = match q.next_token.as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse::<usize>().map_err(|_| E2bError::bad_request(format!("invalid nextToken {t:?}")))?,
    };
    let page: Vec<Detail> = list.iter().skip(start).take(limit).map(|sb| detail_of(&st, sb, None)).collect();
    let mut headers = HeaderMap::new();
    if start + page.len() < list.len()
        && let Ok(v) = HeaderValue::from_str(&(start + page.len()).to_string())
    {
        headers.insert("x-next-token", v);
    }
    Ok((headers, Json(page)).into_response())
}

/// E2B's `Template` as far as podgate knows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct E2bTemplate {
    #[serde(rename = "templateID")]
    template_id: String,
    #[serde(rename = "buildID")]
    build_id: String,
    cpu_count: u32,
    #[serde(rename = "memoryMB")]
    memory_mb: u64,
    #[serde(rename = "diskSizeMB")]
    disk_size_mb: u64,
    public: bool,
    aliases: Vec<String>,
    names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_spawned_at: Option<OffsetDateTime>,
    spawn_count: u64,
    build_count: u64,
    envd_version: &'static str,
    build_status: &'static str,
}

/// `GET /templates`: podgate's templates, and `base` (the default image).
async fn templates(State(st): St, ApiCaller(caller): ApiCaller) -> Result<Json<Vec<E2bTemplate>>> {
    let list = st.sandboxes.templates().list(&caller).await?;
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let entry = |name: &str, created: OffsetDateTime, cpu: Option<f64>, memory: Option<u64>| E2bTemplate {
        template_id: name.to_string(),
        build_id: name.to_string(),
        cpu_count: cpu.map_or(1, |c| c.ceil().max(1.0) as u32),
        memory_mb: memory.map_or(0, |m| m >> 20),
        disk_size_mb: 0,
        public: false,
        aliases: vec![name.to_string()],
        names: vec![name.to_string()],
        created_at: created,
        updated_at: created,
        created_by: None,
        last_spawned_at: None,
        spawn_count: 0,
        build_count: 1,
        envd_version: crate::ENVD_VERSION,
        build_status: "ready",
    };
    let mut out = vec![entry(DEFAULT_TEMPLATE, epoch, None, None)];
    out.extend(list.iter().map(|t| entry(&t.name, t.created_at, t.request.cpu, t.request.memory.map(|m| m.0))));
    Ok(Json(out))
}
