//! Archives for podgate. Tar streams of directories: [`pack`] writes a tree (regular files, directories, symlinks as
//! links) and [`unpack`] extracts one while refusing every entry that could write outside the
//! target: absolute paths, `..` components, symlinks whose target leaves the tree, hard links to
//! outside, and device or fifo entries. Both sides of a copy use it, so neither the sandbox nor
//! the client trusts the other's archive.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

pub mod image;
pub mod zip;

/// What an unpack wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files, symlinks and links written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Why an unpack stopped. Entries before the failing one stay written (all inside the target).
#[derive(Debug)]
pub enum UnpackError {
    /// An entry that would escape the target or is not allowed; names the entry.
    Refused(String),
    /// Reading the stream or writing the files failed.
    Io(io::Error),
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackError::Refused(m) => write!(f, "{m}"),
            UnpackError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UnpackError {}

impl From<io::Error> for UnpackError {
    fn from(e: io::Error) -> Self {
        UnpackError::Io(e)
    }
}

/// `p` as a clean relative path (`.` components dropped), or `None` when it is absolute or has
/// a `..` component.
fn clean_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a symlink at `entry` (relative to the tree) pointing to `target` stays in the tree,
/// judged from the link's directory as given.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    link_from_dir_stays_inside(entry.parent().unwrap_or(Path::new("")), target)
}

/// Whether a symlink to `target` placed in `dir` (relative to the tree) stays in the tree.
fn link_from_dir_stays_inside(dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    for c in dir.components().chain(target.components()) {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Whether a symlink `entry` → `target` extracted into `dst` stays inside it, judged from where
/// the link really lands: a directory on the way may itself be a link (to somewhere inside), and
/// `..` in the target then counts from the real directory.
pub fn symlink_allowed(dst: &Path, entry: &Path, target: &Path) -> bool {
    if !link_stays_inside(entry, target) {
        return false;
    }
    let parent = entry.parent().unwrap_or(Path::new(""));
    match (fs::canonicalize(dst.join(parent)), fs::canonicalize(dst)) {
        (Ok(real_parent), Ok(real_dst)) => match real_parent.strip_prefix(&real_dst) {
            Ok(rel) => link_from_dir_stays_inside(rel, target),
            Err(_) => false,
        },
        // The parent does not exist yet: it will be created as a plain directory.
        _ => true,
    }
}

/// Extracts the tar stream `input` into `dst` (created if missing).
pub fn unpack<R: Read>(input: R, dst: &Path) -> Result<Unpacked, UnpackError> {
    fs::create_dir_all(dst)?;
    let mut archive = tar::Archive::new(input);
    archive.set_overwrite(true);
    archive.set_preserve_mtime(true);
    let mut done = Unpacked::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let shown = raw.display().to_string();
        let Some(rel) = clean_relative(&raw) else {
            return Err(UnpackError::Refused(format!("entry {shown:?} leaves the target directory")));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                if !symlink_allowed(dst, &rel, &target) {
                    return Err(UnpackError::Refused(format!(
                        "symlink {shown:?} -> {:?} points outside the target directory",
                        target.display().to_string()
                    )));
                }
            }
            tar::EntryType::Link => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                if clean_relative(&target).is_none_or(|t| t.as_os_str().is_empty()) {
                    return Err(UnpackError::Refused(format!(
                        "hard link {shown:?} -> {:?} points outside the target directory",
                        target.display().to_string()
                    )));
                }
            }
            // Long names and extended headers are read by the iterator itself.
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink | tar::EntryType::XHeader => continue,
            other => {
                return Err(UnpackError::Refused(format!("entry {shown:?} has type {other:?}, which is not allowed")));
            }
        }
        let size = entry.header().size().unwrap_or(0);
        // unpack_in also refuses to write through a symlinked parent that leads outside `dst`.
        if !entry.unpack_in(dst)? {
            return Err(UnpackError::Refused(format!("entry {shown:?} leaves the target directory")));
        }
        if kind != tar::EntryType::Directory {
            done.files += 1;
            done.bytes += if kind.is_file() { size } else { 0 };
        }
    }
    Ok(done)
}

/// Extracts a gzip-compressed tar stream (`.tar.gz`) into `dst`, with [`unpack`]'s refusals.
pub fn unpack_gz<R: Read>(input: R, dst: &Path) -> Result<Unpacked, UnpackError> {
    unpack(flate2::read::GzDecoder::new(input), dst)
}

/// Writes a tar stream of the tree at `dir` (entries relative to it) to `out`. Symlinks are
/// stored as links, never followed; sockets and other special files are skipped.
pub fn pack<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(dir.join(&rel))?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let child = rel.join(e.file_name());
            let ft = e.file_type()?;
            if ft.is_dir() {
                builder.append_dir(&child, e.path())?;
                stack.push(child);
            } else if ft.is_file() || ft.is_symlink() {
                builder.append_path_with_name(e.path(), &child)?;
            }
        }
    }
    builder.into_inner()
}

