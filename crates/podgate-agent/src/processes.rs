//! Streaming processes that outlive their connections. Each keeps the tail of its stdout and
//! stderr in bounded buffers addressed by byte offset, so a client can attach (or re-attach) and
//! read on from any offset still held, and is told exactly how many bytes it missed.
//!
//! While clients are attached, output is flow-controlled by the slowest of them (the process
//! blocks on its pipe, as it would writing to a slow terminal): nothing is dropped. With no client
//! attached the buffers keep the newest bytes. The exit status is published only after both
//! pipes reached end of file, so a client that reads to the exit message has all the output.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use podgate_types::process::{ProcessExit, ProcessInfo, ProcessSpec};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, oneshot, watch};

use crate::launch;
use crate::paths::Dirs;
use crate::pty::Pty;
use crate::reaper::{Exit, Reaper};

/// Bytes of each stream kept for clients that attach later.
pub const BUFFER: usize = 1 << 20;
/// Most processes listed at once; ended ones are forgotten first.
pub const MAX_PROCESSES: usize = 1024;
/// How long an ended process stays listed with its exit status and output.
const KEEP_ENDED: Duration = Duration::from_secs(300);
/// How long to wait for the pipes after the process exited (a background child may hold them).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Largest PTY dimension.
const MAX_DIMENSION: u16 = 1000;

/// Why a process request failed.
#[derive(Debug)]
pub enum ProcError {
    Invalid(String),
    Spawn(String),
    NotFound(String),
    Busy(String),
}

impl std::fmt::Display for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcError::Invalid(m) | ProcError::Spawn(m) | ProcError::NotFound(m) | ProcError::Busy(m) => f.write_str(m),
        }
    }
}

/// The tail of one output stream. Byte `start` of the stream is `buf[0]`.
#[derive(Default)]
pub(crate) struct Ring {
    buf: VecDeque<u8>,
    start: u64,
}

impl Ring {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend(data);
        let over = self.buf.len().saturating_sub(BUFFER);
        self.buf.drain(..over);
        self.start += over as u64;
    }

    /// Up to `max` bytes from `offset`, and how many bytes before what is returned were already
    /// gone; the offset after them.
    pub(crate) fn read(&self, offset: u64, max: usize) -> (Vec<u8>, u64, u64) {
        let dropped = self.start.saturating_sub(offset);
        let from = offset.max(self.start);
        let skip = (from - self.start) as usize;
        let take = self.buf.len().saturating_sub(skip).min(max);
        let data: Vec<u8> = self.buf.range(skip..skip + take).copied().collect();
        (data, dropped, from + take as u64)
    }
}

struct State {
    streams: [Ring; 2],
    exit: Option<ProcessExit>,
    ended_at: Option<Instant>,
    timed_out: bool,
}

/// Where stdin goes.
enum Input {
    Pipe(tokio::sync::Mutex<Option<pipe::Sender>>),
    Pty,
    None,
}

/// One process.
pub struct Process {
    pub id: String,
    pub pid: i32,
    argv: Vec<String>,
    shell: bool,
    user: Option<String>,
    cwd: String,
    tag: Option<String>,
    started_at: i64,
    pty: Option<Arc<Pty>>,
    input: Input,
    state: Mutex<State>,
    /// Bumped whenever output or the exit status arrives.
    changed: watch::Sender<u64>,
    /// Signalled whenever a client consumed output.
    consumed: Notify,
    /// Offsets each attached client has read up to, for flow control.
    clients: Mutex<Vec<Arc<Cursor>>>,
    /// Readers now waiting for a client to catch up (not for the process to write).
    held_back: std::sync::atomic::AtomicU32,
}

/// How far one attached client has read each stream.
#[derive(Default)]
pub struct Cursor {
    offsets: [AtomicU64; 2],
}

impl Cursor {
    pub fn get(&self, stream: usize) -> u64 {
        self.offsets[stream].load(Ordering::SeqCst)
    }
}

/// What a reader gets next: output, or the exit once it has read everything.
pub enum Output {
    Chunk(Chunk),
    Exit(ProcessExit),
}

