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

/// A copy of the image archive `src` with `manifest.json` given `repo_tags`, plus `extra` entries.
fn doctored(src: &std::path::Path, repo_tags: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut input = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut out = tar::Builder::new(Vec::new());
    for e in input.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            let mut m: serde_json::Value = serde_json::from_reader(&mut e).unwrap();
            m[0]["RepoTags"] = serde_json::from_str(repo_tags).unwrap();
            let body = serde_json::to_vec(&m).unwrap();
            h.set_size(body.len() as u64);
            h.set_cksum();
            out.append(&h, body.as_slice()).unwrap();
        } else {
            out.append(&h, &mut e).unwrap();
        }
    }
    for (name, data) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        out.append(&h, *data).unwrap();
    }
    out.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_export_and_import_as_archives_without_taking_other_names() {
    let srv = Server::start_with(common::Opts {
        extra: vec!["--max-import-bytes".into(), "50Mi".into()],
        ..Default::default()
    });
    let c = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let sb = c
        .create(&CreateSandboxRequest { name: Some("src".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(sh(&c, &sb.id, "echo carried > /workspace/f").await.0, 0);
    c.snapshot("src", Some("s1")).await.unwrap();
    c.delete("src").await.unwrap();

    // Export to a file, drop the snapshot, import the file under another name, start from it.
    let archive = dir.path().join("s1.tar");
    let o = srv.cli(&["image", "export", "s1", "-f", archive.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::metadata(&archive).unwrap().len() > 100_000);
    assert!(srv.cli(&["snapshot", "rm", "s1"]).status.success());
    let o = srv.cli(&["image", "import", archive.to_str().unwrap(), "--name", "s2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.starts_with("snapshot s2 (snap-"), "{o:?}");
    assert!(srv.cli(&["up", "--name", "back", "--snapshot", "s2"]).status.success());
    assert_eq!(sh(&c, "back", "cat /workspace/f").await, (0, "carried\n".into()));

    // An archive claiming another image's name is loaded under its own name only.
    let busybox_before = docker(&["image", "inspect", "-f", "{{.Id}}", BUSYBOX]);
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(&hostile, doctored(&archive, &format!(r#"["{BUSYBOX}"]"#), &[])).unwrap();
    let s3 = c.import_snapshot("s3", &hostile, None).await.unwrap();
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Id}}", BUSYBOX]), busybox_before, "the base image was replaced");
    assert!(!docker(&["images", "-q", &format!("podgate-snapshot:{}", s3.id)]).trim().is_empty());

    // Entries leaving the archive, and archives over the limit, are refused and leave nothing.
    let escaping = dir.path().join("escaping.tar");
    std::fs::write(&escaping, doctored(&archive, "null", &[("../evil", b"x")])).unwrap();
    let e = c.import_snapshot("s4", &escaping, None).await.unwrap_err().to_string();
    assert!(e.contains("leaves the archive"), "{e}");
    let big = dir.path().join("big.tar");
    std::fs::write(&big, vec![0u8; 60 << 20]).unwrap();
    let e = c.import_snapshot("s5", &big, None).await.unwrap_err().to_string();
    assert!(e.contains("limit") && e.contains("413"), "{e}");
    let names: Vec<String> = c.list_snapshots().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["s2", "s3"]);
    assert_eq!(std::fs::read_dir(srv.dir.path().join("tmp")).unwrap().count(), 0, "scratch files are left");

    // Another user can export nothing of ours.
    let other = c.create_user(&CreateUserRequest { name: "lou".into(), role: None }).await.unwrap();
    let lou = Client::new(&srv.url, &other.token.secret).unwrap();
    let e = lou.export_snapshot("s2", &dir.path().join("x.tar"), None).await.unwrap_err();
    assert!(podgate_client::is_not_found(&e), "{e}");
}