/// Sends written bytes into a channel, blocking while the reader is behind.
struct ChannelWriter(tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::other("the reader of the archive went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A tar stream of the tree at `dir`, packed on a blocking thread as the stream is read. A
/// failure ends the stream with an error (never silently short).
pub fn pack_stream(dir: PathBuf) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let out = io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
        if let Err(e) = pack(&dir, out).and_then(|mut w| w.flush()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Most bytes read after the end of an archive.
const TRAILER_LIMIT: u64 = 1 << 20;

/// Extracts a tar stream into `dst` on a blocking thread, with [`unpack`]'s refusals.
pub async fn unpack_stream<S>(stream: S, dst: PathBuf) -> Result<Unpacked, UnpackError>
where
    S: futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + Unpin + 'static,
{
    let mut reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    tokio::task::spawn_blocking(move || {
        let r = unpack(&mut reader, &dst);
        // Read what follows the end-of-archive marker (the second zero block, record padding):
        // answering before the body is consumed makes the sender see a broken connection.
        // Bounded, so that a sender cannot keep this thread busy with endless trailing bytes.
        if r.is_ok() {
            let _ = io::copy(&mut io::Read::take(&mut reader, TRAILER_LIMIT), &mut io::sink());
        }
        r
    })
    .await
    .map_err(|e| UnpackError::Io(io::Error::other(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &[u8], data: &[u8]) {
        let mut h = tar::Header::new_old();
        // Set the raw name so hostile paths are not cleaned up by the builder.
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_size(0);
        h.set_entry_type(kind);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }

    #[test]
    fn round_trip_keeps_files_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/data.bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
        fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(src.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/b/data.bin", src.path().join("link")).unwrap();
        let tar = pack(src.path(), Vec::new()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let n = unpack(&tar[..], &dst.path().join("out")).unwrap();
        assert_eq!(n, Unpacked { files: 3, bytes: 266 });
        let out = dst.path().join("out");
        assert_eq!(fs::read(out.join("a/b/data.bin")).unwrap(), (0..=255u8).collect::<Vec<_>>());
        assert_eq!(fs::metadata(out.join("run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read_link(out.join("link")).unwrap(), PathBuf::from("a/b/data.bin"));
    }

    #[test]
    fn hostile_entries_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", archive(|b| file(b, b"../evil", b"x"))),
            ("nested dotdot", archive(|b| file(b, b"a/../../evil", b"x"))),
            ("absolute", archive(|b| file(b, b"/tmp/evil", b"x"))),
            ("absolute symlink", archive(|b| link(b, tar::EntryType::Symlink, "l", "/etc"))),
            ("escaping symlink", archive(|b| link(b, tar::EntryType::Symlink, "a/l", "../../x"))),
            ("escaping hard link", archive(|b| link(b, tar::EntryType::Link, "h", "../outside"))),
            ("device", archive(|b| link(b, tar::EntryType::Char, "dev", ""))),
        ];
        for (what, tar) in cases {
            let dst = tempfile::tempdir().unwrap();
            let target = dst.path().join("t");
            match unpack(&tar[..], &target) {
                Err(UnpackError::Refused(m)) => eprintln!("{what}: {m}"),
                other => panic!("{what}: expected a refusal, got {other:?}"),
            }
            let outside: Vec<_> = fs::read_dir(dst.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(outside, vec![std::ffi::OsString::from("t")], "{what} wrote outside");
        }
    }

    #[test]
    fn a_symlink_then_a_file_through_it_stays_inside() {
        // A link inside the tree to a directory outside, then a file "through" it.
        let outside = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dst.path().join("sneaky")).unwrap();
        let tar = archive(|b| file(b, b"sneaky/evil", b"x"));
        assert!(unpack(&tar[..], dst.path()).is_err());
        assert!(!outside.path().join("evil").exists());
    }

    #[test]
    fn a_link_below_a_linked_directory_counts_from_where_it_lands() {
        // "a" -> "." makes "a/b" land at the top, where "../x" leaves the tree.
        let dst = tempfile::tempdir().unwrap();
        let tar = archive(|b| {
            link(b, tar::EntryType::Symlink, "a", ".");
            link(b, tar::EntryType::Symlink, "a/b", "../x");
        });
        assert!(matches!(unpack(&tar[..], dst.path()), Err(UnpackError::Refused(_))));
        assert!(fs::symlink_metadata(dst.path().join("b")).is_err());
    }

    #[test]
    fn inner_links_are_fine() {
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("../c")));
        assert!(link_stays_inside(Path::new("l"), Path::new("./x/y")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("../x")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("x/../../../y")));
    }
}
