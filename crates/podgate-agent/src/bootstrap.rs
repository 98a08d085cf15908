//! Code bootstrap in the sandbox: fetch the code (an archive over HTTP(S), or `git` for a
//! repository), verify its sha256 or commit, extract it safely into `/workspace/code`, run the
//! install step there, then start the command in the sandbox's main terminal. Every step writes
//! to the bootstrap log (a bounded buffer the server and `podgate logs` read from any offset).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use podgate_types::bootstrap::{BootstrapPhase, BootstrapSpec, BootstrapStatus, CodeFetch, CodeKind, CommandLine};
use podgate_types::process::ProcessSpec;
use podgate_types::terminal::TerminalSpec;
use tokio::sync::watch;

use crate::processes::{Chunk, Output, Processes, Ring};
use crate::terminals::Terminals;

/// Where the code goes.
pub const CODE_DIR: &str = "/workspace/code";

struct Inner {
    status: Option<BootstrapStatus>,
    log: Ring,
}

/// The bootstrap of this sandbox (at most one).
pub struct Bootstrap {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    processes: Processes,
    terminals: Terminals,
    code_dir: PathBuf,
}

impl Bootstrap {
    pub fn new(processes: Processes, terminals: Terminals) -> Arc<Bootstrap> {
        Self::with_code_dir(processes, terminals, PathBuf::from(CODE_DIR))
    }

