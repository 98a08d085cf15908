//! SSH end to end with the real OpenSSH client: public-key logins to a sandbox by name, commands
//! with their output, stderr, stdin and exit status, a PTY, the env allowlist, `-L` forwarding,
//! and refusals that look the same for a wrong key, an unknown sandbox and another user's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, keygen, ssh_opts};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use podgate_types::process::ProcessSpec;
use podgate_types::users::{AddSshKeyRequest, CreateUserRequest};

const BUSYBOX: &str = "podgate/busybox:test";

/// `ssh` to `target` on the test server with `key`, batch mode, no host key prompts.
fn ssh(srv: &Server, key: &Path, target: &str) -> Command {
    let (host, port) = srv.ssh_addr.rsplit_once(':').unwrap();
    let mut c = Command::new("ssh");
    c.args(ssh_opts(key))
        .args(["-p", port, "-o", "ConnectTimeout=20"])
        .arg(format!("{target}@{host}"))
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("running ssh")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Fixture {
    srv: Server,
    alice: Client,
    key: PathBuf,
    other_key: PathBuf,
    sandbox: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

async fn fixture_with(flags: &[&str]) -> Fixture {
    let srv =
        Server::start_with(common::Opts { extra: flags.iter().map(|s| s.to_string()).collect(), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "alice");
    let other_key = keygen(dir.path(), "stranger");
    let created = srv.client().create_user(&CreateUserRequest { name: "alice".into(), role: None }).await.unwrap();
    let alice = Client::new(&srv.url, &created.token.secret).unwrap();
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let added = alice.add_ssh_key("me", &AddSshKeyRequest { name: None, public_key }).await.unwrap();
    assert_eq!(added.name, "alice");
    let sb = alice
        .create(&CreateSandboxRequest { name: Some("box".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();
    Fixture { srv, alice, key, other_key, sandbox: sb.id, _dir: dir }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_run_with_their_output_and_exit_status() {
    let f = fixture().await;
    let exec = |cmd: &str| {
        let mut c = ssh(&f.srv, &f.key, "box");
        c.args(["--", cmd]);
        run(c)
    };
    let o = exec("echo hello-$((6*7)); echo oops >&2");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "hello-42\n"), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    let o = exec("exit 1");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(exec("exit 42").status.code(), Some(42));
    let killed = exec("kill -9 $$");
    assert_eq!(killed.status.code(), Some(255), "killed by a signal: {killed:?}");
    // By id as well as by name; the user's own uid runs it.
    let mut c = ssh(&f.srv, &f.key, &f.sandbox);
    c.args(["--", "id -u"]);
    assert_eq!(stdout(&run(c)), "1000\n");

    // Standard input reaches the command, and its end ends it.
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["--", "wc -c"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let data = vec![b'x'; 300_000];
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&data).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o).trim(), "300000", "{o:?}");

    // Only allowlisted variables pass.
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args([
        "-o",
        "SendEnv=LC_PODGATE",
        "-o",
        "SendEnv=PODGATE_SECRET",
        "--",
        "echo \"[$LC_PODGATE][$PODGATE_SECRET]\"",
    ])
    .env("LC_PODGATE", "kept")
    .env("PODGATE_SECRET", "dropped");
    assert_eq!(stdout(&run(c)), "[kept][]\n");

    // A PTY: a terminal device, TERM from the client, and the shell's prompt and exit status.
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-tt", "--", "tty; echo term=$TERM; exit 7"]).env("TERM", "xterm-256color");
    let o = run(c);
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/") && out.contains("term=xterm-256color"), "{out:?}");
    assert_eq!(o.status.code(), Some(7));

    // An interactive login shell over a PTY, driven through standard input.
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-tt"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo shell-$((2+3))\nexit 3\n").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    }
    let o = child.wait_with_output().unwrap();
    assert!(stdout(&o).contains("shell-5"), "{o:?}");
    assert_eq!(o.status.code(), Some(3));

    let audit: serde_json::Value = f.srv.get_json(&format!("/v1/sandboxes/{}/events", f.sandbox)).await;
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"ssh.login") && actions.contains(&"ssh.exec") && actions.contains(&"ssh.shell"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_look_the_same() {
    let f = fixture().await;
    // Bob's sandbox, which alice's key must not open.
    let bob = f.srv.client().create_user(&CreateUserRequest { name: "bob".into(), role: None }).await.unwrap();
    let bob = Client::new(&f.srv.url, &bob.token.secret).unwrap();
    let bobs = bob
        .create(&CreateSandboxRequest { name: Some("bobs".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();
    let tries = [
        (f.other_key.clone(), "box"),
        (f.key.clone(), "no-such-sandbox"),
        (f.key.clone(), "bobs"),
        (f.key.clone(), bobs.id.as_str()),
    ];
    for (key, target) in tries {
        let mut c = ssh(&f.srv, &key, target);
        c.args(["--", "true"]);
        let o = run(c);
        assert_eq!(o.status.code(), Some(255), "{target}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Permission denied (publickey)"), "{target}: {err}");
    }
    let refused: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.login").await;
    let results: Vec<&str> =
        refused["events"].as_array().unwrap().iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert!(results.iter().filter(|r| **r == "refused").count() >= 4, "{results:?}");
    // A removed key no longer logs in.
    let keys = f.alice.ssh_keys("me").await.unwrap().keys;
    f.alice.remove_ssh_key("me", &keys[0].id).await.unwrap();
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["--", "true"]);
    assert_eq!(run(c).status.code(), Some(255));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_forwarding_carries_http_from_inside_the_sandbox() {
    let f = fixture().await;
    let setup = "mkdir -p /tmp/www && echo served-from-the-sandbox > /tmp/www/index.html";
    let req = ExecRequest { argv: vec![setup.into()], shell: true, ..Default::default() };
    assert_eq!(f.alice.exec(&f.sandbox, &req).await.unwrap().exit_code, 0);
    let spec = ProcessSpec {
        argv: vec!["httpd".into(), "-f".into(), "-p".into(), "8080".into(), "-h".into(), "/tmp/www".into()],
        ..Default::default()
    };
    f.alice.spawn_process(&f.sandbox, &spec).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-N", "-L", &format!("127.0.0.1:{port}:127.0.0.1:8080")]);
    let mut tunnel = common::KillOnDrop(c.spawn().unwrap());
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => break r.text().await.unwrap(),
            _ => {}
        }
        assert!(tunnel.0.try_wait().unwrap().is_none(), "ssh -L exited");
        assert!(Instant::now() < deadline, "nothing came through the tunnel");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body, "served-from-the-sandbox\n");
    // Several requests, each on its own forwarded connection.
    for _ in 0..5 {
        assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "served-from-the-sandbox\n");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_config_blocks_work_and_sessions_are_limited() {
    let f = fixture_with(&["--ssh-max-sessions-per-user", "1"]).await;
    let (host, port) = f.srv.ssh_addr.rsplit_once(':').unwrap();
    let out = f
        .srv
        .cli_command(&["ssh-config", "--port", port, "--prefix", "pg-"])
        .env("PODGATE_TOKEN", f.alice.token())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = String::from_utf8(out.stdout).unwrap();
    assert!(config.contains("Host pg-box\n") && config.contains(&format!("HostName {host}")), "{config}");
    let file = f._dir.path().join("config");
    std::fs::write(&file, &config).unwrap();
    let via_config = |extra: &[&str]| {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(&file).arg("-i").arg(&f.key).args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "pg-box",
        ]);
        c.args(extra).stdin(Stdio::null());
        c
    };
    let o = run(via_config(&["--", "echo via-config"]));
    assert_eq!(stdout(&o), "via-config\n", "{o:?}");

    // One connection at a time for alice: a second is refused while the first lasts.
    let mut held = common::KillOnDrop(via_config(&["-N"]).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logins: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.login").await;
        let ok = logins["events"].as_array().unwrap().iter().filter(|e| e["result"] == "ok").count();
        if ok >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the held connection never logged in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run(via_config(&["--", "true"])).status.code(), Some(255), "over the session limit");
    held.0.kill().unwrap();
    held.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while run(via_config(&["--", "true"])).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the limit was not released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SHA-256 of a file, hex.
fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_and_scp_move_binary_files_intact() {
    let f = fixture().await;
    let (host, port) = f.srv.ssh_addr.rsplit_once(':').unwrap();
    let dir = f._dir.path();
    // 100 MiB of incompressible bytes.
    let big = dir.join("big.bin");
    {
        use std::io::Read as _;
        let mut random = std::fs::File::open("/dev/urandom").unwrap().take(100 << 20);
        std::io::copy(&mut random, &mut std::fs::File::create(&big).unwrap()).unwrap();
    }
    let batch = dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "mkdir up\ncd up\nput {big} big.bin\nrename big.bin moved.bin\nls -l\nget moved.bin {back}\nrm moved.bin\ncd ..\nrmdir up\npwd\n",
            big = big.display(),
            back = dir.join("back.bin").display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let o = Command::new("sftp")
        .args(ssh_opts(&f.key))
        .args(["-P", port, "-b"])
        .arg(&batch)
        .arg(format!("box@{host}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "sftp: {out}\n{}", String::from_utf8_lossy(&o.stderr));
    eprintln!("sftp put+get of 100 MiB took {:?}", started.elapsed());
    assert!(out.contains("moved.bin") && out.contains("Remote working directory: /"), "{out}");
    assert_eq!(sha256(&big), sha256(&dir.join("back.bin")), "the file came back changed");
    // The upload landed in the user's home, then went.
    let req = ExecRequest {
        argv: vec!["test -e \"$HOME/up\" && echo left || echo gone".into()],
        shell: true,
        ..Default::default()
    };
    assert_eq!(String::from_utf8_lossy(&f.alice.exec(&f.sandbox, &req).await.unwrap().stdout.0), "gone\n");

    // scp (the SFTP protocol, OpenSSH's default) both ways.
    let small = dir.join("small.bin");
    std::fs::write(&small, (0..=255u8).cycle().take(3_000_000).collect::<Vec<u8>>()).unwrap();
    let scp = |from: &str, to: &str| {
        Command::new("scp").args(ssh_opts(&f.key)).args(["-P", port, from, to]).output().unwrap()
    };
    let remote = format!("box@{host}:/tmp/s.bin");
    let o = scp(small.to_str().unwrap(), &remote);
    assert!(o.status.success(), "scp up: {}", String::from_utf8_lossy(&o.stderr));
    let copy = dir.join("copy.bin");
    let o = scp(&remote, copy.to_str().unwrap());
    assert!(o.status.success(), "scp down: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256(&small), sha256(&copy));
    // Files belong to the sandbox user, and its permissions hold.
    let o = scp(small.to_str().unwrap(), &format!("box@{host}:/etc/passwd"));
    assert!(!o.status.success(), "a non-root sandbox user wrote /etc/passwd");
    let audit: serde_json::Value = f.srv.get_json(&format!("/v1/sandboxes/{}/events", f.sandbox)).await;
    assert!(audit["events"].as_array().unwrap().iter().any(|e| e["action"] == "ssh.sftp"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resized_client_terminal_resizes_the_remote_pty() {
    use std::io::Read as _;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let f = fixture().await;
    let size = |rows, cols| nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let pair = nix::pty::openpty(Some(&size(24, 80)), None).unwrap();
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-tt", "--", "while :; do stty size; sleep 0.2; done"])
        .stdin(Stdio::from(pair.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pair.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pair.slave));
    // SAFETY: between fork and exec the child only makes two async-signal-safe calls on its own
    // stdin: a new session, with the PTY as its controlling terminal (so it gets SIGWINCH).
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let ssh_child = common::KillOnDrop(c.spawn().unwrap());
    // The command holds the slave side until dropped: without this the master never sees EOF.
    drop(c);
    let master = std::fs::File::from(pair.master);
    let fd = master.as_raw_fd();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (seen, mut master) = (seen.clone(), master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = seen.lock().unwrap().clone();
            if now.contains(what) {
                break;
            }
            assert!(Instant::now() < deadline, "no {what:?} in {now:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("24 80");
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the master stays open (the
    // reader thread owns it) until the test ends.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ as _, &size(40, 100)) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    wait_for("40 100");
    drop(ssh_child);
    let _ = reader.join();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_through_the_cli_and_forwarding_refused_by_policy() {
    let srv = Server::start_with(common::Opts { extra: vec!["--ssh-no-forwarding".into()], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "carol");
    let created = srv.client().create_user(&CreateUserRequest { name: "carol".into(), role: None }).await.unwrap();
    let carol = Client::new(&srv.url, &created.token.secret).unwrap();
    let cli = |args: &[&str]| {
        let o = srv.cli_command(args).env("PODGATE_TOKEN", carol.token()).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let added = cli(&["ssh-key", "add", key.with_extension("pub").to_str().unwrap()]);
    assert!(added.starts_with("added carol (sk-") && added.contains("SHA256:"), "{added}");
    let listed = cli(&["ssh-key", "ls"]);
    assert!(listed.contains("carol") && listed.contains("SHA256:"), "{listed}");
    let sb = carol
        .create(&CreateSandboxRequest { name: Some("box".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();
    let mut c = ssh(&srv, &key, "box");
    c.args(["--", "echo in"]);
    assert_eq!(stdout(&run(c)), "in\n");

    // -L to a port that answers inside the sandbox: the client's listener opens, but the server
    // refuses every forwarded channel, so the request gets no answer.
    let serve = "mkdir -p /tmp/www && echo hi > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
    let spec = ProcessSpec { argv: vec![serve.into()], shell: true, ..Default::default() };
    carol.spawn_process(&sb.id, &spec).await.unwrap();
    let probe = ExecRequest {
        argv: vec!["sleep 0.5; wget -qO- http://127.0.0.1:8080/".into()],
        shell: true,
        ..Default::default()
    };
    assert_eq!(String::from_utf8_lossy(&carol.exec(&sb.id, &probe).await.unwrap().stdout.0), "hi\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = ssh(&srv, &key, "box");
    c.args(["-N", "-L", &format!("127.0.0.1:{port}:127.0.0.1:8080")]);
    let tunnel = common::KillOnDrop(c.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(Instant::now() < deadline, "ssh -L never listened");
        std::thread::sleep(Duration::from_millis(100));
    };
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The client may already have closed it (then the write or read sees a reset).
    let _ = std::io::Write::write_all(&mut conn, b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = [0u8; 1];
    match std::io::Read::read(&mut conn, &mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a refused forward must close without an answer, got {other:?}"),
    }
    drop(tunnel);
    let events: serde_json::Value = srv.get_json("/v1/audit?action=ssh.forward").await;
    assert_eq!(events["events"], serde_json::json!([]));

    let id = added.split(['(', ')']).nth(1).unwrap().to_string();
    assert_eq!(cli(&["ssh-key", "rm", &id]), format!("removed {id}\n"));
    let mut c = ssh(&srv, &key, "box");
    c.args(["--", "true"]);
    assert_eq!(run(c).status.code(), Some(255), "a removed key logs in no more");
}

/// A plain HTTP server on the test host answering every request with `body`; returns its port.
fn host_http_server(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut conn, &mut buf);
                let answer = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = std::io::Write::write_all(&mut conn, answer.as_bytes());
            });
        }
    });
    port
}

/// Runs `cmd` in the sandbox through the API: its exit code and stdout.
async fn sandbox_sh(f: &Fixture, cmd: &str) -> (i32, String) {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = f.alice.exec(&f.sandbox, &req).await.unwrap();
    (out.exit_code, String::from_utf8_lossy(&out.stdout.0).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_forwarding_carries_http_into_the_sandbox_until_the_client_goes() {
    let f = fixture().await;
    let host_port = host_http_server("served-from-the-host");
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &format!("9090:127.0.0.1:{host_port}")]);
    let mut tunnel = common::KillOnDrop(c.spawn().unwrap());
    let fetch = "wget -qO- http://127.0.0.1:9090/";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out) = sandbox_sh(&f, fetch).await;
        if code == 0 {
            assert_eq!(out, "served-from-the-host");
            break;
        }
        assert!(tunnel.0.try_wait().unwrap().is_none(), "ssh -R exited");
        assert!(Instant::now() < deadline, "the sandbox never reached the forwarded port");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several connections at once, each its own forwarded channel.
    let (code, out) =
        sandbox_sh(&f, &format!("for i in 1 2 3 4 5; do {fetch} -O /tmp/got.$i 2>&1 & done; wait; cat /tmp/got.*"))
            .await;
    assert_eq!((code, out.as_str()), (0, "served-from-the-host".repeat(5).as_str()));
    // The port is bound to the sandbox's loopback only (sshd's default).
    let (_, tcp) = sandbox_sh(&f, "cat /proc/net/tcp").await;
    assert!(tcp.contains("0100007F:2382 00000000:0000 0A"), "no listener on 127.0.0.1:9090:\n{tcp}");
    let events: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.remote_forward").await;
    assert_eq!(events["events"][0]["sandbox_id"], f.sandbox.as_str(), "{events}");

    // The client goes: the listener in the sandbox closes with it.
    drop(tunnel);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandbox_sh(&f, "cat /proc/net/tcp").await.1.contains("0100007F:2382 00000000:0000 0A") {
        assert!(Instant::now() < deadline, "the forwarded port stayed open after the client left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(sandbox_sh(&f, fetch).await.0, 0);

    // Port 0: the sandbox's kernel picks the port, and the client must be told which: it refuses
    // forwarded channels for a port it does not know.
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &format!("0:127.0.0.1:{host_port}")]);
    let _tunnel = common::KillOnDrop(c.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let allocated = loop {
        let events: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.remote_forward").await;
        let found = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e["detail"].as_str()?.strip_prefix("localhost:0 -> 127.0.0.1:")?.parse::<u16>().ok());
        if let Some(port) = found {
            break port;
        }
        assert!(Instant::now() < deadline, "no port-0 forward was set up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(allocated, 0);
    let (code, out) = sandbox_sh(&f, &format!("wget -qO- http://127.0.0.1:{allocated}/")).await;
    assert_eq!((code, out.as_str()), (0, "served-from-the-host"));
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_forwarding_lets_the_sandbox_use_the_clients_ssh_agent() {
    let f = fixture_with(&[]).await;
    let sb = f
        .alice
        .create(&CreateSandboxRequest {
            name: Some("deb".into()),
            image: Some("podgate/base:latest".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap();
    let _agent = common::KillOnDrop(agent);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let added = Command::new("ssh-add").arg(&f.other_key).env("SSH_AUTH_SOCK", &sock).output().unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let fingerprint = Command::new("ssh-keygen").arg("-lf").arg(f.other_key.with_extension("pub")).output().unwrap();
    let fingerprint = stdout(&fingerprint).split_whitespace().nth(1).unwrap().to_string();

    let mut c = ssh(&f.srv, &f.key, "deb");
    c.env("SSH_AUTH_SOCK", &sock).args([
        "-A",
        "--",
        "ssh-add -l; echo \"sock=$SSH_AUTH_SOCK\"; stat -c %a \"$(dirname \"$SSH_AUTH_SOCK\")\"",
    ]);
    let out = run(c);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(&fingerprint) && text.contains("stranger"),
        "the sandbox does not see the agent's key:\n{text}"
    );
    assert!(text.contains("sock=/tmp/podgate-ssh-"), "{text}");
    assert!(text.trim_end().ends_with("\n700"), "the socket's folder must be private: {text}");
    let events: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.agent_forward").await;
    assert_eq!(events["events"][0]["sandbox_id"], sb.id.as_str(), "{events}");

    // Without -A there is no socket; the socket of the finished connection is gone.
    let mut c = ssh(&f.srv, &f.key, "deb");
    c.env("SSH_AUTH_SOCK", &sock)
        .args(["--", "echo \"sock=$SSH_AUTH_SOCK\"; ls -d /tmp/podgate-ssh-* 2>/dev/null | wc -l"]);
    let text = stdout(&run(c));
    assert_eq!(text, "sock=\n0\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_and_agent_forwarding_refused_by_policy() {
    let f = fixture_with(&["--ssh-no-remote-forwarding", "--ssh-no-agent-forwarding"]).await;
    let host_port = host_http_server("never");
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", &format!("9090:127.0.0.1:{host_port}")]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(255), "-R must be refused: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("remote port forwarding failed"));
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _agent = common::KillOnDrop(
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap(),
    );
    let mut c = ssh(&f.srv, &f.key, "box");
    c.env("SSH_AUTH_SOCK", &sock).args(["-A", "--", "echo \"sock=$SSH_AUTH_SOCK\""]);
    assert_eq!(stdout(&run(c)), "sock=\n");
    let events: serde_json::Value = f.srv.get_json("/v1/audit?action=ssh.remote_forward").await;
    assert_eq!(events["events"], serde_json::json!([]));
}

/// The ids of alice's sandboxes other than the fixture's.
async fn connection_sandboxes(f: &Fixture, alice: &Client) -> Vec<String> {
    let all = alice.list().await.unwrap();
    all.into_iter().map(|s| s.id).filter(|id| *id != f.sandbox).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn new_mode_gives_each_connection_its_own_sandbox_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.json");
    std::fs::write(&template, format!(r#"{{"image": "{BUSYBOX}", "env": {{"FROM_TEMPLATE": "yes"}}}}"#)).unwrap();
    let flags = ["--ssh-new-template", template.to_str().unwrap(), "--ssh-new-lease-seconds", "3"];
    let mut f = fixture_with(&flags).await;

    // A command in a sandbox made from the template, gone once the connection ends.
    let mut c = ssh(&f.srv, &f.key, "new");
    c.args(["--", "echo $FROM_TEMPLATE; cat /etc/hostname"]);
    let out = run(c);
    let text = stdout(&out);
    assert!(out.status.success() && text.starts_with("yes\n"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let events: serde_json::Value = f.srv.get_json("/v1/audit?action=sandbox.create").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "the fixture's and the connection's: {events}");
    let alice = f.alice.clone();
    common::eventually(20, "the connection's sandbox is deleted", async || {
        connection_sandboxes(&f, &alice).await.is_empty()
    })
    .await;
    // Deleted by the connection's end, on alice's behalf, not left to its lease.
    let deleted: serde_json::Value = f.srv.get_json("/v1/audit?action=sandbox.delete").await;
    assert_eq!(deleted["events"][0]["actor_name"], "alice", "{deleted}");
    let expired: serde_json::Value = f.srv.get_json("/v1/audit?action=sandbox.expire").await;
    assert_eq!(expired["events"], serde_json::json!([]));

    // A held connection keeps its sandbox past several lease periods; a second connection gets
    // another sandbox.
    let mut c = ssh(&f.srv, &f.key, "new");
    c.args(["--", "cat /etc/hostname; exec sleep 600"]).stdout(Stdio::piped());
    let mut held = common::KillOnDrop(c.spawn().unwrap());
    let mut first_host = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(held.0.stdout.take().unwrap()), &mut first_host).unwrap();
    let ids = connection_sandboxes(&f, &alice).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut c = ssh(&f.srv, &f.key, "new");
    c.args(["--", "cat /etc/hostname"]);
    assert_ne!(stdout(&run(c)), first_host, "two connections shared a sandbox");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(connection_sandboxes(&f, &alice).await, ids, "the held connection's sandbox must live on");
    let req = ExecRequest { argv: vec!["true".into()], ..Default::default() };
    assert_eq!(alice.exec(&ids[0], &req).await.unwrap().exit_code, 0);

    // kill -9 of the server: nothing deletes the sandbox on disconnect, so its lease runs out and
    // the restarted server's reconciler deletes it, container and all.
    let containers = f.srv.containers();
    assert_eq!(containers.len(), 2, "{containers:?}");
    f.srv.kill9();
    f.srv.spawn(common::Opts { extra: flags.map(String::from).to_vec(), ..Default::default() });
    let alice = Client::new(&f.srv.url, alice.token()).unwrap();
    common::eventually(30, "the crashed connection's sandbox is deleted", async || {
        connection_sandboxes(&f, &alice).await.is_empty()
    })
    .await;
    let left = common::docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains(&ids[0]), "its container is left: {left}");
    let expired: serde_json::Value = f.srv.get_json("/v1/audit?action=sandbox.expire").await;
    assert_eq!(expired["events"][0]["sandbox_id"], ids[0].as_str(), "{expired}");
    drop(held);
}

/// `ssh` logging in with `password` through SSH_ASKPASS (no public key offered).
fn ssh_with_password(srv: &Server, target: &str, password: &str, dir: &Path) -> Command {
    let askpass = dir.join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let (host, port) = srv.ssh_addr.rsplit_once(':').unwrap();
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR"])
        .arg(format!("{target}@{host}"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_as_passwords_only_when_enabled_and_idle_connections_close() {
    let f = fixture_with(&["--ssh-password-auth", "--ssh-idle-timeout-seconds", "2"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = ssh_with_password(&f.srv, "box", f.alice.token(), dir.path());
    c.args(["--", "echo by-token"]);
    let out = run(c);
    assert_eq!(stdout(&out), "by-token\n", "{}", String::from_utf8_lossy(&out.stderr));
    let mut c = ssh_with_password(&f.srv, "box", "pg_not-a-token", dir.path());
    c.args(["--", "true"]);
    assert_eq!(run(c).status.code(), Some(255), "a wrong token logs in");

    // A connection with no traffic for the idle timeout is closed.
    let started = Instant::now();
    let mut c = ssh(&f.srv, &f.key, "box");
    c.args(["-o", "ServerAliveInterval=0", "--", "sleep 30"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(255), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20), "closed after {:?}", started.elapsed());

    // Off by default: the same token is refused.
    let srv = Server::start();
    let created = srv.client().create_user(&CreateUserRequest { name: "dave".into(), role: None }).await.unwrap();
    let dave = Client::new(&srv.url, &created.token.secret).unwrap();
    dave.create(&CreateSandboxRequest { name: Some("box".into()), image: Some(BUSYBOX.into()), ..Default::default() })
        .await
        .unwrap();
    let mut c = ssh_with_password(&srv, "box", dave.token(), dir.path());
    c.args(["--", "echo by-token"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(255), "password auth must be off by default: {}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn typing_into_an_ssh_session_of_an_idle_paused_sandbox_resumes_it() {
    use std::io::{BufRead as _, Write as _};
    let f = fixture().await;
    let req = CreateSandboxRequest {
        name: Some("dozy".into()),
        image: Some(BUSYBOX.into()),
        idle_timeout_seconds: Some(2),
        ..Default::default()
    };
    let sb = f.alice.create(&req).await.unwrap();
    // A shell reading commands from the session's stdin, its answers on stdout.
    let mut c = ssh(&f.srv, &f.key, "dozy");
    c.args(["--", "sh"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = common::KillOnDrop(c.spawn().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, out) = (lines.clone(), child.0.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let answered = |what: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !lines.lock().unwrap().iter().any(|l| l == what) {
            assert!(Instant::now() < deadline, "no {what:?} in {:?}", lines.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    stdin.write_all(b"echo first-$((6*7))\n").unwrap();
    answered("first-42", 20);

    common::eventually(30, "the idle sandbox is paused", async || {
        f.alice.get(&sb.id).await.unwrap().state == podgate_types::api::SandboxState::Paused
    })
    .await;
    stdin.write_all(b"echo again-$((7*6))\n").unwrap();
    answered("again-42", 20);
    assert_eq!(f.alice.get(&sb.id).await.unwrap().state, podgate_types::api::SandboxState::Running);
    let events: serde_json::Value = f.srv.get_json("/v1/audit?action=sandbox.resume").await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["detail"] == "on input"), "{events}");
    drop(stdin);
    drop(child);
    let _ = reader.join();
}
