//! The agent's process API: start, list, signal and kill processes, and stream a process over a
//! WebSocket (stdout and stderr as separate binary channels, stdin, signals, resize, exit).

use podgate_types::agent::paths;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_types::process::{
    ClientMessage, ProcessSpec, STDERR, STDIN, STDOUT, SUBPROTOCOL, ServerMessage, SignalRequest,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::processes::{Output, ProcError, Process};
use crate::server::{AgentState, JsonBody, error};

/// Output is sent in WebSocket frames of up to this many bytes.
const MAX_FRAME: usize = 256 * 1024;
/// How long a new stream may take to send its `start` message.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Process routes.
pub fn routes() -> Router<Arc<AgentState>> {
    Router::new()
        .route(paths::PROCESSES, post(start).get(list))
        .route(paths::PROCESSES_STREAM, get(stream))
        .route(paths::PROCESS, get(info).delete(kill))
        .route(paths::PROCESS_SIGNAL, post(signal))
        .route(paths::PROCESS_ATTACH, get(attach))
        .route(paths::PROCESS_INPUT, post(input))
        .route(paths::PROCESS_CLOSE_STDIN, post(close_stdin))
        .route(paths::PROCESS_RESIZE, post(resize))
}

/// Most bytes one `input` request may carry.
const MAX_INPUT: usize = 1 << 20;

fn refused(m: String) -> Response {
    error(StatusCode::CONFLICT, "refused", m)
}

async fn input(State(st): State<Arc<AgentState>>, Path(id): Path<String>, body: axum::body::Body) -> Response {
    let p = match st.processes.get(&id) {
        Ok(p) => p,
        Err(e) => return proc_error(e),
    };
    let data = match axum::body::to_bytes(body, MAX_INPUT).await {
        Ok(d) => d,
        Err(_) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("input is at most {MAX_INPUT} bytes"));
        }
    };
    match p.write_stdin(&data).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(m) => refused(m),
    }
}

async fn close_stdin(State(st): State<Arc<AgentState>>, Path(id): Path<String>) -> Response {
    match st.processes.get(&id) {
        Ok(p) => match p.close_stdin().await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(m) => refused(m),
        },
        Err(e) => proc_error(e),
    }
}

async fn resize(
    State(st): State<Arc<AgentState>>,
    Path(id): Path<String>,
    JsonBody(size): JsonBody<podgate_types::process::ResizeRequest>,
) -> Response {
    match st.processes.get(&id) {
        Ok(p) => match p.resize(size.cols, size.rows) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        },
        Err(e) => proc_error(e),
    }
}

fn proc_error(e: ProcError) -> Response {
    match e {
        ProcError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        ProcError::Spawn(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed", m),
        ProcError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
        ProcError::Busy(m) => error(StatusCode::TOO_MANY_REQUESTS, "too_many_processes", m),
    }
}

async fn start(State(st): State<Arc<AgentState>>, JsonBody(spec): JsonBody<ProcessSpec>) -> Response {
    match st.processes.start(spec) {
        Ok(p) => (StatusCode::CREATED, Json(p.info())).into_response(),
        Err(e) => proc_error(e),
    }
}

/// Narrows the process list: only the processes with this pid, or this tag.
#[derive(Deserialize)]
struct ListQuery {
    pid: Option<i32>,
    tag: Option<String>,
}

async fn list(State(st): State<Arc<AgentState>>, Query(q): Query<ListQuery>) -> Response {
    let mut list = st.processes.list();
    list.retain(|p| q.pid.is_none_or(|pid| p.pid == pid) && q.tag.as_ref().is_none_or(|t| p.tag.as_ref() == Some(t)));
    Json(list).into_response()
}

async fn info(State(st): State<Arc<AgentState>>, Path(id): Path<String>) -> Response {
    match st.processes.get(&id) {
        Ok(p) => Json(p.info()).into_response(),
        Err(e) => proc_error(e),
    }
}

fn send_signal(st: &AgentState, id: &str, name: &str) -> Response {
    let sig = match crate::signals::parse(name) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
    };
    match st.processes.get(id) {
        Ok(p) => match p.signal(sig) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(m) => error(StatusCode::CONFLICT, "process_ended", m),
        },
        Err(e) => proc_error(e),
    }
}

async fn kill(State(st): State<Arc<AgentState>>, Path(id): Path<String>) -> Response {
    send_signal(&st, &id, "KILL")
}

async fn signal(
    State(st): State<Arc<AgentState>>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SignalRequest>,
) -> Response {
    send_signal(&st, &id, &req.signal)
}

