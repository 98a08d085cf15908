//! Terminal recordings: for each terminal of a recorded sandbox the server attaches its own
//! read-only viewer (one the agent does not count as a client, so idle terminals still end) and
//! writes what it shows as asciicast v2 into the database, in chunks flushed at least every half
//! second. The recording is made outside the sandbox, so nothing inside it can alter or remove
//! it, and every replica serves it, whichever replica recorded it.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt as _};
use hyper_util::rt::TokioIo;
use podgate_store::Store;
use podgate_types::agent::paths;
use podgate_types::terminal::{Control, RecordingInfo, SUBPROTOCOL, TerminalInfo};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::agent_client::{AgentClient, path_segment};
use crate::clock::now_ms;
use std::sync::Arc;

use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result};

/// The most bytes one stored chunk of a recording holds.
const CHUNK: usize = 64 << 10;
/// The longest written output waits before it is stored (and readable).
const FLUSH_AFTER: Duration = Duration::from_millis(500);
/// How many chunks a reader fetches at a time.
const READ_PAGE: i64 = 16;

/// The recorder, in the kernel: where recordings go and how large one may grow.
#[derive(Clone, Debug)]
pub struct Recorder {
    store: Store,
    max_bytes: u64,
}

impl Recorder {
    pub fn new(store: Store, max_bytes: u64) -> Recorder {
        Recorder { store, max_bytes }
    }

    /// Starts recording terminal `info` of sandbox `sandbox_id` in the background.
    pub fn start(&self, agent: AgentClient, sandbox_id: &str, info: &TerminalInfo) {
        // The terminal's id goes into the agent's URL; the sandbox's only into bound parameters.
        if path_segment(&info.id).is_err() {
            tracing::warn!(sandbox_id, terminal_id = %info.id, "not recording a terminal with an unusable id");
            return;
        }
        let cast = Cast::new(self.store.clone(), sandbox_id, &info.id);
        let (info, max, sandbox_id) = (info.clone(), self.max_bytes, sandbox_id.to_string());
        tokio::spawn(async move {
            match record(&agent, cast, &info, max).await {
                Ok(bytes) => tracing::info!(%sandbox_id, terminal_id = %info.id, bytes, "terminal recording ended"),
                Err(e) => tracing::warn!(%sandbox_id, terminal_id = %info.id, error = %e, "terminal recording failed"),
            }
        });
    }

    /// The recordings of a sandbox, oldest first.
    pub async fn list(&self, sandbox_id: &str) -> Result<Vec<RecordingInfo>> {
        let rows = self.store.recordings(sandbox_id).await?;
        Ok(rows
            .into_iter()
            .map(|r| RecordingInfo { terminal_id: r.terminal_id, size: r.size as u64, modified_at: r.modified_at })
            .collect())
    }

    /// Removes recordings last written before `before`; returns how many went.
    pub async fn purge(&self, before: SystemTime) -> Result<u64> {
        let ms = before.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Ok(self.store.purge_recordings(ms).await?)
    }

    /// The bytes of one recording, page by page, if it exists; a reader sees what is stored
    /// when it gets there, so it may read a recording while it grows.
    pub async fn read(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
    ) -> Result<Option<impl Stream<Item = Result<Vec<u8>>> + Send + use<>>> {
        if self.store.recording(sandbox_id, terminal_id).await?.is_none() {
            return Ok(None);
        }
        let (store, sb, t) = (self.store.clone(), sandbox_id.to_string(), terminal_id.to_string());
        let pages = futures_util::stream::try_unfold(Some(-1), move |after| {
            let (store, sb, t) = (store.clone(), sb.clone(), t.clone());
            async move {
                let Some(after) = after else { return Ok(None) };
                let page = store.recording_chunks(&sb, &t, after, READ_PAGE).await?;
                let next = match page.last() {
                    Some((seq, _)) if page.len() as i64 == READ_PAGE => Some(*seq),
                    _ => None,
                };
                let bytes: Vec<u8> = page.into_iter().flat_map(|(_, d)| d).collect();
                Ok::<_, Error>(Some((bytes, next)))
            }
        });
        Ok(Some(pages))
    }

