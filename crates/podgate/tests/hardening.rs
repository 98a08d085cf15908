//! Safe sandboxes, checked from the inside: the sandbox user is uid 1000 with no capabilities,
//! no-new-privileges, the engine's seccomp profile, a pids limit and an in-memory /tmp; the
//! network reaches neither a metadata service, nor the host, nor another sandbox, while a plain
//! container on Docker's default bridge reaches all of them (the probes can succeed); root only
//! where the server allows it, and then with a minimal capability set.

mod common;

use std::process::{Command, Stdio};

use common::{KillOnDrop, Opts, Server, docker};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, NetworkMode};

const BUSYBOX: &str = "podgate/busybox:test";

async fn sh(c: &Client, sb: &str, script: &str) -> (i32, String, String) {
    let r = c
        .exec(sb, &ExecRequest { argv: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() })
        .await
        .unwrap();
    (r.exit_code, String::from_utf8_lossy(&r.stdout.0).into_owned(), String::from_utf8_lossy(&r.stderr.0).into_owned())
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// A "cloud metadata service" outside the host: a network namespace holding 169.254.169.254,
/// reached through a veth pair, answering `meta` on port 80.
struct MetadataHost {
    ns: String,
    veth: String,
    _server: KillOnDrop,
}

impl MetadataHost {
    fn start() -> MetadataHost {
        let id = std::process::id() % 1_000_000;
        let (ns, veth, peer) = (format!("pgmeta{id}"), format!("pgm{id}h"), format!("pgm{id}n"));
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip (iproute2)");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["addr", "add", "169.254.169.1/24", "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&["-n", &ns, "addr", "add", "169.254.169.254/24", "dev", &peer]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "169.254.169.1"]);
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "/bin/busybox", "nc", "-ll", "-p", "80", "-e", "/bin/busybox", "echo", "meta"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("busybox nc in the namespace");
        MetadataHost { ns, veth, _server: KillOnDrop(server) }
    }
}

impl Drop for MetadataHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Prints `<target> open` or `<target> blocked` for each `host:port`.
fn probe_script(targets: &[String]) -> String {
    targets
        .iter()
        .map(|t| {
            let (h, p) = t.split_once(':').unwrap();
            format!(
                "if echo | nc -w 3 {h} {p} 2>/dev/null | grep -q .; then echo '{t} open'; else echo '{t} blocked'; fi\n"
            )
        })
        .collect()
}

