//! envd's `process.Process` service translated into podgate's agent process API: a process is
//! started in the background (`POST /v1/processes`) and streamed over its attach WebSocket, so it
//! outlives the stream like envd's; E2B's pid is the process's pid in the sandbox, and its tag
//! is kept by the agent.

use std::time::Duration;

use axum::response::Response;
use futures_util::StreamExt as _;
use hyper::Method;
use podgate_types::agent::paths;
use podgate_types::process::{
    ProcessInfo as AgentProcess, ProcessSpec, PtySize, STDERR, STDOUT, SUBPROTOCOL, ServerMessage,
};
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{ConnectError, Sender, StreamRequest, Unary, server_stream};
use crate::daemon::Daemon;
use crate::proto::{
    B64, DataEvent, Empty, EndEvent, EnumValue, EventResponse, ListResponse, ProcessConfig, ProcessEvent, ProcessInfo,
    ProcessSelector, Pty, SelectorRequest, SendInputRequest, SendSignalRequest, StartRequest, UpdateRequest,
};

type Answer<T> = Result<axum::Json<T>, ConnectError>;

fn pty_size(pty: &Pty) -> Result<PtySize, ConnectError> {
    let size = pty.size.unwrap_or_default();
    let (cols, rows) = (u16::try_from(size.cols), u16::try_from(size.rows));
    match (cols, rows) {
        (Ok(cols), Ok(rows)) if cols > 0 && rows > 0 => Ok(PtySize { cols, rows }),
        _ => Err(ConnectError::invalid(format!("invalid PTY size {}x{}", size.cols, size.rows))),
    }
}

/// The agent's processes.
async fn processes(d: &Daemon) -> Result<Vec<AgentProcess>, ConnectError> {
    Ok(d.call(Method::GET, paths::PROCESSES, None).await?)
}

/// The agent's process that `selector` names: the live one with that pid or tag (an ended one
/// when no live one matches).
async fn find(d: &Daemon, selector: Option<&ProcessSelector>) -> Result<AgentProcess, ConnectError> {
    let s = selector.ok_or_else(|| ConnectError::invalid("give the process: a pid or a tag"))?;
    let matches = |p: &AgentProcess| match (&s.pid, &s.tag) {
        (Some(pid), _) => i64::from(p.pid) == i64::from(*pid),
        (None, Some(tag)) => p.tag.as_deref() == Some(tag.as_str()),
        (None, None) => false,
    };
    if s.pid.is_none() && s.tag.is_none() {
        return Err(ConnectError::invalid("give the process: a pid or a tag"));
    }
    // The agent narrows its list to the pid or tag asked for.
    let narrowed = match (&s.pid, &s.tag) {
        (Some(pid), _) => crate::filesystem::with_query(paths::PROCESSES, &[("pid", &pid.to_string())]),
        (None, Some(tag)) => crate::filesystem::with_query(paths::PROCESSES, &[("tag", tag)]),
        (None, None) => paths::PROCESSES.to_string(),
    };
    let found: Vec<AgentProcess> = d.call(Method::GET, &narrowed, None).await?;
    let mut list: Vec<AgentProcess> = found.into_iter().filter(matches).collect();
    list.sort_by_key(|p| (p.exit.is_none(), p.started_at));
    list.pop().ok_or_else(|| match (&s.pid, &s.tag) {
        (Some(pid), _) => ConnectError::not_found(format!("process with pid {pid} not found")),
        (_, tag) => ConnectError::not_found(format!("process with tag {:?} not found", tag.as_deref().unwrap_or(""))),
    })
}

fn pid_of(p: &AgentProcess) -> u32 {
    u32::try_from(p.pid).unwrap_or(0)
}

