//! The `Sandboxes` service: create, list, get, delete and exec, with authorization. REST, gRPC,
//! WebSocket and SSH all translate into these calls; none of them touches a driver or the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podgate_runtime::{AgentEndpoint, Driver};
use podgate_store::{SandboxRow, Store};
use podgate_types::api::{CreateSandboxRequest, ExecRequest, ExecResponse, NetworkMode, Sandbox, SandboxState};
use podgate_types::{MemorySize, validate};
use serde::{Deserialize, Serialize};

use crate::agent_client::{AgentClient, agent_error};
use crate::audit::{Audit, Event};
use crate::clock::{from_ms, now_ms};
use crate::config::RecordingPolicy;
use crate::limits::RateLimiter;
use crate::recordings::Recordings;
use crate::{Caller, CoreConfig, Error, Metrics, Result, ids};

/// Smallest memory limit the Docker engine accepts (6 MiB).
const MIN_MEMORY: u64 = 6 << 20;
/// Largest memory limit a sandbox or sidecar may ask for (16 TiB): sums of these stay far
/// below the 2^63 that the databases' signed integers hold.
pub(crate) const MAX_MEMORY: u64 = 16 << 40;
/// Smallest disk cap or volume size (16 MiB): an ext4 volume needs room for its own metadata.
pub const MIN_DISK: u64 = 16 << 20;
/// Largest disk cap or volume size (16 TiB), for the same reason as [`MAX_MEMORY`].
pub const MAX_DISK: u64 = 16 << 40;

/// What is stored as a sandbox's `spec`: the validated request with defaults applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSpec {
    pub env: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub memory: Option<u64>,
    /// Cap of its own filesystem, in bytes (absent: made before disk limits, uncapped). Its
    /// sidecars get the same cap each; `charged_disk` counts them all against the quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds: Option<u64>,
    /// The validated code bootstrap, with the code host's checked addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<podgate_types::bootstrap::BootstrapSpec>,
    /// `uid:gid` everything runs as (sandboxes from before this field ran as root).
    #[serde(default)]
    pub user: (u32, u32),
    #[serde(default)]
    pub network: NetworkMode,
    #[serde(default)]
    pub read_only_root: bool,
    /// Terminals are recorded (the request asked and the policy allows, or the policy records all).
    #[serde(default)]
    pub record_terminals: bool,
    /// Sidecars, with their limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<podgate_types::api::Sidecar>,
    /// What the sandbox counts against its owner's quota: its own limits plus its sidecars'
    /// (sandboxes from before this field count `cpu` and `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged_cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged_memory: Option<u64>,
    /// Bytes of disk it counts against its owner's quota (`disk` for it and each sidecar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged_disk: Option<u64>,
    /// The persistent volume mounted at `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Seconds without user activity before an idle pause (0 or absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// The template whose warm pool holds it, until a user claims it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Kubernetes scheduling, from its template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<podgate_types::api::Scheduling>,
}