fn expect(targets: &[String], state: &str) -> String {
    targets.iter().map(|t| format!("{t} {state}\n")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_are_unprivileged_and_walled_off() {
    let _meta = MetadataHost::start();
    let srv = Server::start_with(Opts { extra: vec!["--pids-limit".into(), "64".into()], ..Default::default() });
    let c = srv.client();
    let busybox = |cmd: Option<&str>| CreateSandboxRequest {
        image: Some(BUSYBOX.into()),
        cmd: cmd.map(|c| vec!["sh".into(), "-c".into(), c.into()]),
        ..Default::default()
    };

    // Another tenant's sandbox listening on the same network.
    let other = c.create(&busybox(Some("exec nc -ll -p 7000 -e echo other"))).await.unwrap();
    let sb = c.create(&busybox(None)).await.unwrap();
    assert_eq!((sb.user.as_str(), sb.network), ("1000:1000", NetworkMode::Egress));

    // Who runs, with what rights.
    let (_, id, _) = sh(&c, &sb.id, "id -u; id -g").await;
    assert_eq!(id, "1000\n1000\n");
    // The agent (PID 1) has a uid of its own, acts on files as the user, and keeps SETUID,
    // SETGID and KILL (0xe0) to start and signal the user's processes, which hold nothing.
    let agent = podgate_types::agent::AGENT_UID;
    for (pid, uid, kept) in [
        ("self", "1000\t1000\t1000\t1000".to_string(), "0000000000000000"),
        ("1", format!("{agent}\t{agent}\t{agent}\t1000"), "00000000000000e0"),
    ] {
        let (_, status, _) = sh(&c, &sb.id, &format!("cat /proc/{pid}/status")).await;
        assert_eq!(status_field(&status, "Uid"), uid, "/proc/{pid}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let want = if ["CapPrm", "CapEff"].contains(&cap) { kept } else { "0000000000000000" };
            assert_eq!(status_field(&status, cap), want, "{cap} of /proc/{pid}");
        }
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "/proc/{pid}");
        assert_eq!(status_field(&status, "Seccomp"), "2", "the engine's seccomp filter on /proc/{pid}");
    }
    let (_, mounts, _) = sh(&c, &sb.id, "grep ' /tmp ' /proc/mounts").await;
    assert!(mounts.starts_with("tmpfs /tmp tmpfs rw,nosuid,nodev,"), "{mounts}");
    assert!(!mounts.contains("noexec"), "programs may run from /tmp: {mounts}");
    let (code, _, err) = sh(&c, &sb.id, "touch /etc/owned-by-the-user").await;
    assert_ne!(code, 0, "the image's root filesystem is not the user's: {err}");
    let (code, ws, _) = sh(&c, &sb.id, "touch /workspace/mine && pwd && echo $HOME").await;
    assert_eq!((code, ws.as_str()), (0, "/workspace\n/home/podgate\n"));

    // The network: the metadata service, the host (on the sandbox network's gateway) and the
    // other sandbox are unreachable from the sandbox, and reachable without podgate's firewall.
    let gateway = docker(&["network", "inspect", "podgate", "-f", "{{(index .IPAM.Config 0).Gateway}}"]);
    let host_listener = std::net::TcpListener::bind((gateway.trim(), 0)).unwrap();
    let host_addr = host_listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in host_listener.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut &s, b"host\n");
        }
    });
    let other_ip =
        docker(&["inspect", "-f", "{{.NetworkSettings.Networks.podgate.IPAddress}}", &common::container(&other.id)]);
    let other_addr = format!("{}:7000", other_ip.trim());
    let targets = vec!["169.254.169.254:80".to_string(), host_addr.clone()];
    let control = docker(&["run", "--rm", BUSYBOX, "sh", "-c", &probe_script(&targets)]);
    assert_eq!(control, expect(&targets, "open"), "a plain container reaches the test hosts");
    let (_, itself, _) = sh(&c, &other.id, &probe_script(std::slice::from_ref(&other_addr))).await;
    assert_eq!(itself, expect(std::slice::from_ref(&other_addr), "open"), "the other sandbox listens");
    let all = [targets.clone(), vec![other_addr.clone()]].concat();
    let (code, seen, err) = sh(&c, &sb.id, &probe_script(&all)).await;
    assert_eq!(seen, expect(&all, "blocked"), "exit {code}: {err}");

    // No network at all, and a read-only root filesystem.
    let req = CreateSandboxRequest { network: Some(NetworkMode::None), read_only_root: true, ..busybox(None) };
    let closed = c.create(&req).await.unwrap();
    assert_eq!((closed.network, closed.read_only_root), (NetworkMode::None, true));
    let (_, ifaces, _) = sh(&c, &closed.id, "ls /sys/class/net").await;
    assert_eq!(ifaces, "lo\n");
    let (code, _, err) = sh(&c, &closed.id, "touch /srv/x").await;
    assert!(code != 0 && err.contains("Read-only file system"), "{err}");
    let (code, _, err) = sh(&c, &closed.id, "touch /tmp/x /workspace/x").await;
    assert_eq!(code, 0, "{err}");

    // The pids limit: forks fail past 64 processes.
    let forks = c.create(&busybox(None)).await.unwrap();
    let (_, max, _) =
        sh(&c, &forks.id, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max").await;
    assert_eq!(max.trim(), "64");
    let (_, _, err) = sh(&c, &forks.id, "for i in $(seq 100); do sleep 2 >/dev/null 2>&1 & done; wait").await;
    assert!(err.contains("can't fork"), "100 processes under a limit of 64: {err:?}");

    // Root only where the server allows it.
    let root = CreateSandboxRequest { user: Some("root".into()), ..busybox(None) };
    let e = c.create(&root).await.unwrap_err();
    assert!(e.to_string().contains("root sandboxes"), "{e}");
    assert!(matches!(&e, podgate_client::Error::Api { status: 403, .. }), "{e:?}");
    let bad = CreateSandboxRequest { user: Some("alice".into()), ..busybox(None) };
    assert!(matches!(c.create(&bad).await.unwrap_err(), podgate_client::Error::Api { status: 422, .. }));

    // The same choices through the CLI.
    let args = ["--network", "none", "--read-only-root", "-u", "1000:1000", "-o", "json"];
    let o = srv.cli(&[&["up", "--image", BUSYBOX, "--name", "cli-closed"][..], &args].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["network"].as_str(), v["read_only_root"].as_bool(), v["user"].as_str()),
        (Some("none"), Some(true), Some("1000:1000"))
    );
    let o = srv.cli(&["up", "--image", BUSYBOX, "-u", "root"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("root sandboxes"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn root_sandboxes_keep_a_minimal_capability_set() {
    let srv = Server::start_with(Opts { extra: vec!["--allow-root-sandboxes".into()], ..Default::default() });
    let c = srv.client();
    let req = CreateSandboxRequest { image: Some(BUSYBOX.into()), user: Some("root".into()), ..Default::default() };
    let sb = c.create(&req).await.unwrap();
    assert_eq!(sb.user, "0:0");
    let (_, status, _) = sh(&c, &sb.id, "id -u; cat /proc/self/status").await;
    assert!(status.starts_with("0\n"), "{status}");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE = bits 0 1 3 4 5 6 7 10.
    assert_eq!(status_field(&status, "CapEff"), "00000000000004fb");
    assert_eq!(status_field(&status, "CapBnd"), "00000000000004fb");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let (code, _, _) = sh(&c, &sb.id, "touch /tmp/f && chown 1000:1000 /tmp/f").await;
    assert_eq!(code, 0, "root may chown");
    let (code, _, err) = sh(&c, &sb.id, "mknod /tmp/dev c 1 3").await;
    assert_ne!(code, 0, "no MKNOD: {err}");
    // A sandbox that names no user still runs as 1000 on this server.
    let plain = c.create(&CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() }).await.unwrap();
    assert_eq!(sh(&c, &plain.id, "id -u").await.1, "1000\n");
}
