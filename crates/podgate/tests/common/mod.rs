//! Test harness: runs the real `podgate server` binary against the real Docker engine, with its
//! own data dir, and cleans up every container it placed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use podgate_client::Client;

pub mod kube;
pub mod term;
pub mod tls;

/// The static agent: `PODGATE_AGENT_BIN`, else built once with scripts/build-agent.
pub fn agent_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(podgate_runtime::conformance::agent_bin).clone()
}

/// A running `podgate server`.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    pub instance: String,
    /// `--database-url` when the server uses PostgreSQL (then `pg` is its private cluster).
    pub database_url: Option<String>,
    pub pg: Option<podgate_testpg::TestPg>,
    /// Where the SSH server listens (a free loopback port).
    pub ssh_addr: String,
    /// Where the E2B-compatible API listens (a free loopback port).
    pub e2b_addr: String,
    child: Option<Child>,
}

/// Whether servers use PostgreSQL (`PODGATE_TEST_DATABASE=postgres`) rather than SQLite, so that
/// the same end-to-end tests run on both.
pub fn postgres_by_default() -> bool {
    match std::env::var("PODGATE_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("PODGATE_TEST_DATABASE={other}: use postgres or sqlite"),
    }
}

/// Extra server flags.
#[derive(Default, Clone)]
pub struct Opts {
    pub agent_bin: Option<PathBuf>,
    /// Reconciler period [default: 300 ms].
    pub reconcile_ms: Option<u64>,
    /// Listen address [default: 127.0.0.1:0].
    pub listen: Option<String>,
    /// Use a private PostgreSQL [default: `postgres_by_default()`].
    pub postgres: Option<bool>,
    pub extra: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Server {
        // Short path: agent sockets live below it and unix socket paths are limited.
        let dir = tempfile::Builder::new().prefix("pg").tempdir_in("/tmp").unwrap();
        let pg = opts.postgres.unwrap_or_else(postgres_by_default).then(podgate_testpg::TestPg::start);
        let mut s = Server {
            dir,
            url: String::new(),
            token: String::new(),
            instance: String::new(),
            database_url: pg.as_ref().map(|p| p.url()),
            pg,
            ssh_addr: String::new(),
            e2b_addr: String::new(),
            child: None,
        };
        s.spawn(opts);
        s
    }

    /// Starts (or restarts) the server process on this data dir and waits until it serves.
    pub fn spawn(&mut self, opts: Opts) {
        self.spawn_process(opts);
        self.wait_serving(Duration::from_secs(30));
    }

