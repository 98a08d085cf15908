//! HTTP client for a sandbox's agent, over its unix socket (Docker) or TCP (Kubernetes).

use podgate_types::agent::paths;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use podgate_runtime::AgentEndpoint;
use podgate_types::agent::{AgentHealth, SECRET_HEADER};
use podgate_types::api::{ErrorBody, ExecRequest, ExecResponse};
use podgate_types::bootstrap::{BootstrapSpec, BootstrapStatus};
use podgate_types::metrics::{MetricsQuery, MetricsSample};
use podgate_types::terminal::{TerminalInfo, TerminalSpec};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::Role;

/// A WebSocket to an agent.
pub type AgentSocket = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// `value` percent-encoded for a query string.
fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Largest agent response read into memory.
const MAX_RESPONSE: usize = 8 << 20;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent could not be reached (not listening yet, gone, broken connection).
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// The agent answered with an error body.
    #[error("agent refused the request ({status}): {message}")]
    Refused { status: u16, code: String, message: String },
    /// The agent answered something that is not the protocol.
    #[error("agent answered outside the protocol: {0}")]
    Protocol(String),
    /// The request's own body failed while it was being sent (the caller's upload broke off):
    /// the caller's fault, not the agent's.
    #[error("the request body broke off: {0}")]
    RequestBody(String),
}

/// One sandbox's agent.
#[derive(Clone, Debug)]
pub struct AgentClient {
    endpoint: AgentEndpoint,
    secret: String,
    /// Marks the sandbox active whenever bytes move (users' connections, not health checks).
    activity: Option<crate::activity::Marker>,
}

impl AgentClient {
    pub fn new(endpoint: AgentEndpoint, secret: String) -> AgentClient {
        AgentClient { endpoint, secret, activity: None }
    }

    /// The same agent, with traffic counted as user activity of its sandbox.
    pub fn with_activity(self, marker: crate::activity::Marker) -> AgentClient {
        AgentClient { activity: Some(marker), ..self }
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<AgentHealth, AgentError> {
        self.call(Method::GET, paths::HEALTH, None, Some(Duration::from_secs(5))).await
    }

    /// `GET /v1/metrics`: the resource samples taken in `q`'s time range.
    pub async fn metrics(&self, q: &MetricsQuery) -> Result<Vec<MetricsSample>, AgentError> {
        let mut path = format!("{}?", paths::METRICS);
        for (key, value) in [("start", q.start), ("end", q.end)] {
            if let Some(v) = value {
                path.push_str(&format!("{key}={v}&"));
            }
        }
        self.call(Method::GET, path.trim_end_matches(['?', '&']), None, Some(Duration::from_secs(5))).await
    }

    /// `POST /v1/exec`: runs a process to completion.
    pub async fn exec(&self, req: &ExecRequest) -> Result<ExecResponse, AgentError> {
        let body = serde_json::to_vec(req).map_err(|e| AgentError::Protocol(e.to_string()))?;
        self.call(Method::POST, paths::EXEC, Some(body), None).await
    }

    /// `POST /v1/terminals`.
    pub async fn create_terminal(&self, spec: &TerminalSpec) -> Result<TerminalInfo, AgentError> {
        let body = serde_json::to_vec(spec).map_err(|e| AgentError::Protocol(e.to_string()))?;
        self.call(Method::POST, paths::TERMINALS, Some(body), Some(Duration::from_secs(30))).await
    }

    /// `GET /v1/terminals`.
    pub async fn list_terminals(&self) -> Result<Vec<TerminalInfo>, AgentError> {
        self.call(Method::GET, paths::TERMINALS, None, Some(Duration::from_secs(10))).await
    }

    /// `DELETE /v1/terminals/{id}`.
    pub async fn delete_terminal(&self, id: &str) -> Result<(), AgentError> {
        let path = paths::with_id(paths::TERMINAL, path_segment(id)?);
        self.call(Method::DELETE, &path, None, Some(Duration::from_secs(10))).await
    }

    /// `POST /v1/bootstrap`: starts the code bootstrap.
    pub async fn start_bootstrap(&self, spec: &BootstrapSpec) -> Result<BootstrapStatus, AgentError> {
        let body = serde_json::to_vec(spec).map_err(|e| AgentError::Protocol(e.to_string()))?;
        self.call(Method::POST, paths::BOOTSTRAP, Some(body), Some(Duration::from_secs(30))).await
    }

    /// `GET /v1/bootstrap`.
    pub async fn bootstrap_status(&self) -> Result<BootstrapStatus, AgentError> {
        self.call(Method::GET, paths::BOOTSTRAP, None, Some(Duration::from_secs(10))).await
    }

    /// The bootstrap log from byte `from` on (what is still held), read whole.
    pub async fn bootstrap_log(&self, from: u64) -> Result<Bytes, AgentError> {
        let path = format!("{}?from={from}", paths::BOOTSTRAP_LOG);
        let fut = self.send(Method::GET, &path, None);
        let (status, bytes) = tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| AgentError::Unreachable("no answer within 10 s".into()))??;
        if !status.is_success() {
            return Err(AgentError::Protocol(format!("status {status} for the bootstrap log")));
        }
        Ok(bytes)
    }

