//! Cleanup for tests on a real cluster: when dropped (also when the test panics), deletes every
//! pod, secret, network policy and claim one server instance labelled in the test namespace, so
//! that a failed run leaves nothing for the next one to trip over.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams};

use crate::objects::LABEL_INSTANCE;

/// Deletes the objects labelled `podgate.io/instance=<instance>` in `namespace` when dropped.
pub struct ClusterCleanup {
    pub kubeconfig: std::path::PathBuf,
    pub namespace: String,
    pub instance: String,
}

impl ClusterCleanup {
    /// Deletes them now; returns how many deletions were asked for.
    pub async fn run(&self) -> Result<usize, String> {
        crate::ensure_crypto_provider();
        let file = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| e.to_string())?;
        let config =
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await.map_err(|e| e.to_string())?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let lp = ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", self.instance));
        let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        let ns = self.namespace.as_str();
        let mut asked = 0;
        macro_rules! sweep {
            ($kind:ty) => {{
                let api: kube::Api<$kind> = kube::Api::namespaced(client.clone(), ns);
                let items = api.list(&lp).await.map_err(|e| e.to_string())?.items;
                for name in items.iter().filter_map(|o| o.metadata.name.clone()) {
                    asked += 1;
                    if let Err(e) = api.delete(&name, &dp).await {
                        eprintln!("cleanup: deleting {name}: {e}");
                    }
                }
            }};
        }
        sweep!(Pod);
        sweep!(Secret);
        sweep!(NetworkPolicy);
        sweep!(PersistentVolumeClaim);
        Ok(asked)
    }
}

impl Drop for ClusterCleanup {
    fn drop(&mut self) {
        if self.instance.is_empty() {
            return;
        }
        // Drop may run inside a runtime (a test's): the deletes get their own thread and runtime.
        let this = ClusterCleanup {
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.namespace.clone(),
            instance: std::mem::take(&mut self.instance),
        };
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(this.run())
        })
        .join();
        match done {
            Ok(Ok(n)) => eprintln!("cleanup: {n} objects of this run deleted from namespace {}", self.namespace),
            Ok(Err(e)) => eprintln!("cleanup of namespace {} failed: {e}", self.namespace),
            Err(_) => eprintln!("cleanup of namespace {} panicked", self.namespace),
        }
    }
}
