//! Files: stat, list, streamed read and atomic streamed write, mkdir -p, move and remove, with
//! `~` and relative paths resolved against the sandbox user's home and workdir.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use futures_util::{Stream, StreamExt as _};
use podgate_types::files::{FileInfo, FileKind};
use tokio::io::AsyncWriteExt as _;

use crate::paths::Dirs;

/// Most entries a listing returns.
pub const MAX_ENTRIES: usize = 10_000;
/// Deepest listing.
pub const MAX_DEPTH: u32 = 10;

/// Why a file operation failed, with the HTTP status it maps to.
#[derive(Debug)]
pub enum FileError {
    NotFound(String),
    Invalid(String),
    Conflict(String),
    Denied(String),
    Io(String),
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> FileError {
    let msg = format!("{what} {}: {e}", path.display());
    match e.kind() {
        ErrorKind::NotFound => FileError::NotFound(msg),
        ErrorKind::PermissionDenied => FileError::Denied(msg),
        ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty => FileError::Conflict(msg),
        ErrorKind::IsADirectory | ErrorKind::NotADirectory | ErrorKind::InvalidInput | ErrorKind::CrossesDevices => {
            FileError::Invalid(msg)
        }
        _ => FileError::Io(msg),
    }
}

/// The absolute path for `p`; empty paths and NUL bytes are refused.
pub fn resolve(dirs: &Dirs, p: &str) -> Result<PathBuf, FileError> {
    if p.is_empty() || p.contains('\0') || p.len() > 4096 {
        return Err(FileError::Invalid(format!("invalid path {p:?}")));
    }
    Ok(dirs.resolve(p))
}

fn info(path: &Path, md: &std::fs::Metadata) -> FileInfo {
    let kind = if md.file_type().is_symlink() {
        FileKind::Symlink
    } else if md.is_dir() {
        FileKind::Dir
    } else if md.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    FileInfo {
        path: path.display().to_string(),
        name: path.file_name().map_or_else(|| "/".into(), |n| n.to_string_lossy().into_owned()),
        kind,
        size: md.len(),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        modified_ms: md.mtime() * 1000 + md.mtime_nsec() / 1_000_000,
        target: (kind == FileKind::Symlink)
            .then(|| std::fs::read_link(path).ok().map(|t| t.display().to_string()))
            .flatten(),
    }
}

/// Metadata of `path` (a symlink itself, not its target).
pub fn stat(path: &Path) -> Result<FileInfo, FileError> {
    let md = std::fs::symlink_metadata(path).map_err(|e| io_error("stat", path, e))?;
    Ok(info(path, &md))
}

/// Entries below `dir`, `depth` levels deep (1 = direct children), sorted by path. Symlinked
/// directories are listed but not descended into.
pub fn list(dir: &Path, depth: u32) -> Result<Vec<FileInfo>, FileError> {
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(FileError::Invalid(format!("depth must be 1 to {MAX_DEPTH}")));
    }
    let md = std::fs::metadata(dir).map_err(|e| io_error("list", dir, e))?;
    if !md.is_dir() {
        return Err(FileError::Invalid(format!("list {}: not a directory", dir.display())));
    }
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 1)];
    while let Some((d, level)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| io_error("list", &d, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
            if md.is_dir() && level < depth {
                stack.push((p.clone(), level + 1));
            }
            out.push(info(&p, &md));
            if out.len() > MAX_ENTRIES {
                return Err(FileError::Invalid(format!("more than {MAX_ENTRIES} entries: list less deep")));
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Most bytes read from a file of a kernel filesystem (`/proc`, `/sys`), whose size says nothing.
pub const MAX_PSEUDO_FILE: u64 = 4 << 20;
/// How long reading such a file may take (some never end, e.g. trace pipes).
const PSEUDO_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `file` lives on a kernel filesystem whose files report no meaningful size.
fn on_pseudo_fs(file: &tokio::fs::File) -> bool {
    use nix::sys::statfs::{
        CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, PROC_SUPER_MAGIC, SECURITYFS_MAGIC, SYSFS_MAGIC,
        TRACEFS_MAGIC,
    };
    nix::sys::statfs::fstatfs(file).is_ok_and(|fs| {
        [
            PROC_SUPER_MAGIC,
            SYSFS_MAGIC,
            CGROUP_SUPER_MAGIC,
            CGROUP2_SUPER_MAGIC,
            DEBUGFS_MAGIC,
            SECURITYFS_MAGIC,
            TRACEFS_MAGIC,
        ]
        .contains(&fs.filesystem_type())
    })
}

/// Opens a regular file for a streamed download; returns its size, mode and the body. A file
/// of `/proc` or `/sys` is read first (up to [`MAX_PSEUDO_FILE`]), so its real length is known.
pub async fn read(path: &Path) -> Result<(u64, u32, Body), FileError> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path).await.map_err(|e| io_error("read", path, e))?;
    let md = file.metadata().await.map_err(|e| io_error("read", path, e))?;
    if !md.is_file() {
        return Err(FileError::Invalid(format!("read {}: not a regular file", path.display())));
    }
    let mode = md.permissions().mode() & 0o7777;
    if on_pseudo_fs(&file) {
        let mut data = Vec::new();
        let mut limited = file.take(MAX_PSEUDO_FILE + 1);
        let reading = limited.read_to_end(&mut data);
        match tokio::time::timeout(PSEUDO_READ_TIMEOUT, reading).await {
            Ok(Ok(_)) if data.len() as u64 > MAX_PSEUDO_FILE => {
                return Err(FileError::Invalid(format!(
                    "read {}: a kernel file larger than {MAX_PSEUDO_FILE} bytes",
                    path.display()
                )));
            }
            Ok(Ok(_)) => return Ok((data.len() as u64, mode, Body::from(data))),
            Ok(Err(e)) => return Err(io_error("read", path, e)),
            Err(_) => {
                return Err(FileError::Invalid(format!(
                    "read {}: the kernel file gave no end within {PSEUDO_READ_TIMEOUT:?}",
                    path.display()
                )));
            }
        }
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Ok((md.len(), mode, Body::from_stream(stream)))
}

/// Writes a streamed body to `path` atomically (a temporary file in the same directory, renamed
/// over the target once complete). `mode` defaults to the existing file's, else 0644; `owner`
/// (uid, gid) is set before the rename.
pub async fn write<S, E>(
    path: &Path,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    parents: bool,
    mut body: S,
) -> Result<FileInfo, FileError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let parent = path.parent().ok_or_else(|| FileError::Invalid(format!("cannot write {}", path.display())))?;
    if parents {
        tokio::fs::create_dir_all(parent).await.map_err(|e| io_error("mkdir", parent, e))?;
    }
    if tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
        return Err(FileError::Invalid(format!("write {}: is a directory", path.display())));
    }
    let mode = match mode {
        Some(m) => m & 0o7777,
        None => tokio::fs::metadata(path).await.map_or(0o644, |m| m.permissions().mode() & 0o7777),
    };
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.podgate-upload-{}", crate::random::token(10)));
    let result = async {
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .await
            .map_err(|e| io_error("write", path, e))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FileError::Io(format!("upload of {} interrupted: {e}", path.display())))?;
            f.write_all(&chunk).await.map_err(|e| io_error("write", path, e))?;
        }
        f.flush().await.map_err(|e| io_error("write", path, e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(|e| io_error("chown", path, e))?;
        }
        // After chown, which clears set-id bits.
        f.set_permissions(std::fs::Permissions::from_mode(mode)).await.map_err(|e| io_error("chmod", path, e))?;
        drop(f);
        tokio::fs::rename(&tmp, path).await.map_err(|e| io_error("write", path, e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result?;
    stat(path)
}

/// `mkdir -p`.
pub fn mkdir(path: &Path) -> Result<FileInfo, FileError> {
    std::fs::create_dir_all(path).map_err(|e| io_error("mkdir", path, e))?;
    stat(path)
}

/// Renames `from` to `to` (the target's parent must exist).
pub fn rename(from: &Path, to: &Path) -> Result<FileInfo, FileError> {
    std::fs::symlink_metadata(from).map_err(|e| io_error("move", from, e))?;
    std::fs::rename(from, to).map_err(|e| io_error("move to", to, e))?;
    stat(to)
}

/// Removes a file, a symlink, an empty directory, or with `recursive` a whole tree.
pub fn remove(path: &Path, recursive: bool) -> Result<(), FileError> {
    let md = std::fs::symlink_metadata(path).map_err(|e| io_error("remove", path, e))?;
    let r = if md.is_dir() {
        if recursive { std::fs::remove_dir_all(path) } else { std::fs::remove_dir(path) }
    } else {
        std::fs::remove_file(path)
    };
    r.map_err(|e| io_error("remove", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_list_mkdir_move_remove() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        mkdir(&root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/f"), b"xyz").unwrap();
        std::os::unix::fs::symlink("b", root.join("a/link")).unwrap();
        let one = list(&root.join("a"), 1).unwrap();
        assert_eq!(one.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["b", "link"]);
        assert_eq!(one[1].kind, FileKind::Symlink);
        assert_eq!(one[1].target.as_deref(), Some("b"));
        let deep = list(&root.join("a"), 3).unwrap();
        assert!(deep.iter().any(|i| i.name == "f" && i.size == 3 && i.kind == FileKind::File));
        assert!(matches!(list(&root.join("a/b/c/f"), 1), Err(FileError::Invalid(_))));
        assert!(matches!(list(&root.join("nope"), 1), Err(FileError::NotFound(_))));
        rename(&root.join("a/b/c/f"), &root.join("a/g")).unwrap();
        assert_eq!(stat(&root.join("a/g")).unwrap().size, 3);
        assert!(matches!(remove(&root.join("a/b"), false), Err(FileError::Conflict(_))));
        remove(&root.join("a/b"), true).unwrap();
        assert!(matches!(stat(&root.join("a/b")), Err(FileError::NotFound(_))));
    }
}