/// The TTL a sandbox created at `created_at` shows when it expires at `expires_at`: whole
/// seconds, rounded up (extends and claims keep it counted from creation).
pub(crate) fn ttl_from_creation(created_at: i64, expires_at: i64) -> Option<u64> {
    u64::try_from((expires_at.saturating_sub(created_at) + 999) / 1000).ok()
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

/// The sandbox service. Cheap to clone.
#[derive(Clone)]
pub struct Sandboxes {
    pub(crate) store: Store,
    /// User activity seen by this server, for idle shutdown.
    pub(crate) activity: crate::activity::Activity,
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) cfg: Arc<CoreConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) limiter: RateLimiter,
    pub(crate) recordings: Recordings,
    pub(crate) audit: Audit,
    /// Whether this replica held the reconciler lease at its last check.
    pub(crate) leading: Arc<std::sync::atomic::AtomicBool>,
    /// Templates whose warm pools are being refilled now.
    pub(crate) refilling: Arc<crate::pools::Refills>,
    /// Sandboxes whose idle pause the runtime refused (e.g. Kubernetes without a persistent
    /// `/workspace`): not tried again while they live.
    pub(crate) idle_refused: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// One lock per sandbox being resumed, so that concurrent uses resume it once.
    pub(crate) resuming: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Sandboxes {
    pub fn new(store: Store, driver: Arc<dyn Driver>, cfg: CoreConfig, metrics: Metrics) -> Sandboxes {
        // A runtime that stops answering fails requests instead of hanging them.
        let driver: Arc<dyn Driver> = Arc::new(podgate_runtime::Timed::new(driver, cfg.driver_deadlines));
        let limiter = RateLimiter::new(store.clone(), cfg.rates);
        let audit = Audit::new(store.clone());
        let recordings = Recordings::new(cfg.recording.dir.clone(), cfg.recording.max_bytes);
        let activity = crate::activity::Activity::new(store.clone());
        Sandboxes {
            store,
            driver,
            cfg: Arc::new(cfg),
            metrics,
            limiter,
            audit,
            recordings,
            activity,
            leading: Default::default(),
            refilling: Default::default(),
            idle_refused: Default::default(),
            resuming: Default::default(),
        }
    }

    /// The audit trail.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The rate limiter, shared with the API layer.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The store, for readiness checks and metrics.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks that the database and the runtime answer.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await?;
        self.driver.ping().await?;
        Ok(())
    }

    /// Creates a sandbox and returns once it runs and its agent answers. The work runs in its own
    /// task, so a caller that disconnects cannot leave a half-created sandbox behind.
    #[tracing::instrument(name = "sandbox.create", skip_all, fields(user_id = %caller.user_id))]
    pub async fn create(&self, caller: &Caller, req: CreateSandboxRequest) -> Result<Sandbox> {
        self.create_with(caller, req, None, None, None).await
    }

    /// Creates a sandbox for template `pool`'s warm pool (its owner creates it).
    pub(crate) async fn create_pooled(
        &self,
        caller: &Caller,
        req: CreateSandboxRequest,
        pool: &str,
        scheduling: Option<podgate_types::api::Scheduling>,
    ) -> Result<Sandbox> {
        self.create_with(caller, req, None, Some(pool.to_string()), scheduling).await
    }

    /// Creates a sandbox that expires `lease` from now unless [`Sandboxes::renew_lease`] moves
    /// its expiry on, up to its TTL: when its holder stops renewing (it crashed), the reconciler
    /// deletes it like any expired sandbox.
    #[tracing::instrument(name = "sandbox.create", skip_all, fields(user_id = %caller.user_id))]
    pub async fn create_leased(&self, caller: &Caller, req: CreateSandboxRequest, lease: Duration) -> Result<Sandbox> {
        self.create_with(caller, req, Some(lease), None, None).await
    }

    /// Moves a leased sandbox's expiry to `lease` from now, never past its TTL.
    pub async fn renew_lease(&self, id: &str, lease: Duration) -> Result<()> {
        let row = self.store.sandbox(id).await?.ok_or_else(|| Error::NotFound(format!("sandbox {id}")))?;
        let spec: StoredSpec = serde_json::from_str(&row.spec).map_err(|e| Error::Internal(e.to_string()))?;
        let now = now_ms();
        let ttl_ms = spec.ttl_seconds.map_or(i64::MAX, |t| (t as i64).saturating_mul(1000));
        let until = now.saturating_add(lease.as_millis() as i64).min(row.created_at.saturating_add(ttl_ms));
        if !self.store.set_expiry(id, until, now).await? {
            return Err(Error::NotFound(format!("sandbox {id} is being deleted")));
        }
        Ok(())
    }

    async fn create_with(
        &self,
        caller: &Caller,
        req: CreateSandboxRequest,
        lease: Option<Duration>,
        pool: Option<String>,
        scheduling: Option<podgate_types::api::Scheduling>,
    ) -> Result<Sandbox> {
        let what = match &req.snapshot {
            Some(s) => format!("snapshot {s}"),
            None => format!("image {}", req.image.as_deref().unwrap_or(&self.cfg.default_image)),
        };
        // A warm pool's refill is the server's own work: it spends no one's create rate.
        let allowed = if pool.is_some() { Ok(()) } else { self.limiter.create(caller).await };
        let row = match allowed {
            Ok(()) if req.template.is_some() => match self.create_from_template(caller, req).await {
                Ok(Ok(claimed)) => return Ok(claimed),
                Ok(Err((merged, from_template))) => {
                    self.validate_and_insert(caller, merged, lease, pool, from_template).await
                }
                Err(e) => Err(e),
            },
            Ok(()) => self.validate_and_insert(caller, req, lease, pool, scheduling).await,
            Err(e) => Err(e),
        };
        let (row, key) = match row {
            Ok(inserted) => inserted,
            Err(e) => {
                let r = Err(e);
                self.audit.record(Event::by(caller, "sandbox.create").detail(what).outcome(&r)).await;
                return r;
            }
        };
        let event = Event::by(caller, "sandbox.create").sandbox(&row.id).detail(what);
        let this = self.clone();
        let started = Instant::now();
        let id = row.id.clone();
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move { this.bring_up(row, key).await }));
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("create task for {id} failed: {e}"))),
        };
        self.metrics.observe_create(started.elapsed().as_secs_f64(), result.is_ok());
        self.audit.record(event.outcome(&result)).await;
        result
    }

    async fn validate_and_insert(
        &self,
        caller: &Caller,
        req: CreateSandboxRequest,
        lease: Option<Duration>,
        pool: Option<String>,
        scheduling: Option<podgate_types::api::Scheduling>,
    ) -> Result<(SandboxRow, Option<podgate_runtime::VolumeKey>)> {
        let encryption = self.check_encryption(&req)?;
        let (disk, volume_size) = crate::quotas::disk_sizes(&req, &self.cfg.sandbox)?;
        let image = match (&req.snapshot, req.image) {
            (Some(_), Some(_)) => return Err(Error::Invalid("give `image` or `snapshot`, not both".into())),
            (Some(s), None) => self.snapshot_image(caller, s).await?,
            (None, image) => {
                let image = image.unwrap_or_else(|| self.cfg.default_image.clone());
                self.check_image(&image)?;
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
        let policy = &self.cfg.sandbox;
        let user = match req.user.as_deref() {
            None => policy.user,
            Some(u) => parse_user(u)?,
        };
        if user.0 == 0 && !policy.allow_root {
            return Err(Error::Forbidden(
                "this server does not allow root sandboxes: leave out `user` to run as uid 1000".into(),
            ));
        }
        let record_terminals = match self.cfg.recording.policy {
            RecordingPolicy::Always => true,
            RecordingPolicy::Requested => req.record_terminals,
            RecordingPolicy::Off if req.record_terminals => {
                return Err(Error::Forbidden("this server does not record terminals".into()));
            }
            RecordingPolicy::Off => false,
        };
        let max_ttl = self.cfg.max_ttl.as_secs();
        let quota = self.limits_of(&caller.user_id).await?;
        let ttl = self.ttl_within(req.ttl_seconds, &quota)?;
        let idle_timeout = req.idle_timeout_seconds.unwrap_or(self.cfg.default_idle_timeout.as_secs());
        if idle_timeout > max_ttl {
            return Err(Error::Invalid(format!(
                "idle_timeout_seconds {idle_timeout} is out of range: use 0 (never) to {max_ttl}"
            )));
        }
        let sidecars = crate::sidecars::prepare(req.sidecars, quota.sidecars, MIN_MEMORY, |i| self.check_image(i))?;
        let bootstrap = crate::code_source::prepare(
            req.code.as_ref(),
            req.install.as_ref(),
            req.command.as_ref(),
            req.shell,
            &self.cfg.code,
        )
        .await?;
        let spec = StoredSpec {
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
            charged_cpu: None,
            charged_memory: None,
            charged_disk: None,
            sidecars,
            volume: None,
            idle_timeout_seconds: Some(idle_timeout),
            pool,
            scheduling,
        };
        let (sidecar_cpu, sidecar_memory) = crate::sidecars::charged(&spec.sidecars);
        let (cpu, memory) = (spec.cpu.unwrap_or(0.0) + sidecar_cpu, spec.memory.unwrap_or(0) + sidecar_memory);
        let charged_disk = disk.saturating_mul(1 + spec.sidecars.len() as u64);
        let spec = StoredSpec {
            charged_cpu: Some(cpu),
            charged_memory: Some(memory),
            charged_disk: Some(charged_disk),
            ..spec
        };
        let now = now_ms();
        let row = SandboxRow {
            id: ids::sandbox_id(),
            owner_id: caller.user_id.clone(),
            name,
            state: SandboxState::Pending.as_str().into(),
            image,
            spec: serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?,
            error: None,
            agent_secret: ids::agent_secret(),
            agent_url: None,
            created_at: now,
            updated_at: now,
            expires_at: Some(
                now.saturating_add(lease.map_or(ttl as i64, |l| l.as_secs().clamp(1, ttl) as i64).saturating_mul(1000)),
            ),
            deleted_at: None,
            bootstrap: None,
            bootstrap_log: None,
            last_active_at: None,
        };
        let memory = i64::try_from(memory).unwrap_or(i64::MAX);
        let claimed = match req.persist {
            true => Some(self.claim_volume(caller, &row.name, volume_size, encryption, &quota).await?),
            false => None,
        };
        let row = match &claimed {
            Some(c) => {
                let spec = StoredSpec { volume: Some(c.id.clone()), ..spec };
                SandboxRow { spec: serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?, ..row }
            }
            None => row,
        };
        let charged_disk = i64::try_from(charged_disk).unwrap_or(i64::MAX);
        let ceiling = crate::limits::ceiling(&quota);
        let inserted = self.store.insert_sandbox_within(&row, cpu, memory, charged_disk, ceiling).await;
        if !matches!(inserted, Ok(true))
            && let Some(c) = claimed.as_ref().filter(|c| c.fresh)
        {
            self.store.forget_volume(&c.id).await?;
        }
        if !inserted? {
            return Err(self.over_quota(&caller.user_id, &quota, cpu, memory, charged_disk).await);
        }
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, image = %row.image, "creating sandbox");
        Ok((row, claimed.and_then(|c| c.key)))
    }

    /// Checks an image a caller named for a sandbox or sidecar: a name (never an id), not a
    /// snapshot's (those are used through `snapshot`, by their owner), from a registry the
    /// admin allows.
    pub(crate) fn check_image(&self, image: &str) -> Result<()> {
        let reference = podgate_types::image_ref::ImageRef::parse(image).map_err(Error::Invalid)?;
        if crate::snapshots::is_snapshot_image(image) {
            return Err(Error::Forbidden("snapshot images are used through `snapshot`, by their owner".into()));
        }
        if !podgate_types::image_ref::registry_allowed(&self.cfg.sandbox.image_registries, &reference.registry) {
            return Err(Error::Forbidden(format!(
                "image {image:?} is from registry {}, which this server does not allow (admins: --image-registries)",
                reference.registry
            )));
        }
        Ok(())
    }

    /// The caller's live sandboxes (every live sandbox for an admin).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Sandbox>> {
        let owner = (caller.role != crate::Role::Admin).then_some(caller.user_id.as_str());
        self.store.list_sandboxes(owner).await?.iter().map(|r| self.view(r)).collect()
    }

    /// One sandbox by id or by the caller's name for it.
    pub async fn get(&self, caller: &Caller, id_or_name: &str) -> Result<Sandbox> {
        self.view(&self.resolve(caller, id_or_name).await?)
    }

    /// Deletes a sandbox: removes its instance, then marks it deleted (its name becomes free).
    #[tracing::instrument(name = "sandbox.delete", skip(self, caller), fields(user_id = %caller.user_id))]
    pub async fn delete(&self, caller: &Caller, id_or_name: &str) -> Result<()> {
        self.delete_with(caller, id_or_name, false).await
    }

    /// Deletes a sandbox and, with `volume`, its persistent volume too.
    pub async fn delete_with(&self, caller: &Caller, id_or_name: &str, volume: bool) -> Result<()> {
        let row = match self.resolve(caller, id_or_name).await {
            Ok(row) => row,
            Err(e) => {
                let r = Err(e);
                self.audit.record(Event::by(caller, "sandbox.delete").detail(id_or_name).outcome(&r)).await;
                return r;
            }
        };
        let r = self.remove(&row.id, "deleted by its owner").await;
        self.audit.record(Event::by(caller, "sandbox.delete").sandbox(&row.id).outcome(&r)).await;
        r?;
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, "sandbox deleted");
        let spec: Option<StoredSpec> = serde_json::from_str(&row.spec).ok();
        if let (true, Some(id)) = (volume, spec.and_then(|s| s.volume)) {
            let r = self.remove_volume(&id).await;
            self.audit.record(Event::by(caller, "volume.delete").sandbox(&row.id).detail(&id).outcome(&r)).await;
            r?;
        }
        Ok(())
    }

    /// Removes the instance of sandbox `id` and records it as deleted with `reason`.
    pub(crate) async fn remove(&self, id: &str, reason: &str) -> Result<()> {
        let live = ["pending", "starting", "running", "paused", "stopping", "stopped", "failed"];
        // The reason is there from the start, for a create this removal interrupts.
        self.store.transition(id, &live, "stopping", Some(reason), now_ms()).await?;
        self.driver.delete(id).await?;
        // An encrypted workspace is locked at rest once its sandbox is gone.
        if let Ok(Some(row)) = self.store.sandbox(id).await
            && let Some(volume) = serde_json::from_str::<StoredSpec>(&row.spec).ok().and_then(|s| s.volume)
        {
            self.lock_if_encrypted(&volume).await;
        }
        self.store.transition(id, &["stopping"], "deleted", Some(reason), now_ms()).await?;
        self.activity.forget(id);
        Ok(())
    }

    /// Runs a process to completion in a running sandbox, through its agent.
    #[tracing::instrument(name = "sandbox.exec", skip(self, caller, req), fields(user_id = %caller.user_id))]
    pub async fn exec(&self, caller: &Caller, id_or_name: &str, req: ExecRequest) -> Result<ExecResponse> {
        validate::argv("argv", &req.argv).map_err(Error::Invalid)?;
        validate::env(&req.env).map_err(Error::Invalid)?;
        let row = self.awake(self.resolve(caller, id_or_name).await?).await?;
        let event = Event::by(caller, "sandbox.exec").sandbox(&row.id).detail(req.argv.join(" "));
        let r = match self.agent(&row) {
            Ok(agent) => agent.exec(&req).await.map_err(|e| agent_error(&row.id, e)),
            Err(e) => Err(e),
        };
        let event = match &r {
            Ok(out) => event.result(if out.exit_code == 0 { "ok" } else { "nonzero_exit" }),
            Err(_) => event.outcome(&r),
        };
        self.audit.record(event).await;
        r
    }

    /// The agent of a running sandbox.
    pub(crate) fn agent(&self, row: &SandboxRow) -> Result<AgentClient> {
        if row.state != SandboxState::Running.as_str() {
            return Err(Error::Conflict(format!("sandbox {} is {}, not running", row.id, row.state)));
        }
        let endpoint = row
            .agent_url
            .as_deref()
            .and_then(AgentEndpoint::from_url)
            .ok_or_else(|| Error::Internal(format!("sandbox {} has no agent address", row.id)))?;
        Ok(AgentClient::new(endpoint, row.agent_secret.clone()).with_activity(self.activity.marker(&row.id)))
    }

    /// The caller's running sandbox (resumed first when paused) and its agent.
    pub async fn running_agent(&self, caller: &Caller, id_or_name: &str) -> Result<(SandboxRow, AgentClient)> {
        let row = self.awake(self.resolve(caller, id_or_name).await?).await?;
        let agent = self.agent(&row)?;
        Ok((row, agent))
    }

    /// The agent of the running sandbox with this id, for a connection already authorized by a
    /// session token.
    pub(crate) async fn agent_by_id(&self, id: &str) -> Result<AgentClient> {
        let row = self.store.sandbox(id).await?.filter(|r| r.state != "deleted");
        let row = row.ok_or_else(|| Error::NotFound(format!("sandbox {id:?} not found")))?;
        self.agent(&self.awake(row).await?)
    }

    /// Finds a live sandbox the caller may access, by id or by the caller's own name for it.
    /// Someone else's sandbox answers exactly like a missing one.
    pub(crate) async fn resolve(&self, caller: &Caller, id_or_name: &str) -> Result<SandboxRow> {
        let missing = || Error::NotFound(format!("sandbox {id_or_name:?} not found"));
        if id_or_name.is_empty() || id_or_name.len() > 128 {
            return Err(missing());
        }
        let by_id =
            self.store.sandbox(id_or_name).await?.filter(|r| r.state != "deleted" && caller.may_access(&r.owner_id));
        match by_id {
            Some(r) => Ok(r),
            None => self.store.sandbox_by_name(&caller.user_id, id_or_name).await?.ok_or_else(missing),
        }
    }

    /// Like [`Sandboxes::resolve`], and also a deleted sandbox by id (for what outlives it:
    /// recordings).
    pub(crate) async fn resolve_any(&self, caller: &Caller, id_or_name: &str) -> Result<SandboxRow> {
        match self.resolve(caller, id_or_name).await {
            Err(Error::NotFound(m)) => match self.store.sandbox(id_or_name).await? {
                Some(r) if caller.may_access(&r.owner_id) => Ok(r),
                _ => Err(Error::NotFound(m)),
            },
            other => other,
        }
    }

    pub(crate) async fn load(&self, id: &str) -> Result<SandboxRow> {
        self.store.sandbox(id).await?.ok_or_else(|| Error::NotFound(format!("sandbox {id:?} not found")))
    }

    pub(crate) fn view(&self, r: &SandboxRow) -> Result<Sandbox> {
        let spec: StoredSpec = serde_json::from_str(&r.spec)
            .map_err(|e| Error::Internal(format!("sandbox {} has a corrupt spec: {e}", r.id)))?;
        Ok(Sandbox {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner_id.clone(),
            state: r.state.parse().map_err(Error::Internal)?,
            image: r.image.clone(),
            env: spec.env,
            cmd: spec.cmd,
            cpu: spec.cpu,
            memory: spec.memory.map(MemorySize),
            disk: spec.disk.map(MemorySize),
            labels: spec.labels,
            ttl_seconds: spec.ttl_seconds,
            user: format!("{}:{}", spec.user.0, spec.user.1),
            network: spec.network,
            read_only_root: spec.read_only_root,
            record_terminals: spec.record_terminals,
            sidecars: spec.sidecars,
            error: r.error.clone(),
            created_at: from_ms(r.created_at),
            expires_at: r.expires_at.map(from_ms),
            bootstrap: r.bootstrap.as_deref().and_then(|b| serde_json::from_str(b).ok()),
            volume: spec.volume,
            idle_timeout_seconds: spec.idle_timeout_seconds.unwrap_or(0),
            last_active_at: r.last_active_at.map(from_ms),
            progress: ["pending", "starting"]
                .contains(&r.state.as_str())
                .then(|| self.driver.progress(&r.id))
                .flatten(),
        })
    }
}