/// A new stream: the client's first message starts the process.
async fn stream(State(st): State<Arc<AgentState>>, ws: WebSocketUpgrade) -> Response {
    ws.protocols([SUBPROTOCOL]).on_upgrade(move |mut socket| async move {
        let spec = match tokio::time::timeout(START_TIMEOUT, first_start(&mut socket)).await {
            Ok(Ok(spec)) => spec,
            Ok(Err(m)) => return refuse(socket, m).await,
            Err(_) => return refuse(socket, "no start message within 30 s".into()).await,
        };
        match st.processes.start(spec) {
            Ok(p) => serve(socket, p, [0, 0]).await,
            Err(e) => refuse(socket, e.to_string()).await,
        }
    })
}

async fn first_start(socket: &mut WebSocket) -> Result<ProcessSpec, String> {
    loop {
        match socket.recv().await {
            Some(Ok(Message::Text(t))) => {
                return match serde_json::from_str::<ClientMessage>(&t) {
                    Ok(ClientMessage::Start { process }) => Ok(process),
                    Ok(_) => Err("the first message must be {\"type\":\"start\",\"process\":{…}}".into()),
                    Err(e) => Err(format!("bad start message: {e}")),
                };
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) => return Err("the first message must be a start message".into()),
            None | Some(Err(_)) => return Err("closed".into()),
        }
    }
}

async fn refuse(mut socket: WebSocket, message: String) {
    let msg = serde_json::to_string(&ServerMessage::Error { message }).unwrap_or_default();
    let _ = socket.send(Message::Text(msg.into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

#[derive(Deserialize)]
struct AttachQuery {
    #[serde(default)]
    stdout_from: u64,
    #[serde(default)]
    stderr_from: u64,
}

/// Re-attaches to a process: output from the given offsets (default: all still buffered).
async fn attach(
    State(st): State<Arc<AgentState>>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    match st.processes.get(&id) {
        Ok(p) => ws.protocols([SUBPROTOCOL]).on_upgrade(move |s| serve(s, p, [q.stdout_from, q.stderr_from])),
        Err(e) => proc_error(e),
    }
}

fn text(msg: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

/// Streams one process to one client until it exits or the client leaves.
async fn serve(socket: WebSocket, process: Arc<Process>, from: [u64; 2]) {
    let guard = process.attach(from);
    let (mut tx, mut rx) = socket.split();
    let (replies, mut reply_rx) = mpsc::unbounded_channel::<String>();
    let writer = async {
        tx.send(text(&ServerMessage::Started { process: process.info() })).await?;
        loop {
            tokio::select! {
                out = process.read(&guard.cursor, MAX_FRAME) => match out {
                    Output::Chunk(chunk) => {
                        let channel = if chunk.stream == 0 { STDOUT } else { STDERR };
                        if chunk.dropped > 0 {
                            let stream = if chunk.stream == 0 { "stdout" } else { "stderr" }.to_string();
                            tx.send(text(&ServerMessage::Dropped { stream, bytes: chunk.dropped })).await?;
                        }
                        if !chunk.data.is_empty() {
                            let mut frame = Vec::with_capacity(chunk.data.len() + 1);
                            frame.push(channel);
                            frame.extend_from_slice(&chunk.data);
                            tx.send(Message::Binary(frame.into())).await?;
                        }
                    }
                    Output::Exit(exit) => {
                        tx.send(text(&ServerMessage::Exit { exit })).await?;
                        return tx.send(Message::Close(None)).await;
                    }
                },
                Some(message) = reply_rx.recv() => tx.send(text(&ServerMessage::Error { message })).await?,
            }
        }
    };
    let reader = async {
        while let Some(Ok(msg)) = rx.next().await {
            let outcome = match msg {
                Message::Binary(b) if b.first() == Some(&STDIN) => process.write_stdin(&b[1..]).await,
                Message::Binary(_) => Err("binary frames from the client carry channel 0 (stdin)".into()),
                Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                    Ok(ClientMessage::StdinEnd) => process.close_stdin().await,
                    Ok(ClientMessage::Signal { signal }) => {
                        crate::signals::parse(&signal).and_then(|s| process.signal(s))
                    }
                    Ok(ClientMessage::Resize { cols, rows }) => process.resize(cols, rows),
                    Ok(ClientMessage::Start { .. }) => Err("the process has started already".into()),
                    Err(e) => Err(format!("bad message: {e}")),
                },
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => Ok(()),
            };
            if let Err(m) = outcome {
                let _ = replies.send(m);
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}
