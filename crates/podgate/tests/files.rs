//! Files end to end: the REST file API and `podgate cp` against a real sandbox.

mod common;

use std::time::Duration;

use common::{Server, agent_pid, rss_kib};
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use podgate_types::files::{FileInfo, FileKind};
use serde_json::json;
use sha2::{Digest as _, Sha256};

async fn sandbox(srv: &Server) -> String {
    srv.client().create(&CreateSandboxRequest::default()).await.unwrap().id
}

fn files_url(srv: &Server, sb: &str, suffix: &str) -> String {
    format!("{}/v1/sandboxes/{sb}/files{suffix}", srv.url)
}

#[tokio::test]
async fn file_api_round_trips_bytes_and_manages_paths() {
    let srv = Server::start_with(common::Opts { extra: vec!["--allow-root-sandboxes".into()], ..Default::default() });
    let sb = sandbox(&srv).await;
    let http = srv.http();
    let all: Vec<u8> = (0u8..=255).cycle().take(256 * 40).collect();

    // Upload (creating parents) and download: every byte value kept.
    let r = http
        .put(files_url(&srv, &sb, ""))
        .bearer_auth(&srv.token)
        .query(&[("path", "/tmp/deep/dir/bytes.bin"), ("mode", "640"), ("parents", "true")])
        .body(all.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let info: FileInfo = r.json().await.unwrap();
    assert_eq!((info.size, info.mode, info.kind), (all.len() as u64, 0o640, FileKind::File));
    let r = http
        .get(files_url(&srv, &sb, ""))
        .bearer_auth(&srv.token)
        .query(&[("path", "/tmp/deep/dir/bytes.bin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[podgate_types::files::MODE_HEADER], "640");
    assert_eq!(r.bytes().await.unwrap().to_vec(), all);
    // The same bytes as the sandbox sees them.
    let exec = ExecRequest { argv: vec!["sha256sum".into(), "/tmp/deep/dir/bytes.bin".into()], ..Default::default() };
    let out = srv.client().exec(&sb, &exec).await.unwrap();
    let want = format!("{:x}", Sha256::digest(&all));
    assert!(String::from_utf8_lossy(&out.stdout.0).starts_with(&want));

    // ~ is home and relative paths start at the workdir (/workspace in podgate/base).
    for (path, abs) in [("~/home.txt", "/home/podgate/home.txt"), ("rel/x.txt", "/workspace/rel/x.txt")] {
        let r = http
            .put(files_url(&srv, &sb, ""))
            .bearer_auth(&srv.token)
            .query(&[("path", path), ("parents", "true")])
            .body("hi")
            .send()
            .await
            .unwrap();
        let info: FileInfo = r.json().await.unwrap();
        assert_eq!(info.path, abs);
    }

    // mkdir -p, list with depth, move, stat, remove.
    let r = http
        .post(files_url(&srv, &sb, "/mkdir"))
        .bearer_auth(&srv.token)
        .json(&json!({"path": "/tmp/m/a/b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let list: Vec<FileInfo> = srv.get_json(&format!("/v1/sandboxes/{sb}/files/list?path=/tmp&depth=2")).await;
    let paths: Vec<&str> = list.iter().map(|i| i.path.as_str()).collect();
    assert!(paths.contains(&"/tmp/m/a") && paths.contains(&"/tmp/deep/dir"), "{paths:?}");
    assert!(!paths.contains(&"/tmp/m/a/b") && !paths.contains(&"/tmp/deep/dir/bytes.bin"), "deeper than 2: {paths:?}");
    let r = http
        .post(files_url(&srv, &sb, "/move"))
        .bearer_auth(&srv.token)
        .json(&json!({"from": "/tmp/deep/dir/bytes.bin", "to": "/tmp/m/moved.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let info: FileInfo = http
        .get(files_url(&srv, &sb, "/stat"))
        .bearer_auth(&srv.token)
        .query(&[("path", "/tmp/m/moved.bin")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.size, all.len() as u64);

    // Errors are clear 4xx.
    let status = |r: reqwest::Response| r.status().as_u16();
    let get = |path: &str| http.get(files_url(&srv, &sb, "")).bearer_auth(&srv.token).query(&[("path", path)]).send();
    assert_eq!(status(get("/tmp/nope").await.unwrap()), 404);
    assert_eq!(status(get("/tmp/m").await.unwrap()), 422, "a directory is not a file");
    assert_eq!(
        status(http.get(files_url(&srv, &sb, "")).bearer_auth(&srv.token).send().await.unwrap()),
        400,
        "missing path"
    );
    let put = |path: &str, mode: &str| {
        http.put(files_url(&srv, &sb, ""))
            .bearer_auth(&srv.token)
            .query(&[("path", path), ("mode", mode)])
            .body("x")
            .send()
    };
    assert_eq!(status(put("/tmp/m", "644").await.unwrap()), 422, "writing over a directory");
    assert_eq!(status(put("/tmp/ok", "999").await.unwrap()), 422, "bad mode");
    assert_eq!(status(put("/tmp/no/such/dir/f", "644").await.unwrap()), 404, "missing parent without parents=true");
    // An owner by name or number: the sandbox user keeps its files; root may give them away.
    let own = |sb: &str, path: &str, owner: &str| {
        http.put(files_url(&srv, sb, ""))
            .bearer_auth(&srv.token)
            .query(&[("path", path), ("owner", owner), ("mode", "640")])
            .body("owned")
            .send()
    };
    let info: FileInfo = own(&sb, "/tmp/mine", "podgate").await.unwrap().json().await.unwrap();
    assert_eq!((info.uid, info.gid, info.mode), (1000, 1000, 0o640));
    assert_eq!(status(own(&sb, "/tmp/given", "nobody").await.unwrap()), 403, "uid 1000 cannot chown");
    let root = CreateSandboxRequest { user: Some("root".into()), ..Default::default() };
    let rsb = srv.client().create(&root).await.unwrap().id;
    assert_eq!(status(own(&rsb, "/tmp/owned", "nobody").await.unwrap()), 201);
    let info: FileInfo = own(&rsb, "/tmp/owned2", "1234:5678").await.unwrap().json().await.unwrap();
    assert_eq!((info.uid, info.gid, info.mode), (1234, 5678, 0o640));
    let info: FileInfo = srv.get_json(&format!("/v1/sandboxes/{rsb}/files/stat?path=/tmp/owned")).await;
    assert_eq!((info.uid, info.gid), (65534, 65534));
    assert_eq!(status(own(&rsb, "/tmp/owned3", "ghost").await.unwrap()), 422, "unknown user");
    let del = |path: &str, recursive: &str| {
        http.delete(files_url(&srv, &sb, ""))
            .bearer_auth(&srv.token)
            .query(&[("path", path), ("recursive", recursive)])
            .send()
    };
    assert_eq!(status(del("/tmp/m", "false").await.unwrap()), 409, "non-empty directory");
    assert_eq!(status(del("/tmp/m", "true").await.unwrap()), 204);
    assert_eq!(status(get("/tmp/m/moved.bin").await.unwrap()), 404);
    assert_eq!(
        status(
            http.get(files_url(&srv, "sb-nosuchsandbox", ""))
                .bearer_auth(&srv.token)
                .query(&[("path", "/x")])
                .send()
                .await
                .unwrap()
        ),
        404
    );
    assert_eq!(
        status(http.get(files_url(&srv, &sb, "")).query(&[("path", "/etc/hostname")]).send().await.unwrap()),
        401
    );
}

#[tokio::test]
async fn a_gib_streams_through_with_bounded_memory() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024;
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let (server_pid, agent) = (srv.pid(), agent_pid(&sb));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = rss_kib(server_pid).max(rss_kib(agent));
                peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let chunk = |i: usize| -> Vec<u8> { (0..CHUNK).map(|j| ((i * 7 + j) % 251) as u8).collect() };
    let mut want = Sha256::new();
    for i in 0..CHUNKS {
        want.update(chunk(i));
    }
    let want = want.finalize();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i))),
    ));
    let r = srv
        .http()
        .put(files_url(&srv, &sb, ""))
        .bearer_auth(&srv.token)
        .query(&[("path", "/workspace/big.bin")])
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let mut r = srv
        .http()
        .get(files_url(&srv, &sb, ""))
        .bearer_auth(&srv.token)
        .query(&[("path", "/workspace/big.bin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.content_length(), Some((CHUNK * CHUNKS) as u64));
    let mut got = Sha256::new();
    let mut n = 0;
    while let Some(c) = r.chunk().await.unwrap() {
        n += c.len();
        got.update(&c);
    }
    sampler.abort();
    assert_eq!(n, CHUNK * CHUNKS);
    assert_eq!(got.finalize(), want, "the downloaded GiB matches the uploaded one");
    let peak_kib = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("peak RSS of server and agent while moving 1 GiB: {peak_kib} KiB");
    assert!(peak_kib > 0 && peak_kib < 150 * 1024, "server/agent peak RSS {peak_kib} KiB while moving 1 GiB");
}

#[test]
fn cp_copies_files_and_directories_both_ways() {
    let srv = Server::start();
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(srv.cli(&["up", "--name", "cp"]));
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("tree");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let bytes: Vec<u8> = (0u8..=255).collect();
    std::fs::write(src.join("bin"), &bytes).unwrap();
    std::fs::write(src.join("sub/deeper/script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("sub/deeper/script.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();

    // A file up and back.
    ok(srv.cli(&["cp", src.join("bin").to_str().unwrap(), "cp:/tmp/one.bin"]));
    ok(srv.cli(&["cp", "cp:/tmp/one.bin", local.path().join("back.bin").to_str().unwrap()]));
    assert_eq!(std::fs::read(local.path().join("back.bin")).unwrap(), bytes);
    // A directory up (modes kept: the script runs), and back.
    ok(srv.cli(&["cp", src.to_str().unwrap(), "cp:/tmp/tree"]));
    let o = srv.cli(&["exec", "cp", "--", "/tmp/tree/sub/deeper/script.sh"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    let back = local.path().join("again");
    ok(srv.cli(&["cp", "cp:/tmp/tree", back.to_str().unwrap()]));
    assert_eq!(std::fs::read(back.join("bin")).unwrap(), bytes);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(back.join("sub/deeper/script.sh")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o755);
    // Errors: one line, non-zero.
    let o = srv.cli(&["cp", "cp:/tmp/missing", local.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/tmp/missing") && err.contains("No such file"), "{err}");
    let o = srv.cli(&["cp", "/etc/hostname", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(1));
}

/// A tar with one raw header (names are not cleaned up, so hostile ones stay hostile).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(*kind);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test]
async fn directories_travel_as_tar_and_hostile_entries_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let c = srv.client();
    let sh = async |cmd: &str| {
        let req = ExecRequest { argv: vec!["sh".into(), "-c".into(), cmd.into()], ..Default::default() };
        String::from_utf8(c.exec(&sb, &req).await.unwrap().stdout.0).unwrap()
    };

    // A tree in and out: bytes, modes and inner symlinks kept.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("a/b")).unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(src.path().join("a/b/all.bin"), &bytes).unwrap();
    std::fs::write(src.path().join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(src.path().join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("a/b/all.bin", src.path().join("link")).unwrap();
    let tar = podgate_tar::pack(src.path(), Vec::new()).unwrap();
    let r = srv.http().put(files_url(&srv, &sb, "/tar?path=t")).bearer_auth(&srv.token).body(tar).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let done: podgate_types::files::TarUploaded = r.json().await.unwrap();
    assert_eq!((done.files, done.bytes), (3, 100_000 + 19));
    assert_eq!(
        sh("cd /workspace/t && ./run.sh && stat -c %a run.sh && readlink link").await,
        "ran\n750\na/b/all.bin\n"
    );
    let back =
        srv.http().get(files_url(&srv, &sb, "/tar?path=/workspace/t")).bearer_auth(&srv.token).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 200);
    let out = tempfile::tempdir().unwrap();
    podgate_tar::unpack(&back.bytes().await.unwrap()[..], out.path()).unwrap();
    assert!(std::fs::read(out.path().join("a/b/all.bin")).unwrap() == bytes);
    assert_eq!(std::fs::read_link(out.path().join("link")).unwrap().to_str(), Some("a/b/all.bin"));

    // Hostile archives: refused with the entry named, nothing written outside the target.
    sh("mkdir -p /tmp/h && ln -s /etc /tmp/h/etc-link").await;
    use tar::EntryType::{Char, Link, Regular, Symlink};
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("../evil", raw_tar(&[("../evil", Regular, "", b"x")])),
        ("a/../../evil", raw_tar(&[("ok", Regular, "", b"fine"), ("a/../../evil", Regular, "", b"x")])),
        ("/tmp/evil", raw_tar(&[("/tmp/evil", Regular, "", b"x")])),
        ("abs-link", raw_tar(&[("abs-link", Symlink, "/etc", b""), ("abs-link/evil", Regular, "", b"x")])),
        ("up-link", raw_tar(&[("d/up-link", Symlink, "../../..", b"")])),
        ("hard", raw_tar(&[("hard", Link, "../../etc/passwd", b"")])),
        ("dev", raw_tar(&[("dev", Char, "", b"")])),
        ("etc-link/evil", raw_tar(&[("etc-link/evil", Regular, "", b"x")])),
    ];
    for (name, tar) in cases {
        let r = srv
            .http()
            .put(files_url(&srv, &sb, "/tar?path=/tmp/h"))
            .bearer_auth(&srv.token)
            .body(tar)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422, "{name}");
        let body: serde_json::Value = r.json().await.unwrap();
        let msg = body["error"]["message"].as_str().unwrap().to_string();
        eprintln!("{name}: {msg}");
    }
    assert_eq!(
        sh("ls -A /tmp/h; ls /tmp/evil /evil /etc/evil /root/evil 2>/dev/null | wc -l").await,
        "etc-link\nok\n0\n"
    );
    assert_eq!(sh("cat /tmp/h/ok").await, "fine");

    // Not a tar, a missing directory, a file where a directory is expected.
    let r = srv
        .http()
        .put(files_url(&srv, &sb, "/tar?path=/tmp/x"))
        .bearer_auth(&srv.token)
        .body(vec![7u8; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = srv.http().get(files_url(&srv, &sb, "/tar?path=/nope")).bearer_auth(&srv.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r =
        srv.http().get(files_url(&srv, &sb, "/tar?path=/etc/hostname")).bearer_auth(&srv.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
}

#[tokio::test]
async fn directory_watch_reports_changes_as_they_happen() {
    use futures_util::StreamExt as _;
    use podgate_types::files::{WatchEvent, WatchKind};
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let c = srv.client();
    let sh = async |cmd: &str| {
        let req = ExecRequest { argv: vec!["sh".into(), "-c".into(), cmd.into()], ..Default::default() };
        assert_eq!(c.exec(&sb, &req).await.unwrap().exit_code, 0, "{cmd}");
    };
    sh("mkdir -p /tmp/w/sub /tmp/elsewhere && echo x > /tmp/elsewhere/incoming").await;
    let mut ws = c.watch_dir(&sb, "/tmp/w", true).await.unwrap();
    let mut next = async || loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an event within 10 s");
        if let Some(Ok(podgate_client::Message::Text(t))) = msg {
            return serde_json::from_str::<WatchEvent>(&t).unwrap();
        }
    };
    let ev = |kind, path: &str, to: Option<&str>| WatchEvent { kind, path: path.into(), to: to.map(String::from) };
    // Each step waits for its event, so the debounce window never merges two steps.
    sh("echo one > /tmp/w/a").await;
    assert_eq!(next().await, ev(WatchKind::Create, "/tmp/w/a", None));
    sh("sleep 0.3; echo two >> /tmp/w/a").await;
    assert_eq!(next().await, ev(WatchKind::Modify, "/tmp/w/a", None));
    sh("mv /tmp/w/a /tmp/w/sub/b").await;
    assert_eq!(next().await, ev(WatchKind::Rename, "/tmp/w/a", Some("/tmp/w/sub/b")));
    sh("mv /tmp/elsewhere/incoming /tmp/w/sub/in").await;
    assert_eq!(next().await, ev(WatchKind::Create, "/tmp/w/sub/in", None));
    sh("mv /tmp/w/sub/in /tmp/elsewhere/out").await;
    assert_eq!(next().await, ev(WatchKind::Delete, "/tmp/w/sub/in", None));
    sh("rm /tmp/w/sub/b").await;
    assert_eq!(next().await, ev(WatchKind::Delete, "/tmp/w/sub/b", None));
    sh("mkdir -p /tmp/w/new/deep && sleep 0.3 && echo z > /tmp/w/new/deep/f").await;
    let mut seen = Vec::new();
    while !seen.contains(&ev(WatchKind::Create, "/tmp/w/new/deep/f", None)) {
        seen.push(next().await);
    }
    assert!(seen.contains(&ev(WatchKind::Create, "/tmp/w/new", None)), "{seen:?}");

    // Not a directory, missing, no token.
    let status = |e: podgate_client::Error| match e {
        podgate_client::Error::Api { status, .. } => status,
        other => panic!("{other}"),
    };
    assert_eq!(status(c.watch_dir(&sb, "/tmp/missing", true).await.unwrap_err()), 404);
    assert_eq!(status(c.watch_dir(&sb, "/etc/hostname", false).await.unwrap_err()), 422);
    let anon = podgate_client::Client::new(&srv.url, "bad").unwrap();
    assert_eq!(status(anon.watch_dir(&sb, "/tmp/w", true).await.unwrap_err()), 401);
}
