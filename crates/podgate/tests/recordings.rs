//! Terminal recordings end to end: the server's own viewer writes asciicast v2 outside the
//! sandbox, per policy (off, requested, always), within a size limit, readable by the owner and
//! admins (also after the sandbox is deleted), and it never keeps an idle terminal alive.

mod common;

use std::time::{Duration, Instant};

use common::term::{Term, open};
use common::{Opts, Server};
use podgate_client::Client;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::CreateUserRequest;
use serde_json::json;

fn with(flags: &[&str]) -> Server {
    Server::start_with(Opts { extra: flags.iter().map(|s| s.to_string()).collect(), ..Default::default() })
}

/// The recording's header and events, once it holds `done`.
async fn recording(srv: &Server, sb: &str, tid: &str, done: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = srv.req(reqwest::Method::GET, &format!("/v1/sandboxes/{sb}/recordings/{tid}")).send().await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.headers()["content-type"], "application/x-asciicast");
            let text = r.text().await.unwrap();
            if text.contains(done) {
                let mut lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
                let header = lines.next().unwrap();
                return (header, lines.collect());
            }
        }
        assert!(Instant::now() < deadline, "the recording of {tid} never held {done:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// All output events' text, joined.
fn output(events: &[serde_json::Value]) -> String {
    events.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().unwrap()).collect()
}

