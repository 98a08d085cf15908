//! `podgate server`'s choice of runtime (`--runtime docker|kubernetes`) and the Kubernetes
//! driver's flags (in the config file: the `[kubernetes]` table, keys without `kube_`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// Where sandboxes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The Docker Engine on this machine.
    Docker,
    /// Pods in a Kubernetes cluster.
    Kubernetes,
}

/// The Kubernetes flags of `podgate server`.
#[derive(clap::Args, Debug, Default)]
pub struct KubeArgs {
    /// A kubeconfig file [default: in-cluster, else $KUBECONFIG or ~/.kube/config].
    #[arg(long, env = "PODGATE_KUBECONFIG")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: its current context].
    #[arg(long, env = "PODGATE_KUBE_CONTEXT")]
    pub(crate) kube_context: Option<String>,
    /// The namespace sandboxes run in [default: podgate-sandboxes].
    #[arg(long, env = "PODGATE_KUBE_NAMESPACE")]
    pub(crate) kube_namespace: Option<String>,
    /// The image holding the agent (deploy/agent.Dockerfile) [default: podgate/agent:VERSION].
    #[arg(long, env = "PODGATE_KUBE_AGENT_IMAGE")]
    pub(crate) kube_agent_image: Option<String>,
    /// Pull policy of every sandbox image: IfNotPresent, Always or Never [default: IfNotPresent].
    #[arg(long, env = "PODGATE_KUBE_IMAGE_PULL_POLICY")]
    pub(crate) kube_image_pull_policy: Option<String>,
    /// Reach agents through the API server's port-forward (a server outside the cluster)
    /// instead of at their pod IPs.
    #[arg(long, env = "PODGATE_KUBE_PORT_FORWARD", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) kube_port_forward: Option<bool>,
    /// The server's own namespace, the only one the sandbox network policy admits to agents [default: podgate].
    #[arg(long, env = "PODGATE_KUBE_SERVER_NAMESPACE")]
    pub(crate) kube_server_namespace: Option<String>,
    /// Labels of the server's pods, KEY=VALUE comma-separated [default: app.kubernetes.io/name=podgate-server].
    #[arg(long, env = "PODGATE_KUBE_SERVER_LABELS", value_delimiter = ',')]
    pub(crate) kube_server_labels: Option<Vec<String>>,
    /// Size of a persistent /workspace claim [default: 10Gi].
    #[arg(long, env = "PODGATE_KUBE_WORKSPACE_SIZE")]
    pub(crate) kube_workspace_size: Option<String>,
    /// Storage class of /workspace claims [default: the cluster's default].
    #[arg(long, env = "PODGATE_KUBE_STORAGE_CLASS")]
    pub(crate) kube_storage_class: Option<String>,
    /// NFS exports mounted in every sandbox, SERVER:/EXPORT:/MOUNT[:ro], comma-separated.
    #[arg(long, env = "PODGATE_KUBE_NFS", value_delimiter = ',')]
    pub(crate) kube_nfs: Option<Vec<String>>,
    /// Runtime class of sandbox pods (e.g. gvisor, kata) [default: the cluster's default].
    #[arg(long, env = "PODGATE_KUBE_RUNTIME_CLASS")]
    pub(crate) kube_runtime_class: Option<String>,
    /// Node labels sandbox pods must be placed on, KEY=VALUE comma-separated.
    #[arg(long, env = "PODGATE_KUBE_NODE_SELECTOR", value_delimiter = ',')]
    pub(crate) kube_node_selector: Option<Vec<String>>,
    /// Tolerations of sandbox pods, KEY[=VALUE]:EFFECT comma-separated.
    #[arg(long, env = "PODGATE_KUBE_TOLERATIONS", value_delimiter = ',')]
    pub(crate) kube_tolerations: Option<Vec<String>>,
    /// The CPU a sandbox's pod requests (the scheduler reserves), as a fraction of its CPU
    /// limit, in (0, 1]; 1 reserves the whole limit [default: 0.1].
    #[arg(long, env = "PODGATE_KUBE_CPU_REQUEST_FRACTION")]
    pub(crate) kube_cpu_request_fraction: Option<f64>,
    /// The memory a sandbox's pod requests, as a fraction of its memory limit, in (0, 1] [default: 0.25].
    #[arg(long, env = "PODGATE_KUBE_MEMORY_REQUEST_FRACTION")]
    pub(crate) kube_memory_request_fraction: Option<f64>,
    /// Give /workspace to the sandbox user in an init container running as root with CHOWN,
    /// for volumes that ignore fsGroup (hostPath, local, some NFS); the sandbox namespace's Pod
    /// Security must allow it (baseline).
    #[arg(long, env = "PODGATE_KUBE_WORKSPACE_OWNER_INIT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) kube_workspace_owner_init: Option<bool>,
}

fn key_values(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{flag}: {kv:?} is not KEY=VALUE"),
        })
        .collect()
}

