//! Snapshots and forks end to end on the real engine: a snapshot keeps a sandbox's files for new
//! sandboxes after the sandbox is gone, a fork starts from a running sandbox's files and then goes
//! its own way, and snapshots are their owner's alone.

mod common;

use common::{Server, docker};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use podgate_types::users::CreateUserRequest;

const BUSYBOX: &str = "podgate/busybox:test";

async fn sh(c: &Client, id: &str, cmd: &str) -> (i32, String) {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = c.exec(id, &req).await.unwrap();
    (out.exit_code, String::from_utf8_lossy(&out.stdout.0).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_and_forks_carry_files_and_stay_private() {
    let srv = Server::start();
    let admin = srv.client();
    let created = admin.create_user(&CreateUserRequest { name: "ivy".into(), role: None }).await.unwrap();
    let ivy = Client::new(&srv.url, &created.token.secret).unwrap();
    let cli = |args: &[&str]| {
        let o = srv.cli_command(args).env("PODGATE_TOKEN", ivy.token()).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let req = CreateSandboxRequest {
        name: Some("orig".into()),
        image: Some(BUSYBOX.into()),
        env: [("FROM".to_string(), "orig".to_string())].into(),
        ..Default::default()
    };
    let orig = ivy.create(&req).await.unwrap();
    assert_eq!(
        sh(&ivy, "orig", "echo v1 > /workspace/state && mkdir -p /workspace/x && echo deep > /workspace/x/f").await.0,
        0
    );

    // A snapshot outlives its sandbox and starts new ones with its files.
    let (ok, out) = cli(&["snapshot", "create", "orig", "--name", "base-v1"]);
    assert!(ok && out.starts_with("snapshot base-v1 (snap-"), "{out}");
    let snaps = ivy.list_snapshots().await.unwrap();
    assert_eq!((snaps.len(), snaps[0].name.as_str(), snaps[0].sandbox.as_str()), (1, "base-v1", orig.id.as_str()));
    ivy.delete("orig").await.unwrap();
    assert!(cli(&["up", "--name", "again", "--snapshot", "base-v1"]).0);
    assert_eq!(sh(&ivy, "again", "cat /workspace/state /workspace/x/f").await, (0, "v1\ndeep\n".into()));
    // Taken twice under one name: refused.
    let (ok, out) = cli(&["snapshot", "create", "again", "--name", "base-v1"]);
    assert!(!ok && out.contains("already in use"), "{out}");

    // A fork starts from the running sandbox's files and settings, then goes its own way.
    assert_eq!(sh(&ivy, "again", "echo v2 > /workspace/state").await.0, 0);
    let (ok, name) = cli(&["fork", "again", "--name", "branch"]);
    assert!(ok && name == "branch\n", "{name}");
    assert_eq!(sh(&ivy, "branch", "cat /workspace/state; echo $FROM").await, (0, "v2\norig\n".into()));
    assert_eq!(sh(&ivy, "branch", "echo v3 > /workspace/state").await.0, 0);
    assert_eq!(sh(&ivy, "again", "cat /workspace/state").await, (0, "v2\n".into()), "the fork's writes stay its own");
    assert_eq!(ivy.list_snapshots().await.unwrap().len(), 2, "a fork leaves its snapshot");

    // Nobody else can start from it, by name, id or image reference, or delete it.
    let other = admin.create_user(&CreateUserRequest { name: "jon".into(), role: None }).await.unwrap();
    let jon = Client::new(&srv.url, &other.token.secret).unwrap();
    let snap_id = snaps[0].id.clone();
    for s in ["base-v1", snap_id.as_str()] {
        let e = jon.create(&CreateSandboxRequest { snapshot: Some(s.into()), ..Default::default() }).await.unwrap_err();
        assert!(podgate_client::is_not_found(&e), "{s}: {e}");
    }
    let by_image = CreateSandboxRequest { image: Some(format!("podgate-snapshot:{snap_id}")), ..Default::default() };
    let e = jon.create(&by_image).await.unwrap_err();
    assert!(e.to_string().contains("through `snapshot`"), "{e}");
    assert!(jon.list_snapshots().await.unwrap().is_empty());
    assert!(podgate_client::is_not_found(&jon.delete_snapshot(&snap_id).await.unwrap_err()));

    // In use: refused; once its sandboxes are gone: deleted, image and all.
    let (ok, out) = cli(&["snapshot", "rm", "base-v1"]);
    assert!(!ok && out.contains("in use"), "{out}");
    ivy.delete("again").await.unwrap();
    assert_eq!(cli(&["snapshot", "rm", "base-v1"]), (true, "snapshot base-v1 deleted\n".into()));
    assert!(docker(&["images", "-q", &format!("podgate-snapshot:{snap_id}")]).trim().is_empty());
    assert_eq!(ivy.list_snapshots().await.unwrap().len(), 1);
}
