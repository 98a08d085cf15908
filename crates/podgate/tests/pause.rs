//! Pause and resume end to end on the real engine: ten cycles lose nothing of a running process
//! or the file it appends to, a paused sandbox's processes stand still, using a paused sandbox
//! resumes it, and a paused sandbox can be deleted.

mod common;

use std::time::Duration;

use common::{Server, docker};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, SandboxState};
use podgate_types::process::ProcessSpec;
use podgate_types::users::CreateUserRequest;

const BUSYBOX: &str = "podgate/busybox:test";

async fn sh(c: &Client, id: &str, cmd: &str) -> String {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = c.exec(id, &req).await.unwrap();
    assert_eq!(out.exit_code, 0, "{cmd}: {}", String::from_utf8_lossy(&out.stderr.0));
    String::from_utf8_lossy(&out.stdout.0).into_owned()
}

fn engine_state(id: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", &common::container(id)]).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_pause_resume_cycles_lose_nothing() {
    let srv = Server::start();
    let c = srv.client();
    let sb = c
        .create(&CreateSandboxRequest {
            name: Some("frozen".into()),
            image: Some(BUSYBOX.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let counter = "i=0; while :; do i=$((i+1)); echo $i >>/tmp/log; echo $i >/tmp/counter.new; \
                   mv /tmp/counter.new /tmp/counter; sleep 0.05; done";
    let spec = ProcessSpec { argv: vec![counter.into()], shell: true, ..Default::default() };
    let writer = c.spawn_process(&sb.id, &spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    for cycle in 0..10 {
        let before: u64 = sh(&c, &sb.id, "cat /tmp/counter").await.trim().parse().unwrap();
        let since_before = std::time::Instant::now();
        let paused = c.pause(&sb.id).await.unwrap();
        assert_eq!(paused.state, SandboxState::Paused);
        assert_eq!(engine_state(&sb.id), "paused");
        // Paused twice is still paused.
        assert_eq!(c.pause("frozen").await.unwrap().state, SandboxState::Paused);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(c.get(&sb.id).await.unwrap().state, SandboxState::Paused);
        let resumed = c.resume(&sb.id).await.unwrap();
        assert_eq!(resumed.state, SandboxState::Running);
        let after: u64 = sh(&c, &sb.id, "cat /tmp/counter").await.trim().parse().unwrap();
        // The writer counts at most 20 a second while it runs. Between the two reads it ran only
        // outside the two seconds of pause (however slow the calls around it were on a loaded
        // machine): a pause that did not freeze it would show about 40 more.
        let running = since_before.elapsed().as_secs_f64() - 2.0;
        let most = (20.0 * running).ceil() as u64 + 2;
        assert!(
            after >= before && after - before <= most,
            "cycle {cycle}: {before} -> {after} across a 2 s pause, with {running:.2} s of running around it"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sh(&c, &sb.id, "cat /tmp/log").await;
    let numbers: Vec<u64> = log.lines().map(|l| l.parse().unwrap()).collect();
    assert!(numbers.len() > 20, "{}", numbers.len());
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "the log has a gap or a repeat");
    let procs = c.list_processes(&sb.id).await.unwrap();
    let same = procs.iter().find(|p| p.id == writer.id).expect("the writer is still listed");
    assert_eq!((same.pid, same.exit.is_none()), (writer.pid, true), "the writer must be the same, still running");
    let events: serde_json::Value = srv.get_json("/v1/audit?action=sandbox.pause").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn using_a_paused_sandbox_resumes_it_and_a_paused_one_can_be_deleted() {
    let srv = Server::start();
    let admin = srv.client();
    let created = admin.create_user(&CreateUserRequest { name: "erin".into(), role: None }).await.unwrap();
    let erin = Client::new(&srv.url, &created.token.secret).unwrap();
    let sb = erin
        .create(&CreateSandboxRequest { name: Some("nap".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();

    // The CLI.
    let cli = |args: &[&str]| {
        let o = srv.cli_command(args).env("PODGATE_TOKEN", erin.token()).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    assert_eq!(cli(&["pause", "nap"]), (true, "nap paused\n".into()));
    assert_eq!(engine_state(&sb.id), "paused");
    assert_eq!(cli(&["resume", "nap"]), (true, "nap running\n".into()));
    assert_eq!(engine_state(&sb.id), "running");

    // Someone else's sandbox is not found; a missing one neither.
    let other = Client::new(
        &srv.url,
        &admin.create_user(&CreateUserRequest { name: "frank".into(), role: None }).await.unwrap().token.secret,
    )
    .unwrap();
    assert!(podgate_client::is_not_found(&other.pause(&sb.id).await.unwrap_err()));
    assert!(podgate_client::is_not_found(&erin.pause("no-such-sandbox").await.unwrap_err()));

    // Using it resumes it.
    erin.pause("nap").await.unwrap();
    assert_eq!(sh(&erin, "nap", "echo awake").await, "awake\n");
    assert_eq!(erin.get("nap").await.unwrap().state, SandboxState::Running);
    assert_eq!(engine_state(&sb.id), "running");
    let events: serde_json::Value = srv.get_json("/v1/audit?action=sandbox.resume").await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["detail"] == "on use"), "{events}");

    // A paused sandbox is deleted like any other, container and all.
    erin.pause("nap").await.unwrap();
    erin.delete("nap").await.unwrap();
    assert!(srv.containers().is_empty(), "{:?}", srv.containers());
    // Resuming what is gone is a 404.
    assert!(podgate_client::is_not_found(&erin.resume(&sb.id).await.unwrap_err()));
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sandboxes_pause_and_activity_keeps_them_running() {
    use futures_util::StreamExt as _;
    use podgate_client::Message;

    let srv = Server::start();
    let c = srv.client();
    let req = CreateSandboxRequest {
        name: Some("idle".into()),
        image: Some(BUSYBOX.into()),
        idle_timeout_seconds: Some(3),
        ..Default::default()
    };
    let sb = c.create(&req).await.unwrap();
    assert_eq!(sb.idle_timeout_seconds, 3);

    // Output streaming to a client for 6 s is activity: the sandbox stays running past 3 s.
    let ticking = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick; sleep 0.5; done";
    let spec = ProcessSpec { argv: vec![ticking.into()], shell: true, ..Default::default() };
    let mut ws = c.start_process(&sb.id, &spec).await.unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    // A sandbox paused under the stream would stop it: that fails here, not hangs.
    while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("the stream stalled")
    {
        match m {
            Message::Binary(b) if b.len() > 1 => out.extend_from_slice(&b[1..]),
            Message::Text(t)
                if matches!(serde_json::from_str(&t), Ok(podgate_types::process::ServerMessage::Exit { .. })) =>
            {
                break;
            }
            _ => {}
        }
    }
    assert_eq!(String::from_utf8_lossy(&out).matches("tick").count(), 12);
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(c.get(&sb.id).await.unwrap().state, SandboxState::Running, "activity must keep it running");
    assert!(c.get(&sb.id).await.unwrap().last_active_at.is_some());

    // Then nothing: it is paused once the idle timeout passes (looking at it is not activity).
    let quiet = std::time::Instant::now();
    common::eventually(20, "the idle sandbox is paused", async || {
        c.get(&sb.id).await.unwrap().state == SandboxState::Paused
    })
    .await;
    assert!(quiet.elapsed() >= Duration::from_millis(1500), "paused {:?} after the last activity", quiet.elapsed());
    assert_eq!(engine_state(&sb.id), "paused");
    let events: serde_json::Value = srv.get_json("/v1/audit?action=sandbox.idle_pause").await;
    assert_eq!(events["events"][0]["sandbox_id"], sb.id.as_str(), "{events}");

    // Using it resumes it.
    assert_eq!(sh(&c, "idle", "echo back").await, "back\n");
    assert_eq!(c.get(&sb.id).await.unwrap().state, SandboxState::Running);

    // Extend: a new expiry from now, and idle pauses off.
    let ext = c
        .extend("idle", &podgate_types::api::ExtendRequest { ttl_seconds: Some(7200), idle_timeout_seconds: Some(0) })
        .await
        .unwrap();
    assert_eq!(ext.idle_timeout_seconds, 0);
    let left = (ext.expires_at.unwrap() - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((7190..=7200).contains(&left), "{left}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.get(&sb.id).await.unwrap().state, SandboxState::Running, "no idle pause with timeout 0");
    let o = srv.cli(&["extend", "idle", "--idle", "600"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("idle timeout 600 s"), "{o:?}");
    let bad = c.extend("idle", &podgate_types::api::ExtendRequest { ttl_seconds: Some(0), ..Default::default() }).await;
    assert!(bad.unwrap_err().to_string().contains("out of range"));

    // Concurrent extends of the TTL and of the idle timeout both land: each is a
    // compare-and-set on the spec, so neither writes back a stale copy of the other's field.
    for round in 0..8u64 {
        let (ttl, idle) = (3600 + round * 60, 300 + round);
        let ext = |req| {
            let c = c.clone();
            async move { c.extend("idle", &req).await.unwrap() }
        };
        let asks = (0..3).flat_map(|_| {
            [
                ext(podgate_types::api::ExtendRequest { ttl_seconds: Some(ttl), ..Default::default() }),
                ext(podgate_types::api::ExtendRequest { idle_timeout_seconds: Some(idle), ..Default::default() }),
            ]
        });
        futures_util::future::join_all(asks).await;
        let now = c.get(&sb.id).await.unwrap();
        assert_eq!(now.idle_timeout_seconds, idle, "round {round}: the idle timeout was lost");
        let left = (now.expires_at.unwrap() - time::OffsetDateTime::now_utc()).whole_seconds();
        assert!((ttl as i64 - 30..=ttl as i64).contains(&left), "round {round}: expiry {left} s, asked {ttl}");
        assert!(now.ttl_seconds.unwrap() >= ttl, "round {round}: the TTL was lost: {:?}", now.ttl_seconds);
    }
}

/// A terminal left open past the idle timeout: the sandbox is paused under it, and typing into
/// it again resumes the sandbox and gets the answer (instead of waiting in a frozen socket).
#[tokio::test(flavor = "multi_thread")]
async fn typing_into_a_terminal_of_an_idle_paused_sandbox_resumes_it() {
    use common::term::{Term, open};

    let srv = Server::start();
    let c = srv.client();
    let req = CreateSandboxRequest {
        name: Some("dozy".into()),
        image: Some(BUSYBOX.into()),
        idle_timeout_seconds: Some(2),
        ..Default::default()
    };
    let sb = c.create(&req).await.unwrap();
    let session = open(&srv, &sb.id, serde_json::json!({ "cmd": ["sh"] })).await;
    let mut term = Term::connect(&srv, &session, 80, 24).await;
    term.send("echo first-$((6*7))\r").await;
    term.until(10, "the first answer", |t| t.screen().contains("first-42")).await;

    common::eventually(30, "the idle sandbox is paused", async || {
        c.get(&sb.id).await.unwrap().state == SandboxState::Paused
    })
    .await;
    assert_eq!(engine_state(&sb.id), "paused");

    term.send("echo again-$((7*6))\r").await;
    term.until(20, "the answer after the pause", |t| t.screen().contains("again-42")).await;
    assert_eq!(c.get(&sb.id).await.unwrap().state, SandboxState::Running);
    let events: serde_json::Value = srv.get_json("/v1/audit?action=sandbox.resume").await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["detail"] == "on input"), "{events}");
}
