//! The server and a real PostgreSQL that goes away: requests that need the database answer 503,
//! `/readyz` says so, open terminals keep working, and everything recovers on its own once the
//! database is back; a server started before its database waits for it.

mod common;

use std::time::{Duration, Instant};

use common::term::{Term, open};
use common::{Opts, Server};
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use serde_json::json;

fn on_postgres() -> Opts {
    Opts { postgres: Some(true), ..Default::default() }
}

/// Status and body of GET `path` with the admin token.
async fn get(srv: &Server, path: &str) -> (u16, String) {
    let r = srv.req(reqwest::Method::GET, path).timeout(Duration::from_secs(30)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_database_outage_answers_503_keeps_terminals_and_heals() {
    let mut srv = Server::start_with(on_postgres());
    let client = srv.client();
    let sb = client.create(&CreateSandboxRequest::default()).await.unwrap().id;
    let session = open(&srv, &sb, json!({"cols": 80, "rows": 24})).await;
    let mut t = Term::connect(&srv, &session, 80, 24).await;
    t.until(10, "the prompt", |t| t.screen().contains('$')).await;

    srv.pg.as_ref().unwrap().stop();

    let started = Instant::now();
    let (status, body) = get(&srv, "/readyz").await;
    assert_eq!(status, 503, "readyz while the database is down: {body}");
    assert!(body.contains("database"), "readyz names the database: {body}");
    let (status, body) = get(&srv, "/v1/sandboxes").await;
    assert_eq!(status, 503, "a request that needs the database: {body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "unavailable", "{body}");
    let r = srv.req(reqwest::Method::POST, "/v1/sandboxes").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "create while the database is down");
    eprintln!("503s answered within {:?}", started.elapsed());
    assert_eq!(get(&srv, "/healthz").await.0, 200, "the process itself is healthy");

    // The open terminal does not need the database.
    t.send("echo still-$((40+2))\r").await;
    t.until(10, "terminal output during the outage", |t| t.screen().contains("still-42")).await;

    // Let the reconciler and the other background loops meet the outage too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(srv.running(), "the server exited during the outage: {}", srv.log());

    srv.pg.as_ref().unwrap().resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&srv, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz did not recover: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = client.list().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [sb.as_str()]);
    let second = client.create(&CreateSandboxRequest::default()).await.unwrap();
    let req = ExecRequest { argv: vec!["echo".into(), "after the outage".into()], ..Default::default() };
    let out = client.exec(&second.id, &req).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout.0).trim(), "after the outage");
    t.send("echo healed-$((2*3))\r").await;
    t.until(10, "terminal output after the outage", |t| t.screen().contains("healed-6")).await;
    assert!(srv.log().contains("store failure"), "the outage is logged");
}

#[tokio::test]
async fn a_server_started_before_its_database_waits_for_it() {
    let mut srv = Server::start_with(on_postgres());
    srv.kill9();
    srv.pg.as_ref().unwrap().stop();
    srv.spawn_process(on_postgres());
    std::thread::sleep(Duration::from_secs(3));
    assert!(srv.running(), "the server gave up waiting: {}", srv.log());
    assert!(!srv.dir.path().join("http.addr").exists(), "it serves without its database");
    assert!(srv.log().contains("the database is unreachable; waiting for it"), "{}", srv.log());
    srv.pg.as_ref().unwrap().resume();
    srv.wait_serving(Duration::from_secs(60));
    assert_eq!(get(&srv, "/readyz").await.0, 200);
    assert!(srv.client().list().await.unwrap().is_empty());
}