#[tokio::test]
async fn requested_recordings_are_asciicast_and_outlive_the_sandbox() {
    let srv = with(&["--terminal-recording", "requested", "--terminal-idle-seconds", "3"]);
    let admin = srv.client();
    let recorded = CreateSandboxRequest { record_terminals: true, ..Default::default() };
    let sb = admin.create(&recorded).await.unwrap();
    assert!(sb.record_terminals);
    let plain = admin.create(&CreateSandboxRequest::default()).await.unwrap();
    assert!(!plain.record_terminals);

    let session = open(&srv, &sb.id, json!({"cols": 100, "rows": 30})).await;
    let mut t = Term::connect(&srv, &session, 100, 30).await;
    t.until(10, "the prompt", |t| t.screen().contains('$')).await;
    t.send("echo rec-$((6*7)) 'price: 5 €'\r").await;
    t.until(10, "the output", |t| t.screen().contains("rec-42 price: 5 €")).await;
    // The server's recorder is not one of the terminal's clients.
    let listed: serde_json::Value = srv.get_json(&format!("/v1/sandboxes/{}/terminals", sb.id)).await;
    assert_eq!(listed[0]["clients"], 1, "{listed}");
    t.send("exit 5\r").await;
    t.until(10, "the exit", |t| t.exit.is_some()).await;

    let (header, events) = recording(&srv, &sb.id, &session.terminal_id, "exit 5").await;
    assert_eq!(
        (header["version"].as_u64(), header["width"].as_u64(), header["height"].as_u64()),
        (Some(2), Some(100), Some(30))
    );
    assert!(output(&events).contains("rec-42 price: 5 €"), "{}", output(&events));
    assert_eq!(events.last().unwrap()[1], "m");
    assert_eq!(events.last().unwrap()[2], "exit 5");
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times only grow: {times:?}");

    // A sandbox that did not ask is not recorded.
    let s2 = open(&srv, &plain.id, json!({})).await;
    let mut t2 = Term::connect(&srv, &s2, 80, 24).await;
    t2.until(10, "the prompt", |t| t.screen().contains('$')).await;
    let none: serde_json::Value = srv.get_json(&format!("/v1/sandboxes/{}/recordings", plain.id)).await;
    assert_eq!(none["recordings"], json!([]));

    // Only the owner and admins: another user gets the 404 of a missing sandbox.
    let bob = admin.create_user(&CreateUserRequest { name: "bob".into(), role: None }).await.unwrap();
    let bob = Client::new(&srv.url, &bob.token.secret).unwrap();
    assert_eq!(bob.recordings(&sb.id).await.unwrap_err().status(), Some(404));
    assert_eq!(bob.recording(&sb.id, &session.terminal_id).await.unwrap_err().status(), Some(404));
    assert_eq!(admin.recording(&sb.id, "t-nope").await.unwrap_err().status(), Some(404));
    assert_eq!(admin.recording(&sb.id, "..%2Fx").await.unwrap_err().status(), Some(404));

    // A recorded terminal nobody watches still ends when idle: the recorder does not count.
    let idle = open(&srv, &sb.id, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: serde_json::Value = srv.get_json(&format!("/v1/sandboxes/{}/terminals", sb.id)).await;
        let alive =
            list.as_array().unwrap().iter().any(|t| t["id"] == idle.terminal_id.as_str() && t["exit_code"].is_null());
        if !alive {
            break;
        }
        assert!(Instant::now() < deadline, "the idle recorded terminal did not end: {list}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // After the sandbox is gone, by id, also through the CLI.
    admin.delete(&sb.id).await.unwrap();
    let list = admin.recordings(&sb.id).await.unwrap().recordings;
    let ids: Vec<&str> = list.iter().map(|r| r.terminal_id.as_str()).collect();
    assert!(ids.contains(&session.terminal_id.as_str()) && ids.contains(&idle.terminal_id.as_str()), "{ids:?}");
    let out = srv.cli(&["recordings", &sb.id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&session.terminal_id));
    let out = srv.cli(&["recordings", &sb.id, &session.terminal_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cast = String::from_utf8(out.stdout).unwrap();
    assert!(cast.starts_with("{\"") && cast.contains("rec-42") && cast.ends_with('\n'));
    assert!(cast.lines().last().unwrap().contains("exit 5"));
}

#[tokio::test]
async fn policy_off_refuses_and_always_records_within_the_size_limit() {
    let srv = Server::start();
    let r =
        srv.req(reqwest::Method::POST, "/v1/sandboxes").json(&json!({"record_terminals": true})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("does not record terminals"));
    drop(srv);

    let srv = with(&["--terminal-recording", "always", "--recording-max-size", "64Ki"]);
    let sb = srv.client().create(&CreateSandboxRequest::default()).await.unwrap();
    assert!(sb.record_terminals, "always records sandboxes that did not ask");
    let session = open(&srv, &sb.id, json!({})).await;
    let mut t = Term::connect(&srv, &session, 80, 24).await;
    t.until(10, "the prompt", |t| t.screen().contains('$')).await;
    // Far more output than the limit: the recording stops at it, the terminal goes on.
    t.send("for i in $(seq 1 6000); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; done; echo done-$((1+1))\r").await;
    t.until(60, "the end of the flood", |t| t.screen().contains("done-2")).await;
    let (_, events) = recording(&srv, &sb.id, &session.terminal_id, "size limit reached").await;
    assert_eq!(events.last().unwrap()[2], "recording stopped: size limit reached");
    let size = srv.client().recordings(&sb.id).await.unwrap().recordings[0].size;
    assert!(size <= 64 * 1024, "recording of {size} bytes over the 64Ki limit");
    assert!(output(&events).contains("line-1-"));
}

#[tokio::test]
async fn a_bootstrap_command_terminal_is_recorded() {
    let srv = with(&["--terminal-recording", "requested"]);
    let req: CreateSandboxRequest = serde_json::from_value(json!({
        "record_terminals": true, "shell": true, "command": "echo boot-$((2+3)); sleep 600"
    }))
    .unwrap();
    let sb = srv.client().create(&req).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let tid = loop {
        let s = srv.client().get(&sb.id).await.unwrap();
        if let Some(tid) = s.bootstrap.and_then(|b| b.terminal_id) {
            break tid;
        }
        assert!(Instant::now() < deadline, "no bootstrap terminal");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, events) = recording(&srv, &sb.id, &tid, "boot-5").await;
    assert!(output(&events).contains("boot-5"));
}
