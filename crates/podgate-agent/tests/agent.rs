//! The agent binary on its own: secret handling, authentication, exec, and adopting orphans.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(secret: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let socket = dir.path().join("agent.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_podgate-agent"))
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .arg("--secret-file")
        .arg(&secret_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!secret_file.exists(), "the secret file is removed once read");
    Agent { child, socket, _dir: dir }
}

async fn call(socket: &Path, secret: Option<&str>, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let io = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    let mut req =
        Request::builder().method(method).uri(path).header("host", "agent").header("content-type", "application/json");
    if let Some(s) = secret {
        req = req.header(podgate_types::agent::SECRET_HEADER, s);
    }
    let resp = tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn wrong_or_missing_secret_is_refused() {
    let a = start("right-secret");
    for secret in [None, Some("wrong-secret"), Some("right-secreT"), Some("right-secret-and-more"), Some("")] {
        let (status, body) = call(&a.socket, secret, "GET", "/v1/health", "").await;
        assert_eq!(status, 401, "secret {secret:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = call(&a.socket, secret, "POST", "/v1/exec", r#"{"argv":["true"]}"#).await;
        assert_eq!(status, 401, "exec with secret {secret:?}");
    }
    let (status, body) = call(&a.socket, Some("right-secret"), "GET", "/v1/health", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["protocol_version"], podgate_types::AGENT_PROTOCOL_VERSION);
}

#[tokio::test]
async fn exec_and_malformed_requests() {
    let a = start("s");
    let (status, body) =
        call(&a.socket, Some("s"), "POST", "/v1/exec", r#"{"argv":["sh","-c","echo -n hi; exit 5"]}"#).await;
    assert_eq!(status, 200);
    assert_eq!((body["exit_code"].as_i64(), body["stdout"].as_str()), (Some(5), Some("aGk=")));
    for bad in ["{", r#"{"argv":"sh"}"#, r#"{"argv":["x"],"bogus":1}"#, r#"{"argv":["x"],"stdin":"@@"}"#] {
        let (status, body) = call(&a.socket, Some("s"), "POST", "/v1/exec", bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"]["message"].is_string());
    }
    let (status, _) = call(&a.socket, Some("s"), "POST", "/v1/exec", r#"{"argv":[]}"#).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn orphans_are_adopted_and_reaped() {
    let a = start("s");
    // The shell exits at once; its background child is re-parented to the agent (a subreaper here,
    // PID 1 in a sandbox) and must be reaped when it exits.
    let (_, body) =
        call(&a.socket, Some("s"), "POST", "/v1/exec", r#"{"argv":["sh","-c","sleep 0.3 >/dev/null 2>&1 & echo $!"]}"#)
            .await;
    let out = body["stdout"].as_str().unwrap();
    use base64::Engine as _;
    let pid: u32 = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(out).unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = format!("/proc/{pid}/stat");
    let parent = std::fs::read_to_string(&stat).unwrap();
    let ppid: u32 = parent.rsplit(") ").next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(ppid, a.child.id(), "orphan adopted by the agent");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!Path::new(&stat).exists(), "the orphan was reaped, not left a zombie");
}
