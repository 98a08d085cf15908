//! Terminals that outlive their connections: each is a PTY whose output feeds a server-side
//! screen (`vt100`) and a bounded broadcast to attached clients. Attaching sends a redraw of the
//! screen (and scrollback), never a raw byte replay; a client that falls behind is resynchronised
//! with a fresh redraw instead of holding output in memory.

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use podgate_types::terminal::{TerminalInfo, TerminalSpec};
use tokio::sync::{broadcast, oneshot};

use crate::paths::Dirs;
use crate::pty::Pty;
use crate::reaper::{Exit, Reaper};

/// Output chunks kept for a client that is behind; past this it is resynchronised.
const BACKLOG_CHUNKS: usize = 2048;
/// Output waits while the slowest client is this far behind…
const HIGH_WATER: usize = BACKLOG_CHUNKS / 2;
/// …unless some client made no progress for this long: it is stalled and falls behind alone.
const STALLED_AFTER: Duration = Duration::from_millis(500);
/// Scrollback lines kept per terminal and replayed on attach.
const SCROLLBACK_LINES: usize = 1000;
/// How long an ended terminal stays listed with its final screen and exit code.
const KEEP_ENDED: Duration = Duration::from_secs(300);
/// Largest accepted terminal dimension.
pub const MAX_DIMENSION: u16 = 1000;

/// What attached clients receive.
#[derive(Clone, Debug)]
pub enum Event {
    Output(Bytes),
    Exit(i32),
}

struct Screen {
    parser: vt100::Parser,
    exit_code: Option<i32>,
    ended_at: Option<Instant>,
}

/// One terminal.
pub struct Terminal {
    pub id: String,
    cmd: Vec<String>,
    created_at: i64,
    pty: Pty,
    screen: Mutex<Screen>,
    events: broadcast::Sender<Event>,
    clients: AtomicU32,
    idle_since: Mutex<Instant>,
    /// Progress of each attached client, for backpressure.
    progress: Mutex<Vec<Arc<ClientProgress>>>,
    started: Instant,
}

/// When a client last took output off the queue or delivered a frame.
#[derive(Default)]
pub struct ClientProgress {
    progress_ms: AtomicU64,
}

/// Why a terminal request failed.
#[derive(Debug)]
pub enum TermError {
    Invalid(String),
    Spawn(String),
    NotFound(String),
}

impl std::fmt::Display for TermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermError::Invalid(m) | TermError::Spawn(m) | TermError::NotFound(m) => f.write_str(m),
        }
    }
}

fn dim(v: Option<u16>, default: u16, what: &str) -> Result<u16, TermError> {
    match v.unwrap_or(default) {
        0 => Err(TermError::Invalid(format!("{what} must be at least 1"))),
        n if n > MAX_DIMENSION => Err(TermError::Invalid(format!("{what} {n} is larger than {MAX_DIMENSION}"))),
        n => Ok(n),
    }
}

fn nz(v: u16) -> NonZeroU16 {
    NonZeroU16::new(v).unwrap_or(NonZeroU16::MIN)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Terminal {
    fn lock(&self) -> MutexGuard<'_, Screen> {
        self.screen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A redraw of the current state and a receiver for everything after it, taken atomically.
    pub fn subscribe(&self) -> (Vec<u8>, broadcast::Receiver<Event>, Option<i32>) {
        let mut s = self.lock();
        let snap = snapshot(s.parser.screen_mut());
        (snap, self.events.subscribe(), s.exit_code)
    }

    /// Keyboard input.
    pub async fn input(&self, data: &[u8]) -> std::io::Result<()> {
        self.pty.write_all(data).await
    }

    /// Resizes the PTY and the server-side screen.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), TermError> {
        let cols = dim(Some(cols), 80, "cols")?;
        let rows = dim(Some(rows), 24, "rows")?;
        let mut s = self.lock();
        s.parser.screen_mut().set_size(nz(rows), nz(cols));
        self.pty.resize(cols, rows).map_err(|e| TermError::Spawn(e.to_string()))
    }

    /// Sends a named signal to the terminal's foreground process group.
    pub fn signal(&self, name: &str) -> Result<(), TermError> {
        let sig = crate::signals::parse(name).map_err(TermError::Invalid)?;
        // Like a key press: to the foreground job (e.g. `sleep` under an interactive shell).
        let _ = killpg(Pid::from_raw(self.pty.foreground_group()), sig);
        Ok(())
    }

    /// Counts a client in; the returned guard counts it out. A recorder (the server's own
    /// viewer) is not a client: it neither keeps an idle terminal alive nor shows in `clients`;
    /// like a client, output waits for it while it keeps up.
    pub fn attach(self: &Arc<Self>, recorder: bool) -> ClientGuard {
        if !recorder {
            self.clients.fetch_add(1, Ordering::SeqCst);
        }
        let progress = Arc::new(ClientProgress::default());
        progress.progress_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).push(progress.clone());
        ClientGuard(self.clone(), progress, !recorder)
    }

    /// Whether output should wait for its viewers: the queue is long and every attached client is
    /// making progress. Then the PTY is not read for a moment, so the program writing slows down to
    /// what its viewers can take, as on a real terminal. A stalled client never holds output back:
    /// it falls behind alone and is later sent a redraw.
    fn should_wait(&self) -> bool {
        if self.events.len() < HIGH_WATER {
            return false;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let clients = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        !clients.is_empty()
            && clients
                .iter()
                .all(|c| now.saturating_sub(c.progress_ms.load(Ordering::Relaxed)) < STALLED_AFTER.as_millis() as u64)
    }

    fn info(&self) -> TerminalInfo {
        let s = self.lock();
        let (rows, cols) = s.parser.screen().size();
        TerminalInfo {
            id: self.id.clone(),
            cmd: self.cmd.clone(),
            cols: cols.get(),
            rows: rows.get(),
            clients: self.clients.load(Ordering::SeqCst),
            created_at: self.created_at,
            exit_code: s.exit_code,
        }
    }

    fn kill(&self) {
        let _ = killpg(Pid::from_raw(self.pty.pid), Signal::SIGHUP);
        let _ = killpg(Pid::from_raw(self.pty.pid), Signal::SIGKILL);
    }
}

