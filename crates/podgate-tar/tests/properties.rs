//! Property tests (proptest) of tar extraction: any bytes, and archives built from hostile
//! pieces (`..`, absolute paths, symlinks and hard links pointing anywhere, links followed by
//! writes through them), extract or are refused without a panic, and nothing outside the target
//! changes.

use std::path::Path;

use proptest::prelude::*;
use tar::EntryType;

/// A path from hostile and ordinary pieces.
fn path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec!["a", "b", "..", ".", "", "victim", "link", "d", "/"]);
    prop::collection::vec(piece, 1..5).prop_map(|p| p.join("/"))
}

#[derive(Debug, Clone)]
struct Entry {
    kind: u8,
    path: String,
    target: String,
    data: Vec<u8>,
}

fn entry() -> impl Strategy<Value = Entry> {
    let target = prop_oneof![
        path(),
        Just("/etc/passwd".to_string()),
        Just("../victim".to_string()),
        Just("../../victim".to_string())
    ];
    (0u8..5, path(), target, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(kind, path, target, data)| Entry {
        kind,
        path,
        target,
        data,
    })
}

/// A raw archive: names are set byte for byte, so nothing cleans them up on the way.
fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        let name = e.path.as_bytes();
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let t = e.target.as_bytes();
        let tn = t.len().min(99);
        h.as_old_mut().linkname[..tn].copy_from_slice(&t[..tn]);
        h.set_mode(0o755);
        let (kind, data): (EntryType, &[u8]) = match e.kind {
            0 => (EntryType::Regular, &e.data),
            1 => (EntryType::Directory, &[]),
            2 => (EntryType::Symlink, &[]),
            3 => (EntryType::Link, &[]),
            _ => (EntryType::Char, &[]),
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every path under `dir`, with file contents (symlinks as their targets).
fn snapshot(dir: &Path, skip: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir(dir) {
        if e.starts_with(skip) {
            continue;
        }
        let md = std::fs::symlink_metadata(&e).unwrap();
        let content = if md.file_type().is_symlink() {
            std::fs::read_link(&e).unwrap().to_string_lossy().into_owned().into_bytes()
        } else if md.is_file() {
            std::fs::read(&e).unwrap()
        } else {
            Vec::new()
        };
        out.push((e.display().to_string(), content));
    }
    out.sort();
    out
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_archives_never_write_outside_the_target(entries in prop::collection::vec(entry(), 1..8)) {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("victim"), b"untouched").unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        let dst = root.path().join("dst");
        let before = snapshot(root.path(), &dst);
        let _ = podgate_tar::unpack(&archive(&entries)[..], &dst);
        prop_assert_eq!(snapshot(root.path(), &dst), before);
        // Nothing extracted is a link that leads out of the target.
        if dst.exists() {
            for p in walkdir(&dst) {
                if let Ok(real) = std::fs::canonicalize(&p) {
                    prop_assert!(real.starts_with(dst.canonicalize().unwrap()), "{} -> {}", p.display(), real.display());
                }
            }
        }
    }

    #[test]
    fn any_bytes_extract_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let root = tempfile::tempdir().unwrap();
        let _ = podgate_tar::unpack(&bytes[..], &root.path().join("dst"));
        let _ = podgate_tar::unpack_gz(&bytes[..], &root.path().join("gz"));
    }
}
