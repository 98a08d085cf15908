//! Zip extraction that never writes outside the target: entry names must be relative without
//! `..`, symlinks must stay inside, files are created fresh (never through an existing link),
//! and the number of entries and bytes written are bounded.

use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::{UnpackError, Unpacked, clean_relative, symlink_allowed};

/// Most entries a zip may have.
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes a zip may expand to.
pub const MAX_BYTES: u64 = 8 << 30;

fn bad(e: impl std::fmt::Display) -> UnpackError {
    UnpackError::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Whether `path`'s parent, as it really is on disk, is inside `dst`.
fn parent_inside(dst: &Path, path: &Path) -> io::Result<bool> {
    let real_dst = fs::canonicalize(dst)?;
    let parent = path.parent().unwrap_or(dst);
    Ok(fs::canonicalize(parent)?.starts_with(&real_dst))
}

/// Extracts the zip archive `input` into `dst` (created if missing).
pub fn unzip<R: Read + Seek>(input: R, dst: &Path) -> Result<Unpacked, UnpackError> {
    fs::create_dir_all(dst)?;
    let mut archive = ::zip::ZipArchive::new(input).map_err(bad)?;
    if archive.len() > MAX_ENTRIES {
        return Err(UnpackError::Refused(format!("the archive has more than {MAX_ENTRIES} entries")));
    }
    let mut done = Unpacked::default();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        let name = entry.name().map_err(bad)?.to_string();
        let rel = match clean_relative(Path::new(&name)) {
            Some(r) if !name.starts_with('/') && !name.contains('\\') => r,
            _ => return Err(UnpackError::Refused(format!("entry {name:?} leaves the target directory"))),
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dst.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&out)?;
            if !parent_inside(dst, &out.join("x"))? {
                return Err(UnpackError::Refused(format!("entry {name:?} leaves the target directory")));
            }
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        if !parent_inside(dst, &out)? {
            return Err(UnpackError::Refused(format!("entry {name:?} leaves the target directory")));
        }
        // Replace, never write through, whatever is there.
        match fs::symlink_metadata(&out) {
            Ok(md) if md.is_dir() => {
                return Err(UnpackError::Refused(format!("entry {name:?} would replace a directory")));
            }
            Ok(_) => fs::remove_file(&out)?,
            Err(_) => {}
        }
        if entry.is_symlink() {
            let mut target = String::new();
            entry.by_ref().take(4096).read_to_string(&mut target).map_err(bad)?;
            if !symlink_allowed(dst, &rel, Path::new(&target)) {
                return Err(UnpackError::Refused(format!(
                    "symlink {name:?} -> {target:?} points outside the target directory"
                )));
            }
            std::os::unix::fs::symlink(&target, &out)?;
            done.files += 1;
            continue;
        }
        let mode = entry.unix_mode().map_or(0o644, |m| m & 0o777);
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(&out)?;
        let room = MAX_BYTES.saturating_sub(done.bytes);
        let n = io::copy(&mut entry.by_ref().take(room + 1), &mut file)?;
        if n > room {
            return Err(UnpackError::Refused(format!("the archive expands to more than {MAX_BYTES} bytes")));
        }
        done.bytes += n;
        done.files += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn zip_of(build: impl FnOnce(&mut ::zip::ZipWriter<io::Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut w = ::zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        build(&mut w);
        w.finish().unwrap().into_inner()
    }

    fn opts() -> ::zip::write::SimpleFileOptions {
        ::zip::write::SimpleFileOptions::default().unix_permissions(0o755)
    }

    #[test]
    fn extracts_files_dirs_and_inner_links() {
        let z = zip_of(|w| {
            w.add_directory("app/", opts()).unwrap();
            w.start_file("app/run.sh", opts()).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
            w.add_symlink("app/link", "run.sh", opts()).unwrap();
        });
        let dst = tempfile::tempdir().unwrap();
        let n = unzip(io::Cursor::new(z), dst.path()).unwrap();
        assert_eq!(n, Unpacked { files: 2, bytes: 10 });
        assert_eq!(fs::read(dst.path().join("app/run.sh")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(fs::read_link(dst.path().join("app/link")).unwrap(), Path::new("run.sh"));
    }

    #[test]
    fn refuses_hostile_entries() {
        let cases = [
            zip_of(|w| w.start_file("../evil", opts()).unwrap()),
            zip_of(|w| w.start_file("/abs/evil", opts()).unwrap()),
            zip_of(|w| w.add_symlink("l", "/etc", opts()).unwrap()),
            zip_of(|w| w.add_symlink("a/l", "../../x", opts()).unwrap()),
        ];
        for (i, z) in cases.into_iter().enumerate() {
            let root = tempfile::tempdir().unwrap();
            let r = unzip(io::Cursor::new(z), &root.path().join("t"));
            assert!(matches!(r, Err(UnpackError::Refused(_))), "case {i}: {r:?}");
        }
    }
}
