//! `podgate cp SRC DST`: copies files and directories between this machine and a sandbox
//! (`NAME:PATH` names the sandbox side), streamed, keeping permission bits; directories travel
//! as one tar stream, extracted without ever writing outside the target (on either side).

use std::io::IsTerminal as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context as _, bail};
use podgate_client::Counter;
use podgate_types::files::FileKind;

use super::Conn;

/// `podgate cp`.
#[derive(clap::Args, Debug)]
pub struct CpArgs {
    #[command(flatten)]
    conn: Conn,
    /// Source: a local path or NAME:PATH.
    src: String,
    /// Destination: a local path or NAME:PATH.
    dst: String,
}

/// `NAME:PATH` → (name, path); local paths (containing '/' before any ':', or no ':') → None.
fn remote(spec: &str) -> Option<(&str, &str)> {
    let (name, path) = spec.split_once(':')?;
    (!name.is_empty() && !name.contains('/') && !path.is_empty()).then_some((name, path))
}

fn join_remote(base: &str, rel: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), rel)
}

/// Files at least this large get a progress bar (directories always do); only on a terminal.
const PROGRESS_FROM: u64 = 8 << 20;

/// A progress bar on stderr fed from a byte counter, shown only when stderr is a terminal.
pub(crate) struct Progress {
    counter: Counter,
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(total: Option<u64>) -> Progress {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        let counter = Counter::default();
        let (c, b) = (counter.clone(), bar.clone());
        let ticker = tokio::spawn(async move {
            loop {
                b.set_position(c.load(Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Progress { counter, bar, ticker }
    }

    pub(crate) fn counter(&self) -> Option<Counter> {
        Some(self.counter.clone())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

fn progress_for(size: Option<u64>) -> Option<Progress> {
    let large = size.is_none_or(|s| s >= PROGRESS_FROM);
    (large && std::io::stderr().is_terminal()).then(|| Progress::start(size))
}

/// `podgate cp`.
pub async fn cp(a: CpArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match (remote(&a.src), remote(&a.dst)) {
        (Some(_), Some(_)) => bail!("copy between two sandboxes is not supported: copy through this machine"),
        (None, None) => bail!("one of SRC and DST must be NAME:PATH"),
        (None, Some((name, path))) => {
            let src = PathBuf::from(&a.src);
            let md = std::fs::metadata(&src).with_context(|| format!("cannot read {}", src.display()))?;
            if md.is_dir() {
                let progress = progress_for(None);
                let done = client.upload_dir(name, &src, path, progress.as_ref().and_then(Progress::counter)).await?;
                drop(progress);
                eprintln!("copied {} files ({} bytes) to {name}:{path}", done.files, done.bytes);
            } else {
                let target = if path.ends_with('/') {
                    join_remote(path, &src.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned()))
                } else {
                    path.to_string()
                };
                let progress = progress_for(Some(md.len()));
                let mode = Some(md.permissions().mode() & 0o7777);
                let info =
                    client.upload(name, &target, &src, mode, progress.as_ref().and_then(Progress::counter)).await?;
                drop(progress);
                eprintln!("copied {} bytes to {name}:{}", info.size, info.path);
            }
        }
        (Some((name, path)), None) => {
            let dst = PathBuf::from(&a.dst);
            let info = client.stat(name, path).await?;
            match info.kind {
                FileKind::File => {
                    let target = if dst.is_dir() { dst.join(&info.name) } else { dst };
                    let progress = progress_for(Some(info.size));
                    let (n, mode) =
                        client.download(name, path, &target, progress.as_ref().and_then(Progress::counter)).await?;
                    drop(progress);
                    if let Some(m) = mode {
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m))?;
                    }
                    eprintln!("copied {n} bytes to {}", target.display());
                }
                FileKind::Dir => {
                    let root = if dst.is_dir() { dst.join(&info.name) } else { dst };
                    let progress = progress_for(None);
                    let done = client
                        .download_dir(name, &info.path, &root, progress.as_ref().and_then(Progress::counter))
                        .await?;
                    drop(progress);
                    eprintln!("copied {} files ({} bytes) to {}", done.files, done.bytes, root.display());
                }
                other => bail!("{name}:{path} is a {other:?}, not a file or directory"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remote_specs() {
        assert_eq!(remote("box:/tmp/x"), Some(("box", "/tmp/x")));
        assert_eq!(remote("box:~/x"), Some(("box", "~/x")));
        assert_eq!(remote("./a:b"), None);
        assert_eq!(remote("/abs/path"), None);
        assert_eq!(remote("box:"), None);
    }
}
