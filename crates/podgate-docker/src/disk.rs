//! Disk caps of Docker sandboxes. The writable layer is capped by the engine's `size` storage
//! option, where the storage driver has quotas (btrfs and zfs through their quota groups,
//! overlay2 on XFS with project quotas). A sized `/workspace` volume is an ext4 file system in a
//! sparse image file on a loop device, mounted on the host and handed to the engine as a local
//! volume bound to that mount: it fills up at its size, whatever the engine's storage driver.
//! An encrypted volume's file system has the `encrypt` feature and the engine binds its `data`
//! directory, encrypted with the owner's key (`fscrypt`); the key's identifier (public: the
//! kernel derives it one way) is kept beside the image to lock and check later keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use podgate_runtime::{DiskCaps, Error, Result, VolumeKey};
use tokio::process::Command;

use crate::errors::{engine_error, is_not_found};
use crate::fscrypt;
use crate::{DockerDriver, LABEL_INSTANCE, LABEL_VOLUME};

/// How the engine's storage driver takes a writable-layer cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerCap {
    /// It cannot: the layer is unbounded.
    None,
    /// The cap counts the writable layer alone (overlay2 on XFS).
    Layer,
    /// The cap counts the image's files too (btrfs and zfs quota groups): the image's size is
    /// added so that the sandbox may write the bytes it was given.
    WithImage,
}

impl LayerCap {
    /// What the engine's storage driver allows, from `docker info`.
    pub(crate) async fn of(docker: &Docker) -> LayerCap {
        let Ok(info) = docker.info().await else { return LayerCap::None };
        let backing = info
            .driver_status
            .unwrap_or_default()
            .into_iter()
            .find(|kv| kv.first().map(String::as_str) == Some("Backing Filesystem"))
            .and_then(|kv| kv.get(1).cloned());
        match info.driver.as_deref() {
            Some("btrfs" | "zfs") => LayerCap::WithImage,
            Some("overlay2") if backing.as_deref() == Some("xfs") => LayerCap::Layer,
            _ => LayerCap::None,
        }
    }
}

/// Sized workspace volumes: images and mount points under one host directory.
#[derive(Clone, Debug)]
pub(crate) struct Volumes {
    dir: PathBuf,
    /// Whether this process can make and mount them (root, with `mkfs.ext4`).
    enabled: bool,
}

