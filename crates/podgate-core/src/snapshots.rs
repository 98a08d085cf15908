//! Snapshots and forks: a sandbox's filesystem saved by the runtime as an image owned by the
//! sandbox's owner, who can start sandboxes from it (`snapshot` on create) or fork a running
//! sandbox in one step. Nobody else can use or name the image.

use std::sync::Arc;

use podgate_types::state::SandboxState;

use podgate_store::SnapshotRow;
use podgate_types::api::{CreateSandboxRequest, NameRequest, Sandbox, Snapshot};
use podgate_types::validate;

use crate::audit::Event;
use crate::clock::{from_ms, now_ms};
use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result, ids};

/// Repository of snapshot images; a snapshot's image is `podgate-snapshot:<id>`.
pub const IMAGE_REPO: &str = "podgate-snapshot";

/// The snapshot service: snapshots, forks, export and import.
#[derive(Clone)]
pub struct Snapshots {
    pub(crate) k: Arc<Kernel>,
}

impl Snapshots {
    /// Saves a sandbox's filesystem as a snapshot of its owner's.
    pub async fn create(&self, caller: &Caller, id_or_name: &str, req: NameRequest) -> Result<Snapshot> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let r = self.snapshot_row(&row, req.name).await;
        let detail = r.as_ref().map(|s| format!("{} ({})", s.name, s.id)).unwrap_or_default();
        self.k.audit.record(Event::by(caller, "snapshot.create").sandbox(&row.id).detail(detail).outcome(&r)).await;
        r.map(view)
    }

    async fn snapshot_row(&self, row: &podgate_store::SandboxRow, name: Option<String>) -> Result<SnapshotRow> {
        if row.state != SandboxState::Running && row.state != SandboxState::Paused {
            return Err(Error::Conflict(format!("sandbox {} is {}, not running", row.id, row.state)));
        }
        let name = match name {
            Some(n) => {
                validate::sandbox_name(&n).map_err(|e| Error::Invalid(e.replace("sandbox name", "snapshot name")))?;
                n
            }
            None => format!("{}-{}", row.name, ids::random_base32(6)),
        };
        if self.k.store.live_snapshot_by_name(&row.owner_id, &name).await?.is_some() {
            return Err(Error::Conflict(format!("snapshot name {name:?} is already in use")));
        }
        let id = ids::snapshot_id();
        let snap = SnapshotRow {
            image: format!("{IMAGE_REPO}:{id}"),
            id,
            owner_id: row.owner_id.clone(),
            name,
            sandbox_id: row.id.clone(),
            bytes: 0,
            created_at: now_ms(),
            deleted_at: None,
        };
        let bytes = self.k.driver.snapshot(&row.id, &snap.image).await?;
        let snap = SnapshotRow { bytes: i64::try_from(bytes).unwrap_or(i64::MAX), ..snap };
        self.keep_snapshot(&snap, "the snapshot's").await?;
        tracing::info!(sandbox_id = %row.id, snapshot_id = %snap.id, "snapshot taken");
        Ok(snap)
    }

    /// Records a snapshot whose image the runtime just made, within its owner's disk quota;
    /// refused or failed, the image goes.
    async fn keep_snapshot(&self, snap: &SnapshotRow, what: &str) -> Result<()> {
        let quota = self.k.quotas().limits_of(&snap.owner_id).await?;
        let max_disk = i64::try_from(quota.disk.0).unwrap_or(i64::MAX);
        let refusal = match self.k.store.insert_snapshot_within(snap, max_disk).await {
            Ok(true) => return Ok(()),
            Ok(false) => self.k.quotas().over_disk_quota(&snap.owner_id, &quota, what, snap.bytes).await,
            // Taken meanwhile, or the database failed.
            Err(e) => e.into(),
        };
        if let Err(e) = self.k.driver.delete_image(&snap.image).await {
            tracing::warn!(snapshot_id = %snap.id, error = %e, "removing the image of a refused snapshot failed");
        }
        Err(refusal)
    }

    /// Snapshots a sandbox and starts a new sandbox from it with the same settings.
    pub async fn fork(&self, caller: &Caller, id_or_name: &str, req: NameRequest) -> Result<Sandbox> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let snap = self.snapshot_row(&row, None).await;
        let detail = snap.as_ref().map(|s| format!("{} ({})", s.name, s.id)).unwrap_or_default();
        self.k.audit.record(Event::by(caller, "snapshot.create").sandbox(&row.id).detail(detail).outcome(&snap)).await;
        let snap = snap?;
        let spec = row.spec.clone();
        let create = CreateSandboxRequest {
            name: req.name,
            snapshot: Some(snap.id.clone()),
            env: spec.env,
            cmd: spec.cmd,
            cpu: spec.cpu,
            memory: spec.memory.map(podgate_types::MemorySize),
            disk: spec.disk.map(podgate_types::MemorySize),
            labels: spec.labels,
            user: Some(format!("{}:{}", spec.user.0, spec.user.1)),
            network: Some(spec.network),
            read_only_root: spec.read_only_root,
            idle_timeout_seconds: spec.idle_timeout_seconds,
            ..Default::default()
        };
        let created = self.k.sandboxes().create(caller, create).await;
        if created.is_err() {
            // Refused (quota, rate) or failed: the snapshot made for it goes too.
            if let Err(e) = self.k.driver.delete_image(&snap.image).await {
                tracing::warn!(snapshot_id = %snap.id, error = %e, "removing the image of a failed fork failed");
            }
            self.k.store.mark_snapshot_deleted(&snap.id, now_ms()).await?;
        }
        created
    }

    /// The image of the caller's snapshot `id_or_name`, for a create.
    pub(crate) async fn snapshot_image(&self, caller: &Caller, id_or_name: &str) -> Result<String> {
        Ok(self.find_snapshot(caller, id_or_name).await?.image)
    }

    async fn find_snapshot(&self, caller: &Caller, id_or_name: &str) -> Result<SnapshotRow> {
        let missing = || Error::NotFound(format!("snapshot {id_or_name:?} not found"));
        if let Some(s) = self.k.store.live_snapshot(id_or_name).await?.filter(|s| caller.may_access(&s.owner_id)) {
            return Ok(s);
        }
        self.k.store.live_snapshot_by_name(&caller.user_id, id_or_name).await?.ok_or_else(missing)
    }

    /// The caller's snapshots (everyone's for an admin).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Snapshot>> {
        let owner = (caller.role != crate::Role::Admin).then_some(caller.user_id.as_str());
        Ok(self.k.store.live_snapshots(owner).await?.into_iter().map(view).collect())
    }

    /// Deletes a snapshot and its image; one a live sandbox runs from is a conflict.
    pub async fn delete(&self, caller: &Caller, id_or_name: &str) -> Result<()> {
        let r = async {
            let s = self.find_snapshot(caller, id_or_name).await?;
            match self.k.driver.delete_image(&s.image).await {
                Ok(()) => {}
                Err(podgate_runtime::Error::InvalidSpec(_)) => {
                    return Err(Error::Conflict(format!(
                        "snapshot {} is in use by a sandbox: delete the sandboxes started from it first",
                        s.name
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            self.k.store.mark_snapshot_deleted(&s.id, now_ms()).await?;
            Ok(s.id)
        }
        .await;
        self.k.audit.record(Event::by(caller, "snapshot.delete").detail(id_or_name).outcome(&r)).await;
        r.map(|_| ())
    }
}

impl Snapshots {
    /// Writes the caller's snapshot as an image archive (`docker save` format) into a new file
    /// under the scratch folder; returns the snapshot's name and the file (removed when dropped).
    pub async fn export(&self, caller: &Caller, id_or_name: &str) -> Result<(String, tempfile::NamedTempFile)> {
        let s = self.find_snapshot(caller, id_or_name).await?;
        let file = tempfile::NamedTempFile::new_in(&self.k.cfg.scratch_dir)
            .map_err(|e| Error::Internal(format!("a scratch file: {e}")))?;
        let r: Result<()> = self.k.driver.save_image(&s.image, file.path()).await.map_err(Into::into);
        self.k.audit.record(Event::by(caller, "snapshot.export").detail(&s.name).outcome(&r)).await;
        r?;
        Ok((s.name, file))
    }

    /// A new scratch file for an upload to [`Snapshots::import`].
    pub fn scratch_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::NamedTempFile::new_in(&self.k.cfg.scratch_dir)
            .map_err(|e| Error::Internal(format!("a scratch file: {e}")))
    }

    /// The largest archive an import takes.
    pub fn max_import_bytes(&self) -> u64 {
        self.k.cfg.max_import_bytes
    }

    /// Imports the image archive `upload` as the caller's snapshot `name`: the archive is checked
    /// and its tags dropped (`podgate_tar::image`), then the runtime loads it under the
    /// snapshot's own name. A refused or failed import leaves nothing.
    pub async fn import(&self, caller: &Caller, name: &str, upload: &std::path::Path) -> Result<Snapshot> {
        let r = self.import_inner(caller, name, upload).await;
        self.k.audit.record(Event::by(caller, "snapshot.import").detail(name).outcome(&r)).await;
        r.map(view)
    }

    async fn import_inner(&self, caller: &Caller, name: &str, upload: &std::path::Path) -> Result<SnapshotRow> {
        validate::sandbox_name(name).map_err(|e| Error::Invalid(e.replace("sandbox name", "snapshot name")))?;
        if self.k.store.live_snapshot_by_name(&caller.user_id, name).await?.is_some() {
            return Err(Error::Conflict(format!("snapshot name {name:?} is already in use")));
        }
        let clean = self.scratch_file()?;
        let (src, dst) = (upload.to_path_buf(), clean.path().to_path_buf());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let input = std::io::BufReader::new(std::fs::File::open(&src).map_err(|e| Error::Internal(e.to_string()))?);
            let output =
                std::io::BufWriter::new(std::fs::File::create(&dst).map_err(|e| Error::Internal(e.to_string()))?);
            podgate_tar::image::sanitize_image_archive(input, output).map_err(|e| match e {
                podgate_tar::image::ImageArchiveError::Refused(m) => Error::Invalid(m),
                podgate_tar::image::ImageArchiveError::Io(e) => Error::Invalid(format!("not an image archive: {e}")),
            })
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let id = ids::snapshot_id();
        let snap = SnapshotRow {
            image: format!("{IMAGE_REPO}:{id}"),
            id,
            owner_id: caller.user_id.clone(),
            name: name.to_string(),
            sandbox_id: String::new(),
            bytes: 0,
            created_at: now_ms(),
            deleted_at: None,
        };
        let bytes = self.k.driver.load_image(clean.path(), &snap.image).await.map_err(|e| match e {
            podgate_runtime::Error::InvalidSpec(m) => Error::Invalid(m),
            other => other.into(),
        })?;
        let snap = SnapshotRow { bytes: i64::try_from(bytes).unwrap_or(i64::MAX), ..snap };
        self.keep_snapshot(&snap, "the imported image's").await?;
        tracing::info!(snapshot_id = %snap.id, user_id = %caller.user_id, "image imported");
        Ok(snap)
    }
}

/// Whether `image` names a snapshot image (usable only through `snapshot`).
pub(crate) fn is_snapshot_image(image: &str) -> bool {
    image.split(['/', ':', '@']).any(|part| part == IMAGE_REPO)
}

fn view(s: SnapshotRow) -> Snapshot {
    Snapshot {
        id: s.id,
        name: s.name,
        owner: s.owner_id,
        sandbox: s.sandbox_id,
        created_at: from_ms(s.created_at),
        bytes: u64::try_from(s.bytes).unwrap_or(0),
    }
}
