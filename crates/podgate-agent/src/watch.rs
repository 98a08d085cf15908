//! Directory watches: inotify (through `notify`, debounced and with renames paired) turned into
//! create/modify/delete/rename events, sent as JSON text frames over a WebSocket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use notify_debouncer_full::notify::event::{EventKind, ModifyKind, RenameMode};
use notify_debouncer_full::notify::{self, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, new_debouncer};
use podgate_types::files::{WatchEvent, WatchKind};
use tokio::sync::mpsc;

/// Events are gathered this long, so a burst of writes to one file is one event.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Events queued for a slow client before it is told to rescan instead.
const QUEUE: usize = 4096;

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// The events one notify event stands for.
fn translate(ev: &DebouncedEvent) -> Vec<WatchEvent> {
    let one = |kind, path: &PathBuf| WatchEvent { kind, path: shown(path), to: None };
    if ev.need_rescan() {
        return vec![WatchEvent { kind: WatchKind::Overflow, path: String::new(), to: None }];
    }
    match ev.kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            ev.paths.iter().map(|p| one(WatchKind::Create, p)).collect()
        }
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            ev.paths.iter().map(|p| one(WatchKind::Delete, p)).collect()
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if ev.paths.len() == 2 => {
            vec![WatchEvent { kind: WatchKind::Rename, path: shown(&ev.paths[0]), to: Some(shown(&ev.paths[1])) }]
        }
        EventKind::Modify(_) => ev.paths.iter().map(|p| one(WatchKind::Modify, p)).collect(),
        EventKind::Access(_) | EventKind::Any | EventKind::Other => Vec::new(),
    }
}

/// A live watch of one directory; dropping it stops watching.
pub struct Watch {
    _debouncer: notify_debouncer_full::Debouncer<notify::RecommendedWatcher, notify_debouncer_full::RecommendedCache>,
    events: mpsc::Receiver<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// Starts watching `dir` (and below it with `recursive`).
pub fn start(dir: &Path, recursive: bool) -> Result<Watch, String> {
    let md = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !md.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let (tx, events) = mpsc::channel(QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
        let list = match res {
            Ok(list) => list.iter().flat_map(translate).collect::<Vec<_>>(),
            Err(_) => vec![WatchEvent { kind: WatchKind::Overflow, path: String::new(), to: None }],
        };
        for ev in list {
            if tx.try_send(ev).is_err() {
                flag.store(true, Ordering::SeqCst);
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
    debouncer.watch(dir, mode).map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(Watch { _debouncer: debouncer, events, overflowed })
}

/// Sends the watch's events to the client until either side ends.
pub async fn serve(mut socket: WebSocket, mut watch: Watch) {
    loop {
        tokio::select! {
            ev = watch.events.recv() => {
                let Some(mut ev) = ev else { return };
                if watch.overflowed.swap(false, Ordering::SeqCst) {
                    ev = WatchEvent { kind: WatchKind::Overflow, path: String::new(), to: None };
                }
                let text = serde_json::to_string(&ev).unwrap_or_default();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
