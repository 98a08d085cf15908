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
