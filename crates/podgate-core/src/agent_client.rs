//! HTTP client for a sandbox's agent, over its unix socket (Docker) or TCP (Kubernetes).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use podgate_runtime::AgentEndpoint;
use podgate_types::agent::{AgentHealth, SECRET_HEADER};
use podgate_types::api::{ErrorBody, ExecRequest, ExecResponse};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest agent response read into memory.
const MAX_RESPONSE: usize = 96 << 20;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent could not be reached (not listening yet, gone, broken connection).
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// The agent answered with an error body.
    #[error("agent refused the request ({status}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The agent answered something that is not the protocol.
    #[error("agent answered outside the protocol: {0}")]
    Protocol(String),
}

/// One sandbox's agent.
#[derive(Clone, Debug)]
pub struct AgentClient {
    endpoint: AgentEndpoint,
    secret: String,
}

impl AgentClient {
    pub fn new(endpoint: AgentEndpoint, secret: String) -> AgentClient {
        AgentClient { endpoint, secret }
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<AgentHealth, AgentError> {
        self.call(
            Method::GET,
            "/v1/health",
            None,
            Some(Duration::from_secs(5)),
        )
        .await
    }

    /// `POST /v1/exec`: runs a process to completion.
    pub async fn exec(&self, req: &ExecRequest) -> Result<ExecResponse, AgentError> {
        let body = serde_json::to_vec(req).map_err(|e| AgentError::Protocol(e.to_string()))?;
        self.call(Method::POST, "/v1/exec", Some(body), None).await
    }

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
            return serde_json::from_slice(&bytes).map_err(|e| AgentError::Protocol(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(AgentError::Refused {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            }),
            Err(_) => Err(AgentError::Protocol(format!(
                "status {status} without an error body"
            ))),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), AgentError> {
        let unreachable = |e: std::io::Error| AgentError::Unreachable(e.to_string());
        match &self.endpoint {
            AgentEndpoint::Unix(p) => {
                let io = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?;
                self.exchange(io, method, path, body).await
            }
            AgentEndpoint::Tcp(a) => {
                let io = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(unreachable)?;
                self.exchange(io, method, path, body).await
            }
        }
    }

    async fn exchange<S>(
        &self,
        io: S,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), AgentError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let broken = |e: hyper::Error| AgentError::Unreachable(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(broken)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "agent")
            .header(SECRET_HEADER, &self.secret);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(broken)?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| AgentError::Unreachable(format!("reading the agent's answer: {e}")))?
            .to_bytes();
        Ok((status, bytes))
    }
}
