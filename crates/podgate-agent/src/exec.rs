//! One-shot process execution: argv, env, cwd, stdin, timeout; exact stdout/stderr bytes.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use podgate_types::api::{ExecRequest, ExecResponse};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::pipe;

use crate::launch;
use crate::paths::Dirs;
use crate::reaper::{Exit, Reaper};

/// Most bytes kept per output stream; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 16 << 20;
/// How long to wait for pipes to reach EOF after the process exited (a background child may hold them).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Why an exec could not run.
#[derive(Debug)]
pub enum ExecError {
    /// The request is malformed (empty argv, NUL bytes, bad env name).
    Invalid(String),
    /// The program could not be started (not found, not executable, bad cwd).
    Spawn(String),
}

/// Kills the process group when dropped before the process was waited for (e.g. the caller went away).
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Runs `req` to completion.
pub async fn run(reaper: &Reaper, dirs: &Dirs, req: ExecRequest) -> Result<ExecResponse, ExecError> {
    let launch = launch::Request {
        argv: &req.argv,
        shell: req.shell,
        env: &req.env,
        cwd: req.cwd.as_deref(),
        user: req.user.as_deref(),
    };
    let launch::Prepared { command: mut cmd, argv, cwd } =
        launch::prepare(dirs, &launch).map_err(ExecError::Invalid)?;
    cmd.process_group(0)
        .stdin(if req.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let (mut child, exited) = reaper
        .spawn(&mut cmd)
        .map_err(|e| ExecError::Spawn(format!("cannot start {:?} in {}: {e}", argv[0], cwd.display())))?;
    let pid = child.id() as i32;
    let mut guard = KillOnDrop(Some(pid));

    let out = child.stdout.take().map(OwnedFd::from);
    let err = child.stderr.take().map(OwnedFd::from);
    let stdout = tokio::spawn(read_capped(out));
    let stderr = tokio::spawn(read_capped(err));
    if let (Some(input), Some(stdin)) = (req.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            if let Ok(mut w) = pipe::Sender::from_owned_fd(OwnedFd::from(stdin)) {
                // A process that exits without reading stdin gives EPIPE: not an error of the exec.
                let _ = w.write_all(&input.0).await;
                let _ = w.shutdown().await;
            }
        });
    }

    let (exit, timed_out) = match req.timeout_seconds {
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), exited).await {
            Ok(r) => (r.unwrap_or(Exit::Code(-1)), false),
            Err(_) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                (Exit::Signal(Signal::SIGKILL as i32), true)
            }
        },
        None => (exited.await.unwrap_or(Exit::Code(-1)), false),
    };
    guard.0 = None;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (stdout, stdout_truncated) = drain(stdout).await;
    let (stderr, stderr_truncated) = drain(stderr).await;
    Ok(ExecResponse {
        exit_code: exit.code(),
        signal: match exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(_) => None,
        },
        timed_out,
        stdout: stdout.into(),
        stderr: stderr.into(),
        stdout_truncated,
        stderr_truncated,
        duration_ms,
    })
}

async fn drain(task: tokio::task::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    let abort = task.abort_handle();
    match tokio::time::timeout(DRAIN_GRACE, task).await {
        Ok(Ok(r)) => r,
        _ => {
            abort.abort();
            (Vec::new(), false)
        }
    }
}

async fn read_capped(fd: Option<OwnedFd>) -> (Vec<u8>, bool) {
    let Some(fd) = fd else {
        return (Vec::new(), false);
    };
    match pipe::Receiver::from_owned_fd(fd) {
        Ok(r) => read_all_capped(r, MAX_OUTPUT).await,
        Err(_) => (Vec::new(), false),
    }
}

/// Reads to EOF, keeping at most `cap` bytes; reports whether anything was dropped.
pub async fn read_all_capped<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_output() {
        let data = vec![7u8; 1000];
        let (kept, truncated) = read_all_capped(&data[..], 10).await;
        assert_eq!(kept.len(), 10);
        assert!(truncated);
        let (kept, truncated) = read_all_capped(&data[..], 1000).await;
        assert_eq!(kept.len(), 1000);
        assert!(!truncated);
    }
}
