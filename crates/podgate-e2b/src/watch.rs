//! envd's directory watches translated into podgate's agent watch WebSocket: `WatchDir` streams
//! the events, and the polling watchers (`CreateWatcher`, `GetWatcherEvents`, `RemoveWatcher`,
//! which the synchronous SDKs use) buffer them on this server until they are fetched.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use futures_util::StreamExt as _;
use hyper::Method;
use podgate_types::agent::paths;
use podgate_types::files::{FileInfo, WatchEvent as AgentEvent, WatchKind};
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{ConnectError, Sender, StreamRequest, Unary, end_only, server_stream};
use crate::daemon::Daemon;
use crate::filesystem::{entry, with_query};
use crate::proto::{
    CreateWatcherResponse, Empty, FilesystemEvent, WatchEvent, WatchRequest, WatcherEventsResponse, WatcherRequest,
};

/// Most events a polling watcher keeps between two fetches (older ones are dropped).
const MAX_BUFFERED: usize = 10_000;
/// Most polling watchers one sandbox may have.
const MAX_WATCHERS_PER_SANDBOX: usize = 64;
/// A polling watcher nobody fetched from for this long is removed.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// The polling watchers of this server.
#[derive(Default)]
pub struct Watchers(Mutex<HashMap<String, Watcher>>);

struct Watcher {
    sandbox: String,
    owner: String,
    events: Arc<Mutex<VecDeque<FilesystemEvent>>>,
    task: tokio::task::JoinHandle<()>,
    fetched: Instant,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watcher>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watched directory, absolute, checked to be a directory.
async fn watched_dir(d: &Daemon, path: &str) -> Result<String, ConnectError> {
    if path.is_empty() {
        return Err(ConnectError::invalid("`path` is required"));
    }
    let info: FileInfo = d.call(Method::GET, &with_query(paths::FILES_STAT, &[("path", path)]), None).await?;
    if info.kind != podgate_types::files::FileKind::Dir {
        return Err(ConnectError::invalid(format!("{path} is not a directory")));
    }
    Ok(info.path)
}

async fn open(d: &Daemon, dir: &str, recursive: bool) -> Result<podgate_core::agent_client::AgentSocket, ConnectError> {
    let path =
        with_query(paths::FILES_WATCH, &[("path", dir), ("recursive", if recursive { "true" } else { "false" })]);
    d.agent()
        .await?
        .websocket(&path, "podgate.watch")
        .await
        .map_err(|e| ConnectError::new("unavailable", e.to_string()))
}

/// `path` relative to `dir` (envd names events so).
fn relative(dir: &str, path: &str) -> String {
    path.strip_prefix(dir).map(|p| p.trim_start_matches('/')).filter(|p| !p.is_empty()).unwrap_or(path).to_string()
}

/// The envd events of one agent event: a rename is the old name's `RENAME` and the new name's
/// `CREATE`, as inotify-based envd reports it.
async fn translate(d: &Daemon, dir: &str, e: AgentEvent, include_entry: bool) -> Vec<FilesystemEvent> {
    let one = |path: &str, kind| FilesystemEvent { name: relative(dir, path), kind, entry: None };
    let mut out = match e.kind {
        WatchKind::Create => vec![one(&e.path, "EVENT_TYPE_CREATE")],
        WatchKind::Modify => vec![one(&e.path, "EVENT_TYPE_WRITE")],
        WatchKind::Delete => vec![one(&e.path, "EVENT_TYPE_REMOVE")],
        WatchKind::Rename => {
            let mut v = vec![one(&e.path, "EVENT_TYPE_RENAME")];
            if let Some(to) = &e.to {
                v.push(one(to, "EVENT_TYPE_CREATE"));
            }
            v
        }
        WatchKind::Overflow => Vec::new(),
    };
    if include_entry {
        for ev in out.iter_mut().filter(|ev| matches!(ev.kind, "EVENT_TYPE_CREATE" | "EVENT_TYPE_WRITE")) {
            let path = format!("{}/{}", dir.trim_end_matches('/'), ev.name);
            let stat = d.call::<FileInfo>(Method::GET, &with_query(paths::FILES_STAT, &[("path", &path)]), None).await;
            ev.entry = stat.ok().map(entry);
        }
    }
    out
}

/// Reads agent events until the socket ends, handing each translated event to `sink` (false
/// stops).
async fn relay(
    d: &Daemon,
    dir: &str,
    mut socket: podgate_core::agent_client::AgentSocket,
    include_entry: bool,
    mut sink: impl AsyncSink,
) -> Result<(), ConnectError> {
    loop {
        let msg = tokio::select! {
            m = socket.next() => m,
            () = sink.closed() => return Ok(()),
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                let Ok(e) = serde_json::from_str::<AgentEvent>(&t) else { continue };
                for ev in translate(d, dir, e, include_entry).await {
                    if !sink.push(ev).await {
                        return Ok(());
                    }
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(ConnectError::new("unavailable", "the watch in the sandbox ended"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ConnectError::new("unavailable", format!("the watch broke: {e}"))),
        }
    }
}

/// Where relayed events go.
trait AsyncSink: Send {
    fn push(&mut self, e: FilesystemEvent) -> impl Future<Output = bool> + Send;
    fn closed(&self) -> impl Future<Output = ()> + Send;
}

struct StreamSink<'a>(&'a Sender);

impl AsyncSink for StreamSink<'_> {
    async fn push(&mut self, e: FilesystemEvent) -> bool {
        self.0.send(&serde_json::json!({ "filesystem": e })).await
    }
    async fn closed(&self) {
        self.0.closed().await
    }
}

struct BufferSink(Arc<Mutex<VecDeque<FilesystemEvent>>>);

impl AsyncSink for BufferSink {
    async fn push(&mut self, e: FilesystemEvent) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_BUFFERED {
            q.pop_front();
        }
        q.push_back(e);
        true
    }
    async fn closed(&self) {
        std::future::pending().await
    }
}

