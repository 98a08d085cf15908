//! Lifecycle end to end: TTL expiry, crash recovery after `kill -9`, vanished and unknown
//! containers, and the agent's PID 1 duties (reaping zombies, forwarding signals).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use common::{Opts, Server, docker, eventually};
use podgate_types::api::{CreateSandboxRequest, ExecRequest, SandboxState};

fn exec(argv: &[&str]) -> ExecRequest {
    ExecRequest { argv: argv.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

#[tokio::test]
async fn ttl_expiry_deletes_the_sandbox() {
    let srv = Server::start();
    let c = srv.client();
    // Long enough to finish starting on a loaded machine (an expiry mid-create fails the create).
    let sb = c.create(&CreateSandboxRequest { ttl_seconds: Some(5), ..Default::default() }).await.unwrap();
    let expires = sb.expires_at.unwrap() - sb.created_at;
    assert_eq!(expires.whole_seconds(), 5);
    let keep = c.create(&CreateSandboxRequest { ttl_seconds: Some(600), ..Default::default() }).await.unwrap();
    eventually(20, "the expired sandbox is deleted", async || c.get(&sb.id).await.is_err()).await;
    assert!(podgate_client::is_not_found(&c.get(&sb.id).await.unwrap_err()));
    assert_eq!(srv.containers(), vec![common::container(&keep.id)], "only the unexpired container is left");
    assert_eq!(c.get(&keep.id).await.unwrap().state, SandboxState::Running);
}

#[tokio::test]
async fn a_ttl_that_ends_during_the_create_is_the_answer() {
    // An "agent" that never answers keeps the create waiting until the TTL removes the sandbox.
    let dir = tempfile::tempdir().unwrap();
    let stuck = dir.path().join("stuck-agent");
    std::fs::write(&stuck, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&stuck, std::fs::Permissions::from_mode(0o755)).unwrap();
    let srv = Server::start_with(Opts { agent_bin: Some(stuck), ..Default::default() });
    let c = srv.client();
    let e = c.create(&CreateSandboxRequest { ttl_seconds: Some(1), ..Default::default() }).await.unwrap_err();
    assert!(matches!(&e, podgate_client::Error::Api { status: 409, .. }), "{e:?}");
    assert!(e.to_string().contains("removed while it was starting: ttl expired"), "{e}");
    eventually(20, "nothing left", async || srv.containers().is_empty()).await;
}

#[tokio::test]
async fn kill9_during_create_leaves_no_orphan() {
    // An "agent" that never answers keeps the create waiting, so the kill lands mid-create.
    let mut srv = Server::start();
    let stuck = srv.dir.path().join("stuck-agent");
    std::fs::write(&stuck, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&stuck, std::fs::Permissions::from_mode(0o755)).unwrap();
    srv.kill9();
    srv.spawn(Opts { agent_bin: Some(stuck), ..Default::default() });

    let c = srv.client();
    let creating = tokio::spawn(async move {
        c.create(&CreateSandboxRequest { name: Some("crash".into()), ..Default::default() }).await
    });
    let c = srv.client();
    eventually(30, "the create is under way with its container running", async || {
        let starting = c.list().await.unwrap().iter().any(|s| s.state == SandboxState::Starting);
        let running = !docker(&["ps", "-q", "--filter", &format!("label=io.podgate.instance={}", srv.instance)])
            .trim()
            .is_empty();
        starting && running
    })
    .await;
    srv.kill9();
    assert!(creating.await.unwrap().is_err(), "the create never completed");
    assert_eq!(srv.containers().len(), 1, "the container is left behind by the crash");

    // Restart (with the real agent): nothing leaks, and the database says what happened.
    srv.spawn(Opts::default());
    assert!(srv.containers().is_empty(), "recovery removed the orphan container: {:?}", srv.containers());
    let c = srv.client();
    let list = c.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, SandboxState::Failed);
    assert!(list[0].error.as_deref().unwrap().contains("server stopped"), "{:?}", list[0].error);
    // The failed sandbox can be deleted, and the server works normally afterwards.
    c.delete("crash").await.unwrap();
    let sb = c.create(&CreateSandboxRequest { name: Some("crash".into()), ..Default::default() }).await.unwrap();
    assert_eq!(c.exec(&sb.id, &exec(&["true"])).await.unwrap().exit_code, 0);
    // kill -9 of an idle server: its running sandbox is still there after the restart.
    srv.kill9();
    srv.spawn(Opts::default());
    let c = srv.client();
    assert_eq!(c.get("crash").await.unwrap().state, SandboxState::Running);
    assert_eq!(c.exec("crash", &exec(&["echo", "back"])).await.unwrap().stdout.0, b"back\n");
}

#[tokio::test]
async fn vanished_and_dead_containers_fail_and_unknown_ones_go() {
    let srv = Server::start();
    let c = srv.client();
    let gone = c.create(&CreateSandboxRequest::default()).await.unwrap();
    let dead = c.create(&CreateSandboxRequest::default()).await.unwrap();
    docker(&["rm", "-f", &common::container(&gone.id)]);
    docker(&["kill", &common::container(&dead.id)]);
    // A container labelled as this server's that the database does not know.
    let stray = format!("sb-stray{}", std::process::id());
    docker(&[
        "run",
        "-d",
        "--name",
        &format!("podgate-{stray}"),
        "--label",
        &format!("io.podgate.instance={}", srv.instance),
        "--label",
        &format!("io.podgate.sandbox={stray}"),
        "--entrypoint",
        "sleep",
        "podgate/base:latest",
        "1000",
    ]);
    eventually(20, "both sandboxes are marked failed", async || {
        let a = c.get(&gone.id).await.unwrap();
        let b = c.get(&dead.id).await.unwrap();
        a.state == SandboxState::Failed && b.state == SandboxState::Failed
    })
    .await;
    assert!(c.get(&gone.id).await.unwrap().error.unwrap().contains("vanished"));
    assert!(c.get(&dead.id).await.unwrap().error.unwrap().contains("stopped"));
    eventually(20, "the stray and the dead containers are removed", async || srv.containers().is_empty()).await;
    // Exec on a failed sandbox is a clear conflict.
    let e = c.exec(&dead.id, &exec(&["true"])).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 409, .. }), "{e:?}");
}

