//! How the Kubernetes driver places sandboxes: namespace, agent image, how the server reaches
//! agents, storage, scheduling and the network policy's parties.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the server reaches a sandbox's agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// At the pod's IP (the server runs in the cluster).
    PodIp,
    /// Through the API server's port-forward (the server runs outside the cluster): one unix
    /// socket per sandbox in this folder, each connection a port-forward stream.
    PortForward { run_dir: PathBuf },
}

/// An NFS export mounted into every sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsMount {
    pub server: String,
    pub path: String,
    pub mount_path: String,
    pub read_only: bool,
}

impl NfsMount {
    /// Parses `SERVER:/EXPORT:/MOUNT/PATH[:ro]`.
    pub fn parse(s: &str) -> Result<NfsMount, String> {
        let bad = || format!("{s:?} is not SERVER:/EXPORT:/MOUNT/PATH[:ro]");
        let (rest, read_only) = match s.strip_suffix(":ro") {
            Some(r) => (r, true),
            None => (s, false),
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(server), Some(path), Some(mount_path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if server.is_empty() || !path.starts_with('/') || !mount_path.starts_with('/') || mount_path.contains(':') {
            return Err(bad());
        }
        if ["/", "/workspace", "/tmp", crate::objects::AGENT_DIR].contains(&mount_path) {
            return Err(format!("{mount_path} is used by podgate itself"));
        }
        Ok(NfsMount { server: server.into(), path: path.into(), mount_path: mount_path.into(), read_only })
    }
}

/// A toleration given to every sandbox pod (`KEY[=VALUE]:EFFECT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl Toleration {
    /// Parses `KEY[=VALUE]:EFFECT`, EFFECT one of NoSchedule, PreferNoSchedule, NoExecute.
    pub fn parse(s: &str) -> Result<Toleration, String> {
        let (key, value, effect) = podgate_types::validate::toleration(s)?;
        Ok(Toleration { key: key.into(), value: value.map(String::from), effect: effect.into() })
    }
}

/// What a sandbox's pod requests (the scheduler reserves it on a node), as fractions of its
/// limits: a sandbox may use its whole limit when the node has it free, and idle sandboxes do
/// not hold whole CPUs. 1.0 reserves everything (Guaranteed QoS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requests {
    pub cpu: f64,
    pub memory: f64,
}

impl Requests {
    /// Requests equal to limits.
    pub const LIMITS: Requests = Requests { cpu: 1.0, memory: 1.0 };

    /// Checks that each fraction is in (0, 1].
    pub fn check(&self) -> Result<(), String> {
        for (what, f) in [("cpu", self.cpu), ("memory", self.memory)] {
            if !(f > 0.0 && f <= 1.0) {
                return Err(format!("the {what} request fraction {f} is not in (0, 1]"));
            }
        }
        Ok(())
    }
}

impl Default for Requests {
    /// A tenth of the CPU limit and a quarter of the memory limit: with the server's defaults
    /// (1 CPU, 1 GiB) a 2-CPU, 8 GiB node takes about 20 sandboxes by CPU and 28 by memory.
    fn default() -> Self {
        Requests { cpu: 0.1, memory: 0.25 }
    }
}

/// Everything the driver needs besides the cluster's address.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// A kubeconfig file (`None`: in-cluster, else `KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (`None`: the kubeconfig's current one).
    pub context: Option<String>,
    /// The namespace sandboxes live in.
    pub namespace: String,
    /// Id of this server instance; only objects with this label are ever touched.
    pub instance: String,
    /// The image holding the static agent at `/podgate-agent` (see `deploy/agent.Dockerfile`).
    pub agent_image: String,
    /// `IfNotPresent`, `Always` or `Never`, for every image of a sandbox.
    pub image_pull_policy: String,
    /// Extra `podgate-agent serve` flags (e.g. `--terminal-idle-seconds 3600`).
    pub agent_args: Vec<String>,
    pub access: Access,
    /// The namespace the server runs in, and labels of its pods: the only peers the sandbox
    /// network policy admits to the agent port.
    pub server_namespace: String,
    pub server_labels: BTreeMap<String, String>,
    /// Addresses (CIDRs) sandboxes with egress may reach although they are private.
    pub egress_allow: Vec<String>,
    /// Size requested for a persistent `/workspace` claim, e.g. `10Gi`.
    pub workspace_size: String,
    /// Storage class of those claims (`None`: the cluster's default).
    pub storage_class: Option<String>,
    pub nfs: Vec<NfsMount>,
    /// Scheduling for every sandbox pod: a runtime class (gVisor, Kata), node labels, tolerations.
    pub runtime_class: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// How long a pod may take to run (image pulls included).
    pub startup_timeout: std::time::Duration,
    /// What pods request of their limits.
    pub requests: Requests,
    /// Give `/workspace` to the sandbox user in an init container running as root with CHOWN
    /// (for volumes that ignore `fsGroup`); needs Pod Security `baseline` in the namespace.
    pub workspace_owner_init: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            kubeconfig: None,
            context: None,
            namespace: "podgate-sandboxes".into(),
            instance: String::new(),
            agent_image: "podgate/agent:latest".into(),
            image_pull_policy: "IfNotPresent".into(),
            agent_args: Vec::new(),
            access: Access::PodIp,
            server_namespace: "podgate".into(),
            server_labels: BTreeMap::from([("app.kubernetes.io/name".into(), "podgate-server".into())]),
            egress_allow: Vec::new(),
            workspace_size: "10Gi".into(),
            storage_class: None,
            nfs: Vec::new(),
            runtime_class: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            startup_timeout: std::time::Duration::from_secs(120),
            requests: Requests::default(),
            workspace_owner_init: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nfs_mounts() {
        let m = NfsMount::parse("nfs.example:/export/data:/mnt/data:ro").unwrap();
        assert_eq!(
            (m.server.as_str(), m.path.as_str(), m.mount_path.as_str(), m.read_only),
            ("nfs.example", "/export/data", "/mnt/data", true)
        );
        assert!(!NfsMount::parse("10.0.0.5:/x:/mnt/x").unwrap().read_only);
        for bad in ["nfs:/x", ":/x:/m", "nfs:x:/m", "nfs:/x:m", "nfs:/x:/workspace", "nfs:/x:/tmp"] {
            assert!(NfsMount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_tolerations() {
        let t = Toleration::parse("sandbox=true:NoSchedule").unwrap();
        assert_eq!((t.key.as_str(), t.value.as_deref(), t.effect.as_str()), ("sandbox", Some("true"), "NoSchedule"));
        assert_eq!(Toleration::parse("gpu:NoExecute").unwrap().value, None);
        for bad in ["x", "x:Sometimes", ":NoSchedule", "=v:NoSchedule"] {
            assert!(Toleration::parse(bad).is_err(), "{bad}");
        }
    }
}
