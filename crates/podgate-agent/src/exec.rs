//! One-shot process execution (`POST /v1/exec`), built on the same process table as the streams:
//! the process starts with a collector attached from its first byte, stdin is written then
//! closed, stdout and stderr are kept up to [`MAX_OUTPUT`] each (the rest is read and dropped),
//! and the answer comes once the process ended and its pipes are drained.

use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use podgate_types::api::{ExecRequest, ExecResponse};
use podgate_types::process::ProcessSpec;

use crate::processes::{Output, ProcError, Process, Processes};

/// Most bytes kept per output stream; the rest is read and dropped. The whole answer passes
/// through the server's memory, so it stays small: more output is for the streaming process API
/// (`podgate exec`), which is bounded by flow control instead.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Why an exec could not run.
#[derive(Debug)]
pub enum ExecError {
    /// The request is malformed (empty argv, NUL bytes, bad env name, unknown user).
    Invalid(String),
    /// The program could not be started (not found, not executable, bad cwd, too many processes).
    Spawn(String),
}

/// Kills the process group and forgets the process when the request goes away before the end
/// (e.g. the caller disconnected), and forgets it after a normal end.
struct Cleanup<'a>(&'a Processes, Arc<Process>, bool);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.2 {
            let _ = self.1.signal(Signal::SIGKILL);
        }
        self.0.forget(&self.1.id);
    }
}

/// Runs `req` to completion.
pub async fn run(processes: &Processes, req: ExecRequest) -> Result<ExecResponse, ExecError> {
    let spec = ProcessSpec {
        argv: req.argv,
        shell: req.shell,
        env: req.env,
        cwd: req.cwd,
        user: req.user,
        pty: None,
        timeout_seconds: req.timeout_seconds,
        stdin: req.stdin.is_some(),
        tag: None,
    };
    let started = Instant::now();
    let (process, guard) = processes.start_attached(spec).map_err(|e| match e {
        ProcError::Invalid(m) => ExecError::Invalid(m),
        ProcError::Spawn(m) | ProcError::NotFound(m) | ProcError::Busy(m) => ExecError::Spawn(m),
    })?;
    let mut cleanup = Cleanup(processes, process.clone(), false);
    if let Some(input) = req.stdin {
        let p = process.clone();
        tokio::spawn(async move {
            // A process that exits without reading stdin gives EPIPE: not an error of the exec.
            let _ = p.write_stdin(&input.0).await;
            let _ = p.close_stdin().await;
        });
    }
    let mut out: [Vec<u8>; 2] = Default::default();
    let mut truncated = [false; 2];
    let exit = loop {
        match process.read(&guard.cursor, 256 * 1024).await {
            Output::Chunk(chunk) => {
                let (kept, cut) = (&mut out[chunk.stream], &mut truncated[chunk.stream]);
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
                *cut |= chunk.data.len() > room || chunk.dropped > 0;
            }
            Output::Exit(exit) => break exit,
        }
    };
    cleanup.2 = true;
    let [stdout, stderr] = out;
    Ok(ExecResponse {
        exit_code: exit.exit_code,
        signal: exit.signal,
        timed_out: exit.timed_out,
        stdout: stdout.into(),
        stderr: stderr.into(),
        stdout_truncated: truncated[0],
        stderr_truncated: truncated[1],
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
