//! Requests relayed to a sandbox's agent on a caller's behalf: authorized, sent and audited here,
//! so that the REST API and the WebSocket gateway only translate their requests into these calls;
//! and what SSH connections do in a sandbox (`SshUse`), which SSH reports and the core audits.

use bytes::Bytes;
use hyper::Method;
use podgate_types::agent::paths;

use crate::agent_client::AgentError;
use crate::audit::Event;
use std::sync::Arc;

use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Result};

/// The agent-requests service: relays callers' requests to their sandboxes' agents, and audits
/// those and what SSH connections do.
#[derive(Clone)]
pub struct AgentRequests {
    pub(crate) k: Arc<Kernel>,
}

impl AgentRequests {
    /// Sends `method path_and_query` (with `body`) to the agent of the caller's sandbox, resumed
    /// first when paused, and returns the agent's answer as it streams. A request that changes
    /// something is audited with the agent's status.
    pub async fn forward<B>(
        &self,
        caller: &Caller,
        id_or_name: &str,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (row, agent) = self.k.sandboxes().running_agent(caller, id_or_name).await?;
        match agent.forward(method.clone(), path_and_query, content_type, body).await {
            Ok(resp) => {
                self.record(caller, &row.id, &method, path_and_query, resp.status().as_u16()).await;
                Ok(resp)
            }
            Err(e) => {
                let status = if matches!(e, AgentError::RequestBody(_)) { 400 } else { 503 };
                self.record(caller, &row.id, &method, path_and_query, status).await;
                Err(crate::agent_client::agent_error(&row.id, e))
            }
        }
    }

    /// Audits a request relayed to sandbox `sandbox_id`'s agent (also a WebSocket upgrade,
    /// `GET`) that changed something, with the agent's `status`; reads are not audited.
    pub async fn record(&self, caller: &Caller, sandbox_id: &str, method: &Method, path_and_query: &str, status: u16) {
        let (agent_path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let Some(action) = agent_action(method, agent_path) else { return };
        // The query decoded, so that paths read as they are (`path=/tmp/x`, not `%2Ftmp%2Fx`).
        let detail = if path_and_query.contains('?') {
            let pairs: Vec<String> =
                url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| format!("{k}={v}")).collect();
            format!("{method} {agent_path} {}", pairs.join(" "))
        } else {
            format!("{method} {agent_path}")
        };
        let result = if status < 400 { "ok".to_string() } else { format!("http_{status}") };
        self.k.audit.record(Event::by(caller, action).sandbox(sandbox_id).result(&result).detail(detail)).await;
    }
}

/// What an SSH connection does in a sandbox, as SSH reports it to the core for the audit.
#[derive(Debug)]
pub enum SshUse<'a> {
    /// A login, described by how it authenticated.
    Login { how: &'a str },
    /// An interactive shell.
    Shell,
    /// A command line.
    Exec { command: &'a str },
    /// The SFTP subsystem.
    Sftp,
    /// A `-L` forward to `host:port` inside the sandbox.
    Forward { host: &'a str, port: u32 },
    /// A `-R` forward: `asked` (`address:port`) now listens at `listening` inside the sandbox.
    RemoteForward { asked: &'a str, listening: &'a str },
    /// The client's ssh-agent, reachable in the sandbox at `socket`.
    AgentForward { socket: &'a str },
}

impl SshUse<'_> {
    fn action_and_detail(&self) -> (&'static str, String) {
        match self {
            SshUse::Login { how } => ("ssh.login", how.to_string()),
            SshUse::Shell => ("ssh.shell", String::new()),
            SshUse::Exec { command } => ("ssh.exec", command.to_string()),
            SshUse::Sftp => ("ssh.sftp", String::new()),
            SshUse::Forward { host, port } => ("ssh.forward", format!("{host}:{port}")),
            SshUse::RemoteForward { asked, listening } => ("ssh.remote_forward", format!("{asked} -> {listening}")),
            SshUse::AgentForward { socket } => ("ssh.agent_forward", socket.to_string()),
        }
    }
}

impl AgentRequests {
    /// Audits what an SSH connection of `caller` does in sandbox `sandbox_id`.
    pub async fn record_ssh(&self, caller: &Caller, sandbox_id: &str, what: SshUse<'_>) {
        let (action, detail) = what.action_and_detail();
        self.k.audit.record(Event::by(caller, action).sandbox(sandbox_id).detail(detail)).await;
    }

    /// Audits a refused SSH login from `source` as `user`, with the reason.
    pub async fn record_ssh_refusal(&self, source: Option<&str>, user: &str, why: &str) {
        let event = Event::anonymous(source, "ssh.login").result("refused").detail(format!("{user}: {why}"));
        self.k.audit.record(event).await;
    }
}

/// The audit action of a request to an agent; reads are not audited.
pub fn agent_action(method: &Method, agent_path: &str) -> Option<&'static str> {
    let p = agent_path;
    match *method {
        Method::GET if p == paths::PROCESSES_STREAM => Some("process.start"),
        Method::GET if p.ends_with("/attach") => Some("process.attach"),
        Method::GET if p == paths::TUNNEL => Some("tunnel.open"),
        Method::GET => None,
        // Keystrokes and window sizes of a process whose start was audited.
        Method::POST if p.ends_with("/input") || p.ends_with("/resize") || p.ends_with("/close-stdin") => None,
        _ if p.starts_with(paths::FILES) => Some("file.write"),
        Method::POST if p == paths::PROCESSES => Some("process.start"),
        Method::POST if p.ends_with("/signal") => Some("process.signal"),
        Method::DELETE if p.starts_with(paths::PROCESSES) && p != paths::PROCESSES => Some("process.kill"),
        _ => Some("sandbox.request"),
    }
}

#[cfg(test)]
mod tests {
    use super::agent_action;
    use hyper::Method;

    #[test]
    fn reads_are_not_audited() {
        assert_eq!(agent_action(&Method::GET, "/v1/files"), None);
        assert_eq!(agent_action(&Method::GET, "/v1/files/watch"), None);
        assert_eq!(agent_action(&Method::PUT, "/v1/files"), Some("file.write"));
        assert_eq!(agent_action(&Method::POST, "/v1/files/move"), Some("file.write"));
        assert_eq!(agent_action(&Method::GET, "/v1/processes/stream"), Some("process.start"));
        assert_eq!(agent_action(&Method::DELETE, "/v1/processes/p-1"), Some("process.kill"));
        assert_eq!(agent_action(&Method::GET, "/v1/tunnel"), Some("tunnel.open"));
    }
}