/// What a client gets on its next read.
pub struct Chunk {
    pub stream: usize,
    pub data: Vec<u8>,
    pub dropped: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cursors(&self) -> MutexGuard<'_, Vec<Arc<Cursor>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn info(&self) -> ProcessInfo {
        // One lock at a time: `append` takes the state lock, then the cursor lock.
        let clients = self.cursors().len() as u32;
        let exit = self.lock().exit;
        ProcessInfo {
            id: self.id.clone(),
            pid: self.pid,
            argv: self.argv.clone(),
            shell: self.shell,
            pty: self.pty.is_some(),
            user: self.user.clone(),
            cwd: self.cwd.clone(),
            tag: self.tag.clone(),
            started_at: self.started_at,
            clients,
            exit,
        }
    }

    /// A receiver that wakes on new output or the exit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Registers a client reading from the given offsets; it holds output back until dropped.
    pub fn attach(self: &Arc<Self>, from: [u64; 2]) -> AttachGuard {
        let cursor = Arc::new(Cursor::default());
        for (i, f) in from.iter().enumerate() {
            cursor.offsets[i].store(*f, Ordering::SeqCst);
        }
        self.cursors().push(cursor.clone());
        AttachGuard { process: self.clone(), cursor }
    }

    /// The next output for `cursor` (advancing it), or the exit status once it has read all.
    pub fn next(&self, cursor: &Cursor, max: usize) -> (Option<Chunk>, Option<ProcessExit>) {
        let s = self.lock();
        for (i, ring) in s.streams.iter().enumerate() {
            let (data, dropped, next) = ring.read(cursor.get(i), max);
            if !data.is_empty() || dropped > 0 {
                cursor.offsets[i].store(next, Ordering::SeqCst);
                drop(s);
                self.consumed.notify_waiters();
                return (Some(Chunk { stream: i, data, dropped }), None);
            }
        }
        (None, s.exit)
    }

    /// Waits for the next output for `cursor` (advancing it), or the exit once it has read all.
    /// Cancel-safe: nothing is consumed unless it returns.
    pub async fn read(&self, cursor: &Cursor, max: usize) -> Output {
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            match self.next(cursor, max) {
                (Some(chunk), _) => return Output::Chunk(chunk),
                (None, Some(exit)) => return Output::Exit(exit),
                // The sender lives in `self`, so this only ever wakes on a change.
                (None, None) => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    /// Appends output, waiting first while an attached client would lose bytes.
    async fn append(&self, stream: usize, data: &[u8]) {
        loop {
            let notified = self.consumed.notified();
            {
                let mut s = self.lock();
                let end = s.streams[stream].end() + data.len() as u64;
                let slowest = self.cursors().iter().map(|c| c.get(stream)).min();
                if slowest.is_none_or(|m| end.saturating_sub(m) <= BUFFER as u64) {
                    s.streams[stream].push(data);
                    drop(s);
                    self.changed.send_modify(|v| *v += 1);
                    return;
                }
            }
            // A client that goes away also wakes us through its guard.
            self.held_back.fetch_add(1, Ordering::SeqCst);
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            self.held_back.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Stdin data.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), String> {
        match &self.input {
            Input::Pipe(p) => match p.lock().await.as_mut() {
                Some(w) => w.write_all(data).await.map_err(|e| format!("stdin: {e}")),
                None => Err("stdin is closed".into()),
            },
            Input::Pty => match &self.pty {
                Some(pty) => pty.write_all(data).await.map_err(|e| format!("stdin: {e}")),
                None => Err("no pty".into()),
            },
            Input::None => Err("the process was started without stdin".into()),
        }
    }

    /// Closes stdin (on a PTY: types the EOF character).
    pub async fn close_stdin(&self) -> Result<(), String> {
        match &self.input {
            Input::Pipe(p) => {
                p.lock().await.take();
                Ok(())
            }
            Input::Pty => self.write_stdin(b"\x04").await,
            Input::None => Ok(()),
        }
    }

    /// Sends a signal to the process group.
    pub fn signal(&self, sig: Signal) -> Result<(), String> {
        if self.lock().exit.is_some() {
            return Err("the process has ended".into());
        }
        killpg(Pid::from_raw(self.pid), sig).map_err(|e| format!("signal: {e}"))
    }

    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), String> {
        check_size(cols, rows)?;
        match &self.pty {
            Some(pty) => pty.resize(cols, rows).map_err(|e| e.to_string()),
            None => Err("the process has no pty".into()),
        }
    }
}

/// Counts a client in; dropping it lets output flow without that client.
pub struct AttachGuard {
    process: Arc<Process>,
    pub cursor: Arc<Cursor>,
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.process.cursors().retain(|c| !Arc::ptr_eq(c, &self.cursor));
        self.process.consumed.notify_waiters();
    }
}

fn check_size(cols: u16, rows: u16) -> Result<(), String> {
    if cols == 0 || rows == 0 || cols > MAX_DIMENSION || rows > MAX_DIMENSION {
        return Err(format!("pty size {cols}x{rows} must be between 1 and {MAX_DIMENSION}"));
    }
    Ok(())
}