/// `Start`: runs a process in the background and streams it.
pub async fn start(d: Daemon, req: StreamRequest<StartRequest>) -> Response {
    let keepalive = req.keepalive;
    let r = req.message;
    let Some(process) = r.process else {
        return crate::connect::end_only(Some(ConnectError::invalid("`process` is required")));
    };
    if process.cmd.is_empty() {
        return crate::connect::end_only(Some(ConnectError::invalid("`process.cmd` is required")));
    }
    let pty = match r.pty.as_ref().map(pty_size).transpose() {
        Ok(p) => p,
        Err(e) => return crate::connect::end_only(Some(e)),
    };
    let mut argv = vec![process.cmd];
    argv.extend(process.args);
    let spec = ProcessSpec {
        argv,
        shell: false,
        env: process.envs,
        cwd: process.cwd.filter(|c| !c.is_empty()),
        user: d.user.clone(),
        pty,
        timeout_seconds: None,
        // envd keeps stdin open unless asked not to (older SDKs do not say).
        stdin: pty.is_some() || r.stdin.unwrap_or(true),
        tag: r.tag,
    };
    let started: AgentProcess =
        match d.call(Method::POST, paths::PROCESSES, Some(serde_json::to_value(&spec).unwrap_or_default())).await {
            Ok(p) => p,
            Err(e) => return crate::connect::end_only(Some(e.into())),
        };
    follow(d, started, keepalive).await
}

/// `Connect`: streams a running process again, its buffered output first.
pub async fn connect(d: Daemon, req: StreamRequest<SelectorRequest>) -> Response {
    let keepalive = req.keepalive;
    match find(&d, req.message.process.as_ref()).await {
        Ok(p) => follow(d, p, keepalive).await,
        Err(e) => crate::connect::end_only(Some(e)),
    }
}

/// Attaches to the agent's process and streams it as envd events.
async fn follow(d: Daemon, process: AgentProcess, keepalive: Option<Duration>) -> Response {
    let path = paths::with_id(paths::PROCESS_ATTACH, &process.id);
    let socket = match d.agent().await {
        Ok(agent) => {
            agent.websocket(&path, SUBPROTOCOL).await.map_err(|e| ConnectError::new("unavailable", e.to_string()))
        }
        Err(e) => Err(e.into()),
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return crate::connect::end_only(Some(e)),
    };
    let (tx, resp) = server_stream();
    tokio::spawn(async move {
        let end = pump(&tx, socket, &process, keepalive).await;
        tx.end(end.err()).await;
    });
    resp
}

/// Copies the agent's process stream to the client until the process ends, the agent's stream
/// breaks or the client leaves.
async fn pump(
    tx: &Sender,
    mut socket: podgate_core::agent_client::AgentSocket,
    process: &AgentProcess,
    keepalive: Option<Duration>,
) -> Result<(), ConnectError> {
    let event = |event| EventResponse { event };
    if !tx.send(&event(ProcessEvent::Start { pid: pid_of(process) })).await {
        return Ok(());
    }
    let mut ping = tokio::time::interval(keepalive.unwrap_or(Duration::from_secs(3600)));
    ping.reset();
    loop {
        let msg = tokio::select! {
            m = socket.next() => m,
            _ = ping.tick(), if keepalive.is_some() => {
                if !tx.send(&event(ProcessEvent::Keepalive {})).await { return Ok(()) }
                continue;
            }
            () = tx.closed() => return Ok(()),
        };
        let out = match msg {
            Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                let data = B64(b[1..].to_vec());
                match (b[0], process.pty) {
                    (_, true) => DataEvent::Pty(data),
                    (STDOUT, false) => DataEvent::Stdout(data),
                    (STDERR, false) => DataEvent::Stderr(data),
                    _ => continue,
                }
            }
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(&t) {
                Ok(ServerMessage::Exit { exit }) => {
                    let status = match exit.signal {
                        Some(9) => "signal: killed".to_string(),
                        Some(s) => format!("signal: {s}"),
                        None => format!("exit status {}", exit.exit_code),
                    };
                    let end =
                        EndEvent { exit_code: exit.exit_code, exited: exit.signal.is_none(), status, error: None };
                    tx.send(&event(ProcessEvent::End(end))).await;
                    return Ok(());
                }
                _ => continue,
            },
            Some(Ok(Message::Close(_))) | None => {
                return Err(ConnectError::new("unavailable", "the process stream from the sandbox ended early"));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectError::new("unavailable", format!("the process stream broke: {e}"))),
        };
        if !tx.send(&event(ProcessEvent::Data(out))).await {
            return Ok(());
        }
    }
}

