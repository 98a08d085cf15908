//! The E2B control plane's metrics and logs of a sandbox: translations of the core's `Observe`
//! service (the agent's resource samples; the sandbox's output as the runtime keeps it).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use podgate_core::observe::LogLine;
use podgate_types::metrics::{MetricsQuery, MetricsSample};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::control::ApiCaller;
use crate::error::Result;
use crate::{E2bError, E2bState};

type St = State<Arc<E2bState>>;

/// Most sandboxes one `/sandboxes/metrics` call may name.
const MAX_IDS: usize = 100;
/// E2B's page of log lines.
const MAX_LOGS: usize = 1000;

pub fn routes() -> Router<Arc<E2bState>> {
    Router::new()
        .route("/sandboxes/metrics", get(latest))
        .route("/sandboxes/{id}/metrics", get(metrics))
        .route("/sandboxes/{id}/logs", get(logs_v1))
        .route("/v2/sandboxes/{id}/logs", get(logs_v2))
}

/// E2B's `SandboxMetric`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    timestamp_unix: i64,
    cpu_count: u32,
    cpu_used_pct: f64,
    mem_used: u64,
    mem_total: u64,
    mem_cache: u64,
    disk_used: u64,
    disk_total: u64,
}

impl From<MetricsSample> for Metric {
    fn from(s: MetricsSample) -> Metric {
        Metric {
            timestamp: OffsetDateTime::from_unix_timestamp(s.timestamp).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            timestamp_unix: s.timestamp,
            cpu_count: s.cpu_count,
            cpu_used_pct: (s.cpu_used_pct * 100.0).round() / 100.0,
            mem_used: s.mem_used,
            mem_total: s.mem_total,
            mem_cache: s.mem_cache,
            disk_used: s.disk_used,
            disk_total: s.disk_total,
        }
    }
}

#[derive(Deserialize)]
struct Range {
    start: Option<i64>,
    end: Option<i64>,
}

/// `GET /sandboxes/{id}/metrics?start=&end=` (Unix seconds): the samples in that range, oldest
/// first; none while the sandbox is paused.
async fn metrics(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Query(r): Query<Range>,
) -> Result<Json<Vec<Metric>>> {
    if let (Some(start), Some(end)) = (r.start, r.end)
        && start > end
    {
        return Err(E2bError::bad_request(format!("start {start} is after end {end}")));
    }
    let q = MetricsQuery { start: r.start, end: r.end };
    let samples = st.sandboxes.observe().samples(&caller, &id, &q).await?;
    Ok(Json(samples.into_iter().map(Metric::from).collect()))
}

#[derive(Deserialize)]
struct Ids {
    sandbox_ids: Option<String>,
}

/// E2B's `SandboxesWithMetrics`.
#[derive(Serialize)]
struct Latest {
    sandboxes: BTreeMap<String, Metric>,
}

/// `GET /sandboxes/metrics?sandbox_ids=a,b`: the newest sample of each named sandbox that has one.
async fn latest(State(st): St, ApiCaller(caller): ApiCaller, Query(q): Query<Ids>) -> Result<Json<Latest>> {
    let ids: Vec<&str> = q.sandbox_ids.as_deref().unwrap_or("").split(',').filter(|s| !s.is_empty()).collect();
    if ids.is_empty() {
        return Err(E2bError::bad_request("sandbox_ids is required: a comma-separated list of sandbox ids"));
    }
    if ids.len() > MAX_IDS {
        return Err(E2bError::bad_request(format!("at most {MAX_IDS} sandbox_ids")));
    }
    // The agent samples every 5 s: the last half minute holds the newest sample (several, should
    // one be late), without reading the whole hour the agent keeps.
    let recent = MetricsQuery { start: Some(OffsetDateTime::now_utc().unix_timestamp() - 30), end: None };
    let mut sandboxes = BTreeMap::new();
    for id in ids {
        let samples = st.sandboxes.observe().samples(&caller, id, &recent).await?;
        if let Some(s) = samples.into_iter().last() {
            sandboxes.insert(id.to_string(), Metric::from(s));
        }
    }
    Ok(Json(Latest { sandboxes }))
}

