//! Tunnels end to end: an HTTP server in a sandbox reached through `podgate port-forward`, a
//! half-closed tunnel still getting its answer, and clear errors for closed ports and bad targets.

mod common;

use std::io::{BufRead as _, BufReader};

use common::{KillOnDrop, Server};
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::Message;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::ports::ListeningPort;

const BUSYBOX: &str = "podgate/busybox:test";

#[tokio::test]
async fn port_forward_reaches_http_in_the_sandbox() {
    let srv = Server::start();
    let c = srv.client();
    let script = "mkdir -p /srv && echo hello from the sandbox > /srv/index.html \
        && head -c 3000000 /dev/urandom > /srv/big.bin \
        && printf '#!/bin/sh\\nwc -c\\n' > /srv/count && chmod +x /srv/count \
        && (nc -ll -p 9000 -e /srv/count &) && exec httpd -f -p 8080 -h /srv";
    let sb = c
        .create(&CreateSandboxRequest {
            image: Some(BUSYBOX.into()),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let ports = format!("/v1/sandboxes/{sb}/ports");
    common::eventually(10, "httpd and nc listening", async || {
        let l: Vec<ListeningPort> = srv.get_json(&ports).await;
        l.iter().any(|p| p.port == 8080) && l.iter().any(|p| p.port == 9000)
    })
    .await;

    let child = srv.cli_spawn(&["port-forward", &sb, "0:8080"], std::process::Stdio::inherit());
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let local = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("forwarding line: {line:?}")).to_string();
    assert!(local.starts_with("127.0.0.1:"), "{line}");

    let http = reqwest::Client::new();
    let body = http.get(format!("http://{local}/index.html")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello from the sandbox\n");
    // Many connections at once, and a larger body byte for byte.
    let gets = (0..20).map(|_| {
        let http = http.clone();
        let url = format!("http://{local}/big.bin");
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    });
    let bodies = futures_util::future::join_all(gets).await;
    // The file as the file API gives it (an exec answer holds 1 MiB of output).
    let copy = tempfile::NamedTempFile::new().unwrap();
    c.download(&sb, "/srv/big.bin", copy.path(), None).await.unwrap();
    let direct = std::fs::read(copy.path()).unwrap();
    assert_eq!(direct.len(), 3_000_000);
    for b in &bodies {
        assert!(b[..] == direct[..], "a forwarded body differs ({} bytes)", b.len());
    }

    // A tunnel whose client stops sending still gets the answer (half-close).
    let mut ws = c.open_tunnel(&sb, None, 9000).await.unwrap();
    ws.send(Message::Binary(vec![b'x'; 100_000].into())).await.unwrap();
    ws.send(Message::Binary(Vec::new().into())).await.unwrap();
    let mut answer = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Binary(b) => answer.extend_from_slice(&b),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(String::from_utf8_lossy(&answer).trim(), "100000");

    // Errors come before any WebSocket: nothing listening, bad host, bad port, unknown sandbox.
    let status = |e: podgate_client::Error| match e {
        podgate_client::Error::Api { status, .. } => status,
        other => panic!("{other}"),
    };
    assert_eq!(status(c.open_tunnel(&sb, None, 9).await.unwrap_err()), 502);
    assert_eq!(status(c.open_tunnel(&sb, Some("example.com"), 80).await.unwrap_err()), 422);
    assert_eq!(status(c.open_tunnel(&sb, None, 0).await.unwrap_err()), 422);
    assert_eq!(status(c.open_tunnel("nope", None, 80).await.unwrap_err()), 404);
    // A port out of range, through a real WebSocket handshake: the agent's 400 comes back.
    let tunnel = |q: &str| format!("/v1/sandboxes/{sb}/tunnel?{q}");
    let e = c.websocket(&tunnel("port=70000"), podgate_types::ports::TUNNEL_SUBPROTOCOL, true).await.unwrap_err();
    assert_eq!(status(e), 400);
    let r = srv.req(reqwest::Method::GET, &tunnel("port=8080")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "not a WebSocket upgrade");
    let e = podgate_client::Client::new(&srv.url, "wrong").unwrap().open_tunnel(&sb, None, 8080).await.unwrap_err();
    assert_eq!(status(e), 401);
}