    /// With another code directory (tests outside a container).
    pub fn with_code_dir(processes: Processes, terminals: Terminals, code_dir: PathBuf) -> Arc<Bootstrap> {
        let (changed, _) = watch::channel(0);
        Arc::new(Bootstrap {
            inner: Mutex::new(Inner { status: None, log: Ring::default() }),
            changed,
            processes,
            terminals,
            code_dir,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status, or `None` before a bootstrap was started.
    pub fn status(&self) -> Option<BootstrapStatus> {
        let s = self.lock();
        s.status.clone().map(|mut st| {
            st.log_bytes = s.log.end();
            st
        })
    }

    /// Starts the bootstrap in the background; a second start is refused.
    pub fn start(self: &Arc<Self>, spec: BootstrapSpec) -> Result<BootstrapStatus, String> {
        {
            let mut s = self.lock();
            if s.status.is_some() {
                return Err("the bootstrap has started already".into());
            }
            let phase = if spec.code.is_some() { BootstrapPhase::Fetching } else { BootstrapPhase::Starting };
            s.status = Some(BootstrapStatus { phase, error: None, workdir: None, terminal_id: None, log_bytes: 0 });
        }
        let this = self.clone();
        tokio::spawn(async move { this.run(spec).await });
        self.status().ok_or_else(|| "no status".into())
    }

    fn log(&self, text: &str) {
        self.lock().log.push(text.as_bytes());
        self.changed.send_modify(|v| *v += 1);
    }

    fn update(&self, f: impl FnOnce(&mut BootstrapStatus)) {
        if let Some(st) = self.lock().status.as_mut() {
            f(st);
        }
        self.changed.send_modify(|v| *v += 1);
    }

    fn phase(&self, phase: BootstrapPhase) {
        self.update(|s| s.phase = phase);
    }

    async fn run(self: Arc<Self>, spec: BootstrapSpec) {
        match self.steps(&spec).await {
            Ok(()) => {
                self.log("bootstrap done\n");
                self.phase(BootstrapPhase::Ready);
            }
            Err(e) => {
                self.log(&format!("bootstrap failed: {e}\n"));
                self.update(|s| {
                    s.phase = BootstrapPhase::Failed;
                    s.error = Some(e);
                });
            }
        }
    }

    async fn steps(&self, spec: &BootstrapSpec) -> Result<(), String> {
        let mut workdir = None;
        if let Some(code) = &spec.code {
            let dir = self.code_dir.clone();
            prepare_dir(&dir)?;
            match code.kind {
                CodeKind::Zip | CodeKind::TarGz => self.fetch_archive(code, &dir).await?,
                CodeKind::Git => self.fetch_git(code, &dir).await?,
            }
            let wd = single_folder(&dir);
            self.log(&format!("workdir {}\n", wd.display()));
            self.update(|s| s.workdir = Some(wd.display().to_string()));
            workdir = Some(wd);
        }
        if let Some(install) = &spec.install {
            self.phase(BootstrapPhase::Installing);
            let code = self.run_logged(install, spec.shell, workdir.as_deref()).await?;
            if code != 0 {
                return Err(format!("the install step exited with code {code}"));
            }
        }
        if let Some(command) = &spec.command {
            self.phase(BootstrapPhase::Starting);
            let argv = match command {
                CommandLine::Argv(a) => a.clone(),
                CommandLine::Line(l) => vec![crate::launch::default_shell(), "-c".into(), l.clone()],
            };
            let term = TerminalSpec {
                cmd: Some(argv.clone()),
                cwd: workdir.as_ref().map(|w| w.display().to_string()),
                ..Default::default()
            };
            let info = self.terminals.create(term).map_err(|e| format!("starting the command: {e}"))?;
            self.log(&format!("started {argv:?} in terminal {}\n", info.id));
            self.update(|s| s.terminal_id = Some(info.id.clone()));
        }
        Ok(())
    }

    async fn fetch_archive(&self, code: &CodeFetch, dir: &Path) -> Result<(), String> {
        self.log(&format!("fetching {}\n", code.url));
        let tmp = dir.with_file_name(format!(".code-download-{}", crate::random::token(8)));
        let result = async {
            let (sha, size) = crate::fetch::download(code, &tmp).await?;
            self.log(&format!("fetched {size} bytes, sha256 {sha}\n"));
            self.phase(BootstrapPhase::Verifying);
            let want = code.sha256.as_deref().unwrap_or_default();
            if sha != want {
                return Err(format!("sha256 mismatch: expected {want}, got {sha}"));
            }
            self.log("sha256 verified\n");
            self.phase(BootstrapPhase::Extracting);
            let (file, dest, kind) = (tmp.clone(), dir.to_path_buf(), code.kind);
            let done = tokio::task::spawn_blocking(move || {
                let f = std::fs::File::open(&file)?;
                match kind {
                    CodeKind::Zip => podgate_tar::zip::unzip(f, &dest),
                    _ => podgate_tar::unpack_gz(std::io::BufReader::new(f), &dest),
                }
            })
            .await
            .map_err(|e| format!("extracting: {e}"))?
            .map_err(|e| format!("extracting the archive: {e}"))?;
            self.log(&format!("extracted {} files, {} bytes\n", done.files, done.bytes));
            Ok(())
        }
        .await;
        let _ = std::fs::remove_file(&tmp);
        result
    }

    async fn fetch_git(&self, code: &CodeFetch, dir: &Path) -> Result<(), String> {
        let commit = code.commit.clone().unwrap_or_default();
        let url = url::Url::parse(&code.url).map_err(|e| format!("invalid code url: {e}"))?;
        let mut clone = vec!["git".to_string()];
        // Pin git (curl) to the addresses the server checked.
        if let (Some(host), Some(port)) = (url.domain(), url.port_or_known_default()) {
            let ips: Vec<String> = code
                .addrs
                .iter()
                .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| if a.is_ipv6() { format!("[{}]", a.ip()) } else { a.ip().to_string() })
                .collect();
            clone.extend(["-c".into(), format!("http.curloptResolve={host}:{port}:{}", ips.join(","))]);
        }
        // The admin's extra CA on top of the image's bundle, for git's curl.
        if let Some(pem) = &code.ca_pem {
            let system = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
            let bundle = dir.with_file_name(".code-ca.pem");
            std::fs::write(&bundle, format!("{system}\n{pem}")).map_err(|e| format!("{}: {e}", bundle.display()))?;
            clone.extend(["-c".into(), format!("http.sslCAInfo={}", bundle.display())]);
        }
        let target = dir.display().to_string();
        clone.extend(["clone".into(), "--no-checkout".into(), "--".into(), code.url.clone(), target.clone()]);
        self.log(&format!("cloning {}\n", code.url));
        if self.run_logged(&CommandLine::Argv(clone), false, None).await? != 0 {
            return Err(format!("git clone of {} failed (see the log)", code.url));
        }
        self.phase(BootstrapPhase::Verifying);
        let checkout = ["git", "-C", &target, "-c", "advice.detachedHead=false", "checkout", "--detach", &commit];
        if self.run_logged(&CommandLine::Argv(checkout.map(String::from).to_vec()), false, None).await? != 0 {
            return Err(format!("commit {commit} is not in {}", code.url));
        }
        let head = self.output(&["git", "-C", &target, "rev-parse", "HEAD"]).await?;
        if head.trim() != commit {
            return Err(format!("commit mismatch: expected {commit}, checked out {}", head.trim()));
        }
        self.log(&format!("commit {commit} verified\n"));
        Ok(())
    }

    /// Runs a command to its end with stdout and stderr copied into the log; returns its exit code.
    async fn run_logged(&self, cmd: &CommandLine, shell: bool, cwd: Option<&Path>) -> Result<i32, String> {
        let (argv, shell) = match cmd {
            CommandLine::Argv(a) => (a.clone(), false),
            CommandLine::Line(l) => (vec![l.clone()], shell),
        };
        self.log(&format!("$ {}\n", argv.join(" ")));
        let spec = ProcessSpec { argv, shell, cwd: cwd.map(|p| p.display().to_string()), ..Default::default() };
        self.run_to_end(spec, |chunk| {
            self.lock().log.push(&chunk.data);
            self.changed.send_modify(|v| *v += 1);
        })
        .await
    }

    /// Runs a command and returns its stdout (for checks, not logged).
    async fn output(&self, argv: &[&str]) -> Result<String, String> {
        let spec = ProcessSpec { argv: argv.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let mut out = Vec::new();
        self.run_to_end(spec, |chunk| {
            if chunk.stream == 0 {
                out.extend_from_slice(&chunk.data);
            }
        })
        .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Runs a process of the table to its end, handing each piece of output to `sink`.
    async fn run_to_end(&self, spec: ProcessSpec, mut sink: impl FnMut(&Chunk)) -> Result<i32, String> {
        let (process, guard) = self.processes.start_attached(spec).map_err(|e| e.to_string())?;
        loop {
            match process.read(&guard.cursor, 64 * 1024).await {
                Output::Chunk(chunk) => sink(&chunk),
                Output::Exit(exit) => return Ok(exit.exit_code),
            }
        }
    }

    /// The log from byte `from`; with `follow`, kept open until the bootstrap ends.
    pub fn log_body(self: &Arc<Self>, from: u64, follow: bool) -> Body {
        let this = self.clone();
        let stream = futures_util::stream::unfold(
            (this, from, None::<watch::Receiver<u64>>),
            move |(this, off, rx)| async move {
                let mut rx = rx.unwrap_or_else(|| this.changed.subscribe());
                loop {
                    rx.borrow_and_update();
                    let (data, next, over) = {
                        let s = this.lock();
                        let (data, _, next) = s.log.read(off, 64 * 1024);
                        (data, next, s.status.as_ref().is_none_or(|st| st.phase.is_final()))
                    };
                    if !data.is_empty() {
                        return Some((Ok::<_, std::io::Error>(Bytes::from(data)), (this, next, Some(rx))));
                    }
                    if !follow || over {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Body::from_stream(stream)
    }
}

/// The code directory must be new or empty.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(format!("{} is not empty", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// The one top-level folder of the extracted code, if that is all there is; else the directory.
fn single_folder(dir: &Path) -> PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir).map(|r| r.flatten().collect()).unwrap_or_default();
    match entries.as_slice() {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) => only.path(),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_single_top_level_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("app-1.0")).unwrap();
        assert_eq!(single_folder(d.path()), d.path().join("app-1.0"));
        std::fs::write(d.path().join("README"), "x").unwrap();
        assert_eq!(single_folder(d.path()), d.path());
        assert!(prepare_dir(d.path()).is_err());
        assert!(prepare_dir(&d.path().join("new/deeper")).is_ok());
    }
}
