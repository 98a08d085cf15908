//! Container names: a digest of the server instance and the sandbox id, so that the engine's DNS
//! shows no sandbox ids; containers named by older versions are renamed.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;
use podgate_runtime::{Error, Result};

use crate::errors::engine_error;
use crate::{DockerDriver, LABEL_INSTANCE, LABEL_SANDBOX, LABEL_SIDECAR};

impl DockerDriver {
    /// The sandbox's container name: `podgate-` and a digest of this server's instance id and
    /// the sandbox id. Not the id itself: the engine's DNS on the sandbox network answers reverse
    /// lookups with container names, and a sandbox must not learn the others' ids. A sandbox
    /// knows neither the instance id nor how its own name was made.
    pub(crate) fn container_name(&self, sandbox_id: &str) -> String {
        container_name(&self.cfg.instance, sandbox_id)
    }

    pub(crate) fn sidecar_container_name(&self, sandbox_id: &str, sidecar: &str) -> String {
        format!("{}-{sidecar}", self.container_name(sandbox_id))
    }

    /// Renames this instance's containers named by an older version (`podgate-<sandbox id>`,
    /// `podgate-<sandbox id>-<sidecar>`) to their current names.
    pub(crate) async fn rename_legacy_containers(&self) -> Result<()> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_INSTANCE}={}", self.cfg.instance)])]);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| Error::Unavailable(engine_error(&e)))?;
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let (Some(id), Some(name)) = (labels.get(LABEL_SANDBOX), c.names.and_then(|n| n.into_iter().next())) else {
                continue;
            };
            let want = match labels.get(LABEL_SIDECAR) {
                Some(side) => self.sidecar_container_name(id, side),
                None => self.container_name(id),
            };
            let legacy = match labels.get(LABEL_SIDECAR) {
                Some(side) => format!("/podgate-{id}-{side}"),
                None => format!("/podgate-{id}"),
            };
            if name == legacy {
                let opts = bollard::query_parameters::RenameContainerOptionsBuilder::new().name(&want).build();
                self.docker
                    .rename_container(&name[1..], opts)
                    .await
                    .map_err(|e| Error::Unavailable(engine_error(&e)))?;
                tracing::info!(sandbox_id = %id, from = %&name[1..], to = %want, "renamed a container of an older version");
            }
        }
        Ok(())
    }
}

/// The container name of sandbox `sandbox_id` placed by server instance `instance` (see
/// [`DockerDriver::container_name`]); tests and tools find containers by their labels instead.
pub fn container_name(instance: &str, sandbox_id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("podgate-container:{instance}:{sandbox_id}"));
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("podgate-{hex}")
}
