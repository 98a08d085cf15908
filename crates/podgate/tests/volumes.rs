//! Persistent workspaces end to end on the real engine: `up --persist` keeps `/workspace` in a
//! volume that outlives `down` and is mounted again by the next sandbox of that name, `rm
//! --volume` deletes both, volumes are private to their owner and count against a quota.

mod common;

use common::{Server, docker};
use podgate_client::Client;
use podgate_types::api::ExecRequest;
use podgate_types::users::{CreateUserRequest, QuotaOverrides};

const BUSYBOX: &str = "podgate/busybox:test";

async fn sh(c: &Client, id: &str, cmd: &str) -> (i32, String) {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = c.exec(id, &req).await.unwrap();
    (out.exit_code, String::from_utf8_lossy(&out.stdout.0).into_owned())
}

fn engine_volumes() -> Vec<String> {
    docker(&["volume", "ls", "-q", "--filter", "label=io.podgate.volume"]).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persisted_workspace_outlives_its_sandbox_until_deleted() {
    let srv = Server::start();
    let admin = srv.client();
    let created = admin.create_user(&CreateUserRequest { name: "gina".into(), role: None }).await.unwrap();
    let gina = Client::new(&srv.url, &created.token.secret).unwrap();
    let cli = |args: &[&str]| {
        let o = srv.cli_command(args).env("PODGATE_TOKEN", gina.token()).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };

    assert!(cli(&["up", "--persist", "--name", "dev", "--image", BUSYBOX]).0);
    let sb = gina.get("dev").await.unwrap();
    let volume = sb.volume.clone().expect("a persisted sandbox names its volume");
    assert_eq!(sh(&gina, "dev", "echo kept > /workspace/keep && id -u").await, (0, "1000\n".into()));
    let listed = gina.list_volumes().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].name.as_str()), (volume.as_str(), "dev"));
    assert_eq!(listed[0].sandbox.as_deref(), Some(sb.id.as_str()));
    assert!(engine_volumes().contains(&format!("podgate-{volume}")), "{:?}", engine_volumes());
    // Mounted: it cannot be deleted under its sandbox.
    let (ok, out) = cli(&["volume", "rm", "dev"]);
    assert!(!ok && out.contains("mounted in sandbox dev"), "{out}");

    // `down` keeps it; the next sandbox of that name mounts it again, data and all.
    assert_eq!(cli(&["down", "dev"]), (true, "dev deleted\n".into()));
    let listed = gina.list_volumes().await.unwrap();
    assert_eq!((listed.len(), listed[0].sandbox.clone()), (1, None));
    assert!(cli(&["up", "--persist", "--name", "dev", "--image", BUSYBOX]).0);
    let again = gina.get("dev").await.unwrap();
    assert_ne!(again.id, sb.id);
    assert_eq!(again.volume.as_deref(), Some(volume.as_str()));
    assert_eq!(sh(&gina, "dev", "cat /workspace/keep").await, (0, "kept\n".into()));
    // Without --persist, /workspace is the image's and starts empty.
    assert!(cli(&["up", "--name", "scratch", "--image", BUSYBOX]).0);
    assert_eq!(sh(&gina, "scratch", "ls -A /workspace").await, (0, String::new()));
    assert_eq!(gina.get("scratch").await.unwrap().volume, None);

    // Another user neither sees nor deletes it.
    let other = admin.create_user(&CreateUserRequest { name: "hal".into(), role: None }).await.unwrap();
    let hal = Client::new(&srv.url, &other.token.secret).unwrap();
    assert!(hal.list_volumes().await.unwrap().is_empty());
    assert!(podgate_client::is_not_found(&hal.delete_volume(&volume).await.unwrap_err()));
    // The admin sees everyone's.
    assert_eq!(admin.list_volumes().await.unwrap().len(), 1);

    // `rm --volume` deletes the sandbox and the volume, in the engine too.
    assert_eq!(cli(&["rm", "dev", "--volume"]), (true, "dev deleted with its volume\n".into()));
    assert!(gina.list_volumes().await.unwrap().is_empty());
    assert!(!engine_volumes().contains(&format!("podgate-{volume}")), "{:?}", engine_volumes());
    // A new sandbox of that name starts from an empty volume.
    assert!(cli(&["up", "--persist", "--name", "dev", "--image", BUSYBOX]).0);
    assert_eq!(sh(&gina, "dev", "ls -A /workspace").await, (0, String::new()));
    assert_ne!(gina.get("dev").await.unwrap().volume.as_deref(), Some(volume.as_str()));

    // The volume quota: one volume kept, a second refused, and no sandbox is left of it.
    let me = gina.quota("me").await.unwrap();
    assert_eq!((me.usage.volumes, me.limits.volumes), (1, 10));
    admin.set_quota(&created.user.id, &QuotaOverrides { volumes: Some(1), ..Default::default() }).await.unwrap();
    let (ok, out) = cli(&["up", "--persist", "--name", "second", "--image", BUSYBOX]);
    assert!(!ok && out.contains("1 of 1 volumes"), "{out}");
    assert!(gina.get("second").await.is_err(), "the refused sandbox must not exist");
    assert_eq!(gina.list_volumes().await.unwrap().len(), 1);
    // Deleting by name frees the quota.
    assert!(cli(&["down", "dev"]).0);
    assert_eq!(cli(&["volume", "rm", "dev"]), (true, "volume dev deleted\n".into()));
    assert!(cli(&["up", "--persist", "--name", "second", "--image", BUSYBOX]).0);
    let events: serde_json::Value = srv.get_json("/v1/audit?action=volume.delete").await;
    assert_eq!(events["events"].as_array().unwrap().iter().filter(|e| e["result"] == "ok").count(), 2, "{events}");
}