/// All processes of this agent.
#[derive(Clone)]
pub struct Processes {
    map: Arc<Mutex<HashMap<String, Arc<Process>>>>,
    reaper: Reaper,
    dirs: Dirs,
}

impl Processes {
    pub fn new(reaper: Reaper, dirs: Dirs) -> Processes {
        Processes { map: Arc::default(), reaper, dirs }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a process; its output is buffered until a client reads it.
    pub fn start(&self, spec: ProcessSpec) -> Result<Arc<Process>, ProcError> {
        self.launch(spec, false).map(|(p, _)| p)
    }

    /// Starts a process with a client already attached from its first byte, so nothing it
    /// writes can be evicted before that client reads it.
    pub fn start_attached(&self, spec: ProcessSpec) -> Result<(Arc<Process>, AttachGuard), ProcError> {
        let (p, guard) = self.launch(spec, true)?;
        let guard = guard.ok_or_else(|| ProcError::Spawn("no attach guard".into()))?;
        Ok((p, guard))
    }

    /// Forgets a process (its output and status) once nobody needs it any more.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn launch(&self, spec: ProcessSpec, attach: bool) -> Result<(Arc<Process>, Option<AttachGuard>), ProcError> {
        if let Some(tag) = &spec.tag
            && (tag.len() > 256 || tag.chars().any(char::is_control))
        {
            return Err(ProcError::Invalid("a tag is at most 256 characters, none of them control characters".into()));
        }
        if let Some(p) = spec.pty {
            check_size(p.cols, p.rows).map_err(ProcError::Invalid)?;
        }
        self.make_room()?;
        let req = launch::Request {
            argv: &spec.argv,
            shell: spec.shell,
            env: &spec.env,
            cwd: spec.cwd.as_deref(),
            user: spec.user.as_deref(),
        };
        let launch::Prepared { mut command, argv, cwd } =
            launch::prepare(&self.dirs, &req).map_err(ProcError::Invalid)?;
        let spawn_error =
            |e: std::io::Error| ProcError::Spawn(format!("cannot start {:?} in {}: {e}", argv[0], cwd.display()));
        let (pid, pty, input, pipes, exited) = match spec.pty {
            Some(size) => {
                command.env("TERM", spec.env.get("TERM").map_or("xterm-256color", String::as_str));
                let (pty, exited) =
                    Pty::spawn(&self.reaper, &mut command, size.cols, size.rows).map_err(spawn_error)?;
                let pid = pty.pid;
                (pid, Some(Arc::new(pty)), Input::Pty, None, exited)
            }
            None => {
                command
                    .process_group(0)
                    .stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let (mut child, exited) = self.reaper.spawn(&mut command).map_err(spawn_error)?;
                let stdin = child.stdin.take().and_then(|s| pipe::Sender::from_owned_fd(OwnedFd::from(s)).ok());
                let input = if spec.stdin { Input::Pipe(tokio::sync::Mutex::new(stdin)) } else { Input::None };
                let out = child.stdout.take().map(OwnedFd::from);
                let err = child.stderr.take().map(OwnedFd::from);
                (child.id() as i32, None, input, Some((out, err)), exited)
            }
        };
        let (changed, _) = watch::channel(0);
        let process = Arc::new(Process {
            id: format!("p-{}", crate::random::token(10)),
            pid,
            argv,
            shell: spec.shell,
            user: spec.user.clone(),
            cwd: cwd.display().to_string(),
            tag: spec.tag.clone(),
            started_at: now_ms(),
            pty,
            input,
            state: Mutex::new(State { streams: Default::default(), exit: None, ended_at: None, timed_out: false }),
            changed,
            consumed: Notify::new(),
            clients: Mutex::new(Vec::new()),
            held_back: Default::default(),
        });
        self.lock().insert(process.id.clone(), process.clone());
        let guard = attach.then(|| process.attach([0, 0]));
        tokio::spawn(supervise(process.clone(), pipes, exited, spec.timeout_seconds));
        Ok((process, guard))
    }

