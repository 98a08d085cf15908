//! Several replicas on one PostgreSQL: any replica serves any sandbox, exactly one runs the
//! reconciler (holding its lease), and another takes over within seconds when the leader dies.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::term::{Term, open};
use common::{KillOnDrop, Opts, Server, eventually};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};

const BUSYBOX: &str = "podgate/busybox:test";

/// Another replica: its own data dir, the same database, and `extra` flags. Returns its URL.
fn second_replica(srv: &Server, dir: &std::path::Path, extra: &[&str]) -> (String, KillOnDrop) {
    let child = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "off",
            "--e2b-listen",
            "off",
            "--reconcile-interval-ms",
            "300",
        ])
        .args(["--create-rate-limit", "1000", "--data-dir"])
        .arg(dir)
        .arg("--agent-bin")
        .arg(common::agent_bin())
        .args(["--database-url", srv.database_url.as_deref().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(a) = std::fs::read_to_string(dir.join("http.addr"))
            && !a.trim().is_empty()
        {
            return (format!("http://{}", a.trim()), child);
        }
        assert!(Instant::now() < deadline, "the second replica did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the replica at `url` says it leads the reconciler.
async fn leads(url: &str, token: &str) -> Option<bool> {
    let r = reqwest::Client::new().get(format!("{url}/metrics")).bearer_auth(token).send().await.ok()?;
    let text = r.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with("podgate_reconciler_leader "))?;
    Some(line.ends_with(" 1"))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_leads_the_reconciler_and_another_takes_over_when_it_dies() {
    let mut a = Server::start_with(Opts { postgres: Some(true), ..Default::default() });
    let b_dir = tempfile::Builder::new().prefix("pgb").tempdir_in("/tmp").unwrap();
    let (b_url, _b) = second_replica(&a, b_dir.path(), &[]);
    let token = a.token.clone();
    let (a_url, ca, cb) = (a.url.clone(), a.client(), Client::new(&b_url, &token).unwrap());

    // Exactly one leads: the first to start.
    eventually(10, "both replicas report", async || {
        leads(&a_url, &token).await.is_some() && leads(&b_url, &token).await.is_some()
    })
    .await;
    assert_eq!((leads(&a_url, &token).await, leads(&b_url, &token).await), (Some(true), Some(false)));

    // Any replica serves any sandbox.
    let req = |name: &str, ttl| CreateSandboxRequest {
        name: Some(name.into()),
        image: Some(BUSYBOX.into()),
        ttl_seconds: Some(ttl),
        ..Default::default()
    };
    let sb = cb.create(&req("shared", 600)).await.unwrap();
    let echo = ExecRequest { argv: vec!["echo".into(), "hi".into()], ..Default::default() };
    assert_eq!(ca.exec(&sb.id, &echo).await.unwrap().stdout.0, b"hi\n");
    // The leader expires sandboxes made through the other replica.
    // On a loaded machine the TTL can run out while the sandbox is still starting: the create then
    // answers that the reconciler removed it, which shows the same thing.
    let expires = async |name: &str, ttl| match cb.create(&req(name, ttl)).await {
        Ok(sb) => Some(sb.id),
        Err(e) if e.status() == Some(409) && e.to_string().contains("ttl expired") => None,
        Err(e) => panic!("creating {name}: {e}"),
    };
    if let Some(id) = expires("short", 3).await {
        eventually(20, "the leader deletes the expired sandbox", async || ca.get(&id).await.is_err()).await;
    }

    // The leader dies: the other takes over within seconds and does the reconciler's work.
    a.kill9();
    let died = Instant::now();
    eventually(15, "the second replica takes the lease", async || leads(&b_url, &token).await == Some(true)).await;
    let takeover = died.elapsed();
    assert!(takeover < Duration::from_secs(10), "took {takeover:?}");
    eprintln!("takeover after {takeover:?}");
    if let Some(id) = expires("short2", 2).await {
        eventually(20, "the new leader deletes the expired sandbox", async || cb.get(&id).await.is_err()).await;
    }
    assert_eq!(cb.exec("shared", &echo).await.unwrap().stdout.0, b"hi\n");
    cb.delete("shared").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_made_by_one_replica_is_served_by_the_other() {
    let rec = ["--terminal-recording", "always"];
    let a = Server::start_with(Opts {
        postgres: Some(true),
        extra: rec.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    let b_dir = tempfile::Builder::new().prefix("pgb").tempdir_in("/tmp").unwrap();
    let (b_url, _b) = second_replica(&a, b_dir.path(), &rec);
    let sb = a.client().create(&CreateSandboxRequest::default()).await.unwrap();

    // A terminal opened through replica A: A's recorder writes it.
    let session = open(&a, &sb.id, serde_json::json!({"cols": 80, "rows": 24})).await;
    let mut t = Term::connect(&a, &session, 80, 24).await;
    t.until(10, "the prompt", |t| t.screen().contains('$')).await;
    t.send("echo rec-$((6*7))\r").await;
    t.until(10, "the output", |t| t.screen().contains("rec-42")).await;

    // Replica B lists it and serves its bytes as they are written.
    let http = reqwest::Client::new();
    let get = |path: String| http.get(format!("{b_url}{path}")).bearer_auth(&a.token).send();
    let tid = session.terminal_id.clone();
    eventually(10, "replica B serves the recording with the output", async || {
        let Ok(r) = get(format!("/v1/sandboxes/{}/recordings/{tid}", sb.id)).await else { return false };
        r.status() == 200 && r.text().await.is_ok_and(|text| text.contains("rec-42"))
    })
    .await;
    let listed: serde_json::Value =
        get(format!("/v1/sandboxes/{}/recordings", sb.id)).await.unwrap().json().await.unwrap();
    assert_eq!(listed["recordings"][0]["terminal_id"], tid.as_str(), "{listed}");
    assert!(listed["recordings"][0]["size"].as_u64().unwrap() > 0, "{listed}");
    let cast = get(format!("/v1/sandboxes/{}/recordings/{tid}", sb.id)).await.unwrap().text().await.unwrap();
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!((header["version"].as_u64(), header["width"].as_u64()), (Some(2), Some(80)), "{cast}");
    let missing = get(format!("/v1/sandboxes/{}/recordings/nope", sb.id)).await.unwrap();
    assert_eq!(missing.status(), 404);
}
