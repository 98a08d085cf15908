//! Typed client for podgate's REST API.

use podgate_types::api::{
    CreateSandboxRequest, ErrorBody, ExecRequest, ExecResponse, ExtendRequest, NameRequest, Sandbox, SandboxList,
    Snapshot, SnapshotList, Template, TemplateList, TemplateRequest, UserInfo, Volume, VolumeList,
};
use podgate_types::process::{ClientMessage, ProcessInfo, ProcessSpec, SignalRequest};
use podgate_types::terminal::{
    OpenTerminalRequest, RecordingList, SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX, TerminalInfo, TerminalSession,
};

mod files;
mod tls;
mod ws;

pub use tokio_tungstenite::tungstenite::Message;

/// A terminal WebSocket (over TLS for an `https://` server).
pub type TerminalSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A byte counter a transfer advances, for progress display.
pub type Counter = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an API error.
    #[error("{message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The server could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Transport(_) => None,
        }
    }
}

/// Result with the client [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A podgate server and the token to use with it.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The TLS configuration of an `https://` server, for its WebSockets too.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Client {
    /// `base` is the server URL: `http://HOST[:PORT]` or `https://HOST[:PORT]`, with an optional
    /// path prefix (a server behind a proxy); without a port, the scheme's own (80, 443).
    pub fn new(base: &str, token: &str) -> Result<Client> {
        Client::with_ca(base, token, None)
    }

    /// As [`Client::new`], also trusting the PEM certificates in `ca` for an `https://` server.
    pub fn with_ca(base: &str, token: &str, ca: Option<&std::path::Path>) -> Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        let url = ws::server_url(&base)?;
        let mut builder = reqwest::Client::builder().user_agent(concat!("podgate-client/", env!("CARGO_PKG_VERSION")));
        let tls = match url.scheme() {
            "https" => Some(tls::client_config(ca)?),
            _ => None,
        };
        if let Some(config) = &tls {
            builder = builder.use_preconfigured_tls((**config).clone());
        }
        let http = builder.build().map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Client { base, token: token.to_string(), http, tls })
    }

    /// A request that got no answer, with its causes (a refused certificate, a refused
    /// connection), which the request error alone does not print.
    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut message = format!("cannot reach podgate at {}: {e}", self.base);
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        Error::Transport(message)
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `GET /v1/users/me`.
    pub async fn me(&self) -> Result<UserInfo> {
        self.call(Method::GET, "/v1/users/me", None::<&()>).await
    }

    /// `GET /v1/users` (admins).
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.call(Method::GET, "/v1/users", None::<&()>).await
    }

    /// `POST /v1/users` (admins): the user and its first token.
    pub async fn create_user(
        &self,
        req: &podgate_types::users::CreateUserRequest,
    ) -> Result<podgate_types::users::CreatedUser> {
        self.call(Method::POST, "/v1/users", Some(req)).await
    }

    /// `GET /v1/users/{id}/quota` (`me` for the caller).
    pub async fn quota(&self, user: &str) -> Result<podgate_types::users::Quota> {
        self.call(Method::GET, &format!("/v1/users/{}/quota", seg(user)), None::<&()>).await
    }

    /// `PUT /v1/users/{id}/quota` (admins).
    pub async fn set_quota(
        &self,
        user: &str,
        overrides: &podgate_types::users::QuotaOverrides,
    ) -> Result<podgate_types::users::Quota> {
        self.call(Method::PUT, &format!("/v1/users/{}/quota", seg(user)), Some(overrides)).await
    }

    /// `GET /v1/users/{id}/tokens` (`me` for the caller).
    pub async fn list_tokens(&self, user: &str) -> Result<Vec<podgate_types::users::TokenInfo>> {
        self.call(Method::GET, &format!("/v1/users/{}/tokens", seg(user)), None::<&()>).await
    }

    /// `POST /v1/users/{id}/tokens` (`me` for the caller).
    pub async fn create_token(
        &self,
        user: &str,
        req: &podgate_types::users::CreateTokenRequest,
    ) -> Result<podgate_types::users::CreatedToken> {
        self.call(Method::POST, &format!("/v1/users/{}/tokens", seg(user)), Some(req)).await
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<podgate_types::users::TokenInfo> {
        self.call(Method::DELETE, &format!("/v1/tokens/{}", seg(id)), None::<&()>).await
    }

    /// `GET /v1/users/{id}/ssh-keys` (`me` for the caller).
    pub async fn ssh_keys(&self, user: &str) -> Result<podgate_types::users::SshKeyList> {
        self.call(Method::GET, &format!("/v1/users/{}/ssh-keys", seg(user)), None::<&()>).await
    }

    /// `POST /v1/users/{id}/ssh-keys` (`me` for the caller).
    pub async fn add_ssh_key(
        &self,
        user: &str,
        req: &podgate_types::users::AddSshKeyRequest,
    ) -> Result<podgate_types::users::SshKeyInfo> {
        self.call(Method::POST, &format!("/v1/users/{}/ssh-keys", seg(user)), Some(req)).await
    }

    /// `DELETE /v1/users/{id}/ssh-keys/{key}`.
    pub async fn remove_ssh_key(&self, user: &str, key: &str) -> Result<()> {
        let path = format!("/v1/users/{}/ssh-keys/{}", seg(user), seg(key));
        self.send(Method::DELETE, &path, None::<&()>).await.map(|_| ())
    }

    /// `POST /v1/admin/signing-keys` (admins): a new current session-token signing key; returns
    /// its key id.
    pub async fn rotate_signing_keys(&self) -> Result<String> {
        let v: serde_json::Value = self.call(Method::POST, "/v1/admin/signing-keys", None::<&()>).await?;
        v["kid"].as_str().map(str::to_string).ok_or_else(|| Error::Transport("no key id in the answer".into()))
    }

    /// `POST /v1/sandboxes`.
    pub async fn create(&self, req: &CreateSandboxRequest) -> Result<Sandbox> {
        self.call(Method::POST, "/v1/sandboxes", Some(req)).await
    }

    /// `GET /v1/sandboxes`.
    pub async fn list(&self) -> Result<Vec<Sandbox>> {
        let l: SandboxList = self.call(Method::GET, "/v1/sandboxes", None::<&()>).await?;
        Ok(l.sandboxes)
    }

    /// `GET /v1/sandboxes/{id-or-name}`.
    pub async fn get(&self, id: &str) -> Result<Sandbox> {
        self.call(Method::GET, &format!("/v1/sandboxes/{}", seg(id)), None::<&()>).await
    }

    /// `DELETE /v1/sandboxes/{id-or-name}`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/sandboxes/{}", seg(id)), None::<&()>).await?;
        Ok(())
    }

    /// `DELETE /v1/sandboxes/{id-or-name}?volume=true`: the sandbox and its persistent volume.
    pub async fn delete_with_volume(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/sandboxes/{}?volume=true", seg(id)), None::<&()>).await?;
        Ok(())
    }

    /// `POST /v1/sandboxes/{id-or-name}/snapshot`.
    pub async fn snapshot(&self, id: &str, name: Option<&str>) -> Result<Snapshot> {
        let req = NameRequest { name: name.map(str::to_string) };
        self.call(Method::POST, &format!("/v1/sandboxes/{}/snapshot", seg(id)), Some(&req)).await
    }

    /// `POST /v1/sandboxes/{id-or-name}/fork`.
    pub async fn fork(&self, id: &str, name: Option<&str>) -> Result<Sandbox> {
        let req = NameRequest { name: name.map(str::to_string) };
        self.call(Method::POST, &format!("/v1/sandboxes/{}/fork", seg(id)), Some(&req)).await
    }

    /// `GET /v1/snapshots`.
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let list: SnapshotList = self.call(Method::GET, "/v1/snapshots", None::<&()>).await?;
        Ok(list.snapshots)
    }

    /// `DELETE /v1/snapshots/{id-or-name}`.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/snapshots/{}", seg(id)), None::<&()>).await?;
        Ok(())
    }

    /// `GET /v1/snapshots/{id-or-name}/export` into the file `local`; the bytes written.
    pub async fn export_snapshot(&self, id: &str, local: &std::path::Path, counter: Option<Counter>) -> Result<u64> {
        let resp = self
            .http
            .get(format!("{}/v1/snapshots/{}/export", self.base, seg(id)))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Error::Transport(format!("export from {}: {e}", self.base)))?;
        if !resp.status().is_success() {
            Self::checked(resp).await?;
            return Err(Error::Transport("unexpected answer".into()));
        }
        files::save_body(resp, local, counter).await
    }

    /// `POST /v1/snapshots/import?name=` with the image archive `local`, streamed.
    pub async fn import_snapshot(
        &self,
        name: &str,
        local: &std::path::Path,
        counter: Option<Counter>,
    ) -> Result<Snapshot> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::Transport(format!("cannot read {}: {e}", local.display())))?;
        let stream = counted(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024), counter);
        self.post_tar(&format!("/v1/snapshots/import?name={}", seg(name)), stream).await
    }

    /// `POST /v1/templates/{name}/build` with the folder `dir` (which holds a Dockerfile) as the
    /// build context, packed as it streams (admins).
    pub async fn build_template(&self, name: &str, dir: std::path::PathBuf) -> Result<Template> {
        self.post_tar(&format!("/v1/templates/{}/build", seg(name)), podgate_tar::pack_stream(dir)).await
    }

    /// POSTs a tar `stream` to `path_and_query`; the JSON answer.
    async fn post_tar<S, T>(&self, path_and_query: &str, stream: S) -> Result<T>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
        T: DeserializeOwned,
    {
        let resp = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-tar")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| Error::Transport(format!("upload to {} failed: {e}", self.base)))?;
        let bytes = Self::checked(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Transport(e.to_string()))
    }

    /// `GET /v1/templates`.
    pub async fn list_templates(&self) -> Result<Vec<Template>> {
        let list: TemplateList = self.call(Method::GET, "/v1/templates", None::<&()>).await?;
        Ok(list.templates)
    }

    /// `PUT /v1/templates/{name}` (admins).
    pub async fn put_template(&self, name: &str, req: &TemplateRequest) -> Result<Template> {
        self.call(Method::PUT, &format!("/v1/templates/{}", seg(name)), Some(req)).await
    }

    /// `DELETE /v1/templates/{name}` (admins).
    pub async fn delete_template(&self, name: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/templates/{}", seg(name)), None::<&()>).await?;
        Ok(())
    }

    /// `GET /v1/volumes`.
    pub async fn list_volumes(&self) -> Result<Vec<Volume>> {
        let list: VolumeList = self.call(Method::GET, "/v1/volumes", None::<&()>).await?;
        Ok(list.volumes)
    }

    /// `DELETE /v1/volumes/{id-or-name}`.
    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/volumes/{}", seg(id)), None::<&()>).await?;
        Ok(())
    }

    /// `POST /v1/volumes/{id-or-name}/unlock`.
    pub async fn unlock_volume(&self, id: &str, passphrase: &podgate_types::passphrase::Passphrase) -> Result<Volume> {
        let body = podgate_types::passphrase::UnlockRequest { passphrase: passphrase.clone() };
        self.call(Method::POST, &format!("/v1/volumes/{}/unlock", seg(id)), Some(&body)).await
    }

    /// `POST /v1/volumes/{id-or-name}/lock`.
    pub async fn lock_volume(&self, id: &str) -> Result<Volume> {
        self.call(Method::POST, &format!("/v1/volumes/{}/lock", seg(id)), None::<&()>).await
    }

    /// `POST /v1/sandboxes/{id-or-name}/pause`.
    pub async fn pause(&self, id: &str) -> Result<Sandbox> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/pause", seg(id)), None::<&()>).await
    }

    /// `POST /v1/sandboxes/{id-or-name}/resume`.
    pub async fn resume(&self, id: &str) -> Result<Sandbox> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/resume", seg(id)), None::<&()>).await
    }

    /// `POST /v1/sandboxes/{id-or-name}/extend`.
    pub async fn extend(&self, id: &str, req: &ExtendRequest) -> Result<Sandbox> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/extend", seg(id)), Some(req)).await
    }

    /// `POST /v1/sandboxes/{id-or-name}/exec`.
    pub async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecResponse> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/exec", seg(id)), Some(req)).await
    }

    /// `POST /v1/sandboxes/{id}/terminals`: starts (or selects) a terminal and gets a session token.
    pub async fn open_terminal(&self, id: &str, req: &OpenTerminalRequest) -> Result<TerminalSession> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/terminals", seg(id)), Some(req)).await
    }

    /// `GET /v1/sandboxes/{id}/terminals`.
    pub async fn list_terminals(&self, id: &str) -> Result<Vec<TerminalInfo>> {
        self.call(Method::GET, &format!("/v1/sandboxes/{}/terminals", seg(id)), None::<&()>).await
    }

    /// Opens the terminal WebSocket of a session (the token travels as a subprotocol).
    pub async fn connect_terminal(&self, session: &TerminalSession) -> Result<TerminalSocket> {
        let protocols = format!("{SUBPROTOCOL}, {TOKEN_PROTOCOL_PREFIX}{}", session.token);
        self.websocket(&session.url, &protocols, false).await
    }

    /// Starts a process and streams it (see [`podgate_types::process`] for the frames): the
    /// `start` message is sent before this returns.
    pub async fn start_process(&self, id: &str, spec: &ProcessSpec) -> Result<TerminalSocket> {
        use futures_util::SinkExt as _;
        let path = format!("/v1/sandboxes/{}/processes", seg(id));
        let mut ws = self.websocket(&path, podgate_types::process::SUBPROTOCOL, true).await?;
        let start = serde_json::to_string(&ClientMessage::Start { process: spec.clone() })
            .map_err(|e| Error::Transport(e.to_string()))?;
        ws.send(Message::Text(start.into())).await.map_err(|e| Error::Transport(format!("process stream: {e}")))?;
        Ok(ws)
    }

    /// Re-attaches to a process's stream from the given stdout and stderr byte offsets.
    pub async fn attach_process(&self, id: &str, pid: &str, from: [u64; 2]) -> Result<TerminalSocket> {
        let path = format!(
            "/v1/sandboxes/{}/processes/{}/attach?stdout_from={}&stderr_from={}",
            seg(id),
            seg(pid),
            from[0],
            from[1]
        );
        self.websocket(&path, podgate_types::process::SUBPROTOCOL, true).await
    }

    /// Opens a tunnel: a TCP connection to `host:port` made inside the sandbox, as a WebSocket
    /// of binary frames.
    pub async fn open_tunnel(&self, id: &str, host: Option<&str>, port: u16) -> Result<TerminalSocket> {
        let mut path = format!("/v1/sandboxes/{}/tunnel?port={port}", seg(id));
        if let Some(h) = host {
            path = format!("{path}&host={}", seg(h));
        }
        self.websocket(&path, podgate_types::ports::TUNNEL_SUBPROTOCOL, true).await
    }

    /// `GET /v1/sandboxes/{id}/logs`: the bootstrap log as a byte stream (followed until the
    /// bootstrap ends with `follow`).
    pub async fn bootstrap_log(&self, id: &str, follow: bool) -> Result<reqwest::Response> {
        self.stream(&format!("/v1/sandboxes/{}/logs?follow={follow}", seg(id))).await
    }

    /// `GET /v1/sandboxes/{id}/recordings`: the sandbox's terminal recordings.
    pub async fn recordings(&self, id: &str) -> Result<RecordingList> {
        self.call::<(), _>(Method::GET, &format!("/v1/sandboxes/{}/recordings", seg(id)), None).await
    }

    /// `GET /v1/sandboxes/{id}/recordings/{tid}`: one recording (asciicast v2) as a byte stream.
    pub async fn recording(&self, id: &str, terminal: &str) -> Result<reqwest::Response> {
        self.stream(&format!("/v1/sandboxes/{}/recordings/{}", seg(id), seg(terminal))).await
    }

    /// GET `path` and return the successful response unread, for streaming.
    async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Self::checked(resp).await?;
            Err(Error::Transport("unexpected answer".into()))
        }
    }

    /// Watches a directory in the sandbox: one JSON [`podgate_types::files::WatchEvent`] per
    /// text frame.
    pub async fn watch_dir(&self, id: &str, path: &str, recursive: bool) -> Result<TerminalSocket> {
        let path = format!("/v1/sandboxes/{}/files/watch?path={}&recursive={recursive}", seg(id), seg(path));
        self.websocket(&path, "", true).await
    }

    /// `POST /v1/sandboxes/{id}/processes`: starts a process in the background.
    pub async fn spawn_process(&self, id: &str, spec: &ProcessSpec) -> Result<ProcessInfo> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/processes", seg(id)), Some(spec)).await
    }

    /// `GET /v1/sandboxes/{id}/processes`.
    pub async fn list_processes(&self, id: &str) -> Result<Vec<ProcessInfo>> {
        self.call(Method::GET, &format!("/v1/sandboxes/{}/processes", seg(id)), None::<&()>).await
    }

    /// `GET /v1/sandboxes/{id}/processes/{pid}`.
    pub async fn get_process(&self, id: &str, pid: &str) -> Result<ProcessInfo> {
        self.call(Method::GET, &format!("/v1/sandboxes/{}/processes/{}", seg(id), seg(pid)), None::<&()>).await
    }

    /// `POST /v1/sandboxes/{id}/processes/{pid}/signal`.
    pub async fn signal_process(&self, id: &str, pid: &str, signal: &str) -> Result<()> {
        let path = format!("/v1/sandboxes/{}/processes/{}/signal", seg(id), seg(pid));
        self.send(Method::POST, &path, Some(&SignalRequest { signal: signal.into() })).await?;
        Ok(())
    }

    /// `DELETE /v1/sandboxes/{id}/processes/{pid}`: kills the process group.
    pub async fn kill_process(&self, id: &str, pid: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/sandboxes/{}/processes/{}", seg(id), seg(pid)), None::<&()>).await?;
        Ok(())
    }

    async fn checked(resp: reqwest::Response) -> Result<Vec<u8>> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Transport(e.to_string()))?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Error::Api { status: status.as_u16(), code: b.error.code, message: b.error.message },
            Err(_) => Error::Api {
                status: status.as_u16(),
                code: "http_error".into(),
                message: status.canonical_reason().unwrap_or("error").to_string(),
            },
        })
    }

    async fn call<B: Serialize, T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Transport(format!("unreadable answer from {}: {e}", self.base)))
    }

    async fn send<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<Vec<u8>> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        Self::checked(resp).await
    }
}

/// `stream` with each chunk's length added to `counter`.
fn counted<S>(stream: S, counter: Option<Counter>) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>>
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>>,
{
    use futures_util::StreamExt as _;
    stream.inspect(move |chunk| {
        if let (Some(c), Ok(b)) = (&counter, chunk) {
            c.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    })
}

/// Percent-encodes a path segment (ids and names are plain, but input is never trusted).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether an error is the API's "not found".
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Api { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_segments() {
        assert_eq!(super::seg("web-1"), "web-1");
        assert_eq!(super::seg("../x y"), "..%2Fx%20y");
    }
}
