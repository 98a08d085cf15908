//! The audit trail end to end: a tenant's actions, refusals (bad token, quota, rate limit) and
//! the server's own (TTL expiry) become events with actor, source, sandbox and result; admins
//! query them by user, action and time; a sandbox's owner reads its whole life by id, also after
//! its deletion, and nobody else can; every event is also a line on the `audit` log target.

mod common;

use std::time::Duration;

use common::{Opts, Server};
use podgate_client::Client;
use podgate_types::api::{AuditEvent, AuditList, CreateSandboxRequest, ExecRequest};
use podgate_types::process::ProcessSpec;
use podgate_types::terminal::OpenTerminalRequest;
use podgate_types::users::CreateUserRequest;

const BUSYBOX: &str = "podgate/busybox:test";

fn actions(events: &[AuditEvent]) -> Vec<(&str, &str)> {
    events.iter().map(|e| (e.action.as_str(), e.result.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_and_refusals_are_audited_and_queryable() {
    let flags = ["--quota-sandboxes", "1", "--create-rate-limit", "3"];
    let srv = Server::start_with(Opts { extra: flags.map(String::from).to_vec(), ..Default::default() });
    let admin = srv.client();
    let new_user = async |name: &str| {
        let u = admin.create_user(&CreateUserRequest { name: name.into(), role: None }).await.unwrap();
        (u.user.id.clone(), Client::new(&srv.url, &u.token.secret).unwrap())
    };
    let (alice_id, alice) = new_user("alice").await;
    let (_, bob) = new_user("bob").await;
    let http = reqwest::Client::new();
    let bad = http.get(format!("{}/v1/users/me", srv.url)).bearer_auth("pgt_forged").send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);

    // Alice's sandbox: create, exec, a file, a terminal, a process, then delete.
    let req = || CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() };
    let sb = alice.create(&req()).await.unwrap();
    let exec = ExecRequest { argv: vec!["echo".into(), "audited".into()], ..Default::default() };
    alice.exec(&sb.id, &exec).await.unwrap();
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), b"data").unwrap();
    alice.upload(&sb.id, "/tmp/audited.txt", local.path(), None, None).await.unwrap();
    alice.open_terminal(&sb.id, &OpenTerminalRequest::default()).await.unwrap();
    let spec = ProcessSpec { argv: vec!["sleep".into(), "1".into()], ..Default::default() };
    alice.spawn_process(&sb.id, &spec).await.unwrap();
    // Over the quota of one sandbox twice, then over three creations a minute.
    for _ in 0..2 {
        alice.create(&req()).await.unwrap_err();
    }
    let e = alice.create(&req()).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 429, .. }), "{e:?}");
    alice.delete(&sb.id).await.unwrap();

    // The sandbox's life, by id, after its deletion: for its owner and admins only.
    let path = format!("/v1/sandboxes/{}/events", sb.id);
    let life: AuditList = srv.get_json(&path).await;
    assert_eq!(
        actions(&life.events),
        [
            ("sandbox.create", "ok"),
            ("sandbox.exec", "ok"),
            ("file.write", "ok"),
            ("terminal.open", "ok"),
            ("terminal.attach", "ok"),
            ("process.start", "ok"),
            ("sandbox.delete", "ok"),
        ]
    );
    for e in &life.events {
        assert_eq!((e.actor_id.as_deref(), e.source.as_deref()), (Some(alice_id.as_str()), Some("127.0.0.1")), "{e:?}");
        assert!(e.id > 0 && e.at > 0);
    }
    assert!(life.events[1].detail.as_deref() == Some("echo audited"), "{:?}", life.events[1]);
    assert!(life.events[2].detail.as_deref().is_some_and(|d| d.contains("/tmp/audited.txt")), "{:?}", life.events[2]);
    let own = http.get(format!("{}{path}", srv.url)).bearer_auth(alice.token()).send().await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    let other = http.get(format!("{}{path}", srv.url)).bearer_auth(bob.token()).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 404, "another tenant's sandbox answers like a missing one");

    // Admins query the whole trail; users may not.
    let all: AuditList = srv.get_json(&format!("/v1/audit?user={alice_id}")).await;
    let seen = actions(&all.events);
    for want in [
        ("token.use", "ok"),
        ("sandbox.create", "quota_exceeded"),
        ("rate_limit.create", "rate_limited"),
        ("sandbox.create", "rate_limited"),
    ] {
        assert!(seen.contains(&want), "{want:?} in {seen:?}");
    }
    assert!(all.events.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let failed: AuditList = srv.get_json("/v1/audit?action=auth.failed").await;
    assert_eq!(failed.events.len(), 1, "{:?}", failed.events);
    assert_eq!((failed.events[0].source.as_deref(), failed.events[0].actor_id.as_deref()), (Some("127.0.0.1"), None));
    let created: AuditList = srv.get_json("/v1/audit?action=user.create&limit=1").await;
    assert!(created.events[0].detail.as_deref().is_some_and(|d| d.contains("bob")), "{:?}", created.events);
    let later = all.events[0].at + 1;
    let none: AuditList = srv.get_json(&format!("/v1/audit?user={alice_id}&since={later}")).await;
    assert!(none.events.is_empty());
    let r = http.get(format!("{}/v1/audit", srv.url)).bearer_auth(alice.token()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http.get(format!("{}/v1/audit?bogus=1", srv.url)).bearer_auth(&srv.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "unknown filters are refused");

    // The server's own actions: a TTL expiry, by `system`.
    // Long enough to finish starting on a loaded machine; the reconciler then deletes it.
    let short = admin.create(&CreateSandboxRequest { ttl_seconds: Some(5), ..req() }).await.unwrap();
    let path = format!("/v1/sandboxes/{}/events", short.id);
    common::eventually(20, "the expiry in the sandbox's events", async || {
        let life: AuditList = srv.get_json(&path).await;
        life.events.iter().any(|e| e.action == "sandbox.expire" && e.actor_name.as_deref() == Some("system"))
    })
    .await;

    // Every event is also a line of the `audit` log target.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = srv.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" audit: ")).collect();
    assert!(lines.iter().any(|l| l.contains("action=sandbox.exec") && l.contains(&sb.id)), "{log}");
    assert!(lines.iter().any(|l| l.contains("action=auth.failed") && l.contains("source=\"127.0.0.1\"")), "{log}");
}

#[tokio::test]
async fn retention_forgets_old_events_and_recordings_at_start() {
    let mut srv = Server::start();
    srv.client().me().await.unwrap();
    let day = 86_400_000i64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let store = srv.store().await;
    for (at, action) in [(now - 40 * day, "test.old"), (now - 2 * day, "test.recent")] {
        let row = podgate_store::AuditRow { at, action: action.into(), result: "ok".into(), ..Default::default() };
        store.insert_audit(&row).await.unwrap();
    }
    drop(store);
    let dir = srv.dir.path().join("recordings/sb-gone");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, age_days) in [("t-old.cast", 40), ("t-recent.cast", 2)] {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(age_days * 86400)).unwrap();
    }

    srv.kill9();
    let flags = ["--audit-retention-days", "30", "--recording-retention-days", "30"];
    srv.spawn(Opts { extra: flags.map(String::from).to_vec(), ..Default::default() });
    // Recordings an older server left on disk move into the database at start, keeping their
    // times; then retention removes the old one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: AuditList = srv.get_json("/v1/audit?limit=1000").await;
        let kept: Vec<&str> = events.events.iter().map(|e| e.action.as_str()).collect();
        let store = srv.store().await;
        let casts: Vec<String> =
            store.recordings("sb-gone").await.unwrap().into_iter().map(|r| r.terminal_id).collect();
        if !kept.contains(&"test.old") && casts == ["t-recent"] {
            assert!(kept.contains(&"test.recent"), "{kept:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "old events ({kept:?}) or recordings ({casts:?}) kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!dir.exists(), "the moved files are gone from the data dir");
}
