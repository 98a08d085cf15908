//! Both sides of a sync as maps from relative path to [`Meta`]: the local tree (walked) and the
//! sandbox's (listed through the file API), with the same ignore rules applied to both.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use podgate_client::Client;
use podgate_types::files::{FileInfo, FileKind};

use super::plan::{Kind, Meta};

/// Relative path (with `/`) → state.
pub type Tree = BTreeMap<String, Meta>;

/// The ignore rules: the local root's `.gitignore` and the `--exclude` patterns (gitignore
/// syntax), matched against paths relative to the synced roots.
pub struct Ignore(Gitignore);

impl Ignore {
    pub fn new(root: &Path, excludes: &[String]) -> anyhow::Result<Ignore> {
        let mut b = GitignoreBuilder::new(root);
        let gi = root.join(".gitignore");
        if gi.is_file()
            && let Some(e) = b.add(&gi)
        {
            return Err(e).context("reading .gitignore");
        }
        for pattern in excludes {
            b.add_line(None, pattern).with_context(|| format!("bad --exclude pattern {pattern:?}"))?;
        }
        Ok(Ignore(b.build()?))
    }

    /// Whether `rel` (or a directory above it) is ignored.
    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        self.0.matched_path_or_any_parents(rel, is_dir).is_ignore()
    }
}

/// A local path's state (symlinks and special files are not synced).
pub fn local_meta(path: &Path) -> Option<Meta> {
    let md = std::fs::symlink_metadata(path).ok()?;
    let kind = if md.is_dir() {
        Kind::Dir
    } else if md.is_file() {
        Kind::File
    } else {
        return None;
    };
    Some(Meta {
        kind,
        size: if md.is_dir() { 0 } else { md.len() },
        mtime_ms: md.mtime() * 1000 + md.mtime_nsec() / 1_000_000,
    })
}

/// A sandbox path's state from the file API.
pub fn remote_meta(info: &FileInfo) -> Option<Meta> {
    let kind = match info.kind {
        FileKind::Dir => Kind::Dir,
        FileKind::File => Kind::File,
        _ => return None,
    };
    Some(Meta { kind, size: if kind == Kind::Dir { 0 } else { info.size }, mtime_ms: info.modified_ms })
}

/// Walks the local tree.
pub fn scan_local(root: &Path, ignore: &Ignore) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            let Some(key) = child.to_str().map(str::to_string) else { continue };
            let Some(meta) = local_meta(&entry.path()) else { continue };
            if ignore.ignored(&key, meta.kind == Kind::Dir) {
                continue;
            }
            if meta.kind == Kind::Dir {
                stack.push(child);
            }
            tree.insert(key, meta);
        }
    }
    Ok(tree)
}

/// Lists the sandbox's tree below `root` (an absolute path), ten levels per request.
pub async fn scan_remote(client: &Client, sandbox: &str, root: &str, ignore: &Ignore) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    let mut pending = vec![(root.to_string(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        for info in client.list_files(sandbox, &dir, 10).await? {
            let Some(rel) = relative(root, &info.path) else { continue };
            let Some(meta) = remote_meta(&info) else { continue };
            if ignore.ignored(&rel, meta.kind == Kind::Dir) {
                continue;
            }
            // Entries ten levels below `dir` were not descended into: list them next.
            let level = rel.matches('/').count() + 1 - depth;
            if meta.kind == Kind::Dir && level == 10 {
                pending.push((info.path.clone(), depth + 10));
            }
            tree.insert(rel, meta);
        }
    }
    Ok(tree)
}

/// `path` relative to `root` (both absolute, `/`-separated), or `None` outside it.
pub fn relative(root: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(root.trim_end_matches('/'))?.strip_prefix('/')?;
    (!rest.is_empty()).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/w", "/w/a/b").as_deref(), Some("a/b"));
        assert_eq!(relative("/w/", "/w/a").as_deref(), Some("a"));
        assert_eq!(relative("/w", "/w"), None);
        assert_eq!(relative("/w", "/wx/a"), None);
    }

    #[test]
    fn ignores_gitignore_and_excludes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".gitignore"), "target/\n*.log\n").unwrap();
        let ig = Ignore::new(d.path(), &["node_modules".into()]).unwrap();
        assert!(ig.ignored("target", true));
        assert!(ig.ignored("target/debug/x", false));
        assert!(ig.ignored("a/b.log", false));
        assert!(ig.ignored("web/node_modules/x.js", false));
        assert!(!ig.ignored("src/main.rs", false));
        assert!(!ig.ignored(".gitignore", false));
    }
}