    /// Moves recordings that older servers wrote to `DIR/<sandbox-id>/<terminal-id>.cast` into
    /// the database, removing each file once it is stored; returns how many moved.
    pub async fn import_dir(&self, dir: &Path) -> Result<u64> {
        let io = |e: std::io::Error| Error::Internal(format!("importing recordings from {}: {e}", dir.display()));
        let mut moved = 0;
        let mut sandboxes = match tokio::fs::read_dir(dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        while let Some(sb) = sandboxes.next_entry().await.map_err(io)? {
            let Some(sandbox_id) = sb.file_name().to_str().map(str::to_string) else { continue };
            let Ok(mut files) = tokio::fs::read_dir(sb.path()).await else { continue };
            while let Some(f) = files.next_entry().await.map_err(io)? {
                let name = f.file_name();
                let Some(terminal_id) = name.to_str().and_then(|n| n.strip_suffix(".cast")) else { continue };
                let modified = f.metadata().await.map_err(io)?.modified().map_err(io)?;
                let at = modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                let bytes = tokio::fs::read(f.path()).await.map_err(io)?;
                if self.store.start_recording(&sandbox_id, terminal_id, at).await? {
                    for (seq, chunk) in bytes.chunks(CHUNK).enumerate() {
                        self.store.append_recording(&sandbox_id, terminal_id, seq as i64, chunk, at).await?;
                    }
                }
                tokio::fs::remove_file(f.path()).await.map_err(io)?;
                moved += 1;
            }
            let _ = tokio::fs::remove_dir(sb.path()).await;
        }
        let _ = tokio::fs::remove_dir(dir).await;
        Ok(moved)
    }
}

/// The recordings service: what callers may read, and the server's upkeep.
#[derive(Clone)]
pub struct Recordings {
    pub(crate) k: Arc<Kernel>,
}

impl Recordings {
    /// Removes recordings older than `retention`; returns how many.
    pub async fn purge(&self, retention: std::time::Duration) -> Result<u64> {
        self.k.recorder.purge(SystemTime::now() - retention).await
    }

    /// Moves recordings an older server left on its disk into the database (see
    /// [`Recorder::import_dir`]).
    pub async fn import_dir(&self, dir: &Path) -> Result<u64> {
        self.k.recorder.import_dir(dir).await
    }

    /// The terminal recordings of the caller's sandbox (live by id or name, or deleted by id).
    pub async fn list(&self, caller: &Caller, id_or_name: &str) -> Result<Vec<RecordingInfo>> {
        let row = self.k.sandboxes().resolve_any(caller, id_or_name).await?;
        self.k.recorder.list(&row.id).await
    }

