//! Persistent workspaces: a sandbox created with `persist` mounts its owner's volume of the same
//! name at `/workspace` (made on first use, counted against the volume quota); the volume outlives
//! the sandbox until its owner deletes it, and a later sandbox of that name mounts it again.

use std::sync::Arc;

use podgate_runtime::VolumeKey;
use podgate_store::{SandboxRow, VolumeRow};
use podgate_types::api::{CreateSandboxRequest, Volume};
use podgate_types::passphrase::Passphrase;
use podgate_types::users::QuotaLimits;

use crate::audit::Event;
use crate::clock::{from_ms, now_ms};
use crate::kernel::{Kernel, Services as _};
use crate::workspace_keys::Encryption;
use crate::{Caller, Error, Result, ids};

/// The runtime's name for volume `id` (a Docker volume, a PersistentVolumeClaim).
pub fn runtime_name(id: &str) -> String {
    format!("podgate-{id}")
}

/// The volume a create with `persist` mounts: the owner's live volume `name`, or a new one.
pub(crate) struct Claimed {
    pub id: String,
    /// Made for this create: forgotten again if the sandbox cannot be created.
    pub fresh: bool,
    /// The key that encrypts a new volume or unlocks an existing one.
    pub key: Option<VolumeKey>,
}

/// What a create asks of its workspace's encryption.
#[derive(Default)]
pub(crate) struct EncryptionAsk {
    /// A new volume is to be encrypted.
    pub encrypt: bool,
    /// Encrypts a new volume, unlocks an existing one.
    pub passphrase: Option<Passphrase>,
}

/// The volume service: a user's persistent workspaces.
#[derive(Clone)]
pub struct Volumes {
    pub(crate) k: Arc<Kernel>,
}

impl Volumes {
    /// Checks a create's encryption options against the request, the policy and the runtime.
    pub(crate) fn check_encryption(&self, req: &CreateSandboxRequest) -> Result<EncryptionAsk> {
        if !req.encrypt && req.passphrase.is_none() {
            return Ok(EncryptionAsk::default());
        }
        if !req.persist {
            return Err(Error::Invalid(
                "`encrypt` and `passphrase` are for a persistent workspace: add `persist`".into(),
            ));
        }
        if !self.k.cfg.sandbox.allow_encrypted_workspaces {
            return Err(Error::Forbidden(
                "this server does not allow encrypted workspaces (admins: --allow-encrypted-workspaces)".into(),
            ));
        }
        if !self.k.driver.disk_caps().encryption {
            return Err(Error::Invalid(format!(
                "the {} runtime cannot encrypt workspaces on this host",
                self.k.driver.name()
            )));
        }
        if let Some(p) = &req.passphrase {
            p.validate().map_err(Error::Invalid)?;
        }
        Ok(EncryptionAsk { encrypt: req.encrypt, passphrase: req.passphrase.clone() })
    }