/// E2B's `SandboxLog`.
#[derive(Serialize)]
struct Log {
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    line: String,
}

/// E2B's `SandboxLogEntry`: every line of a sandbox's output is `info`.
#[derive(Serialize)]
struct LogEntry {
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    level: &'static str,
    message: String,
    fields: BTreeMap<String, String>,
}

impl From<&LogLine> for LogEntry {
    fn from(l: &LogLine) -> LogEntry {
        LogEntry { timestamp: l.timestamp, level: "info", message: l.line.clone(), fields: BTreeMap::new() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogsV1 {
    logs: Vec<Log>,
    log_entries: Vec<LogEntry>,
}

#[derive(Deserialize)]
struct V1Query {
    /// Milliseconds since the epoch.
    start: Option<i64>,
    limit: Option<usize>,
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `GET /sandboxes/{id}/logs?start=&limit=` (deprecated in E2B): the output from `start`
/// (milliseconds), oldest first.
async fn logs_v1(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<V1Query>,
) -> Result<Json<LogsV1>> {
    let lines = st.sandboxes.observe().logs(&caller, &id, podgate_core::observe::MAX_LOG_LINES).await?;
    let limit = q.limit.unwrap_or(MAX_LOGS);
    let picked: Vec<&LogLine> =
        lines.iter().filter(|l| q.start.is_none_or(|s| millis(l.timestamp) >= s)).take(limit).collect();
    Ok(Json(LogsV1 {
        logs: picked.iter().map(|l| Log { timestamp: l.timestamp, line: l.line.clone() }).collect(),
        log_entries: picked.iter().map(|l| LogEntry::from(*l)).collect(),
    }))
}

#[derive(Deserialize)]
struct V2Query {
    /// Milliseconds since the epoch.
    cursor: Option<i64>,
    limit: Option<usize>,
    direction: Option<String>,
    level: Option<String>,
    search: Option<String>,
}

#[derive(Serialize)]
struct LogsV2 {
    logs: Vec<LogEntry>,
}

/// `GET /v2/sandboxes/{id}/logs`: the output from `cursor` (milliseconds) forward, oldest first,
/// or up to it backward, newest first; `level` above `info` matches nothing, `search` is a
/// case-sensitive substring.
async fn logs_v2(
    State(st): St,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<V2Query>,
) -> Result<Json<LogsV2>> {
    let limit = q.limit.unwrap_or(MAX_LOGS);
    if limit > MAX_LOGS {
        return Err(E2bError::bad_request(format!("limit {limit} is over {MAX_LOGS}")));
    }
    let backward = match q.direction.as_deref() {
        None | Some("forward") => false,
        Some("backward") => true,
        Some(other) => return Err(E2bError::bad_request(format!("direction {other:?}: forward or backward"))),
    };
    let shown = match q.level.as_deref() {
        None | Some("debug") | Some("info") => true,
        Some("warn") | Some("error") => false,
        Some(other) => return Err(E2bError::bad_request(format!("level {other:?}: debug, info, warn or error"))),
    };
    if q.search.as_ref().is_some_and(|s| s.len() > 256) {
        return Err(E2bError::bad_request("search is longer than 256 characters"));
    }
    let lines = st.sandboxes.observe().logs(&caller, &id, podgate_core::observe::MAX_LOG_LINES).await?;
    let matching =
        lines.iter().filter(|_| shown).filter(|l| q.search.as_deref().is_none_or(|s| l.line.contains(s))).filter(|l| {
            match (q.cursor, backward) {
                (None, _) => true,
                (Some(c), false) => millis(l.timestamp) >= c,
                (Some(c), true) => millis(l.timestamp) <= c,
            }
        });
    let logs: Vec<LogEntry> = if backward {
        matching.rev().take(limit).map(LogEntry::from).collect()
    } else {
        matching.take(limit).map(LogEntry::from).collect()
    };
    Ok(Json(LogsV2 { logs }))
}
