//! A hostile sandbox against the host and the server: exec output (finding 8), limits (9),
//! concurrent use of a paused sandbox (10), `/tmp` (13), signals to PID 1 and the agent's own uid
//! (14), kernel files through the file API (18), and run directories (21).

use std::time::Duration;

use crate::common::{Opts, Server, docker, eventually, rss_kib};
use crate::{busybox, sh};
use podgate_types::api::{CreateSandboxRequest, ExecRequest, SandboxState};

#[tokio::test(flavor = "multi_thread")]
async fn exec_output_is_bounded() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("loud")).await.unwrap();
    let before = rss_kib(srv.pid());
    // Six parallel calls that each print 64 MiB.
    let calls = (0..6).map(|_| {
        let c = admin.clone();
        let id = sb.id.clone();
        tokio::spawn(async move {
            let req =
                ExecRequest { argv: vec!["head -c 67108864 /dev/zero".into()], shell: true, ..Default::default() };
            c.exec(&id, &req).await
        })
    });
    let mut peak = before;
    let mut outs = Vec::new();
    let sampler = async {
        loop {
            peak = peak.max(rss_kib(srv.pid()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = sampler => {}
        r = futures_util::future::join_all(calls) => outs = r,
    }
    for out in outs {
        let out = out.unwrap().unwrap();
        assert_eq!(out.exit_code, 0);
        assert!(out.stdout_truncated, "64 MiB is more than an exec answer holds");
        assert!(out.stdout.0.len() <= 1 << 20, "{} bytes", out.stdout.0.len());
    }
    // Before: 35 MB → 476 MB. Now each answer is at most 1 MiB (plus its encodings).
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "the server grew by {grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_sized_for_tenants() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("lim")).await.unwrap();
    assert_eq!(sh(&admin, &sb.id, "ulimit -n").await, (0, "4096\n".into()));
    let pids = docker(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", &crate::common::container(&sb.id)]);
    assert_eq!(pids.trim(), "512");
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_sandbox_resumes_once() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("napper")).await.unwrap();
    for round in 0..3 {
        admin.pause(&sb.id).await.unwrap();
        let calls = (0..10).map(|i| {
            let c = admin.clone();
            let id = sb.id.clone();
            tokio::spawn(async move {
                let req = ExecRequest { argv: vec!["echo".into(), i.to_string()], ..Default::default() };
                c.exec(&id, &req).await
            })
        });
        for (i, r) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
            let out = r.unwrap().unwrap_or_else(|e| panic!("round {round}, call {i}: {e}"));
            assert_eq!(String::from_utf8_lossy(&out.stdout.0), format!("{i}\n"));
        }
        assert_eq!(admin.get(&sb.id).await.unwrap().state, SandboxState::Running);
    }
    // Right after a snapshot, too.
    let snap = admin.snapshot(&sb.id, Some("s")).await;
    assert!(snap.is_ok(), "{snap:?}");
    let calls = (0..10).map(|_| {
        let c = admin.clone();
        let id = sb.id.clone();
        tokio::spawn(async move { c.exec(&id, &ExecRequest { argv: vec!["true".into()], ..Default::default() }).await })
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().unwrap().exit_code, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tmp_is_bounded() {
    let srv = Server::start();
    let admin = srv.client();
    let req = CreateSandboxRequest { memory: Some(podgate_types::MemorySize(256 << 20)), ..busybox("filler") };
    let sb = admin.create(&req).await.unwrap();
    // /tmp holds at most half the memory limit: the write fails (ENOSPC) before the sandbox's
    // memory is used up.
    let (code, out) = sh(&admin, &sb.id, "head -c 1073741824 /dev/zero > /tmp/fill").await;
    assert_ne!(code, 0, "filling /tmp must fail: {out}");
    let (_, size) = sh(&admin, &sb.id, "stat -c %s /tmp/fill").await;
    let size: u64 = size.trim().parse().unwrap();
    assert!(size <= 128 << 20, "{size} bytes in /tmp");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(admin.get(&sb.id).await.unwrap().state, SandboxState::Running);
    assert_eq!(sh(&admin, &sb.id, "rm /tmp/fill && echo ok").await, (0, "ok\n".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn pid1_ignores_signals_from_inside() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("victim")).await.unwrap();
    for sig in ["TERM", "INT", "KILL"] {
        let (code, out) = sh(&admin, &sb.id, &format!("kill -{sig} 1; echo sent")).await;
        assert!(code == 0 && out.starts_with("sent\n"), "{sig}: {out}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(admin.get(&sb.id).await.unwrap().state, SandboxState::Running);
    assert_eq!(sh(&admin, &sb.id, "echo alive").await, (0, "alive\n".into()));
    // The agent's memory, environment and descriptors stay closed.
    for probe in ["cat /proc/1/environ", "ls /proc/1/fd", "head -c 1 /proc/1/mem"] {
        let (code, out) = sh(&admin, &sb.id, probe).await;
        assert_ne!(code, 0, "{probe}: {out}");
    }
    // The runtime still stops it: deletion is the engine's SIGTERM from outside.
    admin.delete(&sb.id).await.unwrap();
}

/// `/proc/<pid>/status` lines of a process in the sandbox, as seen by the sandbox user.
async fn status(admin: &podgate_client::Client, id: &str, pid: &str) -> String {
    let (code, out) = sh(admin, id, &format!("grep -E '^(Uid|Gid|CapPrm|CapEff|CapBnd):' /proc/{pid}/status")).await;
    assert_eq!(code, 0, "{out}");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_is_out_of_the_users_reach() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("apart")).await.unwrap();
    // The agent runs under a uid of its own with its filesystem identity the user's, and keeps
    // only SETGID, SETUID and KILL (0xe0); the user's processes hold no capability at all.
    let agent = podgate_types::agent::AGENT_UID;
    assert_eq!(
        status(&admin, &sb.id, "1").await,
        format!(
            "Uid: {agent} {agent} {agent} 1000 Gid: {agent} {agent} {agent} 1000 \
             CapPrm: 00000000000000e0 CapEff: 00000000000000e0 CapBnd: 0000000000000000"
        )
    );
    assert_eq!(
        status(&admin, &sb.id, "self").await,
        "Uid: 1000 1000 1000 1000 Gid: 1000 1000 1000 1000 \
         CapPrm: 0000000000000000 CapEff: 0000000000000000 CapBnd: 0000000000000000"
    );
    // The user cannot signal it (kill -0 only asks for the right), trace it, or reach its socket.
    let (code, out) = sh(&admin, &sb.id, "kill -0 1").await;
    assert!(code != 0 && out.contains("not permitted"), "{code}: {out}");
    for probe in ["ls /.podgate/run", "cat /proc/1/environ", "ls /proc/1/fd"] {
        let (code, out) = sh(&admin, &sb.id, probe).await;
        assert!(code != 0 && out.contains("denied"), "{probe}: {code}: {out}");
    }
    // Everything the agent makes for the user is the user's: files, folders, processes, terminals.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "x").unwrap();
    admin.upload(&sb.id, "/workspace/up/f", &dir.path().join("f"), None, None).await.unwrap();
    let (code, out) = sh(&admin, &sb.id, "stat -c %u:%g /workspace/up /workspace/up/f; id -u").await;
    assert_eq!((code, out.as_str()), (0, "1000:1000\n1000:1000\n1000\n"));
    // It still signals the user's processes: a timed-out exec is killed.
    let req =
        ExecRequest { argv: vec!["sleep 30".into()], shell: true, timeout_seconds: Some(1), ..Default::default() };
    let started = std::time::Instant::now();
    let out = admin.exec(&sb.id, &req).await.unwrap();
    assert!(out.exit_code != 0 && started.elapsed() < Duration::from_secs(20), "{out:?}");
    // Nobody's sandbox runs as the agent's uid.
    let req = CreateSandboxRequest { user: Some(format!("1000:{agent}")), ..busybox("agentuid") };
    let err = admin.create(&req).await.unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_files_download() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("kfiles")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A sysfs file reports 4096 bytes whatever it holds; the kernel is the host's.
    let bits = std::fs::read_to_string("/sys/kernel/address_bits").unwrap();
    for (path, want) in
        [("/proc/self/status", "Name:"), ("/proc/cpuinfo", "processor"), ("/sys/kernel/address_bits", bits.trim())]
    {
        let local = dir.path().join("out");
        let (n, _) = admin.download(&sb.id, path, &local, None).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let text = std::fs::read_to_string(&local).unwrap();
        assert!(n > 0 && text.contains(want), "{path}: {n} bytes: {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_dir_goes_with_its_container() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("gone")).await.unwrap();
    let run_dir = srv.dir.path().join("run").join(&sb.id);
    assert!(run_dir.is_dir());
    // Removed behind the server's back.
    docker(&["rm", "-f", &crate::common::container(&sb.id)]);
    eventually(20, "the sandbox failed and its run directory removed", async || {
        let failed = admin.get(&sb.id).await.map(|s| s.state == SandboxState::Failed).unwrap_or(true);
        failed && !run_dir.exists()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_sandbox_cannot_impersonate_its_agent() {
    let srv = Server::start_with(Opts { extra: vec!["--allow-root-sandboxes".into()], ..Default::default() });
    let admin = srv.client();
    let root = CreateSandboxRequest { name: Some("imp".into()), user: Some("root".into()), ..Default::default() };
    let sb = admin.create(&root).await.unwrap();
    // Root in the sandbox moves the agent's socket aside and serves the path itself, keeping
    // whatever the server sends it (finding 2's attack, from a root sandbox).
    let serve = "cd /.podgate/run && mv agent.sock real.sock && \
        (perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Local => \"agent.sock\", Listen => 5) or die; \
        while ($c = $s->accept) { sysread($c, $b, 65536); open(F, \">>/tmp/stolen\"); print F $b; close F; close $c }' \
        >/dev/null 2>&1 &) && sleep 1 && ls agent.sock";
    assert_eq!(sh(&admin, &sb.id, serve).await, (0, "agent.sock\n".into()));
    // The server refuses the impostor before sending anything, its secret included.
    let err = admin.exec(&sb.id, &ExecRequest { argv: vec!["true".into()], ..Default::default() }).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    let stolen = docker(&["exec", &crate::common::container(&sb.id), "sh", "-c", "cat /tmp/stolen 2>/dev/null; true"]);
    assert!(!stolen.contains(podgate_types::agent::SECRET_HEADER), "the impostor received: {stolen}");
    assert!(stolen.is_empty(), "the server talked to the impostor: {stolen}");
}
