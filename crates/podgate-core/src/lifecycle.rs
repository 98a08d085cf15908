//! The `Lifecycle` service, pause and resume: a paused sandbox keeps its processes and memory frozen by the runtime, and
//! any use of it (exec, terminals, processes, files, ports, SSH) resumes it first. Idle
//! sandboxes are paused by the reconciler; TTL and idle timeout can be extended.

use std::sync::Arc;

use podgate_types::state::SandboxState;

use podgate_types::api::{ExtendRequest, Sandbox};

use crate::audit::Event;
use crate::clock::now_ms;
use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result};
use podgate_store::SandboxRow;

/// The lifecycle service: pause, resume (also on a user's input), extend, and idle pauses.
#[derive(Clone)]
pub struct Lifecycle {
    pub(crate) k: Arc<Kernel>,
}

impl Lifecycle {
    /// Freezes a running sandbox (a paused one stays paused).
    pub async fn pause(&self, caller: &Caller, id_or_name: &str) -> Result<Sandbox> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let r = self.pause_row(&row).await;
        self.k.audit.record(Event::by(caller, "sandbox.pause").sandbox(&row.id).outcome(&r)).await;
        r?;
        self.k.sandboxes().view(&self.k.sandboxes().load(&row.id).await?)
    }

    /// Continues a paused sandbox (a running one stays running).
    pub async fn resume(&self, caller: &Caller, id_or_name: &str) -> Result<Sandbox> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let r = self.resume_row(&row).await;
        self.k.audit.record(Event::by(caller, "sandbox.resume").sandbox(&row.id).outcome(&r)).await;
        r?;
        self.k.activity.touch(&row.id);
        self.k.sandboxes().view(&self.k.sandboxes().load(&row.id).await?)
    }

    /// `row` as it is once usable: a paused sandbox is resumed first (audited as a resume on use).
    pub(crate) async fn awake(&self, row: SandboxRow) -> Result<SandboxRow> {
        self.k.activity.touch(&row.id);
        if row.state != SandboxState::Paused {
            return Ok(row);
        }
        let r = self.resume_row(&row).await;
        self.k.audit.record(Event::system("sandbox.resume").sandbox(&row.id).detail("on use").outcome(&r)).await;
        r?;
        self.k.sandboxes().load(&row.id).await
    }

    /// Resumes the sandboxes users send input to while they are paused (an open terminal or SSH
    /// session to a sandbox paused for idleness), for as long as the server runs.
    pub async fn run_waker(self) {
        let Some(mut wakes) = self.k.activity.wakes() else { return };
        while let Some(id) = wakes.recv().await {
            let this = self.clone();
            tokio::spawn(async move {
                match this.k.store.sandbox(&id).await {
                    Ok(Some(row)) if row.state == SandboxState::Paused => {
                        let r = this.resume_row(&row).await;
                        let event = Event::system("sandbox.resume").sandbox(&row.id).detail("on input");
                        this.k.audit.record(event.outcome(&r)).await;
                        if let Err(e) = r {
                            tracing::warn!(sandbox_id = %id, error = %e, "resuming a sandbox on input failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(sandbox_id = %id, error = %e, "checking a sandbox for input failed"),
                }
            });
        }
    }

    /// Moves a sandbox's expiry to `ttl_seconds` from now and/or sets its idle timeout.
    pub async fn extend(&self, caller: &Caller, id_or_name: &str, req: ExtendRequest) -> Result<Sandbox> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        let r = self.extend_row(caller, &row, &req).await;
        let detail = format!("ttl {:?} idle {:?}", req.ttl_seconds, req.idle_timeout_seconds);
        self.k.audit.record(Event::by(caller, "sandbox.extend").sandbox(&row.id).detail(detail).outcome(&r)).await;
        r?;
        self.k.sandboxes().view(&self.k.sandboxes().load(&row.id).await?)
    }

    /// Applies an extend as a compare-and-set on the sandbox's spec revision: a concurrent
    /// change (another extend, a claim) makes it read the row again and retry, so neither is lost.
    async fn extend_row(&self, caller: &Caller, row: &SandboxRow, req: &ExtendRequest) -> Result<()> {
        let max_ttl = self.k.cfg.max_ttl.as_secs();
        if let Some(idle) = req.idle_timeout_seconds
            && idle > max_ttl
        {
            return Err(Error::Invalid(format!(
                "idle_timeout_seconds {idle} is out of range: use 0 (never) to {max_ttl}"
            )));
        }
        let ttl = match req.ttl_seconds {
            Some(asked) => {
                Some(self.k.quotas().ttl_within(Some(asked), &self.k.quotas().limits_of(&caller.user_id).await?)?)
            }
            None => None,
        };
        let mut row = row.clone();
        for _ in 0..16 {
            let now = now_ms();
            let expires = ttl.map(|ttl| now.saturating_add((ttl as i64).saturating_mul(1000)));
            if let (Some(ttl), Some(expires)) = (ttl, expires) {
                row.spec.ttl_seconds = Some(crate::spec::ttl_from_creation(row.created_at, expires).unwrap_or(ttl));
            }
            if let Some(idle) = req.idle_timeout_seconds {
                row.spec.idle_timeout_seconds = Some(idle);
            }
            if self.k.store.update_spec(&row, expires, now).await? {
                return Ok(());
            }
            row = self.k.sandboxes().load(&row.id).await?;
            if !row.state.is_live() || row.state == SandboxState::Stopping {
                return Err(Error::Conflict(format!("sandbox {} is being deleted", row.id)));
            }
        }
        Err(Error::Conflict(format!("sandbox {} keeps changing; try again", row.id)))
    }

    /// Pauses the running sandboxes among `rows` that saw no user activity for their idle
    /// timeout (on any replica: the database's mark, or this replica's fresher one).
    pub(crate) async fn pause_idle(&self, rows: &[SandboxRow], now: i64) {
        let refused = &self.k.idle_refused;
        refused.lock().unwrap_or_else(|e| e.into_inner()).retain(|id| rows.iter().any(|r| &r.id == id));
        for row in rows.iter().filter(|r| r.state == SandboxState::Running) {
            if refused.lock().unwrap_or_else(|e| e.into_inner()).contains(&row.id) {
                continue;
            }
            let timeout = row.spec.idle_timeout();
            // A warm pool's sandboxes wait unused by design.
            if timeout == 0 || row.pool.is_some() {
                continue;
            }
            let marks =
                [Some(row.created_at), Some(row.updated_at), row.last_active_at, self.k.activity.last_seen(&row.id)];
            let last = marks.into_iter().flatten().max().unwrap_or(row.created_at);
            if now.saturating_sub(last) < (timeout as i64).saturating_mul(1000) {
                continue;
            }
            let r = self.pause_row(row).await;
            let detail = format!("no user activity for {timeout} s");
            self.k.audit.record(Event::system("sandbox.idle_pause").sandbox(&row.id).detail(detail).outcome(&r)).await;
            match r {
                Ok(()) => tracing::info!(sandbox_id = %row.id, timeout, "paused an idle sandbox"),
                Err(Error::Conflict(e)) => {
                    // The runtime cannot pause this one (or it changed state): once is enough.
                    tracing::info!(sandbox_id = %row.id, error = %e, "an idle sandbox cannot be paused; not trying again");
                    refused.lock().unwrap_or_else(|e| e.into_inner()).insert(row.id.clone());
                }
                Err(e) => tracing::warn!(sandbox_id = %row.id, error = %e, "pausing an idle sandbox failed"),
            }
        }
    }

    async fn pause_row(&self, row: &SandboxRow) -> Result<()> {
        match row.state {
            SandboxState::Paused => Ok(()),
            SandboxState::Running => {
                self.k.driver.pause(&row.id).await?;
                self.settle(&row.id, SandboxState::Running, SandboxState::Paused).await
            }
            other => Err(Error::Conflict(format!("sandbox {} is {other}, not running", row.id))),
        }
    }

    /// Resumes a paused sandbox. Single-flight: concurrent uses of one paused sandbox wait for
    /// one resume and then all find it running (the runtime is asked once).
    async fn resume_row(&self, row: &SandboxRow) -> Result<()> {
        let lock = {
            let mut map = self.k.resuming.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
            map.entry(row.id.clone()).or_default().clone()
        };
        let _flight = lock.lock().await;
        let row = &self.k.sandboxes().load(&row.id).await?;
        match row.state {
            SandboxState::Running => Ok(()),
            SandboxState::Paused => {
                if let Some(endpoint) = self.k.driver.resume(&row.id).await? {
                    // Recreated (Kubernetes' hibernation): a new address, and an agent to wait for.
                    self.k.store.set_agent_url(&row.id, &endpoint.to_url(), now_ms()).await?;
                    self.k
                        .startup()
                        .wait_for_agent(
                            &row.id,
                            crate::agent_client::AgentClient::new(endpoint, row.agent_secret.clone()),
                        )
                        .await?;
                }
                self.settle(&row.id, SandboxState::Paused, SandboxState::Running).await
            }
            other => Err(Error::Conflict(format!("sandbox {} is {other}, not paused", row.id))),
        }
    }

    /// Records the move `from` → `to` the runtime made; a concurrent call that got there first is
    /// fine, anything else (deleted meanwhile) is a conflict.
    async fn settle(&self, id: &str, from: SandboxState, to: SandboxState) -> Result<()> {
        if self.k.store.transition(id, &[from], to, None, now_ms()).await? {
            tracing::info!(sandbox_id = %id, state = %to, "sandbox {to}");
            return Ok(());
        }
        match self.k.sandboxes().load(id).await?.state {
            s if s == to => Ok(()),
            s => Err(Error::Conflict(format!("sandbox {id} is {s}"))),
        }
    }
}
