//! Terminal recordings: for each terminal of a recorded sandbox the server attaches its own
//! read-only viewer (one the agent does not count as a client, so idle terminals still end) and
//! writes what it shows as asciicast v2 to `DIR/<sandbox-id>/<terminal-id>.cast`. The recording
//! is made outside the sandbox, so nothing inside it can alter or remove it.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use hyper_util::rt::TokioIo;
use podgate_types::terminal::{Control, RecordingInfo, SUBPROTOCOL, TerminalInfo};
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::agent_client::{AgentClient, path_segment};
use crate::{Caller, Error, Result, Sandboxes};

/// Where recordings go and how large one may grow.
#[derive(Clone, Debug)]
pub struct Recordings {
    dir: PathBuf,
    max_bytes: u64,
}

impl Recordings {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Recordings {
        Recordings { dir, max_bytes }
    }

    /// Starts recording terminal `info` of sandbox `sandbox_id` in the background.
    pub fn start(&self, agent: AgentClient, sandbox_id: &str, info: &TerminalInfo) {
        let (Ok(_), Ok(_)) = (path_segment(sandbox_id), path_segment(&info.id)) else {
            tracing::warn!(sandbox_id, terminal_id = %info.id, "not recording a terminal with an unusable id");
            return;
        };
        let path = self.dir.join(sandbox_id).join(format!("{}.cast", info.id));
        let (info, max, sandbox_id) = (info.clone(), self.max_bytes, sandbox_id.to_string());
        tokio::spawn(async move {
            match record(&agent, &path, &info, max).await {
                Ok(bytes) => tracing::info!(%sandbox_id, terminal_id = %info.id, bytes, "terminal recording ended"),
                Err(e) => tracing::warn!(%sandbox_id, terminal_id = %info.id, error = %e, "terminal recording failed"),
            }
        });
    }

    /// The recordings of a sandbox, oldest first.
    pub async fn list(&self, sandbox_id: &str) -> std::io::Result<Vec<RecordingInfo>> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(self.dir.join(sandbox_id)).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let Some(terminal_id) = name.to_str().and_then(|n| n.strip_suffix(".cast")) else { continue };
            let meta = entry.metadata().await?;
            let modified_at = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            out.push(RecordingInfo { terminal_id: terminal_id.to_string(), size: meta.len(), modified_at });
        }
        out.sort_by(|a, b| (a.modified_at, &a.terminal_id).cmp(&(b.modified_at, &b.terminal_id)));
        Ok(out)
    }

    /// Removes recordings last written before `before`, and sandbox directories left empty;
    /// returns how many recordings went.
    pub async fn purge(&self, before: SystemTime) -> std::io::Result<u64> {
        let mut removed = 0;
        let mut sandboxes = match tokio::fs::read_dir(&self.dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        while let Some(sb) = sandboxes.next_entry().await? {
            let mut files = tokio::fs::read_dir(sb.path()).await?;
            let mut kept = 0;
            while let Some(f) = files.next_entry().await? {
                if f.metadata().await?.modified()? < before {
                    tokio::fs::remove_file(f.path()).await?;
                    removed += 1;
                } else {
                    kept += 1;
                }
            }
            if kept == 0 {
                let _ = tokio::fs::remove_dir(sb.path()).await;
            }
        }
        Ok(removed)
    }

    /// The file of one recording, if it exists.
    pub fn path(&self, sandbox_id: &str, terminal_id: &str) -> Option<PathBuf> {
        path_segment(sandbox_id).ok()?;
        path_segment(terminal_id).ok()?;
        let p = self.dir.join(sandbox_id).join(format!("{terminal_id}.cast"));
        p.is_file().then_some(p)
    }
}

impl Sandboxes {
    /// Whether the sandbox's terminals are recorded.
    pub(crate) fn records_terminals(&self, row: &podgate_store::SandboxRow) -> bool {
        row.spec.record_terminals
    }

    /// Removes recordings older than `retention`; returns how many.
    pub async fn purge_recordings(&self, retention: std::time::Duration) -> Result<u64> {
        let before = SystemTime::now() - retention;
        self.recordings.purge(before).await.map_err(|e| Error::Internal(format!("purging recordings: {e}")))
    }

