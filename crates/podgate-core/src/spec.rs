//! Building a sandbox's one [`SandboxSpec`] from a create request: every check, the admin's
//! policy and the defaults, applied once. What is stored, placed and shown all comes from it.

use podgate_types::api::{CreateSandboxRequest, Scheduling};
use podgate_types::spec::SandboxSpec;
use podgate_types::{MemorySize, validate};

use podgate_types::users::QuotaLimits;
use std::sync::Arc;

use crate::config::{RecordingPolicy, SandboxPolicy};
use crate::kernel::{Kernel, Services as _};
use crate::volumes::EncryptionAsk;
use crate::{Caller, Error, Result, ids};

/// Smallest memory limit the Docker engine accepts (6 MiB).
pub(crate) const MIN_MEMORY: u64 = 6 << 20;
/// Largest memory limit a sandbox or sidecar may ask for (16 TiB): sums of these stay far
/// below the 2^63 that the databases' signed integers hold.
pub(crate) const MAX_MEMORY: u64 = 16 << 40;
/// Smallest disk cap or volume size (16 MiB): an ext4 volume needs room for its own metadata.
pub const MIN_DISK: u64 = 16 << 20;
/// Largest disk cap or volume size (16 TiB), for the same reason as [`MAX_MEMORY`].
pub const MAX_DISK: u64 = 16 << 40;

/// What a sandbox counts against its owner's quota: its own limits plus its sidecars'.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Charge {
    pub cpu: f64,
    pub memory: i64,
    pub disk: i64,
}

impl Charge {
    /// The charge of `spec`: its cpu, memory and disk, and each sidecar's.
    pub(crate) fn of(spec: &SandboxSpec) -> Charge {
        let (sidecar_cpu, sidecar_memory) = crate::sidecars::charged(&spec.sidecars);
        let memory = spec.memory.unwrap_or(0).saturating_add(sidecar_memory);
        let disk = spec.disk.unwrap_or(0).saturating_mul(1 + spec.sidecars.len() as u64);
        Charge {
            cpu: spec.cpu.unwrap_or(0.0) + sidecar_cpu,
            memory: i64::try_from(memory).unwrap_or(i64::MAX),
            disk: i64::try_from(disk).unwrap_or(i64::MAX),
        }
    }
}

/// A create request made into a sandbox to insert.
pub(crate) struct NewSandbox {
    pub name: String,
    pub image: String,
    pub spec: SandboxSpec,
    pub charge: Charge,
    /// The caller's quota it was checked against.
    pub quota: QuotaLimits,
    /// A persistent `/workspace`: its size and encryption.
    pub persist: Option<(u64, EncryptionAsk)>,
}

/// Parses a sandbox `user`: `root`, a uid, or `uid:gid`.
pub fn parse_user(s: &str) -> Result<(u32, u32)> {
    if s == "root" {
        return Ok((0, 0));
    }
    let (uid, gid) = validate::uid_gid(s).map_err(|e| Error::Invalid(format!("{e}, or root")))?;
    let agent = podgate_types::agent::AGENT_UID;
    match uid == agent || gid == agent {
        true => Err(Error::Invalid(format!("invalid user {s:?}: uid and gid {agent} are the agent's own"))),
        false => Ok((uid, gid)),
    }
}

/// The TTL a sandbox created at `created_at` shows when it expires at `expires_at`: whole
/// seconds, rounded up (extends and claims keep it counted from creation).
pub(crate) fn ttl_from_creation(created_at: i64, expires_at: i64) -> Option<u64> {
    u64::try_from((expires_at.saturating_sub(created_at) + 999) / 1000).ok()
}