    /// Sets the environment of every process the agent starts from now on.
    pub async fn set_env(&self, env: &std::collections::BTreeMap<String, String>) -> Result<(), AgentError> {
        let body = serde_json::to_vec(env).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let (status, bytes) = self.send(Method::PUT, paths::ENV, Some(body)).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => AgentError::Refused { status: status.as_u16(), code: b.error.code, message: b.error.message },
            Err(_) => AgentError::Protocol(format!("status {status}")),
        })
    }

    /// Opens a WebSocket to `path` on the agent, passing through the client's handshake key and
    /// subprotocol, and returns the agent's 101 answer with the upgraded byte stream.
    pub async fn upgrade(
        &self,
        path: &str,
        ws_key: &str,
        protocol: Option<&str>,
    ) -> Result<(hyper::http::response::Parts, hyper::upgrade::Upgraded), AgentError> {
        use hyper::header;
        let io = self.connect().await?;
        let broken = |e: hyper::Error| AgentError::Unreachable(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(broken)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, "agent")
            .header(SECRET_HEADER, &self.secret)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, ws_key);
        if let Some(p) = protocol {
            req = req.header(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        let req = req.body(Full::new(Bytes::new())).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let mut resp = sender.send_request(req).await.map_err(broken)?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes =
                Limited::new(resp.into_body(), 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => AgentError::Refused { status: status.as_u16(), code: b.error.code, message: b.error.message },
                Err(_) => AgentError::Protocol(format!("status {status} instead of 101")),
            });
        }
        let upgraded = hyper::upgrade::on(&mut resp).await.map_err(broken)?;
        Ok((resp.into_parts().0, upgraded))
    }

    /// Opens a WebSocket to the agent's `path` speaking `protocol`.
    pub async fn websocket(&self, path: &str, protocol: &str) -> Result<AgentSocket, AgentError> {
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let (_, io) = self.upgrade(path, &key, Some(protocol)).await?;
        Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Client, None).await)
    }

    /// A process stream: the first message starts the process (`process::ClientMessage::Start`).
    pub async fn process_stream(&self) -> Result<AgentSocket, AgentError> {
        self.websocket(paths::PROCESSES_STREAM, podgate_types::process::SUBPROTOCOL).await
    }

    /// The agent's SFTP server, one SFTP session per socket.
    pub async fn sftp(&self) -> Result<AgentSocket, AgentError> {
        self.websocket(paths::SFTP, podgate_types::sftp::SUBPROTOCOL).await
    }

    /// A TCP connection dialled from inside the sandbox to `host:port` (the agent takes IP
    /// literals and `localhost` only).
    pub async fn tunnel(&self, host: &str, port: u16) -> Result<AgentSocket, AgentError> {
        let path = format!("{}?host={}&port={port}", paths::TUNNEL, query_value(host));
        self.websocket(&path, podgate_types::ports::TUNNEL_SUBPROTOCOL).await
    }

    /// A TCP listener inside the sandbox on `host:port` (0: the kernel picks); its first
    /// message says where it listens, and it closes with the socket.
    pub async fn listen_tcp(&self, host: &str, port: u16) -> Result<AgentSocket, AgentError> {
        let path = format!("{}?host={}&port={port}", paths::LISTEN, query_value(host));
        self.websocket(&path, podgate_types::ports::LISTEN_SUBPROTOCOL).await
    }

    /// A listener on a private Unix socket inside the sandbox.
    pub async fn listen_unix(&self) -> Result<AgentSocket, AgentError> {
        self.websocket(&format!("{}?unix=true", paths::LISTEN), podgate_types::ports::LISTEN_SUBPROTOCOL).await
    }

    /// The next connection to listener `id`, once one arrives.
    pub async fn accept(&self, id: &str) -> Result<AgentSocket, AgentError> {
        let path = paths::with_id(paths::LISTENER_ACCEPT, path_segment(id)?);
        self.websocket(&path, podgate_types::ports::LISTEN_SUBPROTOCOL).await
    }

    #[tracing::instrument(name = "agent.call", skip(self, body, timeout), fields(method = %method, path))]
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<T, AgentError> {
        let fut = self.send(method, path, body);
        let (status, bytes) = match timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| AgentError::Unreachable(format!("no answer within {t:?}")))??,
            None => fut.await?,
        };
        if status.is_success() {
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes).map_err(|e| AgentError::Protocol(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(AgentError::Refused { status: status.as_u16(), code: b.error.code, message: b.error.message }),
            Err(_) => Err(AgentError::Protocol(format!("status {status} without an error body"))),
        }
    }

    /// Sends a request with a streamed body to the agent and returns its response unread, so that
    /// large files pass through without being held in memory.
    #[tracing::instrument(name = "agent.forward", skip(self, content_type, body), fields(method = %method, path = path_and_query))]
    pub async fn forward<B>(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>, AgentError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.connect().await?;
        let broken = |e: hyper::Error| AgentError::Unreachable(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(broken)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "agent")
            .header(SECRET_HEADER, &self.secret);
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req.body(body).map_err(|e| AgentError::Protocol(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| {
            // hyper reports a failure of the body we send as a user error.
            if e.is_user() {
                let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
                AgentError::RequestBody(cause)
            } else {
                broken(e)
            }
        })
    }

    /// A fresh connection to the agent.
    async fn connect(&self) -> Result<Box<dyn Io>, AgentError> {
        let unreachable = |e: std::io::Error| AgentError::Unreachable(e.to_string());
        let io: Box<dyn Io> = match &self.endpoint {
            AgentEndpoint::Unix(p) => Box::new(connect_unix_nofollow(p).await.map_err(unreachable)?),
            AgentEndpoint::UnixAgent { path, pid } => {
                let stream = connect_unix_nofollow(path).await.map_err(unreachable)?;
                check_peer(&stream, *pid)?;
                Box::new(stream)
            }
            AgentEndpoint::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a.as_str()).await.map_err(unreachable)?),
        };
        Ok(match &self.activity {
            Some(marker) => {
                marker.mark();
                Box::new(ActiveIo { inner: io, marker: marker.clone() })
            }
            None => io,
        })
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(StatusCode, Bytes), AgentError> {
        let content_type = body.is_some().then_some("application/json");
        let resp = self.forward(method, path, content_type, Full::new(Bytes::from(body.unwrap_or_default()))).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| AgentError::Unreachable(format!("reading the agent's answer: {e}")))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// A byte stream to an agent (unix socket or TCP).
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A stream to an agent that marks its sandbox active whenever bytes move either way.
struct ActiveIo {
    inner: Box<dyn Io>,
    marker: crate::activity::Marker,
}

