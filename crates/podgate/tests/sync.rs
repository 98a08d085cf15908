//! `podgate sync` end to end: the first two-way reconcile (with ignore rules and the conflict
//! rule), then changes on either side propagating while it watches, until Ctrl-C.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{KillOnDrop, Server};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};

async fn sh(c: &Client, sb: &str, cmd: &str) -> String {
    let r = c
        .exec(sb, &ExecRequest { argv: vec!["sh".into(), "-c".into(), cmd.into()], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0, "{cmd}: {}", String::from_utf8_lossy(&r.stderr.0));
    String::from_utf8(r.stdout.0).unwrap()
}

async fn remote(c: &Client, sb: &str, path: &str) -> Option<Vec<u8>> {
    let req = ExecRequest { argv: vec!["cat".into(), path.into()], ..Default::default() };
    let r = c.exec(sb, &req).await.unwrap();
    (r.exit_code == 0).then_some(r.stdout.0)
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[tokio::test]
async fn sync_reconciles_then_follows_both_sides() {
    let srv = Server::start();
    let c = srv.client();
    let sb = c.create(&CreateSandboxRequest::default()).await.unwrap().id;
    let local = tempfile::tempdir().unwrap();
    let l = local.path();
    write(l, "a.txt", b"local a\n");
    write(l, "sub/b.txt", b"local b\n");
    write(l, "same.txt", b"same on both sides\n");
    write(l, ".gitignore", b"*.log\nbuild/\n");
    write(l, "x.log", b"ignored\n");
    write(l, "build/out", b"ignored\n");
    write(l, "skip/me", b"excluded\n");
    write(l, "older.txt", b"local older\n");
    write(l, "newer.txt", b"local newer\n");
    let touch = |rel: &str, when: &str| {
        assert!(Command::new("touch").args(["-d", when]).arg(l.join(rel)).status().unwrap().success());
    };
    touch("older.txt", "2020-01-01");
    touch("newer.txt", "2030-01-01");
    sh(
        &c,
        &sb,
        "mkdir -p /workspace/proj/rdir && cd /workspace/proj && echo remote r > rdir/r.txt \
        && echo 'same on both sides' > same.txt && echo 'sandbox newer' > older.txt \
        && echo 'sandbox older' > newer.txt && touch -d 2021-01-01 newer.txt && echo 'remote log' > r.log",
    )
    .await;

    let child = srv.cli_spawn(
        &["sync", l.to_str().unwrap(), &format!("{sb}:/workspace/proj"), "--exclude", "skip"],
        std::process::Stdio::inherit(),
    );
    let mut child = KillOnDrop(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("watching both sides") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "sync ended early: {seen}");
        seen.push_str(&line);
    }
    tokio::task::spawn_blocking(move || {
        for line in out.lines().map_while(Result::ok) {
            eprintln!("sync: {line}")
        }
    });
    eprintln!("{seen}");

    // The first reconcile: both ways, ignore rules on both sides, same content left alone.
    assert_eq!(remote(&c, &sb, "/workspace/proj/a.txt").await.as_deref(), Some(&b"local a\n"[..]));
    assert_eq!(remote(&c, &sb, "/workspace/proj/sub/b.txt").await.as_deref(), Some(&b"local b\n"[..]));
    assert_eq!(std::fs::read(l.join("rdir/r.txt")).unwrap(), b"remote r\n");
    assert!(!seen.contains("same.txt"), "same content is not transferred: {seen}");
    for ignored in ["x.log", "build/out", "skip/me"] {
        assert!(remote(&c, &sb, &format!("/workspace/proj/{ignored}")).await.is_none(), "{ignored} was synced");
    }
    assert!(!l.join("r.log").exists(), "an ignored sandbox file came over");
    // The conflict rule: the newer version wins, the other is kept as NAME.sync-conflict.
    assert_eq!(std::fs::read(l.join("older.txt")).unwrap(), b"sandbox newer\n");
    assert_eq!(std::fs::read(l.join("older.txt.sync-conflict")).unwrap(), b"local older\n");
    assert_eq!(remote(&c, &sb, "/workspace/proj/newer.txt").await.as_deref(), Some(&b"local newer\n"[..]));
    assert_eq!(
        remote(&c, &sb, "/workspace/proj/newer.txt.sync-conflict").await.as_deref(),
        Some(&b"sandbox older\n"[..])
    );

    // Then changes follow, both ways.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write(l, "new/deep/bin.dat", &bytes);
    common::eventually(15, "a new local tree to reach the sandbox", async || {
        remote(&c, &sb, "/workspace/proj/new/deep/bin.dat").await.as_deref() == Some(&bytes[..])
    })
    .await;
    sh(
        &c,
        &sb,
        "echo changed in the sandbox > /workspace/proj/rdir/r.txt && echo made there > /workspace/proj/there.txt",
    )
    .await;
    common::eventually(15, "sandbox changes to arrive here", async || {
        std::fs::read(l.join("rdir/r.txt")).ok().as_deref() == Some(&b"changed in the sandbox\n"[..])
            && std::fs::read(l.join("there.txt")).ok().as_deref() == Some(&b"made there\n"[..])
    })
    .await;
    std::fs::remove_file(l.join("a.txt")).unwrap();
    write(l, "later.log", b"still ignored\n");
    common::eventually(15, "a local delete to reach the sandbox", async || {
        remote(&c, &sb, "/workspace/proj/a.txt").await.is_none()
    })
    .await;
    sh(&c, &sb, "rm -r /workspace/proj/sub").await;
    common::eventually(15, "a sandbox delete to arrive here", async || !l.join("sub").exists()).await;
    write(l, "same.txt", b"edited here\n");
    common::eventually(15, "an edit to reach the sandbox", async || {
        remote(&c, &sb, "/workspace/proj/same.txt").await.as_deref() == Some(&b"edited here\n"[..])
    })
    .await;
    assert!(remote(&c, &sb, "/workspace/proj/later.log").await.is_none());

    // Ctrl-C ends it cleanly.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(waited < 100, "sync did not stop on Ctrl-C");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");

    // --once: one two-way pass, then it exits.
    write(l, "once.txt", b"one pass\n");
    sh(&c, &sb, "echo from there > /workspace/proj/once-remote.txt").await;
    let o = srv.cli(&["sync", l.to_str().unwrap(), &format!("{sb}:/workspace/proj"), "--once"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(remote(&c, &sb, "/workspace/proj/once.txt").await.as_deref(), Some(&b"one pass\n"[..]));
    assert_eq!(std::fs::read(l.join("once-remote.txt")).unwrap(), b"from there\n");
}
