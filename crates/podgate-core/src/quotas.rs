//! The `Quotas` service: a user's limits (server defaults under an admin's
//! overrides), the TTL a quota allows, what an over-quota refusal says, and the quota API.

use std::sync::Arc;

use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::{Quota, QuotaLimits, QuotaOverrides};

use crate::audit::Event;
use crate::config::SandboxPolicy;
use crate::kernel::Kernel;
use crate::spec::{MAX_DISK, MIN_DISK};
use crate::{Caller, Error, Result};

/// The disk cap and the size of a new volume a create asks for (else the policy's), checked.
pub(crate) fn disk_sizes(req: &CreateSandboxRequest, policy: &SandboxPolicy) -> Result<(u64, u64)> {
    let check = |what: &str, size: Option<podgate_types::MemorySize>, default: u64| {
        let size = size.map_or(default, |s| s.0);
        if (MIN_DISK..=MAX_DISK).contains(&size) {
            Ok(size)
        } else {
            Err(Error::Invalid(format!("{what} {size} bytes is out of range: give 16Mi to 16Ti")))
        }
    };
    Ok((
        check("disk", req.disk, policy.default_disk)?,
        check("volume_size", req.volume_size, policy.default_volume_size)?,
    ))
}

/// "over your quota: … disk" for `bytes` more of `what`.
fn disk_over_quota(u: &podgate_store::Usage, q: &QuotaLimits, what: &str, bytes: i64) -> Error {
    let gib = |b: i64| b as f64 / f64::from(1u32 << 30);
    let max = i64::try_from(q.disk.0).unwrap_or(i64::MAX);
    Error::QuotaExceeded(format!(
        "over your quota: {what} {:.2} GiB of disk would make {:.2} of {:.2} GiB (sandboxes, volumes and snapshots); \
         delete a sandbox, volume or snapshot, or ask an admin for more",
        gib(bytes),
        gib(u.disk.saturating_add(bytes)),
        gib(max)
    ))
}

/// The quota service: each user's limits (server defaults under an admin's overrides), the TTL
/// a quota allows, what an over-quota refusal says, and the quota API.
#[derive(Clone)]
pub struct Quotas {
    pub(crate) k: Arc<Kernel>,
}

impl Quotas {
    /// The TTL asked for (else the default, within the quota), checked against the server's
    /// maximum and the quota's.
    pub(crate) fn ttl_within(&self, asked: Option<u64>, quota: &QuotaLimits) -> Result<u64> {
        let max_ttl = self.k.cfg.max_ttl.as_secs();
        let ttl = asked.unwrap_or(self.k.cfg.default_ttl.as_secs().min(quota.max_ttl_seconds));
        if ttl == 0 || ttl > max_ttl {
            return Err(Error::Invalid(format!("ttl_seconds {ttl} is out of range: use 1 to {max_ttl}")));
        }
        if ttl > quota.max_ttl_seconds {
            return Err(Error::QuotaExceeded(format!(
                "ttl_seconds {ttl} is over your quota's maximum TTL of {} s",
                quota.max_ttl_seconds
            )));
        }
        Ok(ttl)
    }

    /// The quota that applies to `user_id`.
    pub(crate) async fn limits_of(&self, user_id: &str) -> Result<QuotaLimits> {
        let user = self.k.store.user(user_id).await?;
        let overrides = crate::limits::overrides_of(user.as_ref().and_then(|u| u.quota.as_deref()))?;
        Ok(self.k.cfg.quota.apply(&overrides, self.k.cfg.max_ttl.as_secs()))
    }

    /// Says which limit a refused create would have passed.
    pub(crate) async fn over_quota(&self, user_id: &str, q: &QuotaLimits, cpu: f64, memory: i64, disk: i64) -> Error {
        let u = match self.k.store.usage(user_id).await {
            Ok(u) => u,
            Err(e) => return e.into(),
        };
        let gib = |b: i64| b as f64 / f64::from(1u32 << 30);
        let why = if u.sandboxes + 1 > i64::from(q.sandboxes) {
            format!("{} of {} sandboxes are in use", u.sandboxes, q.sandboxes)
        } else if u.cpu + cpu > q.cpu + 1e-9 {
            format!("{cpu} more CPUs would make {} of {}", u.cpu + cpu, q.cpu)
        } else if u.disk.saturating_add(disk) > i64::try_from(q.disk.0).unwrap_or(i64::MAX) {
            return disk_over_quota(&u, q, "the sandbox's", disk);
        } else {
            let max = i64::try_from(q.memory.0).unwrap_or(i64::MAX);
            format!(
                "{:.2} GiB more memory would make {:.2} of {:.2} GiB",
                gib(memory),
                gib(u.memory + memory),
                gib(max)
            )
        };
        Error::QuotaExceeded(format!("over your quota: {why}; delete a sandbox or ask an admin for more"))
    }

    /// The refusal of something that would take `user_id` over its disk quota.
    pub(crate) async fn over_disk_quota(&self, user_id: &str, q: &QuotaLimits, what: &str, bytes: i64) -> Error {
        match self.k.store.usage(user_id).await {
            Ok(u) => disk_over_quota(&u, q, what, bytes),
            Err(e) => e.into(),
        }
    }

    /// A user's quota and usage (`me` for the caller; admins may see anyone's).
    pub async fn get(&self, caller: &Caller, id_or_me: &str) -> Result<Quota> {
        let user = crate::users::managed_user(&self.k.store, caller, id_or_me).await?;
        let overrides = crate::limits::overrides_of(user.quota.as_deref())?;
        let limits = self.k.cfg.quota.apply(&overrides, self.k.cfg.max_ttl.as_secs());
        Ok(crate::limits::view(&user.id, limits, overrides, self.k.store.usage(&user.id).await?))
    }

    /// Sets a user's quota overrides (admins); fields left out use the server's defaults.
    pub async fn set(&self, caller: &Caller, id: &str, overrides: QuotaOverrides) -> Result<Quota> {
        caller.require_admin()?;
        crate::limits::validate_overrides(&overrides)?;
        let user = crate::users::managed_user(&self.k.store, caller, id).await?;
        let json = (overrides != QuotaOverrides::default())
            .then(|| serde_json::to_string(&overrides))
            .transpose()
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.k.store.set_user_quota(&user.id, json.as_deref()).await?;
        let detail = format!("user {} ({}): {}", user.name, user.id, json.as_deref().unwrap_or("defaults"));
        self.k.audit.record(Event::by(caller, "quota.set").detail(detail)).await;
        self.get(caller, &user.id).await
    }
}