    /// The bytes of one terminal recording of the caller's sandbox.
    pub async fn read(
        &self,
        caller: &Caller,
        id_or_name: &str,
        terminal: &str,
    ) -> Result<impl Stream<Item = Result<Vec<u8>>> + Send + use<>> {
        let row = self.k.sandboxes().resolve_any(caller, id_or_name).await?;
        self.k
            .recorder
            .read(&row.id, terminal)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no recording of terminal {terminal:?} in sandbox {}", row.id)))
    }
}

/// Attaches to the terminal and writes the recording until the terminal ends or the size limit
/// is reached; returns the bytes written.
async fn record(agent: &AgentClient, mut cast: Cast, info: &TerminalInfo, max_bytes: u64) -> Result<u64, String> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let attach = format!("{}?read_only=true&recorder=true", paths::with_id(paths::TERMINAL_ATTACH, &info.id));
    let (_, io) = agent.upgrade(&attach, &key, Some(SUBPROTOCOL)).await.map_err(|e| e.to_string())?;
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Client, None).await;

    if !cast.store.start_recording(&cast.sandbox, &cast.terminal, now_ms()).await.map_err(|e| e.to_string())? {
        return Err("this terminal is already recorded".into());
    }
    let started = Instant::now();
    let header = serde_json::json!({
        "version": 2,
        "width": info.cols,
        "height": info.rows,
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "title": format!("terminal {}", info.id),
        "env": { "TERM": "xterm-256color" },
    });
    cast.line(header.to_string());
    cast.flush().await?;
    let event = |kind: &str, data: &str| {
        let at = started.elapsed().as_micros() as f64 / 1e6;
        serde_json::json!([at, kind, data]).to_string()
    };
    let mut text = Utf8Stream::default();
    loop {
        // Output waits at most FLUSH_AFTER in memory before it is stored.
        let next = match cast.pending_since {
            Some(since) => match tokio::time::timeout_at((since + FLUSH_AFTER).into(), ws.next()).await {
                Ok(next) => next,
                Err(_) => {
                    cast.flush().await?;
                    continue;
                }
            },
            None => ws.next().await,
        };
        match next {
            Some(Ok(Message::Binary(b))) => {
                let out = text.push(&b);
                if out.is_empty() {
                    continue;
                }
                let line = event("o", &out);
                // Room is kept for the closing marker, so the recording never passes the limit.
                let marker = event("m", "recording stopped: size limit reached");
                if cast.written + line.len() as u64 + marker.len() as u64 + 2 > max_bytes {
                    cast.line(marker);
                    break;
                }
                cast.line(line);
            }
            Some(Ok(Message::Text(t))) => {
                if let Ok(Control::Exit { code }) = serde_json::from_str(&t) {
                    cast.line(event("m", &format!("exit {code}")));
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
        if cast.buf.len() >= CHUNK {
            cast.flush().await?;
        }
    }
    cast.flush().await?;
    Ok(cast.written)
}

/// A recording being written: lines gather in memory and are stored as one chunk when the
/// chunk is full or has waited long enough.
struct Cast {
    store: Store,
    sandbox: String,
    terminal: String,
    seq: i64,
    buf: Vec<u8>,
    /// When the oldest unstored line was written.
    pending_since: Option<Instant>,
    written: u64,
}

impl Cast {
    fn new(store: Store, sandbox: &str, terminal: &str) -> Cast {
        Cast {
            store,
            sandbox: sandbox.to_string(),
            terminal: terminal.to_string(),
            seq: 0,
            buf: Vec::new(),
            pending_since: None,
            written: 0,
        }
    }

    fn line(&mut self, line: String) {
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.written += line.len() as u64 + 1;
        self.pending_since.get_or_insert_with(Instant::now);
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let stored = self
            .store
            .append_recording(&self.sandbox, &self.terminal, self.seq, &self.buf, now_ms())
            .await
            .map_err(|e| e.to_string())?;
        if !stored {
            return Err("the recording was removed while it was written".into());
        }
        self.seq += 1;
        self.buf.clear();
        self.pending_since = None;
        Ok(())
    }
}

/// Turns a byte stream into text: a character split between two chunks is joined, and bytes
/// that are not UTF-8 become U+FFFD.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                        // An incomplete character at the end: wait for the next chunk.
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Recorder, Utf8Stream};
    use futures_util::TryStreamExt as _;
    use std::time::{Duration, SystemTime};

    #[tokio::test]
    async fn recordings_left_on_disk_move_into_the_database() {
        let db = tempfile::tempdir().unwrap();
        let store = podgate_store::Store::open_sqlite(&db.path().join("t.db")).await.unwrap();
        let r = Recorder::new(store, 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let big: String = (0..100_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        for (sb, t, text) in [("sb-a", "t1", "small\n"), ("sb-a", "t2", big.as_str()), ("sb-b", "t1", "b\n")] {
            std::fs::create_dir_all(dir.path().join(sb)).unwrap();
            let path = dir.path().join(sb).join(format!("{t}.cast"));
            std::fs::write(&path, text).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(86400)).unwrap();
        }
        std::fs::write(dir.path().join("sb-a").join("notes.txt"), "not a recording").unwrap();
        assert_eq!(r.import_dir(dir.path()).await.unwrap(), 3);
        let read = async |sb: &str, t: &str| -> Vec<u8> {
            let s = r.read(sb, t).await.unwrap().expect("imported");
            s.try_concat().await.unwrap()
        };
        assert_eq!(read("sb-a", "t1").await, b"small\n");
        assert_eq!(read("sb-a", "t2").await, big.as_bytes(), "a file larger than a chunk, whole and in order");
        assert_eq!(read("sb-b", "t1").await, b"b\n");
        let listed = r.list("sb-a").await.unwrap();
        assert_eq!(
            listed.iter().map(|x| (x.terminal_id.as_str(), x.size)).collect::<Vec<_>>(),
            [("t1", 6), ("t2", 100_000)]
        );
        assert!(!dir.path().join("sb-b").exists(), "imported files and emptied directories go");
        assert!(dir.path().join("sb-a").join("notes.txt").exists(), "other files stay");
        assert!(r.read("sb-a", "t3").await.unwrap().is_none());
        // The file times were kept: a day-old recording goes with a purge of what is older than an hour.
        assert_eq!(r.purge(SystemTime::now() - Duration::from_secs(3600)).await.unwrap(), 3);
    }

    #[test]
    fn joins_split_characters_and_replaces_invalid_bytes() {
        let mut t = Utf8Stream::default();
        let euro = "€".as_bytes();
        assert_eq!(t.push(&[b'a', euro[0]]), "a");
        assert_eq!(t.push(&euro[1..]), "€");
        assert_eq!(t.push(&[0xff, b'b']), "\u{FFFD}b");
        assert_eq!(t.push(b""), "");
    }
}
