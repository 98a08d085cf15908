//! Rate limits and quotas end to end: 429 with Retry-After and rate-limit headers per address,
//! per user and on creation, counters shared by two servers on one database; quotas refuse
//! creates over the count, CPU, memory and TTL limits with nothing half-created, also under
//! concurrent creates, and admins override them per user.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{KillOnDrop, Opts, Server};
use podgate_client::Client;
use podgate_types::MemorySize;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::CreateUserRequest;

const BUSYBOX: &str = "podgate/busybox:test";

/// Waits for a fresh one-minute window when the current one ends within 15 s, so that a test's
/// requests all fall into one window.
async fn fresh_window() {
    let s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() % 60;
    if s >= 45 {
        tokio::time::sleep(Duration::from_secs(61 - s)).await;
    }
}

async fn user(srv: &Server, name: &str) -> Client {
    let created = srv.client().create_user(&CreateUserRequest { name: name.into(), role: None }).await.unwrap();
    Client::new(&srv.url, &created.token.secret).unwrap()
}

fn status(e: podgate_client::Error) -> u16 {
    match e {
        podgate_client::Error::Api { status, .. } => status,
        other => panic!("{other:?}"),
    }
}

/// Another server process on the same data directory and database (a replica).
fn replica(srv: &Server, extra: &[&str]) -> (String, KillOnDrop) {
    let dir = tempfile::Builder::new().prefix("pgr").tempdir_in("/tmp").unwrap();
    let addr_file = srv.dir.path().join("http.addr");
    let before = std::fs::read_to_string(&addr_file).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(srv.dir.path())
        .arg("--agent-bin")
        .arg(common::agent_bin())
        .args(srv.database_url.iter().flat_map(|u| ["--database-url", u]))
        .args(["--ssh-listen", "off", "--e2b-listen", "off"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = std::fs::read_to_string(&addr_file).unwrap_or_default();
        if !now.is_empty() && now != before {
            return (format!("http://{}", now.trim()), child);
        }
        assert!(Instant::now() < deadline, "the replica did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_and_are_shared_by_replicas() {
    let flags = ["--rate-limit-per-address", "60", "--rate-limit-per-user", "10", "--create-rate-limit", "2"];
    let srv = Server::start_with(Opts { extra: flags.map(String::from).to_vec(), ..Default::default() });
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    fresh_window().await;
    let http = reqwest::Client::new();

    // Per user: ten requests a minute, then 429 with the headers; another user is not affected.
    for i in 0..10 {
        alice.me().await.unwrap_or_else(|e| panic!("request {i}: {e}"));
    }
    let r = http.get(format!("{}/v1/users/me", srv.url)).bearer_auth(alice.token()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let h = r.headers().clone();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!((h["ratelimit-limit"].to_str().unwrap(), h["ratelimit-remaining"].to_str().unwrap()), ("10", "0"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    bob.me().await.unwrap();

    // Creations: two a minute per user; the third is refused before anything is made.
    let req = || CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() };
    let admin = srv.client();
    admin.create(&req()).await.unwrap();
    admin.create(&req()).await.unwrap();
    assert_eq!(status(admin.create(&req()).await.unwrap_err()), 429);
    assert_eq!(admin.list().await.unwrap().len(), 2);
    assert_eq!(srv.containers().len(), 2);

    // The same counters through a second server on the same database: bob's tenth request of
    // the minute goes to the replica and is the last one allowed.
    let (replica_url, _replica) = replica(&srv, &flags);
    let bob_there = Client::new(&replica_url, bob.token()).unwrap();
    for _ in 0..8 {
        bob.me().await.unwrap();
    }
    bob_there.me().await.unwrap();
    assert_eq!(status(bob_there.me().await.unwrap_err()), 429, "the replica counts the first server's requests");
    assert_eq!(status(bob.me().await.unwrap_err()), 429);

    // Per address, before authentication: anonymous requests run into the address limit (60,
    // counted over everything 127.0.0.1 sent), while health checks are never limited.
    let mut codes = Vec::new();
    for _ in 0..60 {
        codes.push(http.get(format!("{}/v1/users/me", srv.url)).send().await.unwrap().status().as_u16());
    }
    assert!(codes.contains(&401) && codes.last() == Some(&429), "{codes:?}");
    let first_429 = codes.iter().position(|c| *c == 429).unwrap();
    assert!(codes[first_429..].iter().all(|c| *c == 429), "{codes:?}");
    assert_eq!(http.get(format!("{}/healthz", srv.url)).send().await.unwrap().status().as_u16(), 200);
    let log = srv.log();
    assert!(log.contains("rate limited"), "refusals are logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_refuse_what_does_not_fit_and_admins_override_them() {
    let flags =
        ["--quota-sandboxes", "2", "--quota-cpu", "1", "--quota-memory", "1Gi", "--quota-max-ttl-seconds", "3600"];
    let srv = Server::start_with(Opts { extra: flags.map(String::from).to_vec(), ..Default::default() });
    let alice = user(&srv, "alice").await;
    let small = |cpu: f64| CreateSandboxRequest {
        image: Some(BUSYBOX.into()),
        cpu: Some(cpu),
        memory: Some(MemorySize(256 << 20)),
        ..Default::default()
    };
    let refused = async |req: CreateSandboxRequest, want: &str| {
        let e = alice.create(&req).await.unwrap_err();
        let text = e.to_string();
        assert_eq!(status(e), 403);
        assert!(text.contains("quota") && text.contains(want), "{want:?} in {text}");
    };

    alice.create(&small(0.5)).await.unwrap();
    refused(CreateSandboxRequest { ttl_seconds: Some(7200), ..small(0.1) }, "maximum TTL of 3600").await;
    refused(small(0.75), "CPUs").await;
    refused(CreateSandboxRequest { memory: Some(MemorySize(900 << 20)), ..small(0.1) }, "memory").await;
    alice.create(&small(0.5)).await.unwrap();
    refused(small(0.0001), "2 of 2 sandboxes").await;
    // Nothing half-created: two sandboxes, two containers.
    assert_eq!(alice.list().await.unwrap().len(), 2);
    assert_eq!(srv.containers().len(), 2);
    let q = alice.quota("me").await.unwrap();
    assert_eq!((q.usage.sandboxes, q.usage.cpu, q.usage.memory.0), (2, 1.0, 512 << 20));
    assert_eq!((q.limits.sandboxes, q.limits.max_ttl_seconds), (2, 3600));

    // Only admins set quotas; a user cannot even see another user's.
    let me = alice.me().await.unwrap();
    let more = podgate_types::users::QuotaOverrides { sandboxes: Some(9), ..Default::default() };
    assert_eq!(status(alice.set_quota(&me.id, &more).await.unwrap_err()), 403);
    let admin_id = srv.client().me().await.unwrap().id;
    assert_eq!(status(alice.quota(&admin_id).await.unwrap_err()), 404);

    // The admin raises alice's quota with the CLI.
    let o = srv.cli(&["user", "quota", "alice", "--sandboxes", "3", "--cpu", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("sandboxes") && text.contains('3'), "{text}");
    let q = alice.quota("me").await.unwrap();
    assert_eq!((q.limits.sandboxes, q.limits.cpu, q.overrides.sandboxes), (3, 4.0, Some(3)));

    // Five creates at once for one free place: exactly one succeeds.
    let quarter = small(0.25);
    let results = futures_util::future::join_all((0..5).map(|_| alice.create(&quarter))).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 1, "{results:?}");
    for e in results.into_iter().filter_map(Result::err) {
        assert_eq!(status(e), 403);
    }
    assert_eq!(alice.list().await.unwrap().len(), 3);
    assert_eq!(srv.containers().len(), 3);

    // Reset: the server's defaults apply again.
    let o = srv.cli(&["user", "quota", "alice", "--reset", "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q: podgate_types::users::Quota = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((q.limits.sandboxes, q.overrides), (2, Default::default()));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let http = reqwest::Client::new();
    let anonymous = |srv: &Server, from: &str| {
        http.get(format!("{}/v1/users/me", srv.url)).header("x-forwarded-for", from.to_string()).send()
    };
    // Not trusted (the default): the header is ignored, every request is 127.0.0.1's.
    let srv =
        Server::start_with(Opts { extra: vec!["--rate-limit-per-address".into(), "3".into()], ..Default::default() });
    fresh_window().await;
    for (i, from) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].iter().enumerate() {
        assert_eq!(anonymous(&srv, from).await.unwrap().status().as_u16(), 401, "request {i}");
    }
    assert_eq!(anonymous(&srv, "198.51.100.4").await.unwrap().status().as_u16(), 429, "one address for all");
    drop(srv);

    // Behind a trusted proxy on loopback: each forwarded client has its own count and audit source.
    let extra = ["--rate-limit-per-address", "3", "--trusted-proxies", "127.0.0.1,10.0.0.0/8"];
    let srv = Server::start_with(Opts { extra: extra.map(String::from).to_vec(), ..Default::default() });
    fresh_window().await;
    for i in 0..3 {
        assert_eq!(anonymous(&srv, "198.51.100.7").await.unwrap().status().as_u16(), 401, "request {i}");
    }
    assert_eq!(anonymous(&srv, "198.51.100.7").await.unwrap().status().as_u16(), 429);
    // Another client through the same proxy chain (a second trusted hop) is not affected.
    assert_eq!(anonymous(&srv, "198.51.100.8, 10.1.2.3").await.unwrap().status().as_u16(), 401);
    let r = http
        .get(format!("{}/v1/users/me", srv.url))
        .header("x-forwarded-for", "198.51.100.9")
        .bearer_auth("pgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let failed: serde_json::Value = srv.get_json("/v1/audit?action=auth.failed").await;
    assert_eq!(failed["events"][0]["source"], "198.51.100.9", "{failed}");
}