/// `List`: the running processes.
pub async fn list(d: Daemon, Unary(_): Unary<Ignored>) -> Answer<ListResponse> {
    let processes = processes(&d)
        .await?
        .into_iter()
        .filter(|p| p.exit.is_none())
        .map(|p| {
            let mut argv = p.argv.clone().into_iter();
            let config = ProcessConfig {
                cmd: argv.next().unwrap_or_default(),
                args: argv.collect(),
                envs: Default::default(),
                cwd: (!p.cwd.is_empty()).then(|| p.cwd.clone()),
            };
            ProcessInfo { config, pid: pid_of(&p), tag: p.tag }
        })
        .collect();
    Ok(axum::Json(ListResponse { processes }))
}

/// A request message whose fields are ignored.
#[derive(serde::Deserialize)]
pub struct Ignored {}

/// `SendInput`: bytes to the process's stdin or PTY.
pub async fn send_input(d: Daemon, Unary(r): Unary<SendInputRequest>) -> Answer<Empty> {
    let p = find(&d, r.process.as_ref()).await?;
    let input = r.input.unwrap_or_default();
    let data = input.stdin.or(input.pty).unwrap_or_default();
    let path = paths::with_id(paths::PROCESS_INPUT, &p.id);
    let resp = d
        .send(
            Method::POST,
            &path,
            Some("application/octet-stream"),
            http_body_util::Full::new(bytes::Bytes::from(data.0)),
        )
        .await?;
    no_content(resp).await
}

async fn no_content(resp: hyper::Response<hyper::body::Incoming>) -> Answer<Empty> {
    let _: serde_json::Value = crate::daemon::read_answer(resp).await?;
    Ok(axum::Json(Empty {}))
}

/// `SendSignal`: SIGTERM or SIGKILL to the process group.
pub async fn send_signal(d: Daemon, Unary(r): Unary<SendSignalRequest>) -> Answer<Empty> {
    let signal = match r.signal {
        Some(EnumValue::Name(n)) if n == "SIGNAL_SIGKILL" => "KILL",
        Some(EnumValue::Number(9)) => "KILL",
        Some(EnumValue::Name(n)) if n == "SIGNAL_SIGTERM" => "TERM",
        Some(EnumValue::Number(15)) => "TERM",
        other => {
            return Err(ConnectError::invalid(format!(
                "unsupported signal {other:?}: SIGNAL_SIGTERM or SIGNAL_SIGKILL"
            )));
        }
    };
    let p = find(&d, r.process.as_ref()).await?;
    if p.exit.is_some() {
        return Err(ConnectError::not_found(format!("process with pid {} has ended", p.pid)));
    }
    let path = paths::with_id(paths::PROCESS_SIGNAL, &p.id);
    let _: serde_json::Value = d.call(Method::POST, &path, Some(serde_json::json!({ "signal": signal }))).await?;
    Ok(axum::Json(Empty {}))
}

/// `CloseStdin`: end of input (on a PTY, the EOF character).
pub async fn close_stdin(d: Daemon, Unary(r): Unary<SelectorRequest>) -> Answer<Empty> {
    let p = find(&d, r.process.as_ref()).await?;
    let path = paths::with_id(paths::PROCESS_CLOSE_STDIN, &p.id);
    let _: serde_json::Value = d.call(Method::POST, &path, None).await?;
    Ok(axum::Json(Empty {}))
}

/// `Update`: resizes the process's PTY.
pub async fn update(d: Daemon, Unary(r): Unary<UpdateRequest>) -> Answer<Empty> {
    let p = find(&d, r.process.as_ref()).await?;
    let Some(pty) = r.pty.as_ref() else { return Ok(axum::Json(Empty {})) };
    let size = pty_size(pty)?;
    let path = paths::with_id(paths::PROCESS_RESIZE, &p.id);
    let body = serde_json::json!({ "cols": size.cols, "rows": size.rows });
    let _: serde_json::Value = d.call(Method::POST, &path, Some(body)).await?;
    Ok(axum::Json(Empty {}))
}