    /// The owner's volume `name` for a new sandbox of that name, made (of `size` bytes,
    /// encrypted if asked) within the volume and disk quotas; an existing encrypted one is
    /// unlocked with the passphrase given, or mounted locked without one.
    pub(crate) async fn claim_volume(
        &self,
        caller: &Caller,
        name: &str,
        size: u64,
        ask: EncryptionAsk,
        quota: &QuotaLimits,
    ) -> Result<Claimed> {
        if let Some(v) = self.k.store.live_volume_by_name(&caller.user_id, name).await? {
            let key = match (v.encryption.as_deref(), ask.passphrase) {
                (Some(e), Some(p)) => Some(Encryption::from_json(e)?.open(&p).await?),
                (Some(_), None) => None,
                (None, _) if ask.encrypt => {
                    return Err(Error::Conflict(format!(
                        "volume {name:?} exists and is not encrypted: delete it first (podgate volume rm {name}) or leave out encrypt"
                    )));
                }
                (None, Some(_)) => {
                    return Err(Error::Invalid(format!("volume {name:?} is not encrypted: leave out passphrase")));
                }
                (None, None) => None,
            };
            return Ok(Claimed { id: v.id, fresh: false, key });
        }
        let (encryption, key) = match (ask.encrypt, ask.passphrase) {
            (true, Some(p)) => {
                let (e, key) = Encryption::new(&p).await?;
                (Some(e.to_json()?), Some(key))
            }
            (true, None) => return Err(Error::Invalid("an encrypted workspace needs a passphrase".into())),
            (false, Some(_)) => {
                return Err(Error::Invalid(format!(
                    "volume {name:?} does not exist yet: add encrypt to make it encrypted"
                )));
            }
            (false, None) => (None, None),
        };
        let row = VolumeRow {
            id: ids::volume_id(),
            owner_id: caller.user_id.clone(),
            name: name.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            created_at: now_ms(),
            deleted_at: None,
            encryption,
        };
        let max_disk = i64::try_from(quota.disk.0).unwrap_or(i64::MAX);
        match self.k.store.insert_volume_within(&row, i64::from(quota.volumes), max_disk).await {
            Ok(true) => Ok(Claimed { id: row.id, fresh: true, key }),
            Ok(false) if self.k.store.count_volumes(&caller.user_id).await? < i64::from(quota.volumes) => {
                Err(self.k.quotas().over_disk_quota(&caller.user_id, quota, "a new volume's", row.size).await)
            }
            Ok(false) => Err(Error::QuotaExceeded(format!(
                "over your quota: {} of {} volumes are kept; delete one (podgate volume rm NAME) or ask an admin for more",
                self.k.store.count_volumes(&caller.user_id).await?,
                quota.volumes
            ))),
            // Made by a concurrent create of the same name a moment ago.
            Err(podgate_store::Error::Conflict(_)) => {
                let v = self.k.store.live_volume_by_name(&caller.user_id, name).await?;
                v.map(|v| Claimed { id: v.id, fresh: false, key: None })
                    .ok_or_else(|| Error::Conflict(format!("volume {name:?} is being created and deleted")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's live volumes (everyone's for an admin).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Volume>> {
        let owner = (caller.role != crate::Role::Admin).then_some(caller.user_id.as_str());
        let mut out = Vec::new();
        for v in self.k.store.live_volumes(owner).await? {
            let sandbox = self.attached(&v).await?.map(|s| s.id);
            out.push(view(v, sandbox));
        }
        Ok(out)
    }

    /// Deletes a volume the caller may manage, by id or the caller's own name for it; a volume
    /// mounted in a live sandbox is a conflict.
    pub async fn delete(&self, caller: &Caller, id_or_name: &str) -> Result<()> {
        let r = self.delete_volume_inner(caller, id_or_name).await;
        let event = Event::by(caller, "volume.delete").detail(id_or_name);
        self.k.audit.record(event.outcome(&r)).await;
        r.map(|_| ())
    }

    /// A live volume the caller may manage, by id or the caller's own name for it.
    async fn find_volume(&self, caller: &Caller, id_or_name: &str) -> Result<VolumeRow> {
        let missing = || Error::NotFound(format!("volume {id_or_name:?} not found"));
        let by_id =
            self.k.store.volume(id_or_name).await?.filter(|v| v.deleted_at.is_none() && caller.may_access(&v.owner_id));
        match by_id {
            Some(v) => Ok(v),
            None => self.k.store.live_volume_by_name(&caller.user_id, id_or_name).await?.ok_or_else(missing),
        }
    }

    /// Unlocks an encrypted volume with its passphrase: its sandbox sees its files again.
    pub async fn unlock(&self, caller: &Caller, id_or_name: &str, passphrase: &Passphrase) -> Result<Volume> {
        let r = async {
            let v = self.find_volume(caller, id_or_name).await?;
            let Some(e) = v.encryption.as_deref() else {
                return Err(Error::Invalid(format!("volume {} is not encrypted", v.name)));
            };
            let key = Encryption::from_json(e)?.open(passphrase).await?;
            match self.k.driver.unlock_volume(&runtime_name(&v.id), &key).await {
                Ok(()) => Ok(v),
                Err(podgate_runtime::Error::NotFound(_)) => Err(Error::Conflict(format!(
                    "volume {} is not mounted: start its sandbox with `podgate up --persist --encrypt --name {}`",
                    v.name, v.name
                ))),
                Err(e) => Err(e.into()),
            }
        }
        .await;
        self.k.audit.record(Event::by(caller, "volume.unlock").detail(id_or_name).outcome(&r)).await;
        let v = r?;
        let sandbox = self.attached(&v).await?.map(|s| s.id);
        Ok(view(v, sandbox))
    }

    /// Locks an encrypted volume: its files are unreadable (open ones once closed) until it is
    /// unlocked again.
    pub async fn lock(&self, caller: &Caller, id_or_name: &str) -> Result<Volume> {
        let r = async {
            let v = self.find_volume(caller, id_or_name).await?;
            if v.encryption.is_none() {
                return Err(Error::Invalid(format!("volume {} is not encrypted", v.name)));
            }
            self.k.driver.lock_volume(&runtime_name(&v.id)).await?;
            Ok(v)
        }
        .await;
        self.k.audit.record(Event::by(caller, "volume.lock").detail(id_or_name).outcome(&r)).await;
        let v = r?;
        let sandbox = self.attached(&v).await?.map(|s| s.id);
        Ok(view(v, sandbox))
    }

    /// Locks volume `id` if it is encrypted (its sandbox is gone); failures are logged.
    pub(crate) async fn lock_if_encrypted(&self, id: &str) {
        if let Ok(Some(v)) = self.k.store.volume(id).await
            && v.encryption.is_some()
            && let Err(e) = self.k.driver.lock_volume(&runtime_name(id)).await
        {
            tracing::warn!(volume_id = %id, error = %e, "locking an encrypted volume failed");
        }
    }

    async fn delete_volume_inner(&self, caller: &Caller, id_or_name: &str) -> Result<String> {
        let v = self.find_volume(caller, id_or_name).await?;
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
        self.k.driver.delete_volume(&runtime_name(id)).await?;
        self.k.store.mark_volume_deleted(id, now_ms()).await?;
        tracing::info!(volume_id = %id, "volume deleted");
        Ok(())
    }

    /// The live sandbox that mounts `v`, if any (only a sandbox of its name can).
    async fn attached(&self, v: &VolumeRow) -> Result<Option<SandboxRow>> {
        let Some(row) = self.k.store.sandbox_by_name(&v.owner_id, &v.name).await? else { return Ok(None) };
        let spec = &row.spec;
        Ok((spec.volume.as_deref() == Some(v.id.as_str())).then_some(row))
    }
}

fn view(v: VolumeRow, sandbox: Option<String>) -> Volume {
    Volume {
        id: v.id,
        name: v.name,
        owner: v.owner_id,
        created_at: from_ms(v.created_at),
        sandbox,
        size: podgate_types::MemorySize(u64::try_from(v.size).unwrap_or(0)),
        encrypted: v.encryption.is_some(),
    }
}
