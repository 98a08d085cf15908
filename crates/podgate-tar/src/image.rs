//! Image archives (`docker save` format) from users: [`sanitize_image_archive`] copies one while
//! refusing entries that could escape wherever it is unpacked, requires exactly one image, and
//! drops its tags (`RepoTags` in `manifest.json`, and the legacy `repositories` file), so loading
//! it can never replace an image someone else relies on: the loader names it instead.

use std::io::{self, Read, Write};
use std::path::{Component, Path};

/// Why an archive was refused.
#[derive(Debug)]
pub enum ImageArchiveError {
    /// Not an acceptable image archive; says why.
    Refused(String),
    Io(io::Error),
}

impl std::fmt::Display for ImageArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageArchiveError::Refused(m) => f.write_str(m),
            ImageArchiveError::Io(e) => write!(f, "reading the archive: {e}"),
        }
    }
}

impl From<io::Error> for ImageArchiveError {
    fn from(e: io::Error) -> Self {
        ImageArchiveError::Io(e)
    }
}

/// Largest `manifest.json` read into memory.
const MAX_MANIFEST: u64 = 1 << 20;

fn safe_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Copies the image archive `input` to `output` without its tags; refuses absolute or `..`
/// paths and link targets, device and fifo entries, and a manifest naming other than one image.
pub fn sanitize_image_archive<R: Read, W: Write>(input: R, output: W) -> Result<(), ImageArchiveError> {
    let refuse = |m: String| Err(ImageArchiveError::Refused(m));
    let mut archive = tar::Archive::new(input);
    let mut out = tar::Builder::new(output);
    let mut manifests = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        if !safe_relative(&path) {
            return refuse(format!("the archive entry {shown:?} leaves the archive"));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            return refuse(format!("the archive entry {shown:?} is not a file, folder or link"));
        }
        if let Some(target) = entry.link_name()?
            && (target.is_absolute() || target.components().any(|c| matches!(c, Component::ParentDir)))
        {
            return refuse(format!("the link {shown:?} points outside the archive"));
        }
        let mut header = entry.header().clone();
        match path.to_str() {
            Some("repositories") => continue,
            Some("manifest.json") => {
                manifests += 1;
                let mut text = Vec::new();
                (&mut entry).take(MAX_MANIFEST + 1).read_to_end(&mut text)?;
                if text.len() as u64 > MAX_MANIFEST {
                    return refuse("manifest.json is too large".into());
                }
                let mut manifest: serde_json::Value = serde_json::from_slice(&text)
                    .map_err(|e| ImageArchiveError::Refused(format!("manifest.json is not JSON: {e}")))?;
                let Some(images) = manifest.as_array_mut() else {
                    return refuse("manifest.json is not a list of images".into());
                };
                if images.len() != 1 {
                    return refuse(format!("the archive holds {} images; import one at a time", images.len()));
                }
                if let Some(obj) = images[0].as_object_mut() {
                    obj.insert("RepoTags".into(), serde_json::Value::Null);
                }
                let body = serde_json::to_vec(&manifest).map_err(|e| ImageArchiveError::Io(io::Error::other(e)))?;
                header.set_size(body.len() as u64);
                header.set_cksum();
                out.append(&header, body.as_slice())?;
            }
            _ => out.append(&header, &mut entry)?,
        }
    }
    if manifests != 1 {
        return refuse("the archive has no manifest.json: export images with `docker save` or podgate".into());
    }
    out.into_inner()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Written raw so that hostile names survive the builder's own checks.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn tags_are_dropped_and_hostile_archives_refused() {
        let manifest = br#"[{"Config":"c.json","RepoTags":["podgate/base:latest"],"Layers":["l/layer.tar"]}]"#;
        let good = archive(&[("c.json", b"{}"), ("manifest.json", manifest), ("repositories", b"{}")]);
        let mut out = Vec::new();
        sanitize_image_archive(good.as_slice(), &mut out).unwrap();
        let mut a = tar::Archive::new(out.as_slice());
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "manifest.json" {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                assert!(s.contains("\"RepoTags\":null") && s.contains("l/layer.tar"), "{s}");
            }
            names.push(name);
        }
        assert_eq!(names, ["c.json", "manifest.json"]);

        let two = br#"[{"Config":"a"},{"Config":"b"}]"#;
        for (bad, why) in [
            (archive(&[("../evil", b"x"), ("manifest.json", manifest)]), "leaves"),
            (archive(&[("/etc/passwd", b"x"), ("manifest.json", manifest)]), "leaves"),
            (archive(&[("manifest.json", two)]), "2 images"),
            (archive(&[("manifest.json", b"nope")]), "not JSON"),
            (archive(&[("c.json", b"{}")]), "no manifest"),
        ] {
            let err = sanitize_image_archive(bad.as_slice(), Vec::new()).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
