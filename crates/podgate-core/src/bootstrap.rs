//! Code bootstrap on the server side: hands the validated spec to the agent once the sandbox
//! runs, follows its progress into the sandbox row, fails the sandbox when the bootstrap fails
//! (with the reason), and keeps the end of the log for `podgate logs` after the container is gone.

use podgate_types::state::SandboxState;

use std::time::Duration;

use podgate_store::SandboxRow;
use podgate_types::bootstrap::{BootstrapPhase, BootstrapSpec, BootstrapStatus};

use crate::agent_client::AgentClient;
use crate::clock::now_ms;
use std::sync::Arc;

use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result};

/// How often the server asks the agent how the bootstrap goes.
const POLL: Duration = Duration::from_millis(250);
/// How much of the log is kept in the database once the bootstrap ended.
const KEPT_LOG: u64 = 64 * 1024;

/// Where `podgate logs` reads from.
pub enum BootstrapLog {
    /// The sandbox runs: the agent serves the whole log, and can follow it.
    Live(AgentClient),
    /// The end of the log as kept when the bootstrap ended.
    Kept(Vec<u8>),
}

fn status_json(s: &BootstrapStatus) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The bootstrap service: starts, follows and serves the log of sandboxes' code bootstraps.
#[derive(Clone)]
pub struct Bootstrap {
    pub(crate) k: Arc<Kernel>,
}

impl Bootstrap {
    /// Starts the bootstrap of a sandbox that has just started running, then follows it.
    pub(crate) async fn begin(&self, row: &SandboxRow, spec: &BootstrapSpec) -> Result<()> {
        let agent = self.k.sandboxes().agent(row)?;
        match agent.start_bootstrap(spec).await {
            Ok(status) => {
                self.k.store.set_bootstrap(&row.id, &status_json(&status), None, now_ms()).await?;
                tokio::spawn(self.clone().follow(row.id.clone()));
                Ok(())
            }
            Err(e) => {
                let reason = format!("bootstrap could not start: {e}");
                self.end(&row.id, &failed(&reason), None).await
            }
        }
    }

    /// Polls the agent until the bootstrap ends (or the sandbox stops running), recording each
    /// change. Also started at server start for bootstraps that were under way.
    pub(crate) async fn follow(self, id: String) {
        let mut last: Option<BootstrapStatus> = None;
        loop {
            tokio::time::sleep(POLL).await;
            let row = match self.k.store.sandbox(&id).await {
                Ok(Some(r)) if r.state == SandboxState::Running => r,
                _ => return,
            };
            let Ok(agent) = self.k.sandboxes().agent(&row) else { return };
            let status = match agent.bootstrap_status().await {
                Ok(s) => s,
                // The reconciler notices a sandbox that is gone; a slow agent is asked again.
                Err(e) => {
                    tracing::debug!(sandbox_id = %id, error = %e, "bootstrap status unavailable");
                    continue;
                }
            };
            if status.phase.is_final() {
                self.record_terminal(&row, &agent, &status).await;
                let from = status.log_bytes.saturating_sub(KEPT_LOG);
                let log = agent.bootstrap_log(from).await.ok().map(|b| b.to_vec());
                if let Err(e) = self.end(&id, &status, log).await {
                    tracing::warn!(sandbox_id = %id, error = %e, "recording the end of the bootstrap failed");
                }
                return;
            }
            if last.as_ref() != Some(&status) {
                if let Err(e) = self.k.store.set_bootstrap(&id, &status_json(&status), None, now_ms()).await {
                    tracing::warn!(sandbox_id = %id, error = %e, "recording bootstrap progress failed");
                }
                last = Some(status);
            }
        }
    }

    /// Records the terminal the bootstrap's command runs in, if the sandbox is recorded (from a
    /// redraw of its screen and scrollback: it started before the recorder could attach).
    async fn record_terminal(&self, row: &SandboxRow, agent: &AgentClient, status: &BootstrapStatus) {
        let Some(tid) = &status.terminal_id else { return };
        if !row.spec.record_terminals {
            return;
        }
        match agent.list_terminals().await {
            Ok(list) => match list.iter().find(|t| &t.id == tid) {
                Some(info) => self.k.recorder.start(agent.clone(), &row.id, info),
                None => {
                    tracing::warn!(sandbox_id = %row.id, terminal_id = %tid, "bootstrap terminal gone before recording")
                }
            },
            Err(e) => tracing::warn!(sandbox_id = %row.id, error = %e, "cannot record the bootstrap terminal"),
        }
    }

    async fn end(&self, id: &str, status: &BootstrapStatus, log: Option<Vec<u8>>) -> Result<()> {
        self.k.store.set_bootstrap(id, &status_json(status), log.as_deref(), now_ms()).await?;
        if status.phase == BootstrapPhase::Failed {
            let reason = format!("bootstrap failed: {}", status.error.as_deref().unwrap_or("unknown error"));
            tracing::warn!(sandbox_id = %id, reason, "sandbox failed");
            if self
                .k
                .store
                .transition(id, &[SandboxState::Running], SandboxState::Failed, Some(&reason), now_ms())
                .await?
            {
                let event = crate::audit::Event::system("sandbox.fail").sandbox(id).result("failed").detail(&reason);
                self.k.audit.record(event).await;
            }
        } else {
            tracing::info!(sandbox_id = %id, "bootstrap done; command running");
        }
        Ok(())
    }

    /// Whether the sandbox runs with a bootstrap that has not ended.
    pub(crate) fn under_way(&self, row: &SandboxRow) -> bool {
        row.state == SandboxState::Running
            && row
                .bootstrap
                .as_deref()
                .and_then(|b| serde_json::from_str::<BootstrapStatus>(b).ok())
                .is_some_and(|s| !s.phase.is_final())
    }

    /// The bootstrap log of the caller's sandbox.
    pub async fn log(&self, caller: &Caller, id_or_name: &str) -> Result<BootstrapLog> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        if row.bootstrap.is_none() {
            return Err(Error::NotFound(format!("sandbox {} has no code bootstrap, so no bootstrap log", row.id)));
        }
        match (row.state.as_str(), &row.bootstrap_log) {
            ("running", _) => Ok(BootstrapLog::Live(self.k.sandboxes().agent(&row)?)),
            (_, Some(log)) => Ok(BootstrapLog::Kept(log.clone())),
            (_, None) => Ok(BootstrapLog::Kept(Vec::new())),
        }
    }
}

fn failed(reason: &str) -> BootstrapStatus {
    BootstrapStatus {
        phase: BootstrapPhase::Failed,
        error: Some(reason.to_string()),
        workdir: None,
        terminal_id: None,
        log_bytes: 0,
    }
}
