//! `podgate cp SRC DST`: copies files and directories between this machine and a sandbox
//! (`NAME:PATH` names the sandbox side), streamed, keeping permission bits.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
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
                let mut n = 0;
                for (file, rel) in walk(&src)? {
                    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o7777;
                    client.upload(name, &join_remote(path, &rel), &file, Some(mode)).await?;
                    n += 1;
                }
                eprintln!("copied {n} files to {name}:{path}");
            } else {
                let target = if path.ends_with('/') {
                    join_remote(path, &src.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned()))
                } else {
                    path.to_string()
                };
                let info = client.upload(name, &target, &src, Some(md.permissions().mode() & 0o7777)).await?;
                eprintln!("copied {} bytes to {name}:{}", info.size, info.path);
            }
        }
        (Some((name, path)), None) => {
            let dst = PathBuf::from(&a.dst);
            let info = client.stat(name, path).await?;
            match info.kind {
                FileKind::File => {
                    let target = if dst.is_dir() { dst.join(&info.name) } else { dst };
                    let (n, mode) = client.download(name, path, &target).await?;
                    if let Some(m) = mode {
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m))?;
                    }
                    eprintln!("copied {n} bytes to {}", target.display());
                }
                FileKind::Dir => {
                    let root = if dst.is_dir() { dst.join(&info.name) } else { dst };
                    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
                    let mut n = 0;
                    for entry in client.list_files(name, &info.path, 10).await? {
                        let rel = entry.path.strip_prefix(&info.path).unwrap_or(&entry.path).trim_start_matches('/');
                        let local = safe_join(&root, rel)?;
                        match entry.kind {
                            FileKind::Dir => std::fs::create_dir_all(&local)?,
                            FileKind::File => {
                                if let Some(parent) = local.parent() {
                                    std::fs::create_dir_all(parent)?;
                                }
                                let (_, mode) = client.download(name, &entry.path, &local).await?;
                                if let Some(m) = mode {
                                    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(m))?;
                                }
                                n += 1;
                            }
                            _ => eprintln!("podgate: skipping {} ({:?})", entry.path, entry.kind),
                        }
                    }
                    eprintln!("copied {n} files to {}", root.display());
                }
                other => bail!("{name}:{path} is a {other:?}, not a file or directory"),
            }
        }
    }
    Ok(())
}

/// Joins a relative path from the sandbox under `root`, refusing anything that would leave it.
fn safe_join(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        bail!("refusing the path {rel:?} from the sandbox");
    }
    Ok(root.join(p))
}

/// Regular files below `dir` with their paths relative to it (symlinks are skipped).
fn walk(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = entry?.path();
            let md = std::fs::symlink_metadata(&p)?;
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
                out.push((p, rel));
            }
        }
    }
    out.sort();
    Ok(out)
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

    #[test]
    fn refuses_escaping_paths() {
        assert!(safe_join(Path::new("/r"), "a/b").is_ok());
        assert!(safe_join(Path::new("/r"), "../x").is_err());
        assert!(safe_join(Path::new("/r"), "/etc/passwd").is_err());
    }
}
