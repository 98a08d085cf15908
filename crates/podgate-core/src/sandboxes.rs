//! The `Sandboxes` service: create, list, get, delete and exec, with authorization. REST,
//! WebSocket and SSH all translate into these calls; none of them touches a driver or the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use podgate_runtime::{AgentEndpoint, Driver};
use podgate_store::{SandboxRow, Store};
use podgate_types::api::{CreateSandboxRequest, ExecRequest, ExecResponse, Sandbox, SandboxState};
use podgate_types::{MemorySize, validate};

use crate::agent_client::{AgentClient, agent_error};
use crate::audit::{Audit, Event};
use crate::clock::{from_ms, now_ms};
use crate::kernel::{Kernel, Services as _};
use crate::limits::RateLimiter;
use crate::{Caller, CoreConfig, Error, Metrics, Result, ids};

pub use crate::spec::{MAX_DISK, MIN_DISK, parse_user};

/// The sandbox service: create (the spec from `spec.rs`, brought up by `startup.rs`), list, get,
/// delete and exec. Cheap to clone. The other services ([`Sandboxes::lifecycle`],
/// [`Sandboxes::volumes`], [`Sandboxes::snapshots`], [`Sandboxes::templates`],
/// [`Sandboxes::quotas`], [`Sandboxes::reconciler`], [`Sandboxes::bootstrap`],
/// [`Sandboxes::recordings`], [`Sandboxes::agent_requests`]) share its kernel.
#[derive(Clone)]
pub struct Sandboxes {
    pub(crate) k: Arc<Kernel>,
}

impl Sandboxes {
    pub fn new(store: Store, driver: Arc<dyn Driver>, cfg: CoreConfig, metrics: Metrics) -> Sandboxes {
        Sandboxes { k: Arc::new(Kernel::new(store, driver, cfg, metrics)) }
    }

