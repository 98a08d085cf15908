//! Listening ports end to end: listed, and pushed over a WebSocket as they appear and go.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use futures_util::StreamExt as _;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use podgate_types::ports::ListeningPort;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn sh(cmd: &str) -> ExecRequest {
    ExecRequest { argv: vec!["sh".into(), "-c".into(), cmd.into()], ..Default::default() }
}

async fn next_list(ws: &mut common::term::Ws) -> Vec<ListeningPort> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a port update within 10 s") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("watch closed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn ports_are_listed_and_pushed() {
    let srv = Server::start();
    let c = srv.client();
    let sb = c.create(&CreateSandboxRequest::default()).await.unwrap().id;
    let ports = format!("/v1/sandboxes/{sb}/ports");
    let list = async || srv.get_json::<Vec<ListeningPort>>(&ports).await;
    assert!(list().await.is_empty(), "the agent itself listens on a unix socket only");

    let url = format!("{}/v1/sandboxes/{sb}/ports/watch", srv.url.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", srv.token).parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(srv.url.trim_start_matches("http://")).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.expect("watch with a bearer token");
    assert!(next_list(&mut ws).await.is_empty());

    let started = Instant::now();
    let r = c
        .exec(&sb, &sh("git daemon --port=7777 --listen=0.0.0.0 --base-path=/tmp --export-all >/dev/null 2>&1 &"))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    let update = next_list(&mut ws).await;
    let seen_after = started.elapsed();
    let port = update.iter().find(|p| p.port == 7777).unwrap_or_else(|| panic!("7777 in {update:?}"));
    assert_eq!(port.address, "0.0.0.0");
    assert!(port.process.as_deref().is_some_and(|p| p.contains("git")), "{port:?}");
    eprintln!("port 7777 pushed {seen_after:?} after the exec that started it returned");
    assert!(list().await.iter().any(|p| p.port == 7777));

    c.exec(&sb, &sh("pkill -f 'git-daemon'")).await.unwrap();
    let update = next_list(&mut ws).await;
    assert!(!update.iter().any(|p| p.port == 7777), "{update:?}");

    // Without a token there is no watch.
    let req = format!("{}/v1/sandboxes/{sb}/ports/watch", srv.url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(srv.url.trim_start_matches("http://")).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
}
