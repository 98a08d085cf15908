//! The server's data directory: created if missing and made private (0700) when the server owns
//! it. A volume the platform mounted for it (a Kubernetes emptyDir is root's, with the pod's
//! `fsGroup` as its group) is used as it is if the server can write it; otherwise the start
//! fails saying whose it is and what to change.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};

/// Creates `dir` if needed and checks that this process can keep its data there.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the data dir {}", dir.display()))?;
    let md = std::fs::metadata(dir).with_context(|| format!("reading the data dir {}", dir.display()))?;
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    if md.uid() == uid {
        return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making the data dir {} private (0700)", dir.display()));
    }
    let writable = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok();
    let mode = md.mode() & 0o7777;
    if !writable {
        bail!(
            "the data dir {} belongs to uid {} gid {} (mode {mode:04o}) and this server (uid {uid}, gid {gid}) \
             cannot write it: make the server's user its owner, or on Kubernetes set the pod's \
             securityContext.fsGroup to the server's gid ({gid}) so the volume is given to that group",
            dir.display(),
            md.uid(),
            md.gid(),
        );
    }
    tracing::warn!(
        dir = %dir.display(),
        owner = md.uid(),
        group = md.gid(),
        mode = format!("{mode:04o}"),
        "the data dir is a volume this server does not own: it is used as mounted, not made private"
    );
    Ok(())
}