impl AsyncRead for ActiveIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.marker.mark();
        }
        r
    }
}

impl AsyncWrite for ActiveIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.marker.mark_input();
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A path segment from input: ids are plain, anything else is refused rather than escaped.
pub fn path_segment(s: &str) -> Result<&str, AgentError> {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(s)
    } else {
        Err(AgentError::Refused { status: 404, code: "not_found".into(), message: format!("terminal {s:?} not found") })
    }
}

/// Checks that the agent's socket is served by the agent (process `pid`), before anything,
/// the secret included, is sent on it.
fn check_peer(stream: &tokio::net::UnixStream, pid: u32) -> Result<(), AgentError> {
    let served_by = stream.peer_cred().ok().and_then(|c| c.pid()).and_then(|p| u32::try_from(p).ok());
    if served_by == Some(pid) {
        return Ok(());
    }
    tracing::warn!(expected = pid, served_by = ?served_by, "an agent socket served by another process: not used");
    Err(AgentError::Unreachable(format!(
        "the agent's socket is served by another process ({served_by:?}, not the agent's {pid})"
    )))
}

/// Connects to the unix socket at `path` without following a symlink in its last component, and
/// only if it is a socket. The agent's run directory is writable from inside the sandbox, so a
/// hostile sandbox could otherwise swap its socket for a link to another socket on the host.
async fn connect_unix_nofollow(path: &std::path::Path) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::FileTypeExt as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    if !handle.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other(format!("{} is not a socket", path.display())));
    }
    // Connecting through the O_PATH descriptor reaches exactly the inode checked above.
    let via_fd = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let stream = tokio::net::UnixStream::connect(via_fd).await;
    drop(handle);
    stream
}

