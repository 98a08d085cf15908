//! Who the agent is: it starts as root with a few capabilities, prepares `/workspace`, empties
//! the capability bounding set and, before any other thread or process exists, becomes
//! [`AGENT_UID`] for good, a uid no sandbox user has. It keeps only the capabilities to start
//! the user's processes as the user, to act on files as the user (its filesystem uid is the
//! user's) and to signal the user's processes: the sandbox user can neither signal, trace nor
//! impersonate the agent. No-new-privileges is set as well, and nothing the agent starts holds
//! a capability. Where the agent is started as the sandbox user (a Kubernetes pod in a
//! `restricted` namespace) it stays that user.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use caps::Capability;
use nix::unistd::{Gid, Uid};

/// The folder every sandbox user can write; the code bootstrap extracts into it.
pub const WORKSPACE: &str = "/workspace";

pub use podgate_types::agent::AGENT_UID;

/// What the agent keeps as [`AGENT_UID`]: become the user in its children (SETUID, SETGID),
/// act on files as the user (setfsuid needs SETUID), signal the user's processes (KILL).
const KEPT: [Capability; 3] = [Capability::CAP_SETUID, Capability::CAP_SETGID, Capability::CAP_KILL];

/// The sandbox user, set once by [`become_user`] when the agent runs under its own uid.
static SEPARATE: OnceLock<(u32, u32)> = OnceLock::new();

/// The sandbox user's `(uid, gid)`: the one the agent acts for, whether or not it shares it.
pub fn sandbox_user() -> (u32, u32) {
    SEPARATE.get().copied().unwrap_or_else(|| (Uid::current().as_raw(), Gid::current().as_raw()))
}

/// The identity every process the agent starts must take: `Some` when the agent runs under
/// its own uid ([`crate::reaper::Reaper::spawn`] applies it), `None` when it shares the user's.
pub fn spawn_as() -> Option<(u32, u32)> {
    SEPARATE.get().copied()
}

/// Parses `--user`: `UID:GID`, or `UID` for both.
pub fn parse_user(s: &str) -> Result<(u32, u32), String> {
    podgate_types::validate::uid_gid(s).map_err(|e| format!("--user: {e}"))
}

/// Acts for `uid:gid`: if the agent is root and that is another user, it becomes [`AGENT_UID`]
/// with the user as its filesystem identity (see the module). Sets `HOME`, `USER` and `LOGNAME`
/// from the sandbox's /etc/passwd (home `/workspace` when the uid has no entry), and leaves a
/// working directory the user cannot enter for its home.
///
/// Must run before the agent starts any thread: credentials are per thread (new threads copy
/// them), and it changes the process environment.
pub fn become_user(uid: u32, gid: u32) -> Result<(), String> {
    // Also outside a container: nothing the agent starts may gain privileges through exec.
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no-new-privileges: {e}"))?;
    let me = Uid::current();
    if me.as_raw() == uid {
        // Started as the user (Kubernetes): the volume's ownership is the cluster's doing.
        return check_workspace(Path::new(WORKSPACE), uid);
    }
    if !me.is_root() {
        return Err(format!("the agent runs as uid {me} and cannot become uid {uid}"));
    }
    if uid == AGENT_UID || gid == AGENT_UID {
        return Err(format!("uid and gid {AGENT_UID} are the agent's own and cannot be the sandbox user's"));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let account = crate::launch::account(&passwd, &uid.to_string())?;
    let home = account.home.clone().filter(|h| h.is_dir()).unwrap_or_else(|| PathBuf::from(WORKSPACE));
    prepare_workspace(Path::new(WORKSPACE), uid, gid)?;
    become_agent(uid, gid)?;
    SEPARATE.set((uid, gid)).map_err(|_| "the sandbox user is already set".to_string())?;
    // SAFETY: called from `main` before the runtime or any other thread starts.
    unsafe {
        std::env::set_var("HOME", &home);
        if let Some(n) = &account.name {
            std::env::set_var("USER", n);
            std::env::set_var("LOGNAME", n);
        }
    }
    // Checked with the filesystem identity (the user's), not the real uid (the agent's).
    let enter = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        ".",
        nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    );
    if enter.is_err() {
        std::env::set_current_dir(&home).map_err(|e| format!("entering {}: {e}", home.display()))?;
    }
    Ok(())
}

