//! Pause and resume: a paused sandbox keeps its processes and memory frozen by the runtime, and
//! any use of it (exec, terminals, processes, files, ports, SSH) resumes it first.

use podgate_types::api::Sandbox;

use crate::audit::Event;
use crate::clock::now_ms;
use crate::{Caller, Error, Result, Sandboxes};
use podgate_store::SandboxRow;

impl Sandboxes {
    /// Freezes a running sandbox (a paused one stays paused).
    pub async fn pause(&self, caller: &Caller, id_or_name: &str) -> Result<Sandbox> {
        let row = self.resolve(caller, id_or_name).await?;
        let r = self.pause_row(&row).await;
        self.audit.record(Event::by(caller, "sandbox.pause").sandbox(&row.id).outcome(&r)).await;
        r?;
        self.view(&self.load(&row.id).await?)
    }

    /// Continues a paused sandbox (a running one stays running).
    pub async fn resume(&self, caller: &Caller, id_or_name: &str) -> Result<Sandbox> {
        let row = self.resolve(caller, id_or_name).await?;
        let r = self.resume_row(&row).await;
        self.audit.record(Event::by(caller, "sandbox.resume").sandbox(&row.id).outcome(&r)).await;
        r?;
        self.view(&self.load(&row.id).await?)
    }

    /// `row` as it is once usable: a paused sandbox is resumed first (audited as a resume on use).
    pub(crate) async fn awake(&self, row: SandboxRow) -> Result<SandboxRow> {
        if row.state != "paused" {
            return Ok(row);
        }
        let r = self.resume_row(&row).await;
        self.audit.record(Event::system("sandbox.resume").sandbox(&row.id).detail("on use").outcome(&r)).await;
        r?;
        self.load(&row.id).await
    }

    async fn pause_row(&self, row: &SandboxRow) -> Result<()> {
        match row.state.as_str() {
            "paused" => Ok(()),
            "running" => {
                self.driver.pause(&row.id).await?;
                self.settle(&row.id, "running", "paused").await
            }
            other => Err(Error::Conflict(format!("sandbox {} is {other}, not running", row.id))),
        }
    }

    async fn resume_row(&self, row: &SandboxRow) -> Result<()> {
        match row.state.as_str() {
            "running" => Ok(()),
            "paused" => {
                self.driver.resume(&row.id).await?;
                self.settle(&row.id, "paused", "running").await
            }
            other => Err(Error::Conflict(format!("sandbox {} is {other}, not paused", row.id))),
        }
    }

    /// Records the move `from` → `to` the runtime made; a concurrent call that got there first is
    /// fine, anything else (deleted meanwhile) is a conflict.
    async fn settle(&self, id: &str, from: &str, to: &str) -> Result<()> {
        if self.store.transition(id, &[from], to, None, now_ms()).await? {
            tracing::info!(sandbox_id = %id, state = to, "sandbox {to}");
            return Ok(());
        }
        match self.load(id).await?.state.as_str() {
            s if s == to => Ok(()),
            s => Err(Error::Conflict(format!("sandbox {id} is {s}"))),
        }
    }
}
