//! Reaching agents from outside the cluster: one unix socket per sandbox on the server's host,
//! each connection to it carried by a port-forward stream of the API server to the agent port.
//! The socket's path depends only on the sandbox id, so addresses stored before a restart stay
//! good once the driver listens again.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use podgate_runtime::{Error, Result};

use crate::objects::AGENT_PORT;

/// The port-forward listeners of this server.
pub struct Forwards {
    pods: Api<Pod>,
    run_dir: PathBuf,
    listeners: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Forwards {
    pub fn new(pods: Api<Pod>, run_dir: PathBuf) -> Result<Forwards> {
        std::fs::create_dir_all(&run_dir)
            .and_then(|()| std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| Error::Unavailable(format!("preparing {}: {e}", run_dir.display())))?;
        Ok(Forwards { pods, run_dir, listeners: Mutex::default() })
    }

    /// The socket of a sandbox.
    pub fn socket(&self, sandbox_id: &str) -> PathBuf {
        self.run_dir.join(format!("{sandbox_id}.sock"))
    }

    /// Listens on the sandbox's socket unless it already does; returns the socket.
    pub fn ensure(&self, sandbox_id: &str, pod: &str) -> Result<PathBuf> {
        let path = self.socket(sandbox_id);
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if listeners.get(sandbox_id).is_some_and(|t| !t.is_finished()) {
            return Ok(path);
        }
        let io = |e: std::io::Error| Error::Unavailable(format!("listening on {}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let (pods, pod) = (self.pods.clone(), pod.to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                tokio::spawn(carry(pods.clone(), pod.clone(), conn));
            }
        });
        listeners.insert(sandbox_id.to_string(), task);
        Ok(path)
    }

    /// Stops listening for a sandbox and removes its socket.
    pub fn remove(&self, sandbox_id: &str) {
        if let Some(t) = self.listeners.lock().unwrap_or_else(|e| e.into_inner()).remove(sandbox_id) {
            t.abort();
        }
        let _ = std::fs::remove_file(self.socket(sandbox_id));
    }
}

/// Carries one connection through a port-forward stream; closing either side ends both.
async fn carry(pods: Api<Pod>, pod: String, mut conn: tokio::net::UnixStream) {
    let mut forwarder = match pods.portforward(&pod, &[AGENT_PORT]).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(pod, error = %e, "port-forward to the agent failed");
            return;
        }
    };
    if let Some(mut stream) = forwarder.take_stream(AGENT_PORT) {
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
    }
    forwarder.abort();
}
