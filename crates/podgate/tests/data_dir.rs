//! The server's data dir as the shipped Kubernetes Deployment gives it: an emptyDir is root's,
//! with the pod's `fsGroup` (10001) as its group and mode 2777. The server runs as uid 10001 in
//! that group (here through `setpriv`, on the fake API server) and must start on it; on a
//! volume it cannot write, it must stop and say whose the folder is and what to change.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UID: &str = "10001";

/// Runs `podgate server` as uid and gid 10001 (groups: 10001) on `data`; returns the child.
fn server_as_10001(data: &std::path::Path, kubeconfig: &std::path::Path) -> std::process::Child {
    Command::new("setpriv")
        .args([&format!("--reuid={UID}"), &format!("--regid={UID}"), &format!("--groups={UID}"), "--"])
        .arg(env!("CARGO_BIN_EXE_podgate"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "127.0.0.1:0",
            "--e2b-listen",
            "off",
            "--runtime",
            "kubernetes",
        ])
        .args(["--kube-namespace", "sandboxes", "--data-dir"])
        .arg(data)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv runs the server")
}

/// A folder as kubelet makes an emptyDir for a pod with `fsGroup`: root's, group `gid`, `mode`.
fn volume(parent: &std::path::Path, name: &str, gid: u32, mode: u32) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_starts_on_an_fsgroup_volume_and_explains_one_it_cannot_write() {
    let root = tempfile::Builder::new().prefix("pgdd").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = podgate_kube::fake::Fake::default();
    let url = fake.serve().await;
    let kubeconfig = root.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).unwrap();

    // The emptyDir with fsGroup: the server starts, serves, and keeps its database there.
    let data = volume(root.path(), "data", 10001, 0o2777);
    let mut child = server_as_10001(&data, &kubeconfig);
    let started = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(data.join("http.addr")) {
            break a.trim().to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the server exited ({status}) on an fsGroup volume: {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not serve within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert!(health.status().is_success(), "{health:?}");
    use std::os::unix::fs::MetadataExt as _;
    let db = std::fs::metadata(data.join("podgate.db")).unwrap();
    assert_eq!(db.uid(), 10001, "the database is the server's");
    let _ = child.kill();
    let _ = child.wait();

    // A root-owned volume without the group: a clear refusal, not "Operation not permitted".
    let closed = volume(root.path(), "closed", 0, 0o755);
    let out = server_as_10001(&closed, &kubeconfig).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("belongs to uid 0 gid 0 (mode 0755)")
            && err.contains("cannot write it")
            && err.contains("fsGroup"),
        "{err}"
    );
}
