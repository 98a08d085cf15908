//! Persistent workspaces: a sandbox created with `persist` mounts its owner's volume of the same
//! name at `/workspace` (made on first use, counted against the volume quota); the volume outlives
//! the sandbox until its owner deletes it, and a later sandbox of that name mounts it again.

use podgate_store::{SandboxRow, VolumeRow};
use podgate_types::api::Volume;
use podgate_types::users::QuotaLimits;

use crate::audit::Event;
use crate::clock::{from_ms, now_ms};
use crate::sandboxes::StoredSpec;
use crate::{Caller, Error, Result, Sandboxes, ids};

/// The runtime's name for volume `id` (a Docker volume, a PersistentVolumeClaim).
pub fn runtime_name(id: &str) -> String {
    format!("podgate-{id}")
}

/// The volume a create with `persist` mounts: the owner's live volume `name`, or a new one.
pub(crate) struct Claimed {
    pub id: String,
    /// Made for this create: forgotten again if the sandbox cannot be created.
    pub fresh: bool,
}

impl Sandboxes {
    /// The owner's volume `name` for a new sandbox of that name, made within the volume quota.
    pub(crate) async fn claim_volume(&self, caller: &Caller, name: &str, quota: &QuotaLimits) -> Result<Claimed> {
        if let Some(v) = self.store.live_volume_by_name(&caller.user_id, name).await? {
            return Ok(Claimed { id: v.id, fresh: false });
        }
        let row = VolumeRow {
            id: ids::volume_id(),
            owner_id: caller.user_id.clone(),
            name: name.to_string(),
            created_at: now_ms(),
            deleted_at: None,
        };
        match self.store.insert_volume_within(&row, i64::from(quota.volumes)).await {
            Ok(true) => Ok(Claimed { id: row.id, fresh: true }),
            Ok(false) => Err(Error::QuotaExceeded(format!(
                "over your quota: {} of {} volumes are kept; delete one (podgate volume rm NAME) or ask an admin for more",
                self.store.count_volumes(&caller.user_id).await?,
                quota.volumes
            ))),
            // Made by a concurrent create of the same name a moment ago.
            Err(podgate_store::Error::Conflict(_)) => {
                let v = self.store.live_volume_by_name(&caller.user_id, name).await?;
                v.map(|v| Claimed { id: v.id, fresh: false })
                    .ok_or_else(|| Error::Conflict(format!("volume {name:?} is being created and deleted")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's live volumes (everyone's for an admin).
    pub async fn list_volumes(&self, caller: &Caller) -> Result<Vec<Volume>> {
        let owner = (caller.role != crate::Role::Admin).then_some(caller.user_id.as_str());
        let mut out = Vec::new();
        for v in self.store.live_volumes(owner).await? {
            let sandbox = self.attached(&v).await?.map(|s| s.id);
            out.push(view(v, sandbox));
        }
        Ok(out)
    }

    /// Deletes a volume the caller may manage, by id or the caller's own name for it; a volume
    /// mounted in a live sandbox is a conflict.
    pub async fn delete_volume(&self, caller: &Caller, id_or_name: &str) -> Result<()> {
        let r = self.delete_volume_inner(caller, id_or_name).await;
        let event = Event::by(caller, "volume.delete").detail(id_or_name);
        self.audit.record(event.outcome(&r)).await;
        r.map(|_| ())
    }

    async fn delete_volume_inner(&self, caller: &Caller, id_or_name: &str) -> Result<String> {
        let missing = || Error::NotFound(format!("volume {id_or_name:?} not found"));
        let by_id =
            self.store.volume(id_or_name).await?.filter(|v| v.deleted_at.is_none() && caller.may_access(&v.owner_id));
        let v = match by_id {
            Some(v) => v,
            None => self.store.live_volume_by_name(&caller.user_id, id_or_name).await?.ok_or_else(missing)?,
        };
        if let Some(s) = self.attached(&v).await? {
            return Err(Error::Conflict(format!(
                "volume {} is mounted in sandbox {} ({}): delete the sandbox first, or both with `podgate rm {} --volume`",
                v.name, s.name, s.id, s.name
            )));
        }
        self.remove_volume(&v.id).await?;
        Ok(v.id)
    }

    /// Removes volume `id` from the runtime, then marks it deleted.
    pub(crate) async fn remove_volume(&self, id: &str) -> Result<()> {
        self.driver.delete_volume(&runtime_name(id)).await?;
        self.store.mark_volume_deleted(id, now_ms()).await?;
        tracing::info!(volume_id = %id, "volume deleted");
        Ok(())
    }

    /// The live sandbox that mounts `v`, if any (only a sandbox of its name can).
    async fn attached(&self, v: &VolumeRow) -> Result<Option<SandboxRow>> {
        let Some(row) = self.store.sandbox_by_name(&v.owner_id, &v.name).await? else { return Ok(None) };
        let spec: StoredSpec = serde_json::from_str(&row.spec).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((spec.volume.as_deref() == Some(v.id.as_str())).then_some(row))
    }
}

fn view(v: VolumeRow, sandbox: Option<String>) -> Volume {
    Volume { id: v.id, name: v.name, owner: v.owner_id, created_at: from_ms(v.created_at), sandbox }
}