#[tokio::test]
async fn agent_as_pid1_reaps_zombies_and_forwards_signals() {
    // No reconciler pass during the test: it would remove the stopped container we inspect.
    let srv = Server::start_with(Opts { reconcile_ms: Some(600_000), ..Default::default() });
    let c = srv.client();
    let trap = "trap 'echo main got TERM; exit 0' TERM; while :; do sleep 0.1; done";
    let sb = c
        .create(&CreateSandboxRequest { cmd: Some(vec!["sh".into(), "-c".into(), trap.into()]), ..Default::default() })
        .await
        .unwrap();
    // Orphans re-parented to PID 1 must not stay zombies once they exit.
    let r = c.exec(&sb.id, &exec(&["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.2 &); done"])).await.unwrap();
    assert_eq!(r.exit_code, 0);
    // A zombie whose parent is PID 1 is the agent's to reap; one whose parent still runs (the main
    // loop's `sleep 0.1` between exit and its shell's wait) is not, so only PID 1's count, and
    // a snapshot may catch one in passing: it must be gone within a few seconds.
    let orphan_zombies = |ps: &str| {
        ps.lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 3 && f[1] == "1" && f[2].starts_with('Z')
            })
            .count()
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ps = loop {
        let ps = c.exec(&sb.id, &exec(&["ps", "-eo", "pid=,ppid=,stat=,comm="])).await.unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout.0).to_string();
        if orphan_zombies(&ps) == 0 {
            break ps;
        }
        assert!(std::time::Instant::now() < deadline, "zombies of PID 1 left:\n{ps}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ps.lines().any(|l| l.trim().starts_with("1 ") && l.contains("podgate-agent")), "agent is PID 1:\n{ps}");

    // `docker stop` sends SIGTERM to PID 1: the agent forwards it to the main command and exits cleanly.
    let name = common::container(&sb.id);
    docker(&["stop", "-t", "20", &name]);
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "0", "the agent exited by itself, not by SIGKILL");
    let logs = Command::new("docker").args(["logs", &name]).output().unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("main got TERM"), "the main command received SIGTERM: {logs}");
}