/// Each item of a list flag, parsed; the first bad one is the error, named after the flag.
fn parse_each<T>(
    flag: &str,
    items: Option<Vec<String>>,
    parse: fn(&str) -> Result<T, String>,
) -> anyhow::Result<Vec<T>> {
    items
        .unwrap_or_default()
        .iter()
        .map(|i| parse(i).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()
        .context(flag.to_string())
}

/// The driver's configuration, save what the server fills in at start (instance, run dir,
/// agent flags, startup timeout).
pub fn resolve(args: KubeArgs) -> anyhow::Result<podgate_kube::KubeConfig> {
    let d = podgate_kube::KubeConfig::default();
    let pull = args.kube_image_pull_policy.unwrap_or(d.image_pull_policy);
    if !["IfNotPresent", "Always", "Never"].contains(&pull.as_str()) {
        bail!("--kube-image-pull-policy {pull:?}: use IfNotPresent, Always or Never");
    }
    let server_labels = match args.kube_server_labels {
        Some(l) => key_values("--kube-server-labels", &l)?,
        None => d.server_labels,
    };
    let node_selector = key_values("--kube-node-selector", &args.kube_node_selector.unwrap_or_default())?;
    let nfs = parse_each("--kube-nfs", args.kube_nfs, podgate_kube::NfsMount::parse)?;
    let tolerations = parse_each("--kube-tolerations", args.kube_tolerations, podgate_kube::Toleration::parse)?;
    let requests = podgate_kube::Requests {
        cpu: args.kube_cpu_request_fraction.unwrap_or(d.requests.cpu),
        memory: args.kube_memory_request_fraction.unwrap_or(d.requests.memory),
    };
    requests.check().map_err(|e| anyhow::anyhow!("--kube-cpu-request-fraction/--kube-memory-request-fraction: {e}"))?;
    Ok(podgate_kube::KubeConfig {
        kubeconfig: args.kubeconfig,
        context: args.kube_context,
        namespace: args.kube_namespace.unwrap_or(d.namespace),
        agent_image: args.kube_agent_image.unwrap_or_else(|| format!("podgate/agent:{}", env!("CARGO_PKG_VERSION"))),
        image_pull_policy: pull,
        access: if args.kube_port_forward.unwrap_or(false) {
            // The run directory is the server's to fill in.
            podgate_kube::Access::PortForward { run_dir: PathBuf::new() }
        } else {
            podgate_kube::Access::PodIp
        },
        server_namespace: args.kube_server_namespace.unwrap_or(d.server_namespace),
        server_labels,
        workspace_size: args.kube_workspace_size.unwrap_or(d.workspace_size),
        storage_class: args.kube_storage_class,
        nfs,
        runtime_class: args.kube_runtime_class,
        node_selector,
        tolerations,
        requests,
        workspace_owner_init: args.kube_workspace_owner_init.unwrap_or(false),
        ..d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_defaults_apply() {
        let args = KubeArgs {
            kube_namespace: Some("ns".into()),
            kube_runtime_class: Some("gvisor".into()),
            kube_node_selector: Some(vec!["pool=sb".into()]),
            kube_port_forward: Some(true),
            ..Default::default()
        };
        let c = resolve(args).unwrap();
        assert_eq!(c.namespace, "ns");
        assert_eq!(c.runtime_class.as_deref(), Some("gvisor"));
        assert_eq!(c.node_selector["pool"], "sb");
        assert!(matches!(c.access, podgate_kube::Access::PortForward { .. }));
        assert!(c.agent_image.starts_with("podgate/agent:"));
        let c = resolve(KubeArgs { kube_port_forward: Some(false), ..Default::default() }).unwrap();
        assert!(matches!(c.access, podgate_kube::Access::PodIp));

        let bad = |a: KubeArgs| resolve(a).unwrap_err().to_string();
        assert!(
            bad(KubeArgs { kube_image_pull_policy: Some("Sometimes".into()), ..Default::default() })
                .contains("IfNotPresent")
        );
        assert!(
            bad(KubeArgs { kube_node_selector: Some(vec!["nokey".into()]), ..Default::default() })
                .contains("KEY=VALUE")
        );
        assert!(
            bad(KubeArgs { kube_tolerations: Some(vec!["x:Never".into()]), ..Default::default() })
                .contains("--kube-tolerations")
        );
        assert!(bad(KubeArgs { kube_cpu_request_fraction: Some(1.5), ..Default::default() }).contains("not in (0, 1]"));
        assert!(bad(KubeArgs { kube_memory_request_fraction: Some(0.0), ..Default::default() }).contains("memory"));
        let c = resolve(KubeArgs {
            kube_cpu_request_fraction: Some(0.5),
            kube_memory_request_fraction: Some(1.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.requests, podgate_kube::Requests { cpu: 0.5, memory: 1.0 });
        assert_eq!(resolve(KubeArgs::default()).unwrap().requests, podgate_kube::Requests::default());
    }
}
