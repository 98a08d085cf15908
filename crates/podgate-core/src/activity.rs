//! User activity of sandboxes, for idle shutdown. Every byte between a user and a sandbox's agent
//! (terminals, SSH, exec, files, ports, process streams) marks the sandbox active; the server's
//! own health checks do not. Marks are kept in memory (what this replica saw last) and written
//! to the database at most every [`PERSIST_EVERY_MS`] per sandbox, so the sweep on any replica
//! sees activity seen on every replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use podgate_store::Store;

use crate::clock::now_ms;

/// How often one sandbox's activity is written to the database at most.
pub const PERSIST_EVERY_MS: i64 = 10_000;

/// Marks at most this often per connection (bytes flow in many small reads).
const MARK_EVERY_MS: i64 = 1_000;

/// Activity seen by this replica.
#[derive(Clone)]
pub struct Activity {
    store: Store,
    /// Per sandbox: when activity was last seen, and when it was last written.
    seen: Arc<Mutex<HashMap<String, (i64, i64)>>>,
    /// Sandboxes a user sent input to after a quiet second: each may have been paused for
    /// idleness meanwhile, and is resumed if so ([`crate::lifecycle::Lifecycle::run_waker`]).
    wake: tokio::sync::mpsc::UnboundedSender<Arc<str>>,
    wakes: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Arc<str>>>>>,
}

impl Activity {
    pub fn new(store: Store) -> Activity {
        let (wake, wakes) = tokio::sync::mpsc::unbounded_channel();
        Activity { store, seen: Default::default(), wake, wakes: Arc::new(Mutex::new(Some(wakes))) }
    }

    /// Marks sandbox `id` active now.
    pub fn touch(&self, id: &str) {
        let now = now_ms();
        let write = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let entry = seen.entry(id.to_string()).or_insert((now, i64::MIN));
            entry.0 = now;
            let due = now.saturating_sub(entry.1) >= PERSIST_EVERY_MS;
            if due {
                entry.1 = now;
            }
            due
        };
        if write {
            let (store, id) = (self.store.clone(), id.to_string());
            tokio::spawn(async move {
                if let Err(e) = store.set_last_active(&id, now).await {
                    tracing::warn!(sandbox_id = %id, error = %e, "recording sandbox activity failed");
                }
            });
        }
    }

    /// When this replica last saw activity on sandbox `id`.
    pub fn last_seen(&self, id: &str) -> Option<i64> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.0)
    }

    /// Forgets a deleted sandbox.
    pub fn forget(&self, id: &str) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// The sandboxes to wake, for the one task that resumes them (the first caller gets them).
    pub(crate) fn wakes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Arc<str>>> {
        self.wakes.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// A cheap handle that marks `id` active, at most once a second.
    pub fn marker(&self, id: &str) -> Marker {
        Marker { activity: self.clone(), id: id.into(), last: Arc::new(AtomicI64::new(i64::MIN)) }
    }
}

/// Marks one sandbox active (see [`Activity::marker`]).
#[derive(Clone)]
pub struct Marker {
    activity: Activity,
    id: Arc<str>,
    last: Arc<AtomicI64>,
}

impl Marker {
    /// Marks output from the sandbox (or any traffic) as activity.
    pub fn mark(&self) {
        self.mark_at(now_ms());
    }

    /// Marks input to the sandbox; the first input after a quiet second also asks for the
    /// sandbox to be resumed if it was paused for idleness meanwhile (its agent is frozen, so
    /// the input would wait in the socket, unanswered, until something resumed it).
    pub fn mark_input(&self) {
        if self.mark_at(now_ms()) {
            let _ = self.activity.wake.send(self.id.clone());
        }
    }

    /// Marks at `now` unless marked within the last second; returns whether it marked.
    fn mark_at(&self, now: i64) -> bool {
        if now.saturating_sub(self.last.load(Ordering::Relaxed)) < MARK_EVERY_MS {
            return false;
        }
        self.last.store(now, Ordering::Relaxed);
        self.activity.touch(&self.id);
        true
    }
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marker").field("sandbox", &self.id).finish()
    }
}