/// The core's error for an agent call of sandbox `id` that failed.
pub(crate) fn agent_error(id: &str, e: AgentError) -> crate::Error {
    use crate::Error;
    match e {
        AgentError::Refused { status: 404, message, .. } => Error::NotFound(message),
        AgentError::Refused { status, message, .. } if (400..500).contains(&status) => Error::Invalid(message),
        AgentError::Unreachable(m) => {
            tracing::warn!(sandbox_id = %id, error = %m, "agent unreachable");
            Error::Unavailable(format!("the agent of sandbox {id} is unreachable"))
        }
        AgentError::RequestBody(m) => Error::Invalid(format!("the request body broke off: {m}")),
        other => {
            tracing::error!(sandbox_id = %id, error = %other, "agent failure");
            Error::Unavailable(format!("the agent of sandbox {id} failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_symlinked_and_non_socket_paths() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _listener = tokio::net::UnixListener::bind(&real).unwrap();
        assert!(connect_unix_nofollow(&real).await.is_ok());
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(connect_unix_nofollow(&link).await.is_err(), "a symlink is not followed");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(connect_unix_nofollow(&file).await.is_err(), "a regular file is refused");
        // This process serves `real`: it passes as its own peer, not as another pid.
        let stream = connect_unix_nofollow(&real).await.unwrap();
        assert!(check_peer(&stream, std::process::id()).is_ok());
        assert!(check_peer(&stream, std::process::id() + 1).is_err());
    }

    /// An upload that breaks off is the caller's fault, told apart from an agent that is gone.
    #[tokio::test]
    async fn a_broken_request_body_is_not_an_unreachable_agent() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        // An agent that reads what it is sent and never answers.
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
                });
            }
        });
        let client = AgentClient::new(AgentEndpoint::Unix(sock.clone()), "secret".into());
        let chunks: Vec<std::result::Result<hyper::body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(b"first part"))),
            Err(std::io::Error::other("the client went away")),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let err = client.forward(Method::PUT, "/v1/files?path=x", None, body).await.unwrap_err();
        assert!(matches!(&err, AgentError::RequestBody(m) if m.contains("the client went away")), "got {err:?}");
        assert!(matches!(agent_error("sb", err), crate::Error::Invalid(_)));
        // With no agent listening, it stays unreachable.
        drop(std::fs::remove_file(&sock));
        let err = client.forward(Method::GET, "/v1/health", None, Full::new(Bytes::new())).await.unwrap_err();
        assert!(matches!(err, AgentError::Unreachable(_)), "got {err:?}");
    }
}
