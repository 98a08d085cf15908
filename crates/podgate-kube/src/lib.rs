//! podgate's Kubernetes driver (kube-rs): one pod per sandbox in the sandbox namespace, the
//! agent copied in by an init container and reached at the pod IP (or through a port-forward),
//! a secret holding the agent's secret and the pod to (re)create, a network policy per sandbox,
//! and a persistent volume claim for a persisted `/workspace`. Pausing hibernates: the pod is
//! deleted and its claim kept; resuming recreates it.

pub mod config;
#[cfg(feature = "test-util")]
pub mod fake;
mod forward;
pub mod objects;
pub mod status;
pub mod waiting;

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Event as KubeEvent, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use kube::{Api, Client};
use podgate_runtime::{AgentEndpoint, Driver, Error, Instance, InstanceStatus, PlacementSpec, Result};

pub use config::{Access, KubeConfig, NfsMount, Requests, Toleration};
use objects::{LABEL_INSTANCE, LABEL_SANDBOX, object_name};
use status::Progress;

const DRIVER: &str = "kubernetes";

/// Makes ring (podgate's only TLS crypto provider) the process's provider unless one is set, so
/// that the kube client never has to guess; call this before building a `kube::Client`.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The Kubernetes driver.
pub struct KubeDriver {
    cfg: KubeConfig,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    policies: Api<NetworkPolicy>,
    claims: Api<PersistentVolumeClaim>,
    events: Api<KubeEvent>,
    forwards: Option<forward::Forwards>,
    /// What each starting sandbox's pod waits for.
    waits: waiting::Waits,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

use waiting::cluster_error;

impl KubeDriver {
    /// Connects with the in-cluster configuration, or the kubeconfig (`KUBECONFIG`, its current
    /// context or `cfg.context`), and checks the sandbox namespace can be used.
    pub async fn connect(cfg: KubeConfig) -> Result<KubeDriver> {
        ensure_crypto_provider();
        let opts = kube::config::KubeConfigOptions { context: cfg.context.clone(), ..Default::default() };
        let bad = |e: kube::config::KubeconfigError| Error::Unavailable(format!("kubeconfig: {e}"));
        let config = match (&cfg.kubeconfig, &cfg.context) {
            (Some(path), _) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(bad)?;
                kube::Config::from_custom_kubeconfig(file, &opts).await.map_err(bad)?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&opts).await.map_err(bad)?,
            (None, None) => {
                kube::Config::infer().await.map_err(|e| Error::Unavailable(format!("kubernetes config: {e}")))?
            }
        };
        let client = Client::try_from(config).map_err(|e| Error::Unavailable(format!("kubernetes client: {e}")))?;
        Self::with_client(client, cfg).await
    }

    /// The driver over an existing client.
    pub async fn with_client(client: Client, cfg: KubeConfig) -> Result<KubeDriver> {
        let ns = cfg.namespace.as_str();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let forwards = match &cfg.access {
            Access::PodIp => None,
            Access::PortForward { run_dir } => Some(forward::Forwards::new(pods.clone(), run_dir.clone())?),
        };
        let driver = KubeDriver {
            secrets: Api::namespaced(client.clone(), ns),
            policies: Api::namespaced(client.clone(), ns),
            claims: Api::namespaced(client.clone(), ns),
            events: Api::namespaced(client, ns),
            pods,
            forwards,
            cfg,
            waits: waiting::Waits::default(),
        };
        driver.ping().await?;
        if driver.forwards.is_some() {
            // After a restart: listen again for the running sandboxes (their stored addresses hold).
            driver.list().await?;
        }
        Ok(driver)
    }

    fn selector(&self) -> String {
        format!("{LABEL_INSTANCE}={}", self.cfg.instance)
    }

    fn ours<K: kube::Resource>(&self, obj: Option<K>) -> Option<K> {
        obj.filter(|o| o.meta().labels.as_ref().and_then(|l| l.get(LABEL_INSTANCE)) == Some(&self.cfg.instance))
    }

    async fn pod(&self, name: &str) -> Result<Option<Pod>> {
        let p = self.pods.get_opt(name).await.map_err(|e| cluster_error("reading the pod", e))?;
        Ok(self.ours(p))
    }

    async fn secret(&self, name: &str) -> Result<Option<Secret>> {
        let s = self.secrets.get_opt(name).await.map_err(|e| cluster_error("reading the sandbox secret", e))?;
        Ok(self.ours(s))
    }

