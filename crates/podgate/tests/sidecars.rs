//! Sidecars end to end: containers beside a sandbox in its network namespace, allowed only by an
//! admin's policy (the server default, overridden per user), privileged only under a privileged
//! policy, charged to the owner's quota, and removed with the sandbox.

mod common;

use common::{Opts, Server};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, Sidecar};
use podgate_types::users::CreateUserRequest;

const BUSYBOX: &str = "podgate/busybox:test";

fn with(flags: &[&str]) -> Server {
    Server::start_with(Opts { extra: flags.iter().map(|s| s.to_string()).collect(), ..Default::default() })
}

/// A sidecar that serves its own `CapEff` over HTTP on `port`.
fn web(name: &str, port: u16, privileged: bool) -> Sidecar {
    let script = format!(
        "mkdir -p /tmp/www && grep CapEff /proc/self/status | cut -f2 > /tmp/www/caps && httpd -f -p {port} -h /tmp/www"
    );
    Sidecar {
        name: name.into(),
        image: BUSYBOX.into(),
        cmd: Some(vec!["sh".into(), "-c".into(), script]),
        privileged,
        ..Default::default()
    }
}

fn sandbox(sidecars: Vec<Sidecar>) -> CreateSandboxRequest {
    CreateSandboxRequest { image: Some(BUSYBOX.into()), sidecars, ..Default::default() }
}

/// What the sandbox gets from `http://127.0.0.1:PORT/caps` (retried while the sidecar starts).
async fn caps_via_localhost(client: &Client, sb: &str, port: u16) -> u64 {
    let line =
        format!("for i in $(seq 50); do wget -qO- http://127.0.0.1:{port}/caps && exit 0; sleep 0.1; done; exit 1");
    let req = ExecRequest { argv: vec![line], shell: true, ..Default::default() };
    let out = client.exec(sb, &req).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout.0).trim().to_string();
    assert_eq!(out.exit_code, 0, "the sidecar did not answer on localhost: {}", String::from_utf8_lossy(&out.stderr.0));
    u64::from_str_radix(&text, 16).unwrap_or_else(|_| panic!("caps {text:?}"))
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Whether this Docker engine can run a privileged container at all.
fn engine_runs_privileged() -> bool {
    std::process::Command::new("docker")
        .args(["run", "--rm", "--privileged", "--network", "none", BUSYBOX, "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn sidecars_follow_the_admin_policy() {
    // Off by default.
    let srv = Server::start();
    let e = srv.client().create(&sandbox(vec![web("web", 8080, false)])).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(e.to_string().contains("sidecar policy"), "{e}");
    drop(srv);

    let srv = with(&["--sidecars", "unprivileged"]);
    let admin = srv.client();
    let alice = admin.create_user(&CreateUserRequest { name: "alice".into(), role: None }).await.unwrap();
    let alice = Client::new(&srv.url, &alice.token.secret).unwrap();
    let e = alice.create(&sandbox(vec![web("dind", 8081, true)])).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "privileged needs a privileged policy: {e}");
    assert!(srv.containers().is_empty(), "a refused create leaves nothing: {:?}", srv.containers());

    // An unprivileged sidecar shares the sandbox's localhost and keeps a minimal capability set.
    let sb = alice.create(&sandbox(vec![web("web", 8080, false)])).await.unwrap();
    assert_eq!(sb.sidecars.len(), 1);
    assert_eq!((sb.sidecars[0].cpu, sb.sidecars[0].memory.map(|m| m.0)), (Some(0.5), Some(512 << 20)));
    assert_eq!(caps_via_localhost(&alice, &sb.id, 8080).await, 0x4fb);
    let names = srv.containers();
    assert!(names.contains(&format!("{}-web", common::container(&sb.id))), "{names:?}");
    // Charged to the quota with the sandbox: 1 CPU + 0.5 for the sidecar.
    let q = alice.quota("me").await.unwrap();
    assert_eq!((q.usage.sandboxes, q.usage.cpu), (1, 1.5));
    // The reconciler sees one sandbox, not two.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(alice.list().await.unwrap().len(), 1);
    assert_eq!(alice.get(&sb.id).await.unwrap().state.as_str(), "running");

    // The admin lets alice run privileged sidecars (e.g. Docker-in-Docker).
    let out = srv.cli(&["user", "quota", "alice", "--sidecars", "privileged"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = srv.cli(&["user", "quota", "alice"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("privileged"), "{}", String::from_utf8_lossy(&out.stdout));
    // The policy admits it and the engine is asked for a privileged container. An engine that
    // cannot run privileged containers at all (one inside a container without every capability)
    // refuses it: then the create fails with the engine's reason and leaves nothing behind.
    match alice.create(&sandbox(vec![web("dind", 8081, true)])).await {
        Ok(sb2) => {
            assert!(engine_runs_privileged(), "privileged containers fail here, yet the sidecar started");
            let caps = caps_via_localhost(&alice, &sb2.id, 8081).await;
            assert_ne!(caps & CAP_SYS_ADMIN, 0, "privileged sidecar caps {caps:x}");
            alice.delete(&sb2.id).await.unwrap();
        }
        Err(e) => {
            assert!(!engine_runs_privileged(), "the engine runs privileged containers, yet: {e}");
            assert!(e.to_string().contains("a sidecar did not start"), "{e}");
            assert_eq!(alice.list().await.unwrap().len(), 1, "only the first sandbox is left");
        }
    }

    // Deleting a sandbox removes its sidecars.
    alice.delete(&sb.id).await.unwrap();
    assert!(srv.containers().is_empty(), "left behind: {:?}", srv.containers());
}

#[tokio::test]
async fn a_sidecar_that_cannot_be_made_leaves_nothing() {
    let srv = with(&["--sidecars", "unprivileged"]);
    let bad = Sidecar { name: "db".into(), image: "podgate-test/does-not-exist:v1".into(), ..Default::default() };
    let e = srv.client().create(&sandbox(vec![bad])).await.unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    assert!(e.to_string().contains("does-not-exist"), "{e}");
    assert!(srv.containers().is_empty(), "left behind: {:?}", srv.containers());
    assert!(srv.client().list().await.unwrap().is_empty());
    let invalid = Sidecar { name: "Bad Name".into(), image: BUSYBOX.into(), ..Default::default() };
    let e = srv.client().create(&sandbox(vec![invalid])).await.unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
}