impl NewSandbox {
    /// Validates a create request and applies the policy and defaults: the one place a
    /// [`SandboxSpec`] is made.
    pub(crate) async fn build(
        k: &Arc<Kernel>,
        caller: &Caller,
        req: CreateSandboxRequest,
        scheduling: Option<Scheduling>,
    ) -> Result<NewSandbox> {
        let encryption = k.volumes().check_encryption(&req)?;
        let (disk, volume_size) = crate::quotas::disk_sizes(&req, &k.cfg.sandbox)?;
        let image = match (&req.snapshot, req.image) {
            (Some(_), Some(_)) => return Err(Error::Invalid("give `image` or `snapshot`, not both".into())),
            (Some(s), None) => k.snapshots().snapshot_image(caller, s).await?,
            (None, image) => {
                let image = image.unwrap_or_else(|| k.cfg.default_image.clone());
                check_image(&k.cfg.sandbox, &image)?;
                image
            }
        };
        let name = match req.name {
            Some(n) => {
                validate::sandbox_name(&n).map_err(Error::Invalid)?;
                n
            }
            None => ids::sandbox_name(),
        };
        validate::env(&req.env).map_err(Error::Invalid)?;
        validate::labels(&req.labels).map_err(Error::Invalid)?;
        if let Some(cmd) = &req.cmd {
            validate::argv("cmd", cmd).map_err(Error::Invalid)?;
        }
        if let Some(cpu) = req.cpu
            && !(cpu.is_finite() && cpu > 0.0 && cpu <= 1024.0)
        {
            return Err(Error::Invalid(format!("invalid cpu {cpu}: give cores between 0 and 1024, e.g. 0.5")));
        }
        if let Some(MemorySize(m)) = req.memory
            && !(MIN_MEMORY..=MAX_MEMORY).contains(&m)
        {
            return Err(Error::Invalid(format!("memory {m} bytes is out of range: give 6Mi to 16Ti")));
        }
        let policy = &k.cfg.sandbox;
        let user = match req.user.as_deref() {
            None => policy.user,
            Some(u) => parse_user(u)?,
        };
        if user.0 == 0 && !policy.allow_root {
            return Err(Error::Forbidden(
                "this server does not allow root sandboxes: leave out `user` to run as uid 1000".into(),
            ));
        }
        let record_terminals = match k.cfg.recording.policy {
            RecordingPolicy::Always => true,
            RecordingPolicy::Requested => req.record_terminals,
            RecordingPolicy::Off if req.record_terminals => {
                return Err(Error::Forbidden("this server does not record terminals".into()));
            }
            RecordingPolicy::Off => false,
        };
        let max_ttl = k.cfg.max_ttl.as_secs();
        let quota = k.quotas().limits_of(&caller.user_id).await?;
        let ttl = k.quotas().ttl_within(req.ttl_seconds, &quota)?;
        let idle_timeout = req.idle_timeout_seconds.unwrap_or(k.cfg.default_idle_timeout.as_secs());
        if idle_timeout > max_ttl {
            return Err(Error::Invalid(format!(
                "idle_timeout_seconds {idle_timeout} is out of range: use 0 (never) to {max_ttl}"
            )));
        }
        let sidecars = crate::sidecars::prepare(req.sidecars, quota.sidecars, MIN_MEMORY, |i| check_image(policy, i))?;
        let bootstrap = crate::code_source::prepare(
            req.code.as_ref(),
            req.install.as_ref(),
            req.command.as_ref(),
            req.shell,
            &k.cfg.code,
        )
        .await?;
        let spec = SandboxSpec {
            bootstrap,
            env: req.env,
            cmd: req.cmd,
            cpu: Some(req.cpu.unwrap_or(policy.default_cpu)),
            memory: Some(req.memory.map_or(policy.default_memory, |m| m.0)),
            disk: Some(disk),
            labels: req.labels,
            ttl_seconds: Some(ttl),
            user,
            network: req.network.unwrap_or(policy.network),
            read_only_root: req.read_only_root,
            record_terminals,
            sidecars,
            volume: None,
            idle_timeout_seconds: Some(idle_timeout),
            scheduling,
        };
        let charge = Charge::of(&spec);
        let persist = req.persist.then_some((volume_size, encryption));
        Ok(NewSandbox { name, image, spec, charge, quota, persist })
    }
}

/// Checks an image a caller named for a sandbox or sidecar: a name (never an id), not a
/// snapshot's (those are used through `snapshot`, by their owner), from a registry the admin
/// allows (`policy`).
pub(crate) fn check_image(policy: &SandboxPolicy, image: &str) -> Result<()> {
    let reference = podgate_types::image_ref::ImageRef::parse(image).map_err(Error::Invalid)?;
    if crate::snapshots::is_snapshot_image(image) {
        return Err(Error::Forbidden("snapshot images are used through `snapshot`, by their owner".into()));
    }
    if !podgate_types::image_ref::registry_allowed(&policy.image_registries, &reference.registry) {
        return Err(Error::Forbidden(format!(
            "image {image:?} is from registry {}, which this server does not allow (admins: --image-registries)",
            reference.registry
        )));
    }
    Ok(())
}
