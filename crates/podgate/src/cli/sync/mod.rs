//! `podgate sync LOCAL_DIR NAME:PATH`: a two-way reconcile of a local directory and a directory
//! in a sandbox, then both sides are watched (inotify here, the agent's watch there) and changes
//! propagate until interrupted. `.gitignore` (at the local root) and `--exclude` patterns apply
//! to both sides. The conflict rule is in [`plan`]: the newer version wins and the other is kept
//! as `NAME.sync-conflict`. Symlinks and special files are not synced. Executable
//! configuration ([`guard`]: git's config and hooks, `.envrc`, …) is never brought down from
//! the sandbox unless `--allow-download` names it.

mod guard;
mod plan;
mod tree;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use notify_debouncer_full::notify::RecursiveMode;
use podgate_client::{Client, Message};
use podgate_types::api::ExecRequest;
use podgate_types::files::{WatchEvent, WatchKind};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use self::plan::{Action, Kind, Meta, Side, Synced, decide};
use self::tree::{Ignore, local_meta, relative, remote_meta, scan_local, scan_remote};
use super::Conn;

/// Changes are gathered this long before they are applied.
const SETTLE: Duration = Duration::from_millis(300);
/// Prefix of our temporary download files (never synced).
const TMP_PREFIX: &str = ".podgate-sync-";

/// `podgate sync`.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    conn: Conn,
    /// Local directory.
    local: PathBuf,
    /// NAME:PATH of the directory in the sandbox (created if missing).
    remote: String,
    /// Ignore paths matching this gitignore-style pattern (repeatable), on both sides.
    #[arg(long)]
    exclude: Vec<String>,
    /// Reconcile once and exit instead of watching.
    #[arg(long)]
    once: bool,
    /// Also bring this executable configuration down from the sandbox (repeatable; a path
    /// relative to the synced folder, or a folder above it), e.g. `.git`. Without it, what is
    /// in or named `.git`, bare repositories' config and hooks, `.envrc` and `.vscode` tasks and
    /// settings written in the sandbox never reach this machine.
    #[arg(long = "allow-download", value_name = "PATH")]
    allow_download: Vec<String>,
}

/// What a watcher reports: a changed path (relative), or "rescan everything".
enum Change {
    Path(String),
    Rescan,
}

fn is_temp(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with(TMP_PREFIX) || name.contains(".podgate-upload-")
}

struct Engine {
    client: Client,
    sandbox: String,
    local_root: PathBuf,
    remote_root: String,
    ignore: Ignore,
    base: HashMap<String, Synced>,
    /// Paths handled in the current batch (with everything below them): states read before
    /// they were handled are stale and must not be acted on again.
    touched: BTreeSet<String>,
    /// Executable configuration the user asked to bring down (`--allow-download`).
    allow_download: Vec<String>,
}

impl Engine {
    fn is_touched(&self, rel: &str) -> bool {
        let mut p = rel;
        loop {
            if self.touched.contains(p) {
                return true;
            }
            match p.rsplit_once('/') {
                Some((parent, _)) => p = parent,
                None => return false,
            }
        }
    }

    fn local_path(&self, rel: &str) -> PathBuf {
        self.local_root.join(rel)
    }

