//! Bringing a sandbox up: placing it with the runtime, waiting for its agent, and cleaning up
//! after a create that failed or was overtaken by a delete.

use podgate_types::state::SandboxState;

use std::time::{Duration, Instant};

use podgate_runtime::{InstanceStatus, PlacementSpec};
use podgate_store::SandboxRow;
use podgate_types::AGENT_PROTOCOL_VERSION;
use podgate_types::api::{NetworkMode, Sandbox};

use crate::agent_client::AgentClient;
use crate::clock::now_ms;
use std::sync::Arc;

use crate::kernel::{Kernel, Services as _};
use crate::{Error, Result};

/// The start-up service: brings a sandbox whose row was just inserted up to running.
#[derive(Clone)]
pub(crate) struct Startup {
    pub(crate) k: Arc<Kernel>,
}

impl Startup {
    /// Places a new sandbox (`key` encrypts or unlocks its workspace) and waits for its agent.
    pub(crate) async fn bring_up(&self, row: SandboxRow, key: Option<podgate_runtime::VolumeKey>) -> Result<Sandbox> {
        let id = row.id.clone();
        match self.place_and_wait(&row, key).await {
            Ok(()) => {
                if !self
                    .k
                    .store
                    .transition(&id, &[SandboxState::Starting], SandboxState::Running, None, now_ms())
                    .await?
                {
                    // Deleted while it was starting: the delete cleans up.
                    return Err(self.removed_while_starting(&id).await);
                }
                tracing::info!(sandbox_id = %id, "sandbox running");
                let row = self.k.sandboxes().load(&id).await?;
                if let Some(b) = &row.spec.bootstrap {
                    self.k.bootstrap().begin(&row, b).await?;
                }
                self.k.sandboxes().view(&self.k.sandboxes().load(&id).await?)
            }
            Err(e) => {
                tracing::warn!(sandbox_id = %id, error = %e, "create failed; removing the sandbox");
                if let Err(de) = self.k.driver.delete(&id).await {
                    tracing::error!(sandbox_id = %id, error = %de, "cleanup after failed create failed; the reconciler retries");
                }
                let msg = e.to_string();
                if !self
                    .k
                    .store
                    .transition(
                        &id,
                        &[SandboxState::Pending, SandboxState::Starting],
                        SandboxState::Deleted,
                        Some(&msg),
                        now_ms(),
                    )
                    .await?
                {
                    // Removed meanwhile (its TTL, its owner): that, not the failure it caused, is the answer.
                    return Err(self.removed_while_starting(&id).await);
                }
                Err(e)
            }
        }
    }

    /// Why a sandbox that was still starting is gone: a delete or its TTL got there first.
    pub(crate) async fn removed_while_starting(&self, id: &str) -> Error {
        let reason = match self.k.store.sandbox(id).await {
            Ok(Some(row)) => row.error.unwrap_or_else(|| "deleted".into()),
            Ok(None) => "deleted".into(),
            Err(e) => return e.into(),
        };
        Error::Conflict(format!("sandbox {id} was removed while it was starting: {reason}"))
    }

    pub(crate) async fn place_and_wait(&self, row: &SandboxRow, key: Option<podgate_runtime::VolumeKey>) -> Result<()> {
        let spec = row.spec.clone();
        if !self.k.store.transition(&row.id, &[SandboxState::Pending], SandboxState::Starting, None, now_ms()).await? {
            return Err(Error::Conflict(format!("sandbox {} changed state during create", row.id)));
        }
        let workspace_size = match spec.volume.as_deref() {
            Some(id) => self.k.store.volume(id).await?.and_then(|v| u64::try_from(v.size).ok()),
            None => None,
        };
        self.k
            .driver
            .create(&PlacementSpec {
                sandbox_id: row.id.clone(),
                image: row.image.clone(),
                env: spec.env,
                cmd: spec.cmd,
                cpu: spec.cpu,
                memory: spec.memory,
                disk: spec.disk,
                agent_secret: row.agent_secret.clone(),
                user: spec.user,
                egress: spec.network == NetworkMode::Egress,
                read_only_root: spec.read_only_root,
                sidecars: crate::sidecars::placements(&spec.sidecars),
                workspace_volume: spec.volume.as_deref().map(crate::volumes::runtime_name),
                workspace_size,
                workspace_key: key,
                labels: spec.labels,
                scheduling: spec
                    .scheduling
                    .map(|s| podgate_runtime::Scheduling {
                        runtime_class: s.runtime_class,
                        node_selector: s.node_selector,
                        tolerations: s.tolerations,
                    })
                    .unwrap_or_default(),
            })
            .await?;
        let endpoint = self.k.driver.start(&row.id).await?;
        self.k.store.set_agent_url(&row.id, &endpoint.to_url(), now_ms()).await?;
        self.wait_for_agent(&row.id, AgentClient::new(endpoint, row.agent_secret.clone())).await
    }

    /// Polls the agent's health until it answers with our protocol, the instance dies, or time runs out.
    pub(crate) async fn wait_for_agent(&self, id: &str, agent: AgentClient) -> Result<()> {
        let deadline = Instant::now() + self.k.cfg.startup_timeout;
        let mut last_check = Instant::now();
        loop {
            let last_error = match agent.health().await {
                Ok(h) if h.protocol_version == AGENT_PROTOCOL_VERSION => return Ok(()),
                Ok(h) => {
                    return Err(Error::Unavailable(format!(
                        "the agent in sandbox {id} speaks protocol {} but this server speaks {AGENT_PROTOCOL_VERSION}",
                        h.protocol_version
                    )));
                }
                Err(e) => e.to_string(),
            };
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                match self.k.driver.inspect(id).await? {
                    Some(i) if matches!(i.status, InstanceStatus::Running | InstanceStatus::Created) => {}
                    other => {
                        let logs = self.k.driver.logs(id, 20).await.unwrap_or_default();
                        let state = other.map_or("gone".to_string(), |i| format!("{:?}", i.status));
                        return Err(Error::Unavailable(format!(
                            "sandbox {id} stopped before its agent answered ({state}); last output: {}",
                            logs.trim()
                        )));
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Unavailable(format!(
                    "the agent in sandbox {id} did not answer within {:?}: {last_error}",
                    self.k.cfg.startup_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