    async fn set_state(&self, name: &str, state: &str) -> Result<()> {
        let patch = serde_json::json!({"metadata": {"annotations": {objects::ANNOTATION_STATE: state}}});
        self.secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| cluster_error("updating the sandbox secret", e))
    }

    /// Where the server reaches the agent of a running pod.
    fn endpoint(&self, sandbox_id: &str, name: &str, ip: &str) -> Result<AgentEndpoint> {
        match &self.forwards {
            None => Ok(AgentEndpoint::Tcp(status::agent_address(ip))),
            Some(f) => Ok(AgentEndpoint::Unix(f.ensure(sandbox_id, name)?)),
        }
    }

    /// Creates the pod the secret holds and waits until it runs; on failure the pod is removed
    /// (and everything else of the sandbox when `remove_all`).
    async fn run_pod(&self, sandbox_id: &str, secret: &Secret, remove_all: bool) -> Result<AgentEndpoint> {
        let name = object_name(sandbox_id)?;
        let pod = objects::stored_pod(secret)?;
        let claim = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .find_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()));
        self.set_state(&name, "started").await?;
        let result = match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => self.wait_running(sandbox_id, &name, claim.as_deref()).await,
            Err(e) if is_status(&e, 409) => self.wait_running(sandbox_id, &name, claim.as_deref()).await,
            Err(e) => Err(cluster_error("creating the pod", e)),
        };
        self.waits.clear(sandbox_id);
        match result {
            Ok(ip) => self.endpoint(sandbox_id, &name, &ip),
            Err(e) => {
                let cleanup = if remove_all { self.delete(sandbox_id).await } else { self.delete_pod(&name).await };
                if let Err(ce) = cleanup {
                    tracing::warn!(sandbox_id, error = %ce, "removing a pod that did not start failed");
                }
                Err(e)
            }
        }
    }

    /// Watches the pod until it runs (its IP) or fails with the cluster's reason. A pod no node
    /// fits yet, or whose claim is not bound yet, is waited for up to the startup timeout (a
    /// provisioner or an autoscaler may be at work), with its events as progress; the events
    /// that say waiting will not help end it at once.
    async fn wait_running(&self, sandbox_id: &str, name: &str, claim: Option<&str>) -> Result<String> {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(self.pods.clone(), cfg).default_backoff();
        futures_util::pin_mut!(stream);
        let deadline = tokio::time::sleep(self.cfg.startup_timeout);
        tokio::pin!(deadline);
        let mut events = tokio::time::interval(std::time::Duration::from_secs(2));
        let mut last: Option<String> = None;
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => match status::progress(&p) {
                        Progress::Running { ip } => return Ok(ip),
                        Progress::Failed(e) => return Err(e),
                        Progress::Waiting(Some(why)) => {
                            self.waits.note(sandbox_id, &why);
                            last = Some(why);
                        }
                        Progress::Waiting(None) => {}
                    },
                    Some(Ok(watcher::Event::Delete(_))) => {
                        return Err(Error::Unavailable("the pod was deleted while it started".into()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::debug!(pod = name, error = %e, "watching the pod; retrying"),
                    None => return Err(Error::Unavailable("the watch of the pod ended".into())),
                },
                _ = events.tick() => match self.judge_events(name, claim).await {
                    waiting::Verdict::Permanent(why) => return Err(Error::NotStarted(why)),
                    waiting::Verdict::Progress(word) => {
                        self.waits.note(sandbox_id, &word);
                        if last.as_deref().is_none_or(|l| !l.starts_with("no node fits yet")) {
                            last = Some(word);
                        }
                    }
                    waiting::Verdict::Silent => {}
                },
                _ = &mut deadline => {
                    let why = match last {
                        Some(w) => w,
                        None => self.last_event(name).await,
                    };
                    return Err(Error::NotStarted(format!(
                        "the pod did not run within {:?}: {why}",
                        self.cfg.startup_timeout
                    )));
                }
            }
        }
    }

    /// What the events of the pod and its claim say (nothing when they cannot be read).
    async fn judge_events(&self, name: &str, claim: Option<&str>) -> waiting::Verdict {
        let mut all = Vec::new();
        for object in std::iter::once(name).chain(claim) {
            let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
            match self.events.list(&lp).await {
                Ok(list) => all.extend(list.items),
                Err(e) => tracing::debug!(object, error = %e, "reading events"),
            }
        }
        waiting::judge(&all, name, claim)
    }

    /// The latest event the cluster recorded for an object (why a pod is stuck).
    async fn last_event(&self, name: &str) -> String {
        let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
        match self.events.list(&lp).await {
            Ok(list) => list
                .items
                .into_iter()
                .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0))
                .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                .unwrap_or_else(|| "no events".into()),
            Err(e) => format!("events unavailable: {e}"),
        }
    }

    /// Deletes the pod and waits until it is gone (so a claim can be attached again).
    async fn delete_pod(&self, name: &str) -> Result<()> {
        let dp = DeleteParams { grace_period_seconds: Some(2), ..Default::default() };
        let uid = match self.pods.delete(name, &dp).await {
            Ok(either) => either.left().and_then(|p| p.metadata.uid),
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(cluster_error("deleting the pod", e)),
        };
        let Some(uid) = uid else { return Ok(()) };
        let gone = kube::runtime::wait::await_condition(
            self.pods.clone(),
            name,
            kube::runtime::wait::conditions::is_deleted(&uid),
        );
        match tokio::time::timeout(std::time::Duration::from_secs(60), gone).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Unavailable(format!("waiting for the pod to go: {e}"))),
            Err(_) => Err(Error::Unavailable(format!("pod {name} is still terminating after 60 s"))),
        }
    }

    /// Deletes object `name` if it is this instance's; one that is gone (or goes meanwhile) is fine.
    async fn delete_ours<K>(&self, api: &Api<K>, name: &str, what: &str) -> Result<()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
    {
        let obj = api.get_opt(name).await.map_err(|e| cluster_error(&format!("reading the {what}"), e))?;
        if self.ours(obj).is_none() {
            return Ok(());
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(cluster_error(&format!("deleting the {what}"), e)),
        }
    }

    /// What a sandbox with a secret but no pod is.
    fn without_pod(secret: &Secret) -> InstanceStatus {
        match objects::secret_state(secret) {
            "hibernated" => InstanceStatus::Paused,
            "started" => InstanceStatus::Exited { reason: "its pod is gone".into() },
            _ => InstanceStatus::Created,
        }
    }

    fn sandbox_of<K: kube::Resource>(obj: &K) -> Option<String> {
        obj.meta().labels.as_ref()?.get(LABEL_SANDBOX).cloned()
    }
}