#[tokio::test]
async fn a_sandbox_cannot_redirect_the_server_to_another_host_socket() {
    let srv = Server::start_with(Opts { extra: vec!["--allow-root-sandboxes".into()], ..Default::default() });
    let c = srv.client();
    // The sandbox user cannot even reach the agent's run directory.
    let plain = c.create(&CreateSandboxRequest::default()).await.unwrap();
    let r = c.exec(&plain.id, &exec(&["rm", "-f", "/.podgate/run/agent.sock"])).await.unwrap();
    assert_ne!(r.exit_code, 0);
    assert!(String::from_utf8_lossy(&r.stderr.0).contains("Permission denied"));
    // Root in a root sandbox can: the server still never follows what it finds there.
    let root = CreateSandboxRequest { user: Some("root".into()), ..Default::default() };
    let sb = c.create(&root).await.unwrap();
    // A socket on the host that the sandbox must not be able to point the server at.
    let trap_dir = tempfile::Builder::new().prefix("pgtrap").tempdir_in("/tmp").unwrap();
    let trap = trap_dir.path().join("trap.sock");
    let listener = std::os::unix::net::UnixListener::bind(&trap).unwrap();
    listener.set_nonblocking(true).unwrap();
    let swap = format!("rm -f /.podgate/run/agent.sock && ln -s {} /.podgate/run/agent.sock", trap.display());
    assert_eq!(c.exec(&sb.id, &exec(&["sh", "-c", &swap])).await.unwrap().exit_code, 0);
    let err = c.exec(&sb.id, &exec(&["true"])).await.unwrap_err();
    assert!(matches!(err, podgate_client::Error::Api { status: 503, .. }), "{err:?}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the server never connected to the host socket"
    );
}

/// SIGTERM stops every part of the server together, SSH included, with an open SSH connection
/// and an open terminal: the process exits 0, both ports close, and the sandbox keeps running
/// for the next start.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_http_ssh_and_the_background_parts_together() {
    let mut srv = Server::start();
    let c = srv.client();
    let sb = c.create(&CreateSandboxRequest { name: Some("stays".into()), ..Default::default() }).await.unwrap();
    let ssh = std::net::TcpStream::connect(&srv.ssh_addr).expect("the SSH port is open");
    let session = common::term::open(&srv, &sb.id, serde_json::json!({ "cmd": ["sh"] })).await;
    let _term = common::term::Term::connect(&srv, &session, 80, 24).await;
    let http_addr = srv.url.trim_start_matches("http://").to_string();
    let status = tokio::task::spawn_blocking(move || {
        let status = srv.terminate(20);
        (status, srv)
    });
    let (status, srv) = status.await.unwrap();
    drop(ssh);
    assert!(status.success(), "exit status {status:?}; log:\n{}", srv.log());
    let log = srv.log();
    assert!(log.contains("stopping: HTTP, SSH, the reconciler and the purgers"), "{log}");
    assert!(log.contains("podgate stopped"), "{log}");
    assert!(std::net::TcpStream::connect(&srv.ssh_addr).is_err(), "the SSH port is closed");
    assert!(std::net::TcpStream::connect(&http_addr).is_err(), "the HTTP port is closed");
    let state = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=io.podgate.sandbox={}", sb.id)])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&state.stdout).trim().is_empty(), "the sandbox keeps running");
}
