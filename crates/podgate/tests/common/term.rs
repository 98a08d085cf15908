//! A terminal client for tests: the real WebSocket through the gateway, with a `vt100` screen fed
//! from what arrives, so tests compare screens rather than bytes.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use podgate_types::terminal::{Control, SUBPROTOCOL, TerminalSession};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Server;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a terminal (or a session on an existing one) with the REST API.
pub async fn open(srv: &Server, sandbox: &str, body: serde_json::Value) -> TerminalSession {
    let r = srv
        .http()
        .post(format!("{}/v1/sandboxes/{sandbox}/terminals", srv.url))
        .bearer_auth(&srv.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "open terminal: {}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// Connects to `path` with `token` as a subprotocol; `Err` carries the HTTP status of a refusal.
pub async fn connect_raw(srv: &Server, path: &str, token: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let url = format!("{}{}", srv.url.replacen("http://", "ws://", 1), path);
    let mut req = url.into_client_request().unwrap();
    let protocols = format!("{SUBPROTOCOL}, token.{token}");
    req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let addr = srv.url.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), SUBPROTOCOL);
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket error: {e}"),
    }
}

/// A connected terminal client and the screen it has drawn.
pub struct Term {
    pub ws: Ws,
    pub parser: vt100::Parser,
    pub exit: Option<i32>,
    pub closed: bool,
}

impl Term {
    pub async fn connect(srv: &Server, s: &TerminalSession, cols: u16, rows: u16) -> Term {
        let ws = connect_raw(srv, &s.url, &s.token, None).await.expect("connect");
        Term {
            ws,
            parser: vt100::Parser::new(rows.try_into().unwrap(), cols.try_into().unwrap(), 1000),
            exit: None,
            closed: false,
        }
    }

    pub fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
    }

    pub async fn control(&mut self, c: &Control) {
        self.ws.send(Message::Text(serde_json::to_string(c).unwrap().into())).await.unwrap();
    }

    /// Reads frames for up to `secs`, until `done(self)` holds; panics with the screen otherwise.
    pub async fn until(&mut self, secs: u64, what: &str, done: impl Fn(&Term) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero() && !self.closed, "timed out waiting for {what}; screen:\n{}", self.screen());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.parser.process(&b),
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Ok(Control::Exit { code }) = serde_json::from_str(&t) {
                        self.exit = Some(code);
                    }
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => self.closed = true,
                Ok(Some(Ok(_))) => {}
                Err(_) => {}
            }
        }
    }

    /// Reads whatever arrives within `ms` milliseconds.
    pub async fn settle(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.ws.next()).await
        {
            if let Message::Binary(b) = m {
                self.parser.process(&b);
            }
        }
    }
}