    /// The terminal recordings of the caller's sandbox (live by id or name, or deleted by id).
    pub async fn recordings(&self, caller: &Caller, id_or_name: &str) -> Result<Vec<RecordingInfo>> {
        let row = self.resolve_any(caller, id_or_name).await?;
        self.recordings.list(&row.id).await.map_err(|e| Error::Internal(format!("listing recordings: {e}")))
    }

    /// The file of one terminal recording of the caller's sandbox.
    pub async fn recording(&self, caller: &Caller, id_or_name: &str, terminal: &str) -> Result<PathBuf> {
        let row = self.resolve_any(caller, id_or_name).await?;
        self.recordings
            .path(&row.id, terminal)
            .ok_or_else(|| Error::NotFound(format!("no recording of terminal {terminal:?} in sandbox {}", row.id)))
    }
}

/// Attaches to the terminal and writes the recording until the terminal ends or the size limit
/// is reached; returns the bytes written.
async fn record(agent: &AgentClient, path: &Path, info: &TerminalInfo, max_bytes: u64) -> Result<u64, String> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let attach = format!("/v1/terminals/{}/attach?read_only=true&recorder=true", info.id);
    let (_, io) = agent.upgrade(&attach, &key, Some(SUBPROTOCOL)).await.map_err(|e| e.to_string())?;
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Client, None).await;

    let dir = path.parent().ok_or("recording path has no directory")?;
    tokio::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).await.map_err(|e| e.to_string())?;
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let started = Instant::now();
    let header = serde_json::json!({
        "version": 2,
        "width": info.cols,
        "height": info.rows,
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "title": format!("terminal {}", info.id),
        "env": { "TERM": "xterm-256color" },
    });
    let mut cast = CastFile { file, written: 0 };
    cast.line(header.to_string()).await?;
    let event = |kind: &str, data: &str| {
        let at = started.elapsed().as_micros() as f64 / 1e6;
        serde_json::json!([at, kind, data]).to_string()
    };
    let mut text = Utf8Stream::default();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Binary(b)) => {
                let out = text.push(&b);
                if out.is_empty() {
                    continue;
                }
                let line = event("o", &out);
                // Room is kept for the closing marker, so the file never passes the limit.
                let marker = event("m", "recording stopped: size limit reached");
                if cast.written + line.len() as u64 + marker.len() as u64 + 2 > max_bytes {
                    cast.line(marker).await?;
                    break;
                }
                cast.line(line).await?;
            }
            Ok(Message::Text(t)) => {
                if let Ok(Control::Exit { code }) = serde_json::from_str(&t) {
                    cast.line(event("m", &format!("exit {code}"))).await?;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(cast.written)
}

/// An asciicast file being written, one flushed line at a time (readable while it grows).
struct CastFile {
    file: tokio::fs::File,
    written: u64,
}

impl CastFile {
    async fn line(&mut self, line: String) -> Result<(), String> {
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        self.file.write_all(&bytes).await.map_err(|e| e.to_string())?;
        self.file.flush().await.map_err(|e| e.to_string())?;
        self.written += bytes.len() as u64;
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
    use super::{Recordings, Utf8Stream};
    use std::time::{Duration, SystemTime};

    #[tokio::test]
    async fn purge_removes_old_recordings_only() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recordings::new(dir.path().to_path_buf(), 1 << 20);
        for (sb, t, age_days) in [("sb-a", "t-old", 40), ("sb-a", "t-new", 1), ("sb-b", "t-old", 40)] {
            std::fs::create_dir_all(dir.path().join(sb)).unwrap();
            let f = std::fs::File::create(dir.path().join(sb).join(format!("{t}.cast"))).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(age_days * 86400)).unwrap();
        }
        let month_ago = SystemTime::now() - Duration::from_secs(30 * 86400);
        assert_eq!(r.purge(month_ago).await.unwrap(), 2);
        assert_eq!(r.list("sb-a").await.unwrap().iter().map(|x| x.terminal_id.as_str()).collect::<Vec<_>>(), ["t-new"]);
        assert!(!dir.path().join("sb-b").exists(), "an emptied sandbox directory goes too");
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