impl Volumes {
    pub(crate) fn new(dir: PathBuf) -> Volumes {
        let root = nix::unistd::geteuid().is_root();
        let mkfs = ["/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4"].iter().any(|p| Path::new(p).exists());
        let enabled = !dir.as_os_str().is_empty() && root && mkfs;
        if !dir.as_os_str().is_empty() && !enabled {
            tracing::warn!(
                "workspace volumes are not size-capped: that needs the server to run as root with mkfs.ext4 (e2fsprogs)"
            );
        }
        Volumes { dir, enabled }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn image(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.ext4"))
    }

    fn mount_point(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn key_id_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.keyid"))
    }

    /// The identifier of encrypted volume `name`'s key; `None` for a plain volume.
    fn key_id(&self, name: &str) -> Result<Option<[u8; fscrypt::IDENTIFIER_SIZE]>> {
        match std::fs::read_to_string(self.key_id_file(name)) {
            Ok(hex) => from_hex(hex.trim())
                .map(Some)
                .ok_or_else(|| Error::Unavailable(format!("volume {name} has a corrupt key identifier"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Unavailable(format!("volume {name}: {e}"))),
        }
    }

    /// Whether this host can encrypt volumes (the kernel's ext4 has fscrypt).
    pub(crate) fn can_encrypt(&self) -> bool {
        self.enabled && Path::new("/sys/fs/ext4/features/encryption").exists()
    }

    /// Adds `key` to encrypted volume `name` (mounted): its files open. A key other than the
    /// one it was made with is refused.
    pub(crate) async fn unlock(&self, name: &str, key: &VolumeKey) -> Result<()> {
        let Some(want) = self.key_id(name)? else {
            return Err(Error::InvalidSpec(format!("volume {name} is not encrypted")));
        };
        let root = self.mount_point(name);
        if !is_mount_point(&root) {
            return Err(Error::NotFound(name.to_string()));
        }
        let key = key.clone();
        let got = blocking(move || fscrypt::add_key(&root, &key.0)).await?;
        if got != want {
            let root = self.mount_point(name);
            let _ = blocking(move || fscrypt::remove_key(&root, &got)).await;
            return Err(Error::InvalidSpec(format!("that is not the key of volume {name}")));
        }
        Ok(())
    }

    /// Removes encrypted volume `name`'s key: its files lock (open ones once closed).
    pub(crate) async fn lock(&self, name: &str) -> Result<()> {
        let root = self.mount_point(name);
        match self.key_id(name)? {
            Some(id) if is_mount_point(&root) => blocking(move || fscrypt::remove_key(&root, &id)).await,
            _ => Ok(()),
        }
    }

    /// Whether `name` is a sized volume (its image exists).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.enabled && self.image(name).exists()
    }

    /// Makes the image of volume `name` (`size` bytes, its root owned by `owner`, encrypted
    /// with `key` if given) unless it exists, mounts it unless it is mounted (after a reboot,
    /// say) and, given `key`, unlocks an existing encrypted one; returns the directory the
    /// engine binds. A new volume that cannot be finished is removed.
    pub(crate) async fn ensure(
        &self,
        name: &str,
        size: u64,
        owner: (u32, u32),
        key: Option<&VolumeKey>,
    ) -> Result<PathBuf> {
        let fresh = !self.image(name).exists();
        let r = self.ensure_inner(name, size, owner, key, fresh).await;
        if r.is_err() && fresh {
            let _ = self.remove(name).await;
        }
        r
    }

    async fn ensure_inner(
        &self,
        name: &str,
        size: u64,
        owner: (u32, u32),
        key: Option<&VolumeKey>,
        fresh: bool,
    ) -> Result<PathBuf> {
        let io = |what: &str, e: std::io::Error| Error::Unavailable(format!("{what} of volume {name}: {e}"));
        std::fs::create_dir_all(&self.dir).map_err(|e| io("the volume directory", e))?;
        let image = self.image(name);
        if fresh {
            // Made aside and renamed, so that a half-made image is never taken for a volume.
            let partial = self.dir.join(format!(".{name}.partial"));
            let file = std::fs::File::create(&partial).map_err(|e| io("the image", e))?;
            file.set_len(size).map_err(|e| io("the image", e))?;
            drop(file);
            let root_owner = format!("root_owner={}:{},nodiscard", owner.0, owner.1);
            let mut mkfs = vec!["-q", "-F", "-m", "0", "-E", &root_owner];
            if key.is_some() {
                mkfs.extend(["-O", "encrypt"]);
            }
            run("mkfs.ext4", &mkfs, &partial).await?;
            std::fs::rename(&partial, &image).map_err(|e| io("the image", e))?;
        }
        let mount_point = self.mount_point(name);
        std::fs::create_dir_all(&mount_point).map_err(|e| io("the mount point", e))?;
        if !is_mount_point(&mount_point) {
            let opts = format!("loop,nosuid,nodev,{}", "errors=remount-ro");
            let status = Command::new("mount")
                .args(["-t", "ext4", "-o", &opts])
                .arg(&image)
                .arg(&mount_point)
                .output()
                .await
                .map_err(|e| io("mount", e))?;
            if !status.status.success() {
                return Err(Error::Unavailable(format!(
                    "mounting volume {name} failed: {}",
                    String::from_utf8_lossy(&status.stderr).trim()
                )));
            }
            // A fresh file system's lost+found would stop the engine copying the image's
            // /workspace into the new volume (it copies into empty volumes only).
            let lost = mount_point.join("lost+found");
            if let Ok(mut entries) = std::fs::read_dir(&lost)
                && entries.next().is_none()
            {
                let _ = std::fs::remove_dir(&lost);
            }
        }
        match (key, fresh) {
            (Some(key), true) => {
                let (root, key) = (mount_point.clone(), key.clone());
                let id = blocking(move || fscrypt::add_key(&root, &key.0)).await?;
                let data = mount_point.join("data");
                std::fs::create_dir(&data).map_err(|e| io("the encrypted directory", e))?;
                std::os::unix::fs::chown(&data, Some(owner.0), Some(owner.1))
                    .map_err(|e| io("the encrypted directory", e))?;
                let dir = data.clone();
                blocking(move || fscrypt::set_policy(&dir, &id)).await?;
                let partial = self.dir.join(format!(".{name}.keyid.partial"));
                std::fs::write(&partial, to_hex(&id)).map_err(|e| io("the key identifier", e))?;
                std::fs::rename(&partial, self.key_id_file(name)).map_err(|e| io("the key identifier", e))?;
            }
            (Some(key), false) => self.unlock(name, key).await?,
            (None, _) => {}
        }
        Ok(match self.key_id(name)? {
            Some(_) => mount_point.join("data"),
            None => mount_point,
        })
    }

    /// Locks, unmounts and deletes volume `name`'s image; nothing to do when it has none.
    pub(crate) async fn remove(&self, name: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let _ = self.lock(name).await;
        let mount_point = self.mount_point(name);
        if is_mount_point(&mount_point) {
            let plain = Command::new("umount").arg(&mount_point).output().await;
            if !matches!(plain, Ok(ref o) if o.status.success()) {
                // Still held by an exiting container: detach now, freed when it lets go.
                let lazy = Command::new("umount").arg("-l").arg(&mount_point).output().await;
                if let Ok(o) = lazy
                    && !o.status.success()
                {
                    return Err(Error::Unavailable(format!(
                        "unmounting volume {name} failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    )));
                }
            }
        }
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Unavailable(format!("removing volume {name}: {e}")))
            }
            _ => Ok(()),
        };
        gone(std::fs::remove_dir(&mount_point))?;
        gone(std::fs::remove_file(self.image(name)))?;
        gone(std::fs::remove_file(self.key_id_file(name)))
    }
}

/// Runs a blocking kernel call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?
        .map_err(|e| Error::Unavailable(format!("volume encryption: {e}")))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<[u8; fscrypt::IDENTIFIER_SIZE]> {
    let mut out = [0; fscrypt::IDENTIFIER_SIZE];
    if s.len() != 2 * out.len() || !s.is_ascii() {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Runs `tool ARGS PATH`, failing with its error output.
async fn run(tool: &str, args: &[&str], path: &Path) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .await
        .map_err(|e| Error::Unavailable(format!("running {tool}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Unavailable(format!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Whether `path` is the root of a mounted file system (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(me), Some(Ok(parent))) = (std::fs::metadata(path), path.parent().map(std::fs::metadata)) else {
        return false;
    };
    me.dev() != parent.dev()
}

impl DockerDriver {
    /// What this driver caps.
    pub(crate) fn caps(&self) -> DiskCaps {
        DiskCaps {
            layer: self.layer_cap != LayerCap::None,
            volume: self.volumes.enabled(),
            encryption: self.volumes.can_encrypt(),
        }
    }

    /// The engine's `size` storage option for a sandbox of `disk` bytes from `image`.
    pub(crate) async fn storage_opt(&self, disk: Option<u64>, image: &str) -> Option<HashMap<String, String>> {
        let disk = disk?;
        let size = match self.layer_cap {
            LayerCap::None => return None,
            LayerCap::Layer => disk,
            LayerCap::WithImage => {
                let base = self.docker.inspect_image(image).await.ok().and_then(|i| i.size).unwrap_or(0);
                disk.saturating_add(u64::try_from(base).unwrap_or(0))
            }
        };
        Some(HashMap::from([("size".to_string(), size.to_string())]))
    }

    /// Bytes image `image` adds to image `base` (what a snapshot holds beyond the image its
    /// container ran); 0 when the engine cannot say.
    pub(crate) async fn added_bytes(&self, image: &str, base: Option<&str>) -> u64 {
        let size = |i: bollard::models::ImageInspect| i.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        let Ok(img) = self.docker.inspect_image(image).await else { return 0 };
        let base = match base {
            Some(b) => self.docker.inspect_image(b).await.map(size).unwrap_or(0),
            None => 0,
        };
        size(img).saturating_sub(base)
    }

    /// Creates volume `name` (labelled as podgate's) unless the engine has it: sized (`size`
    /// bytes, owned by `owner`) where this driver can, else the engine's unbounded kind. A
    /// sized volume is mounted again if a reboot unmounted it.
    pub(crate) async fn ensure_volume(
        &self,
        name: &str,
        size: Option<u64>,
        owner: (u32, u32),
        key: Option<&VolumeKey>,
    ) -> Result<()> {
        let exists = match self.docker.inspect_volume(name).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        };
        let size = size.filter(|s| *s > 0 && self.volumes.enabled());
        let sized = match size {
            // An existing volume without an image is an unbounded one from before sizes.
            Some(_) if exists && !self.volumes.has(name) => None,
            Some(size) => Some(self.volumes.ensure(name, size, owner, key).await?),
            None => None,
        };
        if exists {
            return Ok(());
        }
        let driver_opts = sized.map(|dir| {
            HashMap::from([
                ("type".to_string(), "none".to_string()),
                ("o".to_string(), "bind".to_string()),
                ("device".to_string(), dir.display().to_string()),
            ])
        });
        let req = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            driver_opts,
            labels: Some(HashMap::from([
                (LABEL_VOLUME.to_string(), name.to_string()),
                (LABEL_INSTANCE.to_string(), self.cfg.instance.clone()),
            ])),
            ..Default::default()
        };
        self.docker.create_volume(req).await.map(|_| ()).map_err(|e| Error::Unavailable(engine_error(&e)))
    }

    /// Removes volume `name` from the engine, then its image if it is sized.
    pub(crate) async fn remove_volume(&self, name: &str) -> Result<()> {
        match self.docker.remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        }
        self.volumes.remove(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_identifiers_round_trip_through_hex() {
        let id: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(from_hex(&to_hex(&id)), Some(id));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"é".repeat(16)), None);
    }

    #[test]
    fn mount_points_are_told_from_plain_directories() {
        assert!(is_mount_point(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }
}
