//! The CLI end to end: `podgate up / ls / exec / down` against a real server and engine.

mod common;

use common::Server;
use serde_json::Value;

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn up_ls_exec_down() {
    let srv = Server::start();
    let out = ok(&srv.cli(&["up", "--name", "dev", "--env", "A=1", "--env", "EMPTY=", "--ttl", "600", "-o", "json"]));
    let sb: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sb["name"], "dev");
    assert_eq!(sb["state"], "running");
    assert_eq!(sb["env"]["EMPTY"], "");
    assert_eq!(sb["ttl_seconds"], 600);

    let text = ok(&srv.cli(&["ls"]));
    assert!(text.lines().next().unwrap().starts_with("NAME"), "{text}");
    assert!(text.contains("dev") && text.contains("running"), "{text}");
    let list: Value = serde_json::from_str(&ok(&srv.cli(&["ls", "--output", "json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], sb["id"]);

    // Output is copied exactly and the exit code is the command's.
    let o = srv.cli(&["exec", "dev", "--", "sh", "-c", "printf 'out:%s' \"$A\"; printf err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(o.stdout, b"out:1");
    assert_eq!(o.stderr, b"err");
    // -i sends standard input; -e and -w apply.
    let o = srv.cli_stdin(&["exec", "-i", "dev", "--", "cat"], Some(b"\x00binary\xffin"));
    assert_eq!(o.stdout, b"\x00binary\xffin");
    let o = srv.cli(&["exec", "-e", "X=42", "-w", "/tmp", "dev", "--", "sh", "-c", "echo $X $(pwd)"]);
    assert_eq!(ok(&o), "42 /tmp\n");

    // Errors are one clear line and a non-zero exit.
    let o = srv.cli(&["exec", "missing", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("podgate: ") && err.contains("not found"), "{err}");
    let o = srv.cli(&["up", "--name", "dev"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already in use"));

    assert!(ok(&srv.cli(&["down", "dev"])).contains("dev deleted"));
    let list: Value = serde_json::from_str(&ok(&srv.cli(&["ls", "-o", "json"]))).unwrap();
    assert!(list.as_array().unwrap().is_empty());
    assert!(srv.containers().is_empty());
    let o = srv.cli(&["down", "dev"]);
    assert_eq!(o.status.code(), Some(1));
}

/// The CLI with only HOME set (no PODGATE_URL/PODGATE_TOKEN): it must use the saved login.
fn bare_cli(srv: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(args)
        .env("HOME", srv.dir.path())
        .env_remove("PODGATE_URL")
        .env_remove("PODGATE_TOKEN")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

#[test]
fn login_saves_url_and_token() {
    let srv = Server::start();
    let token_file = format!("@{}", srv.dir.path().join("admin.token").display());
    let o = bare_cli(&srv, &["login", "--url", &srv.url, "--token", &token_file]);
    assert!(ok(&o).contains("as admin (admin)"));
    let saved = srv.dir.path().join(".config/podgate/config.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Later commands use the saved login.
    let o = bare_cli(&srv, &["ls", "-o", "json"]);
    assert_eq!(ok(&o).trim(), "[]");
    // A wrong token is refused at login and nothing is saved over the good one.
    let o = bare_cli(&srv, &["login", "--url", &srv.url, "--token", "pgt_wrong"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(std::fs::read_to_string(&saved).unwrap().contains(&srv.token));
}

#[test]
fn enter_runs_a_terminal_and_returns_its_exit_code() {
    let srv = Server::start();
    ok(&srv.cli(&["up", "--name", "term"]));
    let o = srv.cli_stdin(&["enter", "term"], Some(b"echo in-$((20+3))\nexit 4\n"));
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-23"));
    let o = srv.cli_stdin(&["enter", "term", "--", "sh", "-c", "echo cmd-$((2*5)); exit 9"], Some(b""));
    assert_eq!(o.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cmd-10"));
    let list: Value = serde_json::from_str(&ok(&srv.cli(&["terminals", "term", "-o", "json"]))).unwrap();
    let codes: Vec<i64> = list.as_array().unwrap().iter().map(|t| t["exit_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![4, 9]);
    let table = ok(&srv.cli(&["terminals", "term"]));
    assert!(table.starts_with("ID") && table.contains("exited 9"), "{table}");
    let o = srv.cli(&["enter", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn exec_reattaches_after_the_server_restarts() {
    use std::io::{BufRead as _, BufReader, Read as _};
    let mut srv = Server::start();
    ok(&srv.cli(&["up", "--name", "keep"]));
    let script = "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; exit 4";
    let mut child = srv.cli_spawn(&["exec", "keep", "--", "sh", "-c", script], std::process::Stdio::piped());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "before");
    // The server goes away and comes back on the same address; the process lives in the agent,
    // and what it writes meanwhile is delivered after the CLI re-attaches, exactly once.
    let addr = srv.url.trim_start_matches("http://").to_string();
    srv.kill9();
    srv.spawn(common::Opts { listen: Some(addr), ..Default::default() });
    ok(&srv.cli(&["exec", "keep", "--", "touch", "/tmp/go"]));
    assert_eq!(lines.next().unwrap().unwrap(), "after");
    assert!(lines.next().is_none(), "nothing more, and nothing twice");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(4));
    assert!(stderr.contains("re-attaching"), "{stderr}");
}

#[test]
fn enter_reattaches_after_the_server_restarts() {
    use std::io::{Read as _, Write as _};
    let mut srv = Server::start();
    ok(&srv.cli(&["up", "--name", "keep"]));
    let mut child = srv
        .cli_command(&["enter", "keep"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !String::from_utf8_lossy(&seen).contains(needle) {
            assert!(std::time::Instant::now() < deadline, "no {needle:?} in {}", String::from_utf8_lossy(&seen));
            if let Ok(b) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                seen.extend(b);
            }
        }
    };
    stdin.write_all(b"echo before-$((1+1))\n").unwrap();
    wait_for("before-2");
    // The server goes away and comes back on the same address; the terminal lives in the agent.
    let addr = srv.url.trim_start_matches("http://").to_string();
    srv.kill9();
    srv.spawn(common::Opts { listen: Some(addr), ..Default::default() });
    stdin.write_all(b"echo after-$((2+2))\n").unwrap();
    wait_for("after-4");
    stdin.write_all(b"exit 6\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(6));
}

#[test]
fn exec_streams_live_and_forwards_ctrl_c() {
    use std::io::{BufRead as _, BufReader};
    let srv = Server::start();
    ok(&srv.cli(&["up", "--name", "box"]));

    // Output arrives while the command still runs; Ctrl-C reaches the remote command.
    let mut child = srv.cli_spawn(
        &[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "trap 'echo interrupted; exit 5' INT; echo ready; while :; do sleep 0.1; done",
        ],
        std::process::Stdio::piped(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready", "the first line arrives before the command ends");
    assert!(child.try_wait().unwrap().is_none());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "interrupted");
    assert_eq!(child.wait().unwrap().code(), Some(5));

    // A command ended by a signal gives 128+N; --shell and -u apply; -t gives a terminal.
    let o = srv.cli(&["exec", "box", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(143));
    let o = srv.cli(&["exec", "--shell", "-u", "podgate", "box", "--", "id -un && echo $HOME"]);
    assert_eq!(ok(&o), "podgate\n/home/podgate\n");
    let o = srv.cli(&["exec", "-u", "nobody", "box", "--", "id"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot run processes as \"nobody\""), "{o:?}");
    let o = srv.cli(&["exec", "-t", "box", "--", "sh", "-c", "test -t 0 && test -t 1 && echo on a tty"]);
    assert_eq!(ok(&o), "on a tty\r\n");
    let o = srv.cli(&["exec", "--timeout", "1", "box", "--", "sleep", "30"]);
    assert_eq!(o.status.code(), Some(137));
    assert!(String::from_utf8_lossy(&o.stderr).contains("timeout"));
    let o = srv.cli(&["exec", "box", "--", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/program"));
}
