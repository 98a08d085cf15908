//! The server's own surfaces: `/metrics` (finding 6), a database outage (11), failed logins in
//! the audit trail (12), and values past 2^63 (19).

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use crate::common::{Opts, Server};
use podgate_types::api::CreateSandboxRequest;

/// Sends raw bytes to the server and returns its answer's status line.
fn raw(srv: &Server, request: &[u8]) -> String {
    let addr = srv.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_labels_are_bounded() {
    let srv = Server::start();
    for i in 0..50 {
        let method = format!("X{}{i}", "A".repeat(2000));
        raw(&srv, format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    }
    let page = reqwest::get(format!("{}/metrics", srv.url)).await.unwrap().text().await.unwrap();
    assert!(!page.contains("AAAA"), "a client's method name became a label");
    assert!(page.contains("method=\"other\""), "{page}");
    assert!(page.len() < 64 * 1024, "{} bytes", page.len());
}

/// Requests during an outage answer 503, each within `limit`.
async fn fail_within(admin: &podgate_client::Client, limit: Duration) {
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let t = Instant::now();
        let r = admin.list().await;
        assert_eq!(r.as_ref().err().and_then(|e| e.status()), Some(503), "request {i}: {:?}", r.map(|l| l.len()));
        slowest = slowest.max(t.elapsed());
    }
    assert!(slowest < limit, "a request took {slowest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn database_outage_fails_fast() {
    let srv = Server::start_with(Opts { postgres: Some(true), ..Default::default() });
    let admin = srv.client();
    admin.list().await.unwrap();
    // A database that stops answering (its host hangs): each request used to wait 5-10 s.
    let frozen = srv.pg.as_ref().unwrap().freeze();
    fail_within(&admin, Duration::from_millis(3500)).await;
    drop(frozen);
    // Within a second or two of the database answering again, so does the server.
    crate::common::eventually(10, "the server answering again", async || admin.list().await.is_ok()).await;
    // A database that is gone (connections refused): requests fail at once.
    srv.pg.as_ref().unwrap().stop();
    fail_within(&admin, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_summarised() {
    let srv = Server::start();
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let r = http
            .get(format!("{}/v1/users/me", srv.url))
            .bearer_auth("pgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let failed: serde_json::Value = srv.get_json("/v1/audit?action=auth.failed").await;
    let n = failed["events"].as_array().unwrap().len();
    assert_eq!(n, 1, "200 refusals from one address in a minute are one audit row: {failed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_values_are_refused() {
    let srv = Server::start();
    let admin = srv.client();
    for m in [1u64 << 63, u64::MAX, (1u64 << 63) - 1] {
        let req = CreateSandboxRequest {
            image: Some(crate::BUSYBOX.into()),
            memory: Some(podgate_types::MemorySize(m)),
            ..Default::default()
        };
        let r = admin.create(&req).await;
        assert_eq!(r.as_ref().err().and_then(|e| e.status()), Some(422), "memory {m}: {:?}", r.map(|s| s.memory));
    }
    let quota = serde_json::json!({ "memory": u64::MAX });
    let me = crate::user(&srv, "q").await.me().await.unwrap();
    let r = srv.req(reqwest::Method::PUT, &format!("/v1/users/{}/quota", me.id)).json(&quota).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422, "{}", r.text().await.unwrap());
}