#[async_trait::async_trait]
impl Driver for KubeDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    fn progress(&self, sandbox_id: &str) -> Option<String> {
        self.waits.get(sandbox_id)
    }

    async fn ping(&self) -> Result<()> {
        self.pods
            .list(&ListParams::default().limit(1))
            .await
            .map(|_| ())
            .map_err(|e| cluster_error(&format!("listing pods in namespace {}", self.cfg.namespace), e))
    }

    async fn create(&self, spec: &PlacementSpec) -> Result<()> {
        let pod = objects::pod(&self.cfg, spec)?;
        let secret = objects::secret(&self.cfg, spec, &pod)?;
        let policy = objects::network_policy(&self.cfg, spec)?;
        if let Some(volume) = &spec.workspace_volume {
            let claim = objects::workspace_claim(&self.cfg, volume, spec.workspace_size)?;
            match self.claims.create(&PostParams::default(), &claim).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(cluster_error("creating the workspace claim", e)),
            }
        }
        // The policy first: no pod of this sandbox ever runs without it.
        self.policies
            .create(&PostParams::default(), &policy)
            .await
            .map_err(|e| cluster_error("creating the network policy", e))?;
        if let Err(e) = self.secrets.create(&PostParams::default(), &secret).await {
            let _ = self.delete(&spec.sandbox_id).await;
            return Err(cluster_error("creating the sandbox secret", e));
        }
        Ok(())
    }

    async fn start(&self, sandbox_id: &str) -> Result<AgentEndpoint> {
        let name = object_name(sandbox_id)?;
        let secret = self.secret(&name).await?.ok_or_else(|| Error::NotFound(sandbox_id.to_string()))?;
        self.run_pod(sandbox_id, &secret, true).await
    }

    async fn inspect(&self, sandbox_id: &str) -> Result<Option<Instance>> {
        let Ok(name) = object_name(sandbox_id) else { return Ok(None) };
        let (status, pod) = match self.pod(&name).await? {
            Some(p) => (status::instance_status(&p), Some(p)),
            None => match self.secret(&name).await? {
                Some(s) => (Self::without_pod(&s), objects::stored_pod(&s).ok()),
                None => return Ok(None),
            },
        };
        let labels = pod
            .and_then(|p| p.metadata.annotations?.remove(objects::ANNOTATION_LABELS))
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        Ok(Some(Instance { sandbox_id: sandbox_id.to_string(), status, labels }))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let lp = ListParams::default().labels(&self.selector());
        let pods = self.pods.list(&lp).await.map_err(|e| cluster_error("listing pods", e))?;
        let secrets = self.secrets.list(&lp).await.map_err(|e| cluster_error("listing secrets", e))?;
        let mut found: BTreeMap<String, InstanceStatus> = BTreeMap::new();
        for s in &secrets.items {
            if let Some(id) = Self::sandbox_of(s) {
                found.insert(id, Self::without_pod(s));
            }
        }
        for p in &pods.items {
            let Some(id) = Self::sandbox_of(p) else { continue };
            let status = status::instance_status(p);
            if let (Some(f), InstanceStatus::Running, Some(name)) = (&self.forwards, &status, &p.metadata.name)
                && let Err(e) = f.ensure(&id, name)
            {
                tracing::warn!(sandbox_id = %id, error = %e, "cannot listen for the sandbox's port-forward");
            }
            found.insert(id, status);
        }
        Ok(found.into_iter().map(|(sandbox_id, status)| Instance::new(sandbox_id, status)).collect())
    }

    async fn delete(&self, sandbox_id: &str) -> Result<()> {
        let Ok(name) = object_name(sandbox_id) else { return Ok(()) };
        if let Some(f) = &self.forwards {
            f.remove(sandbox_id);
        }
        if self.pod(&name).await?.is_some() {
            self.delete_pod(&name).await?;
        }
        self.delete_ours(&self.secrets, &name, "sandbox secret").await?;
        self.delete_ours(&self.policies, &name, "network policy").await
    }

    async fn logs(&self, sandbox_id: &str, lines: usize) -> Result<String> {
        let name = object_name(sandbox_id)?;
        let lp = LogParams {
            container: Some(objects::MAIN_CONTAINER.into()),
            tail_lines: Some(lines.min(10_000) as i64),
            timestamps: true,
            ..Default::default()
        };
        match self.pods.logs(&name, &lp).await {
            Ok(l) => Ok(l),
            Err(e) if is_status(&e, 404) => Err(Error::NotFound(sandbox_id.to_string())),
            Err(e) => Err(cluster_error("reading the pod's logs", e)),
        }
    }

    /// Hibernates: deletes the pod and keeps the secret and the `/workspace` claim. A sandbox
    /// without a claim is refused, since its files would be lost.
    async fn pause(&self, sandbox_id: &str) -> Result<()> {
        let name = object_name(sandbox_id)?;
        let secret = self.secret(&name).await?.ok_or_else(|| Error::NotFound(sandbox_id.to_string()))?;
        if objects::secret_state(&secret) == "hibernated" {
            return Ok(());
        }
        let pod = objects::stored_pod(&secret)?;
        let persisted = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| v.name == "workspace" && v.persistent_volume_claim.is_some());
        if !persisted {
            return Err(Error::Unsupported {
                driver: DRIVER,
                what: "pausing a sandbox without a persistent /workspace (its files and processes would be lost)"
                    .into(),
            });
        }
        self.set_state(&name, "hibernated").await?;
        if let Some(f) = &self.forwards {
            f.remove(sandbox_id);
        }
        self.delete_pod(&name).await
    }

    async fn resume(&self, sandbox_id: &str) -> Result<Option<AgentEndpoint>> {
        let name = object_name(sandbox_id)?;
        let secret = self.secret(&name).await?.ok_or_else(|| Error::NotFound(sandbox_id.to_string()))?;
        if let Some(p) = self.pod(&name).await?
            && let Progress::Running { ip } = status::progress(&p)
        {
            return self.endpoint(sandbox_id, &name, &ip).map(Some);
        }
        let endpoint = self.run_pod(sandbox_id, &secret, false).await;
        if endpoint.is_err() {
            // Still hibernated: its claim and secret are kept for another try.
            let _ = self.set_state(&name, "hibernated").await;
        }
        endpoint.map(Some)
    }

    async fn snapshot(&self, _sandbox_id: &str, _image: &str) -> Result<u64> {
        Err(Error::Unsupported { driver: DRIVER, what: "snapshots (images are built outside the cluster)".into() })
    }

    async fn delete_image(&self, _image: &str) -> Result<()> {
        Err(Error::Unsupported { driver: DRIVER, what: "deleting images".into() })
    }

    async fn save_image(&self, _image: &str, _dest: &std::path::Path) -> Result<()> {
        Err(Error::Unsupported { driver: DRIVER, what: "exporting images".into() })
    }

    async fn load_image(&self, _src: &std::path::Path, _image: &str) -> Result<u64> {
        Err(Error::Unsupported { driver: DRIVER, what: "importing images".into() })
    }

    async fn build_image(&self, _context: &std::path::Path, _image: &str) -> Result<String> {
        Err(Error::Unsupported { driver: DRIVER, what: "building images".into() })
    }

    async fn delete_volume(&self, name: &str) -> Result<()> {
        self.delete_ours(&self.claims, name, "workspace claim").await
    }
}