/// Root to [`AGENT_UID`] keeping [`KEPT`], with `uid:gid` as the filesystem identity and the
/// user's group as the only supplementary one; then checks the result.
fn become_agent(uid: u32, gid: u32) -> Result<(), String> {
    use caps::CapSet;
    let agent = (Uid::from_raw(AGENT_UID), Gid::from_raw(AGENT_UID));
    caps::clear(None, CapSet::Bounding).map_err(|e| format!("emptying the capability bounding set: {e}"))?;
    nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(|e| format!("setgroups: {e}"))?;
    nix::sys::prctl::set_keepcaps(true).map_err(|e| format!("keeping capabilities: {e}"))?;
    nix::unistd::setresgid(agent.1, agent.1, agent.1).map_err(|e| format!("setresgid {AGENT_UID}: {e}"))?;
    nix::unistd::setresuid(agent.0, agent.0, agent.0).map_err(|e| format!("setresuid {AGENT_UID}: {e}"))?;
    let kept: caps::CapsHashSet = KEPT.into_iter().collect();
    for set in [CapSet::Permitted, CapSet::Effective] {
        caps::set(None, set, &kept).map_err(|e| format!("keeping {kept:?} in {set:?}: {e}"))?;
    }
    caps::clear(None, CapSet::Inheritable).map_err(|e| format!("emptying the inheritable set: {e}"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| format!("resetting keep-capabilities: {e}"))?;
    nix::unistd::setfsgid(Gid::from_raw(gid));
    nix::unistd::setfsuid(Uid::from_raw(uid));
    // setfs*id return the previous value and report no error: asking again reads the current one.
    let fs = (nix::unistd::setfsuid(Uid::from_raw(uid)).as_raw(), nix::unistd::setfsgid(Gid::from_raw(gid)).as_raw());
    if fs != (uid, gid) {
        return Err(format!("the filesystem identity is {fs:?}, not {uid}:{gid}"));
    }
    if Uid::effective().is_root() || Uid::current().as_raw() != AGENT_UID {
        return Err("still root after dropping privileges".into());
    }
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| format!("reading capabilities: {e}"))?;
    if permitted != kept {
        return Err(format!("the agent holds {permitted:?}, not only {kept:?}"));
    }
    // Also reset by the kernel on the uid change, but only if the host's suid_dumpable says so:
    // nobody in the sandbox may trace the agent or read its memory, environment or descriptors.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("making the agent non-dumpable: {e}"))
}

/// Fails when `dir` is a mounted volume the user cannot write: a sandbox whose `/workspace` is
/// unusable must not be reported as started (volumes such as hostPath or local ignore `fsGroup`).
fn check_workspace(dir: &Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(md), Ok(root)) = (std::fs::metadata(dir), std::fs::metadata("/")) else { return Ok(()) };
    let writable = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok();
    if md.dev() == root.dev() || writable {
        return Ok(());
    }
    Err(format!(
        "{} is a volume uid {uid} cannot write (owner {}:{}, mode {:04o}): its volume type ignores the pod's \
         fsGroup (hostPath, local, some NFS); an admin can enable the server's --kube-workspace-owner-init \
         where the namespace's Pod Security allows it (baseline)",
        dir.display(),
        md.uid(),
        md.gid(),
        md.mode() & 0o7777
    ))
}

/// `podgate-agent own DIR UID:GID`, the admin-enabled init step on Kubernetes: gives the mount
/// point `DIR` to the user (what is inside stays whose it is).
pub fn own(dir: Option<&str>, user: Option<&str>) -> Result<(), String> {
    let (Some(dir), Some(user)) = (dir, user) else { return Err("usage: podgate-agent own DIR UID:GID".into()) };
    let (uid, gid) = parse_user(user)?;
    nix::unistd::chown(dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| format!("chown {dir} to {uid}:{gid}: {e}"))?;
    println!("podgate-agent: {dir} is now {uid}:{gid}'s");
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
