//! The reconciler: makes the runtime match the database. It deletes expired sandboxes, marks
//! sandboxes whose instance vanished or died as failed, records pauses and resumes a crash kept
//! from the database, finishes interrupted deletes, and removes instances the database does not
//! know as live (leftovers of a crash mid-create).

use podgate_types::state::SandboxState;

use std::collections::HashMap;

use podgate_runtime::InstanceStatus;

use crate::audit::Event;
use crate::clock::now_ms;
use std::sync::Arc;

use crate::Result;
use crate::kernel::{Kernel, Services as _};
use podgate_store::SandboxRow;

/// The reconciler's lease.
const LEASE: &str = "reconciler";

/// How long the lease lasts unrenewed: three passes, at least 2 s and at most 30 s, so another
/// replica takes over within that when the leader dies.
fn lease_ttl(interval: std::time::Duration) -> i64 {
    (interval.as_millis() as i64).saturating_mul(3).clamp(2_000, 30_000)
}

/// Creates older than this in `pending`/`starting` were left by a replica that died.
const ABANDONED_CREATE_MS: i64 = 20 * 60 * 1000;

/// The reconciler service. One replica at a time runs it, holding a lease in the database.
#[derive(Clone)]
pub struct Reconciler {
    pub(crate) k: Arc<Kernel>,
}

impl Reconciler {
    /// Run once at start, before serving: creates interrupted by a stop or crash of this server
    /// can never finish, so they fail and their instances go. Only the replica holding the
    /// reconciler lease does this (another replica's creates may be under way); a server
    /// restarted on its data dir holds it again at once.
    pub async fn recover(&self) -> Result<()> {
        if !self.lead().await {
            tracing::info!("another replica leads the reconciler; not recovering");
            return Ok(());
        }
        for row in self.k.store.list_sandboxes(None).await? {
            // Bootstraps under way when the server stopped are followed again.
            if self.k.bootstrap().under_way(&row) {
                tokio::spawn(self.k.bootstrap().follow(row.id.clone()));
            }
            if SandboxState::CREATING.contains(&row.state) {
                tracing::warn!(sandbox_id = %row.id, "create was interrupted by a server stop; marking failed");
                let why = Some("the server stopped while creating this sandbox");
                self.k.store.transition(&row.id, &SandboxState::CREATING, SandboxState::Failed, why, now_ms()).await?;
                // A runtime that refuses now leaves the instance to the reconciler (failed
                // sandboxes' instances go), and never stops the server from starting.
                if let Err(e) = self.k.driver.delete(&row.id).await {
                    tracing::warn!(sandbox_id = %row.id, error = %e, "removing an interrupted create's instance failed; the reconciler retries");
                }
            }
        }
        self.reconcile().await
    }

    /// Whether sandbox `id`'s instance is (still) in `status`, asked now.
    async fn still(&self, id: &str, status: InstanceStatus) -> Result<bool> {
        Ok(self.k.driver.inspect(id).await?.is_some_and(|i| i.status == status))
    }

    /// One reconciliation pass.
    pub async fn reconcile(&self) -> Result<()> {
        let now = now_ms();
        for row in self.k.store.expired_sandboxes(now).await? {
            tracing::info!(sandbox_id = %row.id, "ttl expired; deleting");
            let r = self.k.sandboxes().remove(&row.id, "ttl expired").await;
            self.k.audit.record(Event::system("sandbox.expire").sandbox(&row.id).outcome(&r)).await;
            if let Err(e) = r {
                tracing::warn!(sandbox_id = %row.id, error = %e, "deleting an expired sandbox failed; will retry");
            }
        }
        // Instances first, rows second: a row is always written before its instance, so every
        // instance listed here has its row visible below.
        let instances: HashMap<String, InstanceStatus> =
            self.k.driver.list().await?.into_iter().map(|i| (i.sandbox_id, i.status)).collect();
        let rows = self.k.store.list_sandboxes(None).await?;
        let mut live = std::collections::HashSet::new();
        for row in &rows {
            live.insert(row.id.clone());
            // One sandbox that cannot be put right (its runtime refuses, a row is odd) is
            // logged and retried next pass; it never stops the others'.
            if let Err(e) = self.reconcile_row(row, instances.get(&row.id), now).await {
                tracing::warn!(sandbox_id = %row.id, state = %row.state, error = %e, "reconciling a sandbox failed; retrying next pass");
            }
        }
        self.k.lifecycle().pause_idle(&rows, now).await;
        if let Err(e) = self.k.templates().refill_pools().await {
            tracing::warn!(error = %e, "checking warm pools failed");
        }
        for id in instances.keys().filter(|id| !live.contains(*id)) {
            tracing::warn!(sandbox_id = %id, "removing an instance the database does not know as live");
            if let Err(e) = self.k.driver.delete(id).await {
                tracing::warn!(sandbox_id = %id, error = %e, "removing an unknown instance failed; retrying next pass");
            }
        }
        Ok(())
    }