/// `WatchDir`: streams the directory's events.
pub async fn watch_dir(d: Daemon, req: StreamRequest<WatchRequest>) -> Response {
    let r = req.message;
    let keepalive = req.keepalive;
    let (dir, socket) = match watched_dir(&d, &r.path).await {
        Ok(dir) => match open(&d, &dir, r.recursive).await {
            Ok(s) => (dir, s),
            Err(e) => return end_only(Some(e)),
        },
        Err(e) => return end_only(Some(e)),
    };
    let (tx, resp) = server_stream();
    tokio::spawn(async move {
        if !tx.send(&WatchEvent::Start {}).await {
            return;
        }
        let relayed = relay(&d, &dir, socket, r.include_entry, StreamSink(&tx));
        let result = match keepalive {
            Some(every) => {
                let pings = async {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        if !tx.send(&WatchEvent::Keepalive {}).await {
                            return;
                        }
                    }
                };
                tokio::select! {
                    r = relayed => r,
                    () = pings => Ok(()),
                }
            }
            None => relayed.await,
        };
        tx.end(result.err()).await;
    });
    resp
}

type Answer<T> = Result<axum::Json<T>, ConnectError>;

/// `CreateWatcher`: starts a watch whose events wait here for `GetWatcherEvents`.
pub async fn create_watcher(d: Daemon, Unary(r): Unary<WatchRequest>) -> Answer<CreateWatcherResponse> {
    let watchers = d.state.watchers.clone();
    {
        let mut map = watchers.lock();
        map.retain(|_, w| w.fetched.elapsed() < ABANDONED_AFTER && !w.task.is_finished());
        if map.values().filter(|w| w.sandbox == d.sandbox).count() >= MAX_WATCHERS_PER_SANDBOX {
            return Err(ConnectError::new(
                "resource_exhausted",
                format!("a sandbox may have {MAX_WATCHERS_PER_SANDBOX} watchers: remove some"),
            ));
        }
    }
    let dir = watched_dir(&d, &r.path).await?;
    let socket = open(&d, &dir, r.recursive).await?;
    let events = Arc::new(Mutex::new(VecDeque::new()));
    let id = format!("w-{}", podgate_core::ids::random_base32(16));
    let (sandbox, owner) = (d.sandbox.clone(), d.caller.user_id.clone());
    let sink = BufferSink(events.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = relay(&d, &dir, socket, r.include_entry, sink).await {
            tracing::debug!(error = %e.message, "a polling watcher ended");
        }
    });
    let watcher = Watcher { sandbox, owner, events, task, fetched: Instant::now() };
    watchers.lock().insert(id.clone(), watcher);
    Ok(axum::Json(CreateWatcherResponse { watcher_id: id }))
}

fn not_found(id: &str) -> ConnectError {
    ConnectError::not_found(format!("watcher {id:?} not found"))
}

/// `GetWatcherEvents`: the events since the last fetch.
pub async fn get_watcher_events(d: Daemon, Unary(r): Unary<WatcherRequest>) -> Answer<WatcherEventsResponse> {
    let mut map = d.state.watchers.lock();
    let w = map.get_mut(&r.watcher_id).filter(|w| w.sandbox == d.sandbox && w.owner == d.caller.user_id);
    let w = w.ok_or_else(|| not_found(&r.watcher_id))?;
    w.fetched = Instant::now();
    let events: Vec<FilesystemEvent> = w.events.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    if events.is_empty() && w.task.is_finished() {
        map.remove(&r.watcher_id);
        return Err(ConnectError::new("unavailable", "the watch in the sandbox ended"));
    }
    Ok(axum::Json(WatcherEventsResponse { events }))
}

/// `RemoveWatcher`.
pub async fn remove_watcher(d: Daemon, Unary(r): Unary<WatcherRequest>) -> Answer<Empty> {
    let mut map = d.state.watchers.lock();
    match map.get(&r.watcher_id) {
        Some(w) if w.sandbox == d.sandbox && w.owner == d.caller.user_id => {
            map.remove(&r.watcher_id);
            Ok(axum::Json(Empty {}))
        }
        _ => Err(not_found(&r.watcher_id)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_relative_to_the_watched_dir() {
        assert_eq!(super::relative("/tmp/w", "/tmp/w/a/b.txt"), "a/b.txt");
        assert_eq!(super::relative("/tmp/w", "/elsewhere"), "/elsewhere");
    }
}