    /// Pause, resume, extend and idle pauses.
    pub fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        self.k.lifecycle()
    }

    /// Persistent volumes.
    pub fn volumes(&self) -> crate::volumes::Volumes {
        self.k.volumes()
    }

    /// Snapshots, forks, export and import.
    pub fn snapshots(&self) -> crate::snapshots::Snapshots {
        self.k.snapshots()
    }

    /// Templates and their warm pools.
    pub fn templates(&self) -> crate::templates::Templates {
        self.k.templates()
    }

    /// Quotas: the limits of each user and what they use.
    pub fn quotas(&self) -> crate::quotas::Quotas {
        self.k.quotas()
    }

    /// The reconciler: start-up recovery and the periodic passes.
    pub fn reconciler(&self) -> crate::reconciler::Reconciler {
        self.k.reconciler()
    }

    /// Code bootstraps and their logs.
    pub fn bootstrap(&self) -> crate::bootstrap::Bootstrap {
        self.k.bootstrap()
    }

    /// Terminal recordings.
    pub fn recordings(&self) -> crate::recordings::Recordings {
        self.k.recordings()
    }

    /// Requests relayed to agents, and the audit of what SSH does.
    pub fn agent_requests(&self) -> crate::agent_requests::AgentRequests {
        self.k.agent_requests()
    }

    /// Access tokens to one sandbox, for clients that address it directly.
    pub fn access_tokens(&self) -> crate::access_tokens::AccessTokens {
        self.k.access_tokens()
    }

    /// Resource samples and output of a sandbox.
    pub fn observe(&self) -> crate::observe::Observe {
        self.k.observe()
    }

    /// The audit trail.
    pub fn audit(&self) -> &Audit {
        &self.k.audit
    }

    /// The rate limiter, shared with the API layer.
    pub fn limiter(&self) -> &RateLimiter {
        &self.k.limiter
    }

    /// The store, for readiness checks and metrics.
    pub fn store(&self) -> &Store {
        &self.k.store
    }

    /// Checks that the database and the runtime answer.
    pub async fn ready(&self) -> Result<()> {
        self.k.store.ping().await?;
        self.k.driver.ping().await?;
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
        let row = self.k.store.sandbox(id).await?.ok_or_else(|| Error::NotFound(format!("sandbox {id}")))?;
        let now = now_ms();
        let ttl_ms = row.spec.ttl_seconds.map_or(i64::MAX, |t| (t as i64).saturating_mul(1000));
        let until = now.saturating_add(lease.as_millis() as i64).min(row.created_at.saturating_add(ttl_ms));
        if !self.k.store.set_expiry(id, until, now).await? {
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
            None => format!("image {}", req.image.as_deref().unwrap_or(&self.k.cfg.default_image)),
        };
        // A warm pool's refill is the server's own work: it spends no one's create rate.
        let allowed = if pool.is_some() { Ok(()) } else { self.k.limiter.create(caller).await };
        let row = match allowed {
            Ok(()) if req.template.is_some() => match self.k.templates().create_from_template(caller, req).await {
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
                self.k.audit.record(Event::by(caller, "sandbox.create").detail(what).outcome(&r)).await;
                return r;
            }
        };
        let event = Event::by(caller, "sandbox.create").sandbox(&row.id).detail(what);
        let this = self.clone();
        let started = Instant::now();
        let id = row.id.clone();
        let task =
            tokio::spawn(tracing::Instrument::in_current_span(
                async move { this.k.startup().bring_up(row, key).await },
            ));
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("create task for {id} failed: {e}"))),
        };
        self.k.metrics.observe_create(started.elapsed().as_secs_f64(), result.is_ok());
        self.k.audit.record(event.outcome(&result)).await;
        result
    }

    /// Builds the spec (once) and inserts the sandbox's row within its owner's quota, with its
    /// persistent volume claimed first when it asks for one.
    async fn validate_and_insert(
        &self,
        caller: &Caller,
        req: CreateSandboxRequest,
        lease: Option<Duration>,
        pool: Option<String>,
        scheduling: Option<podgate_types::api::Scheduling>,
    ) -> Result<(SandboxRow, Option<podgate_runtime::VolumeKey>)> {
        let new = crate::spec::NewSandbox::build(&self.k, caller, req, scheduling).await?;
        let ttl = new.spec.ttl_seconds.unwrap_or(1);
        let now = now_ms();
        let mut row = SandboxRow {
            id: ids::sandbox_id(),
            owner_id: caller.user_id.clone(),
            name: new.name,
            state: SandboxState::Pending,
            image: new.image,
            spec: new.spec,
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
            charged_cpu: new.charge.cpu,
            charged_memory: new.charge.memory,
            charged_disk: new.charge.disk,
            pool,
            revision: 0,
        };
        let quota = new.quota;
        let claimed = match new.persist {
            Some((size, encryption)) => {
                Some(self.volumes().claim_volume(caller, &row.name, size, encryption, &quota).await?)
            }
            None => None,
        };
        if let Some(c) = &claimed {
            row.spec.volume = Some(c.id.clone());
        }
        let ceiling = crate::limits::ceiling(&quota);
        let inserted = self.k.store.insert_sandbox_within(&row, ceiling).await;
        if !matches!(inserted, Ok(true))
            && let Some(c) = claimed.as_ref().filter(|c| c.fresh)
        {
            self.k.store.forget_volume(&c.id).await?;
        }
        if !inserted? {
            let c = new.charge;
            return Err(self.k.quotas().over_quota(&caller.user_id, &quota, c.cpu, c.memory, c.disk).await);
        }
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, image = %row.image, "creating sandbox");
        Ok((row, claimed.and_then(|c| c.key)))
    }

    /// The caller's live sandboxes (every live sandbox for an admin).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Sandbox>> {
        let owner = (caller.role != crate::Role::Admin).then_some(caller.user_id.as_str());
        self.k.store.list_sandboxes(owner).await?.iter().map(|r| self.view(r)).collect()
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
                self.k.audit.record(Event::by(caller, "sandbox.delete").detail(id_or_name).outcome(&r)).await;
                return r;
            }
        };
        let r = self.remove(&row.id, "deleted by its owner").await;
        self.k.audit.record(Event::by(caller, "sandbox.delete").sandbox(&row.id).outcome(&r)).await;
        r?;
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, "sandbox deleted");
        if let (true, Some(id)) = (volume, row.spec.volume) {
            let r = self.volumes().remove_volume(&id).await;
            self.k.audit.record(Event::by(caller, "volume.delete").sandbox(&row.id).detail(&id).outcome(&r)).await;
            r?;
        }
        Ok(())
    }

    /// Removes the instance of sandbox `id` and records it as deleted with `reason`.
    pub(crate) async fn remove(&self, id: &str, reason: &str) -> Result<()> {
        // The reason is there from the start, for a create this removal interrupts.
        self.k.store.transition(id, &SandboxState::LIVE, SandboxState::Stopping, Some(reason), now_ms()).await?;
        self.k.driver.delete(id).await?;
        // An encrypted workspace is locked at rest once its sandbox is gone.
        if let Ok(Some(row)) = self.k.store.sandbox(id).await
            && let Some(volume) = row.spec.volume
        {
            self.volumes().lock_if_encrypted(&volume).await;
        }
        self.k.store.transition(id, &[SandboxState::Stopping], SandboxState::Deleted, Some(reason), now_ms()).await?;
        self.k.activity.forget(id);
        Ok(())
    }

    /// Runs a process to completion in a running sandbox, through its agent.
    #[tracing::instrument(name = "sandbox.exec", skip(self, caller, req), fields(user_id = %caller.user_id))]
    pub async fn exec(&self, caller: &Caller, id_or_name: &str, req: ExecRequest) -> Result<ExecResponse> {
        validate::argv("argv", &req.argv).map_err(Error::Invalid)?;
        validate::env(&req.env).map_err(Error::Invalid)?;
        let row = self.k.lifecycle().awake(self.resolve(caller, id_or_name).await?).await?;
        let event = Event::by(caller, "sandbox.exec").sandbox(&row.id).detail(req.argv.join(" "));
        let r = match self.agent(&row) {
            Ok(agent) => agent.exec(&req).await.map_err(|e| agent_error(&row.id, e)),
            Err(e) => Err(e),
        };
        let event = match &r {
            Ok(out) => event.result(if out.exit_code == 0 { "ok" } else { "nonzero_exit" }),
            Err(_) => event.outcome(&r),
        };
        self.k.audit.record(event).await;
        r
    }

    /// The agent of a running sandbox.
    pub(crate) fn agent(&self, row: &SandboxRow) -> Result<AgentClient> {
        Ok(quiet_agent(row)?.with_activity(self.k.activity.marker(&row.id)))
    }

    /// The caller's running sandbox (resumed first when paused) and its agent.
    pub async fn running_agent(&self, caller: &Caller, id_or_name: &str) -> Result<(SandboxRow, AgentClient)> {
        let row = self.k.lifecycle().awake(self.resolve(caller, id_or_name).await?).await?;
        let agent = self.agent(&row)?;
        Ok((row, agent))
    }

    /// The agent of the running sandbox with this id, for a connection already authorized by a
    /// session token.
    pub(crate) async fn agent_by_id(&self, id: &str) -> Result<AgentClient> {
        let row = self.k.store.sandbox(id).await?.filter(|r| r.state.is_live());
        let row = row.ok_or_else(|| Error::NotFound(format!("sandbox {id:?} not found")))?;
        self.agent(&self.k.lifecycle().awake(row).await?)
    }

    /// Finds a live sandbox the caller may access, by id or by the caller's own name for it.
    /// Someone else's sandbox answers exactly like a missing one.
    pub(crate) async fn resolve(&self, caller: &Caller, id_or_name: &str) -> Result<SandboxRow> {
        let missing = || Error::NotFound(format!("sandbox {id_or_name:?} not found"));
        if id_or_name.is_empty() || id_or_name.len() > 128 {
            return Err(missing());
        }
        let by_id =
            self.k.store.sandbox(id_or_name).await?.filter(|r| r.state.is_live() && caller.may_access(&r.owner_id));
        match by_id {
            Some(r) => Ok(r),
            None => self.k.store.sandbox_by_name(&caller.user_id, id_or_name).await?.ok_or_else(missing),
        }
    }

    /// Like [`Sandboxes::resolve`], and also a deleted sandbox by id (for what outlives it:
    /// recordings).
    pub(crate) async fn resolve_any(&self, caller: &Caller, id_or_name: &str) -> Result<SandboxRow> {
        match self.resolve(caller, id_or_name).await {
            Err(Error::NotFound(m)) => match self.k.store.sandbox(id_or_name).await? {
                Some(r) if caller.may_access(&r.owner_id) => Ok(r),
                _ => Err(Error::NotFound(m)),
            },
            other => other,
        }
    }

    pub(crate) async fn load(&self, id: &str) -> Result<SandboxRow> {
        self.k.store.sandbox(id).await?.ok_or_else(|| Error::NotFound(format!("sandbox {id:?} not found")))
    }

    pub(crate) fn view(&self, r: &SandboxRow) -> Result<Sandbox> {
        let spec = r.spec.clone();
        Ok(Sandbox {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner_id.clone(),
            state: r.state,
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
            progress: SandboxState::CREATING.contains(&r.state).then(|| self.k.driver.progress(&r.id)).flatten(),
        })
    }
}

/// The agent of a running sandbox, its traffic not counted as the user's activity (the server's
/// own reads: health, resource samples).
pub(crate) fn quiet_agent(row: &SandboxRow) -> Result<AgentClient> {
    if row.state != SandboxState::Running {
        return Err(Error::Conflict(format!("sandbox {} is {}, not running", row.id, row.state)));
    }
    let endpoint = row
        .agent_url
        .as_deref()
        .and_then(AgentEndpoint::from_url)
        .ok_or_else(|| Error::Internal(format!("sandbox {} has no agent address", row.id)))?;
    Ok(AgentClient::new(endpoint, row.agent_secret.clone()))
}
