//! Resolution of `~` and relative paths against the sandbox user's home and workdir.

use std::path::{Path, PathBuf};

/// Where relative paths and `~` point.
#[derive(Clone, Debug)]
pub struct Dirs {
    pub home: PathBuf,
    pub workdir: PathBuf,
}

impl Dirs {
    /// Home from `$HOME` (no libc user lookup), else `/root` for uid 0 and `/` otherwise;
    /// workdir is the agent's working directory at start (the image's `WORKDIR`).
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
            if crate::privileges::sandbox_user().0 == 0 { PathBuf::from("/root") } else { PathBuf::from("/") }
        });
        let workdir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Dirs { home, workdir }
    }

    /// `~` and `~/x` go to home, relative paths to the workdir, absolute paths stay.
    pub fn resolve(&self, p: &str) -> PathBuf {
        if p == "~" {
            self.home.clone()
        } else if let Some(rest) = p.strip_prefix("~/") {
            self.home.join(rest)
        } else if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            self.workdir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves() {
        let d = Dirs { home: "/home/u".into(), workdir: "/w".into() };
        assert_eq!(d.resolve("~"), PathBuf::from("/home/u"));
        assert_eq!(d.resolve("~/a"), PathBuf::from("/home/u/a"));
        assert_eq!(d.resolve("a/b"), PathBuf::from("/w/a/b"));
        assert_eq!(d.resolve("/etc"), PathBuf::from("/etc"));
    }
}