    /// Forgets ended processes (oldest first) until there is room for one more.
    fn make_room(&self) -> Result<(), ProcError> {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, p| p.lock().ended_at.is_none_or(|at| now.duration_since(at) < KEEP_ENDED));
        while map.len() >= MAX_PROCESSES {
            let oldest =
                map.values().filter_map(|p| p.lock().ended_at.map(|at| (at, p.id.clone()))).min().map(|(_, id)| id);
            match oldest {
                Some(id) => map.remove(&id),
                None => return Err(ProcError::Busy(format!("{MAX_PROCESSES} processes are running already"))),
            };
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Arc<Process>, ProcError> {
        self.lock().get(id).cloned().ok_or_else(|| ProcError::NotFound(format!("process {id:?} not found")))
    }

    pub fn list(&self) -> Vec<ProcessInfo> {
        let mut v: Vec<ProcessInfo> = self.lock().values().map(|p| p.info()).collect();
        v.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        v
    }
}

/// Reads the output until both pipes end, enforces the timeout, and publishes the exit status
/// once the output is all in.
async fn supervise(
    process: Arc<Process>,
    pipes: Option<(Option<OwnedFd>, Option<OwnedFd>)>,
    exited: oneshot::Receiver<Exit>,
    timeout: Option<u64>,
) {
    let readers = match (&pipes, &process.pty) {
        (_, Some(pty)) => vec![tokio::spawn(read_pty(process.clone(), pty.clone()))],
        (Some(_), None) => {
            let (out, err) = pipes.unwrap_or_default();
            vec![tokio::spawn(read_pipe(process.clone(), 0, out)), tokio::spawn(read_pipe(process.clone(), 1, err))]
        }
        (None, None) => Vec::new(),
    };
    let pid = process.pid;
    let killer = timeout.map(|secs| {
        let process = process.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            process.lock().timed_out = true;
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        })
    });
    let exit = exited.await.unwrap_or(Exit::Code(-1));
    if let Some(k) = killer {
        k.abort();
    }
    for mut r in readers {
        // Output still waiting for a slow client is never cut off; a pipe that a background child
        // keeps open without writing is, after the grace period.
        loop {
            match tokio::time::timeout(DRAIN_GRACE, &mut r).await {
                Ok(_) => break,
                Err(_) if process.held_back.load(Ordering::SeqCst) > 0 => continue,
                Err(_) => {
                    r.abort();
                    break;
                }
            }
        }
    }
    let mut s = process.lock();
    s.exit = Some(ProcessExit {
        exit_code: exit.code(),
        signal: match exit {
            Exit::Signal(n) => Some(n),
            Exit::Code(_) => None,
        },
        timed_out: s.timed_out,
    });
    s.ended_at = Some(Instant::now());
    drop(s);
    process.changed.send_modify(|v| *v += 1);
}

async fn read_pipe(process: Arc<Process>, stream: usize, fd: Option<OwnedFd>) {
    let Some(Ok(mut r)) = fd.map(pipe::Receiver::from_owned_fd) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        process.append(stream, &buf[..n]).await;
    }
}

async fn read_pty(process: Arc<Process>, pty: Arc<Pty>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = pty.read(&mut buf).await {
        process.append(0, &buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_while_output_flows_does_not_deadlock() {
        // Everything runs on threads of its own: if the locks deadlock, this thread still
        // notices within the timeout and fails instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let reaper = Reaper::default();
                tokio::spawn(crate::reaper::run(reaper.clone()));
                let procs = Processes::new(reaper, Dirs { home: "/tmp".into(), workdir: "/tmp".into() });
                let argv = ["head", "-c", "200000000", "/dev/zero"].map(String::from).to_vec();
                let p = procs.start(ProcessSpec { argv, ..Default::default() }).unwrap();
                let pid = p.pid;
                let lister = tokio::task::spawn_blocking(move || {
                    for _ in 0..20_000 {
                        let _ = procs.list();
                        // Attach and detach too: the cursor lock against the reader's.
                        drop(p.attach([0, 0]));
                    }
                });
                let _ = lister.await;
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = tx.send(());
            });
        });
        assert!(rx.recv_timeout(Duration::from_secs(30)).is_ok(), "listing deadlocked against the output reader");
    }

    #[test]
    fn ring_keeps_the_tail_and_counts_what_is_gone() {
        let mut r = Ring::default();
        r.push(&vec![1u8; BUFFER]);
        r.push(&[2u8; 10]);
        assert_eq!(r.start, 10);
        assert_eq!(r.end(), BUFFER as u64 + 10);
        let (data, dropped, next) = r.read(0, 4);
        assert_eq!((data, dropped, next), (vec![1u8; 4], 10, 14));
        let (data, dropped, next) = r.read(BUFFER as u64 + 5, 100);
        assert_eq!((data, dropped, next), (vec![2u8; 5], 0, BUFFER as u64 + 10));
        let (data, _, next) = r.read(next, 100);
        assert!(data.is_empty());
        assert_eq!(next, BUFFER as u64 + 10);
    }
}