    /// Puts one sandbox's row and its instance (`instance`, as listed) in agreement.
    async fn reconcile_row(&self, row: &SandboxRow, instance: Option<&InstanceStatus>, now: i64) -> Result<()> {
        match (row.state, instance) {
            (SandboxState::Running | SandboxState::Paused, None) => {
                self.fail(&row.id, "the sandbox's container vanished").await?;
                // What the runtime keeps beside the instance (the run directory) goes too.
                self.k.driver.delete(&row.id).await?;
            }
            // A pause or resume the runtime made but the database missed (a crash between
            // the two): the runtime is right.
            // The listing is a moment old: a pause or resume made since would be undone, so
            // the instance is asked again first.
            (SandboxState::Running, Some(InstanceStatus::Paused))
                if self.still(&row.id, InstanceStatus::Paused).await? =>
            {
                self.k.store.transition(&row.id, &[SandboxState::Running], SandboxState::Paused, None, now).await?;
            }
            (SandboxState::Paused, Some(InstanceStatus::Running))
                if self.still(&row.id, InstanceStatus::Running).await? =>
            {
                self.k.store.transition(&row.id, &[SandboxState::Paused], SandboxState::Running, None, now).await?;
            }
            (SandboxState::Running | SandboxState::Paused, Some(InstanceStatus::Exited { reason })) => {
                let reason = format!("the sandbox's container stopped: {reason}");
                self.fail(&row.id, &reason).await?;
                self.k.driver.delete(&row.id).await?;
            }
            (SandboxState::Stopping, _) => {
                if let Err(e) = self.k.sandboxes().remove(&row.id, "deleted").await {
                    tracing::warn!(sandbox_id = %row.id, error = %e, "retrying an interrupted delete failed");
                }
            }
            (SandboxState::Failed, Some(_)) => self.k.driver.delete(&row.id).await?,
            (SandboxState::Pending | SandboxState::Starting, _)
                if now.saturating_sub(row.updated_at) > ABANDONED_CREATE_MS =>
            {
                tracing::warn!(sandbox_id = %row.id, "a create abandoned by a replica that stopped; marking failed");
                self.k.driver.delete(&row.id).await?;
                let why = Some("the server creating this sandbox stopped");
                self.k
                    .store
                    .transition(
                        &row.id,
                        &[SandboxState::Pending, SandboxState::Starting],
                        SandboxState::Failed,
                        why,
                        now,
                    )
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn fail(&self, id: &str, reason: &str) -> Result<()> {
        tracing::warn!(sandbox_id = %id, reason, "sandbox failed");
        if self
            .k
            .store
            .transition(
                id,
                &[SandboxState::Running, SandboxState::Paused],
                SandboxState::Failed,
                Some(reason),
                now_ms(),
            )
            .await?
        {
            self.k.audit.record(Event::system("sandbox.fail").sandbox(id).result("failed").detail(reason)).await;
        }
        Ok(())
    }

    /// Runs [`Reconciler::reconcile`] every `reconcile_interval` while this replica holds the
    /// reconciler lease, forever.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.k.cfg.reconcile_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.lead().await {
                continue;
            }
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "reconcile pass failed");
            }
        }
    }

    /// Takes or renews the reconciler lease; whether this replica leads now.
    async fn lead(&self) -> bool {
        let ttl = lease_ttl(self.k.cfg.reconcile_interval);
        let leading = match self.k.store.try_lease(LEASE, &self.k.cfg.replica_id, now_ms(), ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "the reconciler lease could not be checked");
                false
            }
        };
        if self.k.leading.swap(leading, std::sync::atomic::Ordering::Relaxed) != leading {
            tracing::info!(replica = %self.k.cfg.replica_id, leading, "reconciler leadership changed");
        }
        self.k.metrics.set_leader(leading);
        leading
    }
}