/// Keeps a terminal's client count while a connection lasts.
pub struct ClientGuard(Arc<Terminal>, Arc<ClientProgress>, bool);

impl ClientGuard {
    /// Records that the client took output or delivered a frame.
    pub fn progressed(&self) {
        self.1.progress_ms.store(self.0.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.progress.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| !Arc::ptr_eq(p, &self.1));
        if self.2 && self.0.clients.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

/// Escape sequences that redraw `screen` on a fresh terminal: a reset, the scrollback (normal
/// screen only), then the visible contents, cursor, attributes and input modes.
pub fn snapshot(screen: &mut vt100::Screen) -> Vec<u8> {
    let mut out = b"\x1bc".to_vec();
    let (rows, cols) = screen.size();
    if screen.alternate_screen() {
        out.extend_from_slice(b"\x1b[?1049h");
    } else {
        let len = screen.scrollback_len();
        let mut lines = Vec::with_capacity(len);
        let mut offset = len;
        while offset > 0 {
            screen.set_scrollback(offset);
            let take = offset.min(rows.get() as usize);
            lines.extend(screen.rows_formatted(0, cols.get()).take(take));
            offset -= take;
        }
        screen.set_scrollback(0);
        for l in &lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\x1b[m\r\n");
        }
        if !lines.is_empty() {
            // Scroll exactly the replayed lines off the visible area before the redraw.
            out.extend(std::iter::repeat_n(b'\n', rows.get() as usize - 1));
        }
    }
    out.extend_from_slice(screen.state_formatted().as_bytes());
    out
}

/// All terminals of this agent.
#[derive(Clone)]
pub struct Terminals {
    map: Arc<Mutex<HashMap<String, Arc<Terminal>>>>,
    reaper: Reaper,
    dirs: Dirs,
    idle: Duration,
}

impl Terminals {
    pub fn new(reaper: Reaper, dirs: Dirs, idle: Duration) -> Terminals {
        Terminals { map: Arc::default(), reaper, dirs, idle }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Terminal>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a terminal.
    pub fn create(&self, spec: TerminalSpec) -> Result<TerminalInfo, TermError> {
        let cols = dim(spec.cols, 80, "cols")?;
        let rows = dim(spec.rows, 24, "rows")?;
        podgate_types::validate::env(&spec.env).map_err(TermError::Invalid)?;
        let term_name = spec.term.unwrap_or_else(|| "xterm-256color".into());
        if term_name.is_empty() || term_name.len() > 64 || !term_name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TermError::Invalid(format!("invalid TERM {term_name:?}")));
        }
        let (argv, login) = match spec.cmd {
            Some(c) => {
                podgate_types::validate::argv("cmd", &c).map_err(TermError::Invalid)?;
                (c, false)
            }
            None => (vec![crate::launch::default_shell()], true),
        };
        // Built like every other process (`launch::prepare`: checks, the environment a warm-pool
        // claim added, the request's), starting at home unless asked otherwise.
        let home = self.dirs.home.to_string_lossy().into_owned();
        let request = crate::launch::Request {
            argv: &argv,
            shell: false,
            env: &spec.env,
            cwd: Some(spec.cwd.as_deref().unwrap_or(&home)),
            user: None,
        };
        let crate::launch::Prepared { command: mut cmd, cwd, .. } =
            crate::launch::prepare(&self.dirs, &request).map_err(TermError::Invalid)?;
        cmd.env("TERM", &term_name);
        if login {
            // A login shell, by the convention of a leading '-' in argv[0].
            let base = argv[0].rsplit('/').next().unwrap_or("sh");
            std::os::unix::process::CommandExt::arg0(&mut cmd, format!("-{base}"));
        }
        let (pty, exited) = Pty::spawn(&self.reaper, &mut cmd, cols, rows)
            .map_err(|e| TermError::Spawn(format!("cannot start {:?} in {}: {e}", argv[0], cwd.display())))?;
        let (events, _) = broadcast::channel(BACKLOG_CHUNKS);
        let term = Arc::new(Terminal {
            id: format!("t-{}", crate::random::token(10)),
            cmd: argv,
            created_at: now_ms(),
            pty,
            screen: Mutex::new(Screen {
                parser: vt100::Parser::new(nz(rows), nz(cols), SCROLLBACK_LINES),
                exit_code: None,
                ended_at: None,
            }),
            events,
            clients: AtomicU32::new(0),
            idle_since: Mutex::new(Instant::now()),
            progress: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let info = term.info();
        self.lock().insert(term.id.clone(), term.clone());
        tokio::spawn(pump(term, exited));
        Ok(info)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Terminal>, TermError> {
        self.lock().get(id).cloned().ok_or_else(|| TermError::NotFound(format!("terminal {id:?} not found")))
    }

    pub fn list(&self) -> Vec<TerminalInfo> {
        let mut v: Vec<TerminalInfo> = self.lock().values().map(|t| t.info()).collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Kills the terminal's processes and forgets it.
    pub fn delete(&self, id: &str) -> Result<(), TermError> {
        let t = self.lock().remove(id).ok_or_else(|| TermError::NotFound(format!("terminal {id:?} not found")))?;
        t.kill();
        Ok(())
    }

    /// Ends terminals with no client for longer than the idle limit, and forgets ended ones.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, t| {
            let ended = t.lock().ended_at.is_some_and(|at| now.duration_since(at) > KEEP_ENDED);
            let idle = t.clients.load(Ordering::SeqCst) == 0
                && now.duration_since(*t.idle_since.lock().unwrap_or_else(|e| e.into_inner())) > self.idle;
            if idle {
                t.kill();
            }
            !(ended || idle)
        });
    }

    /// Runs [`Terminals::sweep`] periodically, forever.
    pub async fn run_sweeper(self) {
        let period = (self.idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            tokio::time::sleep(period).await;
            self.sweep();
        }
    }
}

/// Moves PTY output into the screen and to clients until the command exits.
async fn pump(term: Arc<Terminal>, mut exited: oneshot::Receiver<Exit>) {
    let mut buf = vec![0u8; 8 * 1024];
    let feed = |n: usize, buf: &[u8]| {
        let mut s = term.lock();
        s.parser.process(&buf[..n]);
        let _ = term.events.send(Event::Output(Bytes::copy_from_slice(&buf[..n])));
    };
    let code = loop {
        let waited = Instant::now();
        while term.should_wait() && waited.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::select! {
            r = term.pty.read(&mut buf) => match r {
                Ok(0) | Err(_) => break (&mut exited).await.map_or(-1, |e| e.code()),
                Ok(n) => feed(n, &buf),
            },
            e = &mut exited => {
                // The command is gone: take what it wrote last (children may keep the PTY open).
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), term.pty.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    feed(n, &buf);
                }
                break e.map_or(-1, |e| e.code());
            }
        }
    };
    let mut s = term.lock();
    s.exit_code = Some(code);
    s.ended_at = Some(Instant::now());
    let _ = term.events.send(Event::Exit(code));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_redraws_screen_and_scrollback() {
        let mut p = vt100::Parser::new(nz(5), nz(20), 100);
        for i in 0..12 {
            p.process(format!("line {i}\r\n").as_bytes());
        }
        p.process(b"\x1b[31mred\x1b[m");
        let snap = snapshot(p.screen_mut());
        let mut q = vt100::Parser::new(nz(5), nz(20), 100);
        q.process(&snap);
        assert_eq!(q.screen().contents(), p.screen().contents());
        assert_eq!(q.screen().cursor_position(), p.screen().cursor_position());
        assert_eq!(q.screen().cell(4, 0).unwrap().fgcolor(), vt100::Color::Idx(1));
        assert_eq!(q.screen().scrollback_len(), p.screen().scrollback_len());
        q.screen_mut().set_scrollback(100);
        assert_eq!(q.screen().rows(0, 20).next().unwrap(), "line 0");
    }

    #[test]
    fn snapshot_restores_the_alternate_screen() {
        let mut p = vt100::Parser::new(nz(5), nz(20), 100);
        p.process(b"shell prompt\r\n\x1b[?1049h\x1b[2;3Hfull screen app");
        let mut q = vt100::Parser::new(nz(5), nz(20), 100);
        q.process(&snapshot(p.screen_mut()));
        assert!(q.screen().alternate_screen());
        assert_eq!(q.screen().contents(), p.screen().contents());
        assert_eq!(q.screen().cursor_position(), (1, 17));
    }
}
