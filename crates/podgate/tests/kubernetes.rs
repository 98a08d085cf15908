//! The Kubernetes path end to end through the real server and the real CLI and OpenSSH client:
//! create, exec, a terminal, SSH, files, hibernation, a persisted `/workspace` re-attached by a
//! new sandbox, a bad image failing fast with the cluster's reason, delete.
//!
//! With `PODGATE_TEST_KUBECONFIG` it runs on that cluster (namespace `PODGATE_TEST_NAMESPACE`,
//! default `podgate-test`; images `PODGATE_TEST_IMAGE` and `PODGATE_TEST_AGENT_IMAGE`, loaded
//! into the cluster beforehand, never pulled), the server reaching agents by port-forward.
//! Without it, that run is skipped with a message, and the same steps run on the fake API
//! server (`podgate_kube::fake`) whose kubelet starts the pods on the local Docker engine. On a
//! real cluster every sandbox is non-root (the namespace may enforce Pod Security
//! `restricted`), and what the server made is deleted when a test ends, passed or failed.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::kube::{cluster, cluster_with, fake_cluster, image};
use common::{Opts, Server, keygen, ssh_opts};
use podgate_types::users::AddSshKeyRequest;

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_sandboxes_end_to_end() {
    let mut cluster = cluster("kubernetes_sandboxes_end_to_end").await;
    let srv = cluster.server(&[]);
    let image = image();
    let cli = |args: &[&str]| tokio::task::block_in_place(|| srv.cli(args));
    let cli_stdin = |args: &[&str], input: &[u8]| tokio::task::block_in_place(|| srv.cli_stdin(args, Some(input)));

    // Create and exec: the agent runs as the sandbox user.
    ok(&cli(&["up", "--name", "k1", "--image", &image, "--env", "GREETING=hi"]));
    let out = ok(&cli(&["exec", "k1", "--", "sh", "-c", "id -u; echo $GREETING; pwd"]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "hi", "/workspace"], "{out}");

    // A terminal.
    let o = cli_stdin(&["enter", "k1"], b"echo in-$((20+3))\nexit 4\n");
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-23"));

    // Files both ways.
    let local = srv.dir.path().join("up.txt");
    std::fs::write(&local, "file through the pod\n").unwrap();
    ok(&cli(&["cp", local.to_str().unwrap(), "k1:/workspace/up.txt"]));
    assert_eq!(ok(&cli(&["exec", "k1", "--", "cat", "/workspace/up.txt"])), "file through the pod\n");
    let back = srv.dir.path().join("down.txt");
    ok(&cli(&["cp", "k1:/workspace/up.txt", back.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "file through the pod\n");

    // SSH with the real OpenSSH client.
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path(), "admin");
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    srv.client().add_ssh_key("me", &AddSshKeyRequest { name: None, public_key }).await.unwrap();
    let (host, port) = srv.ssh_addr.rsplit_once(':').unwrap();
    let ssh = tokio::task::block_in_place(|| {
        Command::new("ssh")
            .args(ssh_opts(&key))
            .args(["-p", port, &format!("k1@{host}"), "echo over-ssh; cat /workspace/up.txt"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    assert_eq!(ok(&ssh), "over-ssh\nfile through the pod\n");

    // A persisted /workspace: hibernate and resume keep it, and a new sandbox re-attaches it.
    ok(&cli(&["up", "--name", "p1", "--image", &image, "--persist"]));
    ok(&cli(&["exec", "p1", "--", "sh", "-c", "echo kept > /workspace/keep"]));
    ok(&cli(&["pause", "p1"]));
    if let Some(fake) = &cluster.fake {
        assert!(!fake.names("pods").iter().any(|p| p.contains(&sandbox_id(&srv, "p1"))), "hibernated: no pod");
    }
    ok(&cli(&["resume", "p1"]));
    assert_eq!(ok(&cli(&["exec", "p1", "--", "cat", "/workspace/keep"])), "kept\n");
    ok(&cli(&["down", "p1"]));
    ok(&cli(&["up", "--name", "p1", "--image", &image, "--persist"]));
    assert_eq!(ok(&cli(&["exec", "p1", "--", "cat", "/workspace/keep"])), "kept\n", "re-attached");
    // A sandbox without persist cannot hibernate: it would lose its files.
    let refused = cli(&["pause", "k1"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("persistent /workspace"), "{refused:?}");

    // A template's scheduling reaches its pods (a runtime class only on the fake: a real cluster
    // may have none); a malformed one is refused.
    let tfile = srv.dir.path().join("t.json");
    std::fs::write(&tfile, format!("{{\"image\": \"{image}\"}}")).unwrap();
    let mut put = vec!["template", "put", "iso", tfile.to_str().unwrap()];
    put.extend(["--node-selector", "kubernetes.io/os=linux", "--toleration", "podgate-test=yes:NoSchedule"]);
    if cluster.fake.is_some() {
        put.extend(["--runtime-class", "kata"]);
    }
    ok(&cli(&put));
    let bad_put = cli(&["template", "put", "bad", tfile.to_str().unwrap(), "--toleration", "nope"]);
    assert!(String::from_utf8_lossy(&bad_put.stderr).contains("toleration"), "{bad_put:?}");
    ok(&cli(&["up", "--name", "t1", "--template", "iso"]));
    assert_eq!(ok(&cli(&["exec", "t1", "--", "id", "-u"])), "1000\n");
    if let Some(fake) = &cluster.fake {
        let pod = fake.object("pods", &format!("podgate-{}", sandbox_id(&srv, "t1"))).expect("t1's pod");
        assert_eq!(pod["spec"]["runtimeClassName"], "kata");
        assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
        assert_eq!(pod["spec"]["tolerations"][0]["key"], "podgate-test");
    }
    ok(&cli(&["down", "t1"]));

    // A missing image fails fast with the cluster's reason, and leaves nothing.
    let started = Instant::now();
    let bad = cli(&["up", "--name", "bad", "--image", "podgate-test/no-such-image:v0"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("ErrImagePull") || err.contains("ImagePullBackOff"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "failed fast, not at the startup timeout");
    assert!(!ok(&cli(&["ls"])).contains("bad"));

    // Delete.
    let k1 = sandbox_id(&srv, "k1");
    ok(&cli(&["down", "k1"]));
    assert!(!cli(&["exec", "k1", "--", "true"]).status.success());
    if let Some(fake) = &cluster.fake {
        for kind in ["pods", "secrets", "networkpolicies"] {
            assert!(!fake.names(kind).iter().any(|n| n.contains(&k1)), "{kind} of {k1} left: {:?}", fake.names(kind));
        }
    }
    ok(&cli(&["rm", "p1", "--volume"]));
    if let Some(fake) = &cluster.fake {
        assert!(fake.names("persistentvolumeclaims").is_empty(), "the claim goes with --volume");
    }
}

fn sandbox_id(srv: &Server, name: &str) -> String {
    let out = tokio::task::block_in_place(|| srv.cli(&["ls", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    list.as_array().unwrap().iter().find(|s| s["name"] == name).map(|s| s["id"].as_str().unwrap().to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_port_forward_reaches_agents_across_a_restart() {
    let mut cluster = cluster_with("kubernetes_port_forward_reaches_agents_across_a_restart", true).await;
    let opts = Opts { extra: cluster.flags.clone(), ..Default::default() };
    let mut srv = tokio::task::block_in_place(|| Server::start_with(opts.clone()));
    if let Some(c) = &mut cluster.cleanup {
        c.instance = srv.instance.clone();
    }
    let image = image();
    let cli = |srv: &Server, args: &[&str]| tokio::task::block_in_place(|| srv.cli(args));
    ok(&cli(&srv, &["up", "--name", "pf", "--image", &image]));
    let listed: serde_json::Value = serde_json::from_str(&ok(&cli(&srv, &["ls", "-o", "json"]))).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let socket = srv.dir.path().join("run").join(format!("{id}.sock"));
    assert!(socket.exists(), "the sandbox's port-forward socket is {}", socket.display());
    assert_eq!(ok(&cli(&srv, &["exec", "pf", "--", "sh", "-c", "echo through-$((6*7))"])), "through-42\n");
    let o = tokio::task::block_in_place(|| srv.cli_stdin(&["enter", "pf"], Some(b"echo term-$((2+3))\nexit 3\n")));
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("term-5"));
    // The stored address holds after a restart: the driver listens again on the same socket.
    tokio::task::block_in_place(|| {
        srv.kill9();
        srv.spawn(opts.clone());
    });
    assert_eq!(ok(&cli(&srv, &["exec", "pf", "--", "cat", "/proc/1/comm"])), "podgate-agent\n");
    ok(&cli(&srv, &["down", "pf"]));
    assert!(!socket.exists(), "the socket goes with the sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_cluster_reasons_reach_the_cli() {
    // These replay what a real cluster answered; a real cluster cannot be made to answer them.
    eprintln!("SKIPPED kubernetes_cluster_reasons_reach_the_cli on a real cluster: it needs the fake's behaviours");
    let dir = tempfile::Builder::new().prefix("pgke").tempdir_in("/tmp").unwrap();
    let behaviour = podgate_kube::fake::Behaviour {
        restricted: true,
        claim_bind_delay: Some(Duration::from_secs(4)),
        ..Default::default()
    };
    let cluster = fake_cluster(dir, false, behaviour).await;
    let mut extra = cluster.flags.clone();
    extra.push("--allow-root-sandboxes".into());
    let srv = tokio::task::block_in_place(|| Server::start_with(Opts { extra, ..Default::default() }));
    let cli = |args: &[&str]| tokio::task::block_in_place(|| srv.cli(args));
    let image = image();

    // Pod Security refuses a root sandbox: the admission's words and a 422, not "unavailable".
    let root = cli(&["up", "--name", "r", "--image", &image, "--user", "root"]);
    let err = String::from_utf8_lossy(&root.stderr);
    assert!(!root.status.success(), "{err}");
    assert!(err.contains("violates PodSecurity \"restricted:latest\"") && err.contains("HTTP 422"), "{err}");

    // A claim bound 4 s later: the create waits it out, saying what it waits for.
    let late = cli(&["up", "--name", "late", "--image", &image, "--persist"]);
    let err = String::from_utf8_lossy(&late.stderr);
    assert!(late.status.success(), "{err}");
    assert!(err.contains("late: waiting:") && err.contains("PersistentVolumeClaims"), "{err}");
    assert_eq!(ok(&cli(&["exec", "late", "--", "sh", "-c", "echo fine"])), "fine\n");
    ok(&cli(&["rm", "late", "--volume"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_workspace_on_a_volume_that_ignores_fs_group() {
    eprintln!(
        "SKIPPED kubernetes_workspace_on_a_volume_that_ignores_fs_group on a real cluster: it needs the fake's volumes"
    );
    let dir = tempfile::Builder::new().prefix("pgke").tempdir_in("/tmp").unwrap();
    let behaviour = podgate_kube::fake::Behaviour { claims_ignore_fs_group: true, ..Default::default() };
    let mut cluster = fake_cluster(dir, false, behaviour).await;
    let image = image();

    // The claim stays root's: the create fails and says why, instead of a read-only /workspace.
    let mut srv = cluster.server(&[]);
    let cli = |srv: &Server, args: &[&str]| tokio::task::block_in_place(|| srv.cli(args));
    let o = cli(&srv, &["up", "--name", "w1", "--image", &image, "--persist"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("/workspace is a volume uid 1000 cannot write") && err.contains("--kube-workspace-owner-init"),
        "{err}"
    );

    // The admin's init step gives the volume to the user.
    tokio::task::block_in_place(|| {
        srv.kill9();
        let mut flags = cluster.flags.clone();
        flags.push("--kube-workspace-owner-init".into());
        srv.spawn(Opts { extra: flags, ..Default::default() });
    });
    ok(&cli(&srv, &["up", "--name", "w2", "--image", &image, "--persist"]));
    let out = ok(&cli(&srv, &["exec", "w2", "--", "sh", "-c", "touch /workspace/mine && stat -c %u /workspace/mine"]));
    assert_eq!(out, "1000\n");
    ok(&cli(&srv, &["rm", "w2", "--volume"]));
}