    /// Starts the server process without waiting for it.
    pub fn spawn_process(&mut self, opts: Opts) {
        let _ = std::fs::remove_file(self.dir.path().join("http.addr"));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_podgate"))
            .arg("server")
            .arg("--listen")
            .arg(opts.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .arg("--reconcile-interval-ms")
            .arg(opts.reconcile_ms.unwrap_or(300).to_string())
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--agent-bin")
            .arg(opts.agent_bin.unwrap_or_else(agent_bin))
            .args(self.database_url.iter().flat_map(|u| ["--database-url", u]))
            .args(&opts.extra)
            // Several servers run at once: each takes a free SSH port unless a test names one.
            .args(if opts.extra.iter().any(|a| a == "--ssh-listen") {
                &[][..]
            } else {
                &["--ssh-listen", "127.0.0.1:0"][..]
            })
            .args(if opts.extra.iter().any(|a| a == "--e2b-listen") {
                &[][..]
            } else {
                &["--e2b-listen", "127.0.0.1:0"][..]
            })
            // Tests create sandboxes faster than the default 10 a minute; tests of that limit set it.
            .args(if opts.extra.iter().any(|a| a == "--create-rate-limit") {
                &[][..]
            } else {
                &["--create-rate-limit", "1000"][..]
            })
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning podgate server");
        self.child = Some(child);
    }

    /// Waits up to `limit` for the server process to serve, and reads its address, token and instance.
    pub fn wait_serving(&mut self, limit: Duration) {
        let addr_file = self.dir.path().join("http.addr");
        let deadline = Instant::now() + limit;
        while !addr_file.exists() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "server did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let addr = std::fs::read_to_string(&addr_file).unwrap();
        self.url = format!("http://{}", addr.trim());
        self.token = std::fs::read_to_string(self.dir.path().join("admin.token")).unwrap().trim().to_string();
        self.ssh_addr =
            std::fs::read_to_string(self.dir.path().join("ssh.addr")).map(|a| a.trim().to_string()).unwrap_or_default();
        self.e2b_addr =
            std::fs::read_to_string(self.dir.path().join("e2b.addr")).map(|a| a.trim().to_string()).unwrap_or_default();
        let log = self.log();
        self.instance = log
            .split("instance=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("instance id in the log")
            .to_string();
    }

    /// The server's database, opened as another process would.
    pub async fn store(&self) -> podgate_store::Store {
        let sqlite = || format!("sqlite://{}", self.dir.path().join("podgate.db").display());
        podgate_store::Store::open(&self.database_url.clone().unwrap_or_else(sqlite)).await.unwrap()
    }

    /// Pid of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, &self.token).unwrap()
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// A request to `path` (e.g. `/v1/sandboxes`) with the admin token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http().request(method, format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// `GET path` with the admin token, asserting success, as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Stops the server with SIGTERM and waits (at most `secs`) for it to exit; its status.
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("a running server");
        let term = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        assert!(term.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                c.kill().unwrap();
                panic!("the server did not stop within {secs} s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL (no cleanup of any kind).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Runs the CLI against this server, with an empty HOME so no saved login interferes.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    /// The CLI with `args` against this server (admin token, an empty HOME), not yet started.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podgate"));
        cmd.args(args)
            .env("PODGATE_URL", &self.url)
            .env("PODGATE_TOKEN", &self.token)
            .env("HOME", self.dir.path())
            .env_remove("XDG_CONFIG_HOME");
        cmd
    }

    /// The CLI started in the background: no stdin, stdout piped, stderr as given.
    pub fn cli_spawn(&self, args: &[&str], stderr: Stdio) -> Child {
        self.cli_command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn().unwrap()
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write as _;
        let mut child = self
            .cli_command(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Names of this server's containers, as the engine lists them.
    pub fn containers(&self) -> Vec<String> {
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=io.podgate.instance={}", self.instance),
            "--format",
            "{{.Names}}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.instance.is_empty() {
            for name in self.containers() {
                docker(&["rm", "-f", &name]);
            }
            // Volumes and snapshot images carry the instance label too.
            let label = format!("label=io.podgate.instance={}", self.instance);
            for v in docker(&["volume", "ls", "-q", "--filter", &label]).lines() {
                docker(&["volume", "rm", "-f", v]);
            }
            // Sized volumes are loop-mounted under the data directory, which goes next.
            let volumes = self.dir.path().join("volumes");
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                if Path::new(point).starts_with(&volumes) {
                    let _ = Command::new("umount").arg("-l").arg(point).status();
                }
            }
            for i in docker(&["images", "-q", "--filter", &label]).lines() {
                docker(&["rmi", "-f", i]);
            }
        }
    }
}

/// Kills a child process when dropped, however the test ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VmRSS of a process, in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The engine's name of a sandbox's container, found by its label (its name does not show the
/// sandbox id); empty when there is none.
pub fn container(sandbox_id: &str) -> String {
    let label = format!("label=io.podgate.sandbox={sandbox_id}");
    let out = docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}} {{.Label \"io.podgate.sidecar\"}}"]);
    out.lines().find_map(|l| l.trim().split_once(' ').is_none().then(|| l.trim().to_string())).unwrap_or_default()
}

/// Host pid of a sandbox's PID 1 (its agent).
pub fn agent_pid(sandbox_id: &str) -> u32 {
    docker(&["inspect", "-f", "{{.State.Pid}}", &container(sandbox_id)]).trim().parse().unwrap_or(0)
}

/// Runs the docker CLI and returns its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 100 ms until it returns true or `secs` pass.
pub async fn eventually(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

/// A new Ed25519 key pair in `dir`; returns the private key's path.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// Options every OpenSSH tool here takes (`-o` form works for ssh, sftp and scp alike).
pub fn ssh_opts(key: &Path) -> Vec<String> {
    let mut v = vec!["-i".to_string(), key.display().to_string(), "-F".into(), "/dev/null".into()];
    for o in [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "LogLevel=ERROR",
    ] {
        v.extend(["-o".to_string(), o.to_string()]);
    }
    v
}