    fn remote_path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote_root.trim_end_matches('/'))
    }

    async fn remote_meta(&self, rel: &str) -> anyhow::Result<Option<Meta>> {
        match self.client.stat(&self.sandbox, &self.remote_path(rel)).await {
            Ok(info) => Ok(remote_meta(&info)),
            Err(e) if podgate_client::is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Which of `rels` have the same bytes on both sides (sha256 here and with `sha256sum` there).
    async fn same_content(&self, rels: &[String]) -> anyhow::Result<BTreeSet<String>> {
        let mut same = BTreeSet::new();
        for chunk in rels.chunks(200) {
            let mut argv = vec!["sha256sum".to_string(), "--".to_string()];
            argv.extend(chunk.iter().cloned());
            let req = ExecRequest { argv, cwd: Some(self.remote_root.clone()), ..Default::default() };
            let out = self.client.exec(&self.sandbox, &req).await?;
            let text = String::from_utf8_lossy(&out.stdout.0).into_owned();
            let remote: HashMap<&str, &str> =
                text.lines().filter_map(|l| l.split_once("  ").map(|(h, p)| (p, h))).collect();
            for rel in chunk {
                // Streamed through the hasher: a large file is never held in memory.
                let mut hasher = Sha256::new();
                let Ok(mut file) = std::fs::File::open(self.local_path(rel)) else { continue };
                if std::io::copy(&mut file, &mut hasher).is_err() {
                    continue;
                }
                let local: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
                if remote.get(rel.as_str()) == Some(&local.as_str()) {
                    same.insert(rel.clone());
                }
            }
        }
        Ok(same)
    }

    /// Reconciles everything: the first sync, and after a watcher lost events.
    async fn full_pass(&mut self) -> anyhow::Result<()> {
        let local = scan_local(&self.local_root, &self.ignore)?;
        let remote = scan_remote(&self.client, &self.sandbox, &self.remote_root, &self.ignore).await?;
        let mut paths: BTreeSet<String> = local.keys().chain(remote.keys()).cloned().collect();
        paths.extend(self.base.keys().cloned());
        paths.retain(|p| !is_temp(p));
        let states: Vec<(String, Option<Meta>, Option<Meta>)> =
            paths.into_iter().map(|p| (p.clone(), local.get(&p).copied(), remote.get(&p).copied())).collect();
        self.apply_all(states).await
    }

    /// Reconciles the given paths (from watcher events).
    async fn paths(&mut self, rels: BTreeSet<String>) -> anyhow::Result<()> {
        let mut states = Vec::new();
        for rel in rels {
            if is_temp(&rel) {
                continue;
            }
            let local = local_meta(&self.local_path(&rel));
            let remote = self.remote_meta(&rel).await?;
            states.push((rel, local, remote));
        }
        self.apply_all(states).await
    }

    async fn apply_all(&mut self, mut states: Vec<(String, Option<Meta>, Option<Meta>)>) -> anyhow::Result<()> {
        states.retain(|(rel, l, r)| {
            let is_dir = l.or(*r).is_some_and(|m| m.kind == Kind::Dir);
            !self.ignore.ignored(rel, is_dir)
        });
        // Content is compared only where it decides: files on both sides, same size, changed.
        let candidates: Vec<String> = states
            .iter()
            .filter(|(rel, l, r)| match (l, r) {
                (Some(l), Some(r)) => {
                    l.kind == Kind::File && r.kind == Kind::File && l.size == r.size && {
                        let b = self.base.get(rel);
                        b.is_none_or(|b| b.local != *l && b.remote != *r)
                    }
                }
                _ => false,
            })
            .map(|(rel, _, _)| rel.clone())
            .collect();
        let same = if candidates.is_empty() { BTreeSet::new() } else { self.same_content(&candidates).await? };
        let mut deletes = Vec::new();
        for (rel, l, r) in states {
            if self.is_touched(&rel) {
                continue;
            }
            let action = decide(self.base.get(&rel).copied(), l, r, || same.contains(&rel));
            match action {
                Action::DeleteLocal | Action::DeleteRemote => deletes.push((rel, action)),
                _ => self.apply(&rel, action, l, r).await?,
            }
        }
        // Children before their directories.
        for (rel, action) in deletes.into_iter().rev() {
            if !self.is_touched(&rel) {
                self.apply(&rel, action, None, None).await?;
            }
        }
        Ok(())
    }

    fn forget_below(&mut self, rel: &str) {
        let prefix = format!("{rel}/");
        self.base.retain(|k, _| k != rel && !k.starts_with(&prefix));
    }

    async fn apply(&mut self, rel: &str, action: Action, l: Option<Meta>, r: Option<Meta>) -> anyhow::Result<()> {
        self.act(rel, action, l, r).await?;
        // Marked after acting, so that acting on a directory can still reach what is below it.
        if !matches!(action, Action::Nothing | Action::Record | Action::Forget) {
            self.touched.insert(rel.to_string());
        }
        Ok(())
    }

    /// Whether acting on `rel` would let the sandbox write executable configuration here.
    async fn guarded(&self, rel: &str, action: Action) -> bool {
        let writes_here = matches!(action, Action::Download | Action::DeleteLocal | Action::Conflict(Side::Remote));
        writes_here
            && !guard::asked_for(rel, &self.allow_download)
            && guard::executable_config(rel, async |dir: &str| {
                self.client.stat(&self.sandbox, &self.remote_path(&format!("{dir}/HEAD"))).await.is_ok()
            })
            .await
    }

    async fn act(&mut self, rel: &str, action: Action, l: Option<Meta>, r: Option<Meta>) -> anyhow::Result<()> {
        if self.guarded(rel, action).await {
            println!("skipped  {rel}: executable configuration is not taken from the sandbox (--allow-download {rel})");
            return Ok(());
        }
        match action {
            Action::Nothing => {}
            Action::Record => {
                if let (Some(local), Some(remote)) = (l, r) {
                    self.base.insert(rel.to_string(), Synced { local, remote });
                }
            }
            Action::Forget => self.forget_below(rel),
            Action::Upload => {
                println!("upload   {rel}");
                Box::pin(self.upload(rel)).await?;
            }
            Action::Download => {
                println!("download {rel}");
                Box::pin(self.download(rel)).await?;
            }
            Action::DeleteRemote => {
                if self.remote_meta(rel).await?.is_some() {
                    println!("delete   {rel} (in the sandbox)");
                    self.client.remove_file(&self.sandbox, &self.remote_path(rel), true).await?;
                }
                self.forget_below(rel);
            }
            Action::DeleteLocal => {
                let p = self.local_path(rel);
                match local_meta(&p).map(|m| m.kind) {
                    Some(Kind::Dir) => std::fs::remove_dir_all(&p)?,
                    Some(Kind::File) => std::fs::remove_file(&p)?,
                    None => {}
                }
                println!("delete   {rel} (here)");
                self.forget_below(rel);
            }
            Action::Conflict(winner) => {
                let aside = plan::conflict_name(rel);
                match winner {
                    Side::Local => {
                        self.client.move_file(&self.sandbox, &self.remote_path(rel), &self.remote_path(&aside)).await?;
                        println!("conflict {rel}: kept the newer local version; the sandbox's is now {aside}");
                        self.upload(rel).await?;
                    }
                    Side::Remote => {
                        std::fs::rename(self.local_path(rel), self.local_path(&aside))?;
                        println!("conflict {rel}: kept the newer sandbox version; the local one is now {aside}");
                        self.download(rel).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn upload(&mut self, rel: &str) -> anyhow::Result<()> {
        let path = self.local_path(rel);
        let Some(local) = local_meta(&path) else { return Ok(()) };
        let info = if local.kind == Kind::Dir {
            self.client.mkdir(&self.sandbox, &self.remote_path(rel)).await?
        } else {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o7777;
            self.client.upload(&self.sandbox, &self.remote_path(rel), &path, Some(mode), None).await?
        };
        // The file may have changed again while it was sent: record what is there now, so the
        // next event for it compares against this.
        if let (Some(local), Some(remote)) = (local_meta(&path), remote_meta(&info)) {
            self.base.insert(rel.to_string(), Synced { local, remote });
        }
        if local.kind == Kind::Dir {
            // Files made in a new directory before its watch existed.
            let sub = scan_local(&path, &self.ignore)?;
            let rels: BTreeSet<String> = sub.keys().map(|k| format!("{rel}/{k}")).collect();
            Box::pin(self.paths(rels)).await?;
        }
        Ok(())
    }

    async fn download(&mut self, rel: &str) -> anyhow::Result<()> {
        let Some(remote) = self.remote_meta(rel).await? else { return Ok(()) };
        let path = self.local_path(rel);
        if remote.kind == Kind::Dir {
            std::fs::create_dir_all(&path)?;
        } else {
            let parent = path.parent().context("no parent")?;
            std::fs::create_dir_all(parent)?;
            let tmp = parent.join(format!("{TMP_PREFIX}{}", std::process::id()));
            let (_, mode) = self.client.download(&self.sandbox, &self.remote_path(rel), &tmp, None).await?;
            if let Some(m) = mode {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
            }
            std::fs::rename(&tmp, &path)?;
        }
        if let Some(local) = local_meta(&path) {
            self.base.insert(rel.to_string(), Synced { local, remote });
        }
        if remote.kind == Kind::Dir {
            let sub = scan_remote(&self.client, &self.sandbox, &self.remote_path(rel), &self.ignore).await?;
            let rels: BTreeSet<String> = sub.keys().map(|k| format!("{rel}/{k}")).collect();
            Box::pin(self.paths(rels)).await?;
        }
        Ok(())
    }
}

/// Watches the local tree; sends relative paths.
fn watch_local(
    root: &Path,
    tx: mpsc::UnboundedSender<Change>,
) -> anyhow::Result<
    notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
> {
    let base = root.to_path_buf();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(100),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| match res {
            Ok(events) => {
                for ev in events {
                    if ev.need_rescan() {
                        let _ = tx.send(Change::Rescan);
                    }
                    for p in &ev.paths {
                        if let Some(rel) = p.strip_prefix(&base).ok().and_then(|r| r.to_str()).filter(|r| !r.is_empty())
                        {
                            let _ = tx.send(Change::Path(rel.to_string()));
                        }
                    }
                }
            }
            Err(_) => {
                let _ = tx.send(Change::Rescan);
            }
        },
    )?;
    debouncer.watch(root, RecursiveMode::Recursive)?;
    Ok(debouncer)
}

/// Follows the sandbox's watch (reconnecting, with a rescan after each gap); sends relative paths.
async fn watch_remote(client: Client, sandbox: String, root: String, tx: mpsc::UnboundedSender<Change>) {
    let mut first = true;
    loop {
        match client.watch_dir(&sandbox, &root, true).await {
            Ok(mut ws) => {
                if !first {
                    let _ = tx.send(Change::Rescan);
                }
                first = false;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    let Ok(ev) = serde_json::from_str::<WatchEvent>(&t) else { continue };
                    if ev.kind == WatchKind::Overflow {
                        let _ = tx.send(Change::Rescan);
                    }
                    for p in std::iter::once(&ev.path).chain(ev.to.as_ref()) {
                        if let Some(rel) = relative(&root, p) {
                            let _ = tx.send(Change::Path(rel));
                        }
                    }
                }
                eprintln!("podgate: the sandbox's watch closed; reconnecting");
            }
            Err(e) if podgate_client::is_not_found(&e) => {
                eprintln!("podgate: {e}");
                return;
            }
            Err(e) => eprintln!("podgate: watching the sandbox: {e}; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `podgate sync`.
pub async fn sync(a: SyncArgs) -> anyhow::Result<()> {
    let Some((sandbox, path)) =
        a.remote.split_once(':').filter(|(n, p)| !n.is_empty() && !n.contains('/') && !p.is_empty())
    else {
        bail!("the second argument must be NAME:PATH");
    };
    let client = a.conn.client()?;
    let local_root =
        std::fs::canonicalize(&a.local).with_context(|| format!("{} must be a directory", a.local.display()))?;
    if !local_root.is_dir() {
        bail!("{} is not a directory", local_root.display());
    }
    let remote_root = client.mkdir(sandbox, path).await?.path;
    let ignore = Ignore::new(&local_root, &a.exclude)?;
    let mut engine = Engine {
        client: client.clone(),
        sandbox: sandbox.to_string(),
        local_root: local_root.clone(),
        remote_root: remote_root.clone(),
        ignore,
        base: HashMap::new(),
        touched: BTreeSet::new(),
        allow_download: a.allow_download.clone(),
    };
    // Watch before the first pass, so nothing that changes during it is missed.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _local_watch = if a.once { None } else { Some(watch_local(&local_root, tx.clone())?) };
    let remote_watch =
        (!a.once).then(|| tokio::spawn(watch_remote(client, sandbox.to_string(), remote_root.clone(), tx)));
    engine.full_pass().await?;
    println!("in sync: {} <-> {sandbox}:{remote_root} ({} paths)", local_root.display(), engine.base.len());
    if a.once {
        return Ok(());
    }
    // One SIGINT listener from here on: a Ctrl-C during a pass is kept for the next wait (a
    // listener made per wait would miss it). Before this, Ctrl-C ends the process as usual.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    println!("watching both sides; Ctrl-C to stop");
    let result = loop {
        let first = tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            c = rx.recv() => c,
        };
        let Some(first) = first else { break Ok(()) };
        // Let a burst settle, then take everything that came.
        tokio::time::sleep(SETTLE).await;
        let mut rescan = false;
        let mut dirty = BTreeSet::new();
        for change in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match change {
                Change::Rescan => rescan = true,
                Change::Path(p) => {
                    dirty.insert(p);
                }
            }
        }
        engine.touched.clear();
        let done = if rescan { engine.full_pass().await } else { engine.paths(dirty).await };
        if let Err(e) = done {
            // A path that changed again mid-transfer is picked up by its next event.
            eprintln!("podgate: {e:#}");
        }
    };
    if let Some(t) = remote_watch {
        t.abort();
    }
    result
}
