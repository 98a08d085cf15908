//! Dropping to the sandbox user at start: the agent starts as root with a few capabilities,
//! prepares `/workspace`, empties the capability bounding set and becomes the sandbox user for
//! good, before any other thread or process exists. Nothing in a non-root sandbox (the agent
//! included) can regain a capability afterwards: no-new-privileges is set as well.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

/// The folder every sandbox user can write; the code bootstrap extracts into it.
pub const WORKSPACE: &str = "/workspace";

/// Parses `--user`: `UID:GID`, or `UID` for both.
pub fn parse_user(s: &str) -> Result<(u32, u32), String> {
    podgate_types::validate::uid_gid(s).map_err(|e| format!("--user: {e}"))
}

/// Becomes `uid:gid` if the agent is root and that is another user; sets `HOME`, `USER` and
/// `LOGNAME` from the sandbox's /etc/passwd (home `/workspace` when the uid has no entry), and
/// leaves a working directory the user cannot enter for its home.
///
/// Must run before the agent starts any thread: it changes the process environment.
pub fn become_user(uid: u32, gid: u32) -> Result<(), String> {
    // Also outside a container: nothing the agent starts may gain privileges through exec.
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no-new-privileges: {e}"))?;
    let me = Uid::current();
    if me.as_raw() == uid {
        return Ok(());
    }
    if !me.is_root() {
        return Err(format!("the agent runs as uid {me} and cannot become uid {uid}"));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let account = crate::launch::account(&passwd, &uid.to_string())?;
    let home = account.home.clone().filter(|h| h.is_dir()).unwrap_or_else(|| PathBuf::from(WORKSPACE));
    prepare_workspace(Path::new(WORKSPACE), uid, gid)?;
    caps::clear(None, caps::CapSet::Bounding).map_err(|e| format!("emptying the capability bounding set: {e}"))?;
    nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(|e| format!("setgid {gid}: {e}"))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid {uid}: {e}"))?;
    if Uid::effective().is_root() || nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("still root after dropping privileges".into());
    }
    // The sandbox user shares the agent's uid: it may not trace the agent or read its memory,
    // environment or descriptors (the kernel resets this on setuid only if the host says so).
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("making the agent non-dumpable: {e}"))?;
    // SAFETY: called from `main` before the runtime or any other thread starts.
    unsafe {
        std::env::set_var("HOME", &home);
        if let Some(n) = &account.name {
            std::env::set_var("USER", n);
            std::env::set_var("LOGNAME", n);
        }
    }
    if nix::unistd::access(".", nix::unistd::AccessFlags::X_OK).is_err() {
        std::env::set_current_dir(&home).map_err(|e| format!("entering {}: {e}", home.display()))?;
    }
    Ok(())
}

/// Creates `dir` for the user when it is missing, and gives the user an empty root-owned one
/// (a new volume mounted where the image has no folder); one with content is left as it is.
fn prepare_workspace(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let chown = || {
        nix::unistd::chown(dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| format!("chown {}: {e}", dir.display()))
    };
    match std::fs::create_dir(dir) {
        Ok(()) => chown(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            use std::os::unix::fs::MetadataExt as _;
            let root_owned_empty = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == 0)
                && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
            if root_owned_empty && let Err(e) = chown() {
                // As before: the folder stays the image's (e.g. on a read-only root).
                eprintln!("podgate-agent: {e}");
            }
            Ok(())
        }
        // A read-only root without /workspace: the bootstrap reports it if it is needed.
        Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => Ok(()),
        Err(e) => Err(format!("creating {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users() {
        assert_eq!(parse_user("1000:1000"), Ok((1000, 1000)));
        assert_eq!(parse_user("0"), Ok((0, 0)));
        assert_eq!(parse_user("5:7"), Ok((5, 7)));
        assert!(parse_user("root").is_err());
        assert!(parse_user("1:x").is_err());
    }
}
