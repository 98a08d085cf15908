//! The E2B compatibility suite: the real `e2b` SDKs from PyPI and npm (the releases in
//! `tests/e2b/versions`, installed by `scripts/e2b-clients`), unmodified, configured only by the
//! environment that `podgate e2b env` prints, run every check of `tests/e2b/sdk.py` and
//! `tests/e2b/sdk.mjs` against a real server on the Docker driver. The results are the
//! compatibility matrix of docs/E2B.md, which must equal them (`PODGATE_BLESS=1` rewrites it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use podgate_client::Client;
use podgate_types::users::CreateUserRequest;

/// The SDK releases to run: (language, version).
fn versions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/versions")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (lang, version) = l.split_once(' ').expect("LANGUAGE VERSION");
            (lang.to_string(), version.trim().to_string())
        })
        .collect()
}

fn clients_dir() -> PathBuf {
    std::env::var_os("PODGATE_E2B_CLIENTS")
        .map_or_else(|| PathBuf::from("/var/cache/podgate/e2b-clients"), PathBuf::from)
}

/// The `export NAME='value'` lines of `podgate e2b env` as variables.
fn parse_exports(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// What one SDK release did: the version it reported and the checks it passed, or its output
/// when it failed.
struct Run {
    version: String,
    passed: Vec<String>,
}

fn run(lang: &str, version: &str, env: &BTreeMap<String, String>) -> Run {
    run_checks(lang, version, env, None, &[])
}

/// Runs the script of `lang` with `checks` only (all when empty); with `resolv`, in a mount
/// namespace whose /etc/resolv.conf is that file (the resolver override of the host-name test).
fn run_checks(
    lang: &str,
    version: &str,
    env: &BTreeMap<String, String>,
    resolv: Option<&Path>,
    checks: &[&str],
) -> Run {
    let dir = clients_dir().join(format!("{lang}-{version}"));
    assert!(
        dir.join(".installed").exists(),
        "the e2b {lang} SDK {version} is not installed in {}: run scripts/e2b-clients",
        dir.display()
    );
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2b");
    let mut cmd = match lang {
        "python" => {
            let mut c = Command::new(dir.join("bin/python"));
            c.arg(tests.join("sdk.py"));
            c
        }
        "langchain-e2b" => {
            let mut c = Command::new(dir.join("bin/python"));
            c.arg(tests.join("deep_agent.py"));
            c
        }
        "code-interpreter" => {
            let mut c = Command::new(dir.join("bin/python"));
            c.arg(tests.join("code_interpreter.py"));
            c
        }
        "js" | "code-interpreter-js" => {
            // Node resolves the SDK from the script's own folder.
            let script = if lang == "js" { "sdk.mjs" } else { "code_interpreter.mjs" };
            std::fs::copy(tests.join(script), dir.join(script)).unwrap();
            let mut c = Command::new("node");
            c.arg(script);
            c
        }
        other => panic!("unknown language {other}"),
    };
    cmd.args(checks);
    if let Some(resolv) = resolv {
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["--mount", "--", "sh", "-c", r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#])
            .arg(resolv)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        cmd = wrapped;
    }
    cmd.current_dir(&dir);
    for name in ["E2B_DOMAIN", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_DEBUG"] {
        cmd.env_remove(name);
    }
    let out = cmd.envs(env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "e2b {lang} {version} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reported = stdout.lines().find_map(|l| l.strip_prefix("version ")).unwrap_or_default().to_string();
    let passed = stdout.lines().filter_map(|l| l.strip_prefix("ok ")).map(str::to_string).collect();
    Run { version: reported, passed }
}

/// The matrix: one row per check, one column per SDK release.
fn matrix(runs: &[((String, String), Run)]) -> String {
    let mut checks: Vec<&String> = runs.iter().flat_map(|(_, r)| &r.passed).collect();
    checks.sort();
    checks.dedup();
    let mut out = String::from("| check |");
    for ((lang, version), _) in runs {
        out.push_str(&format!(" {lang} {version} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(runs.len()));
    out.push('\n');
    for check in checks {
        out.push_str(&format!("| {check} |"));
        for (_, r) in runs {
            out.push_str(if r.passed.contains(check) { " ✓ |" } else { " ✗ |" });
        }
        out.push('\n');
    }
    out
}

const BEGIN: &str = "<!-- matrix: generated by tests/e2b.rs -->\n";
const END: &str = "<!-- end of matrix -->";

#[tokio::test(flavor = "multi_thread")]
async fn the_e2b_sdks_work_unmodified() {
    let srv = Server::start();
    let keys = alice_and_bob(&srv).await;
    // The environment as `podgate e2b env` prints it for alice.
    let out = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(["e2b", "env", "--url", &srv.url, "--token", &keys[0]])
        .args(["--api-url", &format!("http://{}", srv.e2b_addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut env = parse_exports(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.get("E2B_API_KEY"), Some(&keys[0]));
    assert_eq!(env.get("E2B_SANDBOX_URL"), env.get("E2B_API_URL"));
    env.insert("E2B_OTHER_API_KEY".into(), keys[1].clone());

    // The database does not change the protocol: the PostgreSQL pass runs the newest releases only.
    let mut all: Vec<_> = versions().into_iter().filter(|(lang, _)| lang == "python" || lang == "js").collect();
    if common::postgres_by_default() {
        let newest: Vec<(String, String)> =
            ["python", "js"].iter().filter_map(|l| all.iter().find(|(lang, _)| lang == l).cloned()).collect();
        all = newest;
    }
    // Python and JavaScript releases run side by side.
    let (py, js): (Vec<_>, Vec<_>) = all.into_iter().partition(|(lang, _)| lang == "python");
    let runs: Vec<((String, String), Run)> = std::thread::scope(|s| {
        let lanes: Vec<_> = [py, js]
            .into_iter()
            .map(|lane| {
                let env = &env;
                s.spawn(move || {
                    lane.into_iter()
                        .map(|(l, v)| {
                            let r = run(&l, &v, env);
                            ((l, v), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        lanes.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for ((lang, version), r) in &runs {
        assert_eq!(&r.version, version, "the {lang} client installed is not the release named");
        let every = [
            "info",
            "commands.run",
            "commands.stream",
            "commands.background",
            "commands.stdin",
            "commands.connect",
            "pty",
            "files.text",
            "files.bytes",
            "files.dirs",
            "files.watch",
            "files.signed-url",
            "metrics",
            "list",
            "other-user",
            "timeout",
            "pause-resume",
            "kill",
        ];
        assert_eq!(r.passed, every, "e2b {lang} {version} did not run every check");
    }
    // Nothing of alice's is left: every script killed its sandbox.
    let alice = Client::new(&srv.url, &keys[0]).unwrap();
    assert_eq!(alice.list().await.unwrap().len(), 0);

    // The matrix is the SQLite pass's (it runs every release).
    if !common::postgres_by_default() {
        compare_with_the_docs(&matrix(&runs));
    }
}

/// The same SDK checks on the Kubernetes driver: the newest Python and JS releases, on the real
/// cluster of `PODGATE_TEST_KUBECONFIG` or else on the fake API server with Docker as kubelet.
/// Pause is the one difference: a pod cannot be frozen, and hibernating one keeps only a
/// persisted /workspace, so E2B's pause (which keeps every file and process) is refused at once
/// with the reason instead of losing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_e2b_sdks_work_on_kubernetes() {
    let mut cluster = common::kube::cluster("the_e2b_sdks_work_on_kubernetes").await;
    let image = common::kube::image();
    let srv = cluster.server(&["--default-image", &image]);
    let keys = alice_and_bob(&srv).await;
    let out = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(["e2b", "env", "--url", &srv.url, "--token", &keys[0]])
        .args(["--api-url", &format!("http://{}", srv.e2b_addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut env = parse_exports(&String::from_utf8_lossy(&out.stdout));
    env.insert("E2B_OTHER_API_KEY".into(), keys[1].clone());
    let every = [
        "info",
        "commands.run",
        "commands.stream",
        "commands.background",
        "commands.stdin",
        "commands.connect",
        "pty",
        "files.text",
        "files.bytes",
        "files.dirs",
        "files.watch",
        "files.signed-url",
        "metrics",
        "list",
        "other-user",
        "timeout",
        "kill",
    ];
    let newest: Vec<(String, String)> =
        ["python", "js"].iter().filter_map(|l| versions().into_iter().find(|(lang, _)| lang == l)).collect();
    assert_eq!(newest.len(), 2);
    let runs: Vec<(String, Run)> = std::thread::scope(|s| {
        let lanes: Vec<_> = newest
            .iter()
            .map(|(lang, version)| {
                let env = &env;
                s.spawn(move || (lang.clone(), run_checks(lang, version, env, None, &every)))
            })
            .collect();
        lanes.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (lang, r) in &runs {
        assert_eq!(r.passed, every, "e2b {lang} on Kubernetes did not pass every check");
    }

    // Pause: refused at once with the reason, and the sandbox keeps running.
    let base = format!("http://{}", srv.e2b_addr);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v2/sandboxes"))
        .header("x-api-key", &keys[0])
        .json(&serde_json::json!({"templateID": "base"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sb: serde_json::Value = r.json().await.unwrap();
    let id = sb["sandboxID"].as_str().unwrap();
    if let Some(fake) = &cluster.fake {
        assert!(fake.names("pods").iter().any(|p| p.contains(id)), "the sandbox is a pod: {:?}", fake.names("pods"));
    }
    let r = http.post(format!("{base}/sandboxes/{id}/pause")).header("x-api-key", &keys[0]).send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!((status, body["code"].as_u64()), (409, Some(409)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("persistent /workspace"), "{body}");
    let r = http.get(format!("{base}/sandboxes/{id}")).header("x-api-key", &keys[0]).send().await.unwrap();
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["state"], "running", "{info}");
    let r = http.delete(format!("{base}/sandboxes/{id}")).header("x-api-key", &keys[0]).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let alice = Client::new(&srv.url, &keys[0]).unwrap();
    assert_eq!(alice.list().await.unwrap().len(), 0, "every sandbox of alice's is gone");
}

fn compare_with_the_docs(table: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/E2B.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) =
        (doc.find(BEGIN).expect("docs/E2B.md has the matrix marker") + BEGIN.len(), doc.find(END).unwrap());
    if &doc[start..end] != table {
        if std::env::var_os("PODGATE_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[end..])).unwrap();
        } else {
            panic!(
                "docs/E2B.md's matrix is not what the SDKs did: run `PODGATE_BLESS=1 cargo test -p podgate --test e2b`\n{table}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_interpreter_sdk_runs_code_in_the_template() {
    let srv = Server::start();
    // The template the SDK asks for, as an admin defines it (docs/E2B.md).
    let image = "podgate/code-interpreter:latest";
    let r = srv
        .req(reqwest::Method::PUT, "/v1/templates/code-interpreter-v1")
        .json(&serde_json::json!({"request": {"image": image, "cmd": ["/opt/code-interpreter/bin/python", "/opt/podgate/code-interpreter.py"]}, "pool_size": 0}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{} (build the image with scripts/build-code-interpreter-image)",
        r.text().await.unwrap()
    );
    let env: BTreeMap<String, String> = [
        ("E2B_API_KEY".to_string(), srv.token.clone()),
        ("E2B_API_URL".to_string(), format!("http://{}", srv.e2b_addr)),
        ("E2B_SANDBOX_URL".to_string(), format!("http://{}", srv.e2b_addr)),
    ]
    .into();
    let mut ran = Vec::new();
    for (lang, version) in versions().into_iter().filter(|(lang, _)| lang.starts_with("code-interpreter")) {
        let r = run(&lang, &version, &env);
        assert_eq!(r.version, version);
        let want = [
            "run_code",
            "state",
            "callbacks",
            "errors",
            "rich results",
            "env_vars",
            "contexts",
            "files and commands",
            "other languages",
        ];
        assert_eq!(r.passed, want, "{lang} {version}");
        ran.push(lang);
    }
    assert_eq!(ran, ["code-interpreter", "code-interpreter-js"], "both SDKs are in tests/e2b/versions");
    assert_eq!(srv.client().list().await.unwrap().len(), 0, "the script killed its sandbox");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_framework_runs_its_tools_in_a_sandbox() {
    // LangChain's Deep Agents with E2B's own backend for it, as its README shows, on podgate.
    let srv = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(["e2b", "env", "--url", &srv.url, "--token", &srv.token])
        .args(["--api-url", &format!("http://{}", srv.e2b_addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env = parse_exports(&String::from_utf8_lossy(&out.stdout));
    let (lang, version) =
        versions().into_iter().find(|(lang, _)| lang == "langchain-e2b").expect("langchain-e2b in tests/e2b/versions");
    let r = tokio::task::block_in_place(|| run(&lang, &version, &env));
    assert_eq!(r.version, version);
    assert_eq!(r.passed, ["agent runs tools in the sandbox", "backend file operations"]);
    assert_eq!(srv.client().list().await.unwrap().len(), 0, "the script killed its sandbox");
}

/// API keys of two new users, alice's then bob's.
async fn alice_and_bob(srv: &Server) -> Vec<String> {
    let mut keys = Vec::new();
    for name in ["alice", "bob"] {
        let user = srv.client().create_user(&CreateUserRequest { name: name.into(), role: None }).await.unwrap();
        keys.push(user.token.secret);
    }
    keys
}

/// One Connect envelope.
fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![flags];
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The end message of a Connect stream's body.
fn end_message(body: &[u8]) -> serde_json::Value {
    let mut rest = body;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest[0] & 2 != 0 {
            return serde_json::from_slice(&rest[5..5 + len]).unwrap();
        }
        rest = &rest[5 + len..];
    }
    panic!("no end message in {body:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_and_other_tenants_get_clear_errors() {
    // A wildcard domain, so that host names route too (TLS in front is the proxy's: docs/E2B.md).
    let extra = vec!["--e2b-domain".to_string(), "sandboxes.test".to_string()];
    let srv = Server::start_with(common::Opts { extra, ..Default::default() });
    let keys = alice_and_bob(&srv).await;
    let (alice, bob) = (&keys[0], &keys[1]);
    let base = format!("http://{}", srv.e2b_addr);
    let http = reqwest::Client::new();
    let create = |key: &str| {
        http.post(format!("{base}/v2/sandboxes"))
            .header("x-api-key", key)
            .json(&serde_json::json!({"templateID": "base"}))
    };

    // The control plane: no key, a wrong key, another user's sandbox, unsupported options.
    let r = http.get(format!("{base}/v2/sandboxes")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("X-API-Key"), "{body}");
    let r = http.get(format!("{base}/v2/sandboxes")).header("x-api-key", "pgt_wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = create(alice).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sb: serde_json::Value = r.json().await.unwrap();
    let (id, token) =
        (sb["sandboxID"].as_str().unwrap().to_string(), sb["envdAccessToken"].as_str().unwrap().to_string());
    assert_eq!(sb["envdVersion"], "0.5.7");
    assert_eq!(sb["domain"], "sandboxes.test");
    for (method, path) in [
        ("GET", format!("/sandboxes/{id}")),
        ("DELETE", format!("/sandboxes/{id}")),
        ("POST", format!("/sandboxes/{id}/pause")),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("x-api-key", bob)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "bob {method} {path}");
    }
    let r = http
        .post(format!("{base}/v2/sandboxes"))
        .header("x-api-key", alice)
        .json(&serde_json::json!({"templateID": "base", "autoPause": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    assert!(r.text().await.unwrap().contains("autoPause"));
    let r =
        http.post(format!("{base}/v2/sandboxes")).header("x-api-key", alice).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.post(format!("{base}/sandboxes/{id}/snapshots")).header("x-api-key", alice).send().await.unwrap();
    assert_eq!(r.status(), 501, "routes podgate lacks say so");

    // The daemon: the token is the sandbox's own; bob's sandbox token does not open alice's.
    let rpc = |path: &str, token: &str| {
        http.post(format!("{base}{path}"))
            .header("e2b-sandbox-id", &id)
            .header("e2b-sandbox-port", "49983")
            .header("x-access-token", token)
    };
    let list = "/process.Process/List";
    let r = http
        .post(format!("{base}{list}"))
        .header("e2b-sandbox-id", &id)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let bobs: serde_json::Value = create(bob).send().await.unwrap().json().await.unwrap();
    let r = rpc(list, bobs["envdAccessToken"].as_str().unwrap()).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401, "bob's sandbox token opened alice's sandbox");
    let r = rpc(list, &token).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Malformed messages, unknown methods, other codecs, oversized messages, bad paths.
    let code = |v: serde_json::Value| v["code"].as_str().unwrap_or_default().to_string();
    let r = rpc(list, &token).header("content-type", "application/json").body("{oops").send().await.unwrap();
    assert_eq!((r.status().as_u16(), code(r.json().await.unwrap())), (400, "invalid_argument".into()));
    let r = rpc("/process.Process/Nope", &token).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!((r.status().as_u16(), code(r.json().await.unwrap())), (501, "unimplemented".into()));
    let r = rpc(list, &token).header("content-type", "application/proto").body(vec![0u8; 3]).send().await.unwrap();
    assert_eq!((r.status().as_u16(), code(r.json().await.unwrap())), (501, "unimplemented".into()));
    let huge = format!("{{\"path\":\"{}\"}}", "a".repeat(5 << 20));
    let r = rpc("/filesystem.Filesystem/Stat", &token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r.json().await.unwrap()), "resource_exhausted");
    let r = rpc("/filesystem.Filesystem/Stat", &token)
        .json(&serde_json::json!({"path": "/tmp/\u{0}x"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = rpc("/filesystem.Filesystem/Stat", &token).json(&serde_json::json!({"path": ""})).send().await.unwrap();
    assert_eq!(code(r.json().await.unwrap()), "invalid_argument");
    let start = "/process.Process/Start";
    let stream = |body: Vec<u8>| rpc(start, &token).header("content-type", "application/connect+json").body(body);
    for (body, want) in [
        (vec![0u8, 0], "invalid_argument"),
        (envelope(0, b"{oops"), "invalid_argument"),
        (envelope(1, b"{}"), "unimplemented"),
        ([&envelope(0, b"{}")[..], b"trailing"].concat(), "invalid_argument"),
        (envelope(0, br#"{"process":{"cmd":""}}"#), "invalid_argument"),
        (envelope(0, br#"{"process":{"cmd":"/nonexistent/binary"}}"#), "invalid_argument"),
    ] {
        let r = stream(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "a stream's errors are its end message");
        let end = end_message(&r.bytes().await.unwrap());
        assert_eq!(end["error"]["code"], want, "{body:?}: {end}");
    }
    let r = http
        .get(format!("{base}/files?path="))
        .header("e2b-sandbox-id", &id)
        .header("x-access-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{base}/files?path=/nope"))
        .header("e2b-sandbox-id", &id)
        .header("x-access-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{base}/health")).header("e2b-sandbox-id", "../../x").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Other ports reach the sandbox's own server, with the traffic token (or the daemon's).
    let perl = r#"$s=IO::Socket::INET->new(LocalAddr=>'127.0.0.1',LocalPort=>8000,Listen=>5,ReuseAddr=>1) or die;
while($c=$s->accept){$r='';while(<$c>){$r.=$_;last if /^\r?$/} ($p)=$r=~/^GET (\S+)/; $b="path=$p";
print $c "HTTP/1.1 200 OK\r\nContent-Length: ".length($b)."\r\nConnection: close\r\n\r\n$b"; close $c}"#;
    let server = serde_json::json!({"process": {"cmd": "perl", "args": ["-MIO::Socket::INET", "-e", perl]}});
    drop(stream(envelope(0, server.to_string().as_bytes())).send().await.unwrap());
    let traffic = sb["trafficAccessToken"].as_str().unwrap().to_string();
    let port = |port: &str| {
        http.get(format!("{base}/hello?x=1")).header("e2b-sandbox-id", &id).header("e2b-sandbox-port", port)
    };
    let mut answer = String::new();
    for _ in 0..50 {
        let r = port("8000").header("e2b-traffic-access-token", &traffic).send().await.unwrap();
        if r.status() == 200 {
            answer = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(answer, "path=/hello?x=1");
    assert_eq!(port("8000").header("x-access-token", &token).send().await.unwrap().status(), 200);
    assert_eq!(port("8000").send().await.unwrap().status(), 401);
    let bobs_traffic = bobs["trafficAccessToken"].as_str().unwrap();
    assert_eq!(port("8000").header("e2b-traffic-access-token", bobs_traffic).send().await.unwrap().status(), 401);
    let daemon_as_traffic = port("8000").header("e2b-traffic-access-token", &token).send().await.unwrap();
    assert_eq!(daemon_as_traffic.status(), 401, "the daemon token is not a traffic token");
    assert_eq!(port("8001").header("e2b-traffic-access-token", &traffic).send().await.unwrap().status(), 502);
    // An upgrade (what a WebSocket does) that the sandbox's server accepts joins the connections.
    let echo = r#"$s=IO::Socket::INET->new(LocalAddr=>'127.0.0.1',LocalPort=>8002,Listen=>5,ReuseAddr=>1) or die;
while($c=$s->accept){while(<$c>){last if /^\r?$/} $c->autoflush(1);
print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n";
while(<$c>){print $c "echo:$_"} close $c}"#;
    let server = serde_json::json!({"process": {"cmd": "perl", "args": ["-MIO::Socket::INET", "-e", echo]}});
    drop(stream(envelope(0, server.to_string().as_bytes())).send().await.unwrap());
    let upgrade = |token: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: {id}\r\nE2b-Sandbox-Port: 8002\r\n\
             E2B-Traffic-Access-Token: {token}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
    };
    let (head, mut conn) = raw_exchange(&srv.e2b_addr, &upgrade(&traffic)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for word in ["ping", "pong"] {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        conn.get_mut().write_all(format!("{word}\n").as_bytes()).await.unwrap();
        let mut line = String::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_line(&mut line)).await.unwrap().unwrap();
        assert_eq!(line, format!("echo:{word}\n"));
    }
    drop(conn);
    let (head, _) = raw_exchange(&srv.e2b_addr, &upgrade(bobs["trafficAccessToken"].as_str().unwrap())).await;
    assert!(head.starts_with("HTTP/1.1 401"), "another tenant's token upgrades nothing: {head}");

    // After all that the daemon still runs commands.
    let ok = stream(envelope(0, br#"{"process":{"cmd":"/bin/echo","args":["still","here"]}}"#)).send().await.unwrap();
    let body = ok.bytes().await.unwrap();
    assert_eq!(end_message(&body), serde_json::json!({}));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("\"stdout\":\"c3RpbGwgaGVyZQo=\""), "{text}");

    // The host name PORT-ID.DOMAIN addresses the same sandbox and port as the headers do; a host
    // that only ends like the domain is the control plane's.
    let by_host = |host: String| http.get(format!("{base}/health")).header("host", host);
    let r = by_host(format!("49983-{id}.sandboxes.test")).header("x-access-token", &token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = by_host(format!("8000-{id}.sandboxes.test:443"))
        .header("e2b-traffic-access-token", &traffic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "path=/health");
    let r = by_host(format!("49983-{id}.sandboxes.test")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = by_host(format!("49983-{id}.evilsandboxes.test")).header("x-access-token", &token).send().await.unwrap();
    assert_eq!(r.status(), 200, "not a sandbox host: the control plane's /health");
    let r = by_host("nonsense.sandboxes.test".into()).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // A deleted sandbox's token is told the sandbox is gone (the SDKs' "not running").
    let r = http.delete(format!("{base}/sandboxes/{id}")).header("x-api-key", alice).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{base}/health"))
        .header("e2b-sandbox-id", &id)
        .header("x-access-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("was not found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_logs_come_from_the_sandbox_without_waking_it() {
    let srv = Server::start();
    let keys = alice_and_bob(&srv).await;
    let (alice, bob) = (&keys[0], &keys[1]);
    let base = format!("http://{}", srv.e2b_addr);
    let http = reqwest::Client::new();
    let get = |path: String, key: &str| http.get(format!("{base}{path}")).header("x-api-key", key).send();
    let r = http
        .post(format!("{base}/v2/sandboxes"))
        .header("x-api-key", alice)
        .json(&serde_json::json!({"templateID": "base"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["sandboxID"].as_str().unwrap().to_string();
    let before = time::OffsetDateTime::now_utc().unix_timestamp() - 60;

    // Metrics: the agent samples a second after it starts, then every 5 seconds.
    let mut samples = Vec::new();
    for _ in 0..60 {
        samples = get(format!("/sandboxes/{id}/metrics"), alice)
            .await
            .unwrap()
            .json::<Vec<serde_json::Value>>()
            .await
            .unwrap();
        if !samples.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let m = samples.last().expect("no sample within 30 s");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let at = m["timestampUnix"].as_i64().unwrap();
    assert!((before..=now).contains(&at), "{m}");
    assert!(
        m["timestamp"]
            .as_str()
            .unwrap()
            .starts_with(&time::OffsetDateTime::from_unix_timestamp(at).unwrap().year().to_string())
    );
    assert!(m["cpuCount"].as_u64().unwrap() >= 1, "{m}");
    assert!((0.0..=100.0).contains(&m["cpuUsedPct"].as_f64().unwrap()), "{m}");
    let (used, total) = (m["memUsed"].as_u64().unwrap(), m["memTotal"].as_u64().unwrap());
    assert!(used > 0 && used <= total && total <= 1 << 40, "{m}");
    assert!(m["diskUsed"].as_u64().unwrap() <= m["diskTotal"].as_u64().unwrap() && m["memCache"].is_u64(), "{m}");
    let r = get(format!("/sandboxes/{id}/metrics?start={}&end={}", before - 7200, before - 3600), alice).await.unwrap();
    assert_eq!(r.json::<Vec<serde_json::Value>>().await.unwrap().len(), 0, "a range before the sandbox has nothing");
    let r = get(format!("/sandboxes/{id}/metrics?start=10&end=5"), alice).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get(format!("/sandboxes/metrics?sandbox_ids={id},sb-nope"), alice).await.unwrap();
    assert_eq!(r.status(), 404, "an unknown id in the list is an error, as for one sandbox");
    let latest: serde_json::Value =
        get(format!("/sandboxes/metrics?sandbox_ids={id}"), alice).await.unwrap().json().await.unwrap();
    assert!(latest["sandboxes"][&id]["timestampUnix"].as_i64().unwrap() >= at, "{latest}");
    // podgate's own API serves the same samples.
    let native: Vec<serde_json::Value> = http
        .get(format!("{}/v1/sandboxes/{id}/metrics", srv.url))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        native.iter().any(|s| s["timestamp"].as_i64() == Some(at) && s["cpu_count"] == m["cpuCount"]),
        "{native:?}"
    );

    // Logs: the sandbox's output, here the agent's own start-up line, timestamped.
    let v1: serde_json::Value = get(format!("/sandboxes/{id}/logs"), alice).await.unwrap().json().await.unwrap();
    let line =
        v1["logs"].as_array().unwrap().iter().find(|l| l["line"].as_str().unwrap().contains("podgate-agent: serving"));
    let stamp = time::OffsetDateTime::parse(
        line.expect("the agent's line").get("timestamp").unwrap().as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((before..=now).contains(&stamp.unix_timestamp()), "{v1}");
    assert_eq!(v1["logs"].as_array().unwrap().len(), v1["logEntries"].as_array().unwrap().len());
    let v2 = |q: &str| get(format!("/v2/sandboxes/{id}/logs?{q}"), alice);
    let found: serde_json::Value = v2("search=serving").await.unwrap().json().await.unwrap();
    let entries = found["logs"].as_array().unwrap();
    assert!(
        !entries.is_empty()
            && entries.iter().all(|e| e["message"].as_str().unwrap().contains("serving") && e["level"] == "info"),
        "{found}"
    );
    let none: serde_json::Value = v2("level=error").await.unwrap().json().await.unwrap();
    assert_eq!(none["logs"].as_array().unwrap().len(), 0, "nothing is above info");
    let later = (stamp.unix_timestamp() + 3600) * 1000;
    let none: serde_json::Value = v2(&format!("cursor={later}")).await.unwrap().json().await.unwrap();
    assert_eq!(none["logs"].as_array().unwrap().len(), 0, "nothing after the cursor");
    let back: serde_json::Value =
        v2(&format!("cursor={later}&direction=backward&limit=1")).await.unwrap().json().await.unwrap();
    assert_eq!(back["logs"].as_array().unwrap().len(), 1, "{back}");
    for bad in ["direction=sideways", "level=loud", "limit=5000"] {
        assert_eq!(v2(bad).await.unwrap().status(), 400, "{bad}");
    }

    // Another tenant sees neither.
    for path in
        [format!("/sandboxes/{id}/metrics"), format!("/sandboxes/{id}/logs"), format!("/v2/sandboxes/{id}/logs")]
    {
        assert_eq!(get(path.clone(), bob).await.unwrap().status(), 404, "bob {path}");
    }

    // A paused sandbox has no samples to give, and asking does not resume it.
    let r = http.post(format!("{base}/sandboxes/{id}/pause")).header("x-api-key", alice).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = get(format!("/sandboxes/{id}/metrics"), alice).await.unwrap();
    assert_eq!(r.json::<Vec<serde_json::Value>>().await.unwrap().len(), 0);
    let logs: serde_json::Value = get(format!("/v2/sandboxes/{id}/logs"), alice).await.unwrap().json().await.unwrap();
    assert!(!logs["logs"].as_array().unwrap().is_empty(), "a paused sandbox's output is still there");
    let state: serde_json::Value = get(format!("/sandboxes/{id}"), alice).await.unwrap().json().await.unwrap();
    assert_eq!(state["state"], "paused");
    assert_eq!(
        http.delete(format!("{base}/sandboxes/{id}")).header("x-api-key", alice).send().await.unwrap().status(),
        204
    );
}

/// Sends `request` on a new connection to `addr` and reads the answer's head; the connection
/// stays open for what follows an upgrade.
async fn raw_exchange(addr: &str, request: &str) -> (String, tokio::io::BufReader<tokio::net::TcpStream>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut conn = tokio::io::BufReader::new(tcp);
    let mut head = String::new();
    let read_head = async {
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
    };
    // A young sandbox's port is retried while its server starts (up to 10 s).
    tokio::time::timeout(std::time::Duration::from_secs(20), read_head).await.expect("no answer");
    (head, conn)
}

/// A resolver for the test: dnsmasq on 127.0.0.77:53 answering 127.0.0.1 for every name under
/// `domain` and nothing else, and a resolv.conf naming it. Stopped when dropped.
struct Resolver {
    child: std::process::Child,
    conf: PathBuf,
}

impl Resolver {
    fn start(dir: &Path, domain: &str) -> Resolver {
        let mut child = Command::new("/usr/sbin/dnsmasq")
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--port=53"])
            .args(["--listen-address=127.0.0.77", "--interface=lo", "--user=root", "--pid-file="])
            .arg(format!("--address=/{domain}/127.0.0.1"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base, installed by scripts/e2b-clients)");
        let conf = dir.join("resolv.conf");
        std::fs::write(&conf, "nameserver 127.0.0.77\n").unwrap();
        // dnsmasq answers once it listens.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let query = [
            &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
            &[3],
            b"api",
            &[domain.split('.').next().unwrap().len() as u8],
            domain.split('.').next().unwrap().as_bytes(),
            &[domain.split('.').nth(1).unwrap().len() as u8],
            domain.split('.').nth(1).unwrap().as_bytes(),
            &[0, 0, 1, 0, 1],
        ]
        .concat();
        for _ in 0..50 {
            let _ = probe.send_to(&query, "127.0.0.77:53");
            if probe.recv(&mut [0u8; 512]).is_ok() {
                return Resolver { child, conf };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("dnsmasq did not answer on 127.0.0.77:53");
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_reach_sandboxes_by_host_name_over_tls() {
    // As deployed with a wildcard domain: a reverse proxy terminates TLS for *.DOMAIN (the API at
    // api.DOMAIN, sandboxes at PORT-ID.DOMAIN) in front of --e2b-listen, wildcard DNS points the
    // names at it, and clients get E2B_API_KEY and E2B_DOMAIN only.
    let domain = "sandboxes.test";
    let extra = vec!["--e2b-domain".to_string(), domain.to_string()];
    let srv = Server::start_with(common::Opts { extra, ..Default::default() });
    let (ca, cert, key) = common::tls::certificates(&[&format!("*.{domain}")]);
    let _proxy = common::tls::tls_proxy(cert, key, srv.e2b_addr.clone()).await;
    let ca_file = srv.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let resolver = Resolver::start(srv.dir.path(), domain);
    let out = Command::new(env!("CARGO_BIN_EXE_podgate"))
        .args(["e2b", "env", "--url", &srv.url, "--token", &srv.token, "--domain", domain])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut env = parse_exports(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.get("E2B_DOMAIN").map(String::as_str), Some(domain));
    assert!(!env.contains_key("E2B_SANDBOX_URL") && !env.contains_key("E2B_API_URL"), "{env:?}");
    // The proxy's certificate is the test CA's: Python's httpx and Node trust it through these.
    env.insert("SSL_CERT_FILE".into(), ca_file.display().to_string());
    env.insert("NODE_EXTRA_CA_CERTS".into(), ca_file.display().to_string());
    let checks = ["info", "commands.run", "commands.stream", "pty", "files.bytes", "files.signed-url", "kill"];
    let newest: Vec<(String, String)> =
        ["python", "js"].iter().filter_map(|l| versions().into_iter().find(|(lang, _)| lang == l)).collect();
    for (lang, version) in newest {
        let r = tokio::task::block_in_place(|| run_checks(&lang, &version, &env, Some(&resolver.conf), &checks));
        assert_eq!(r.passed, checks, "e2b {lang} {version} by host name over TLS");
    }
    assert_eq!(srv.client().list().await.unwrap().len(), 0, "the scripts killed their sandboxes");
}
