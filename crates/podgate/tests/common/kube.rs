//! The cluster a Kubernetes test runs on: the real one named by `PODGATE_TEST_KUBECONFIG`, else
//! the fake API server (`podgate_kube::fake`) whose kubelet starts pods on the local Docker engine.

use super::{Opts, Server};

/// Where the test runs: a real cluster, or the fake API server with Docker as kubelet.
pub struct Cluster {
    pub flags: Vec<String>,
    pub fake: Option<podgate_kube::fake::Fake>,
    _agent_image: Option<podgate_kube::fake::AgentImage>,
    _dir: tempfile::TempDir,
    /// On a real cluster: deletes what the server made when the test ends, passed or failed.
    pub cleanup: Option<podgate_kube::fake::ClusterCleanup>,
}

impl Cluster {
    /// Starts the server on this cluster; on a real one, what it makes is deleted at the end.
    pub fn server(&mut self, extra: &[&str]) -> Server {
        let mut flags = self.flags.clone();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let srv = tokio::task::block_in_place(|| Server::start_with(Opts { extra: flags, ..Default::default() }));
        if let Some(c) = &mut self.cleanup {
            c.instance = srv.instance.clone();
        }
        srv
    }
}

pub async fn cluster(test: &str) -> Cluster {
    cluster_with(test, false).await
}

/// `port_forward`: on the fake too, the server reaches agents through port-forward streams
/// (on a real cluster it always does).
pub async fn cluster_with(test: &str, port_forward: bool) -> Cluster {
    let dir = tempfile::Builder::new().prefix("pgke").tempdir_in("/tmp").unwrap();
    let flag = |k: &str, v: &str| [k.to_string(), v.to_string()];
    if let Ok(kubeconfig) = std::env::var("PODGATE_TEST_KUBECONFIG") {
        eprintln!("{test}: on the cluster of {kubeconfig}");
        let ns = std::env::var("PODGATE_TEST_NAMESPACE").unwrap_or_else(|_| "podgate-test".into());
        let agent = std::env::var("PODGATE_TEST_AGENT_IMAGE").unwrap_or_else(|_| "podgate/agent:latest".into());
        let mut flags: Vec<String> = ["--runtime", "kubernetes", "--kube-port-forward"].map(String::from).into();
        flags.extend(flag("--kubeconfig", &kubeconfig));
        flags.extend(flag("--kube-namespace", &ns));
        flags.extend(flag("--kube-agent-image", &agent));
        let cleanup = podgate_kube::fake::ClusterCleanup {
            kubeconfig: kubeconfig.clone().into(),
            namespace: ns.clone(),
            instance: String::new(),
        };
        return Cluster { flags, fake: None, _agent_image: None, _dir: dir, cleanup: Some(cleanup) };
    }
    eprintln!(
        "SKIPPED {test} on a real cluster: PODGATE_TEST_KUBECONFIG is not set. Running it on the fake API \
         server with the Docker engine as kubelet instead."
    );
    fake_cluster(dir, port_forward, podgate_kube::fake::Behaviour::default()).await
}

/// The fake API server with Docker as kubelet, behaving as `behaviour` says.
pub async fn fake_cluster(
    dir: tempfile::TempDir,
    port_forward: bool,
    behaviour: podgate_kube::fake::Behaviour,
) -> Cluster {
    let flag = |k: &str, v: &str| [k.to_string(), v.to_string()];
    let fake = podgate_kube::fake::Fake::with_docker(dir.path().join("kubelet")).behaving(behaviour);
    let url = fake.serve().await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let agent_image = podgate_kube::fake::AgentImage::import(&super::agent_bin()).expect("importing the agent image");
    let mut flags: Vec<String> = ["--runtime", "kubernetes"].map(String::from).into();
    if port_forward {
        flags.push("--kube-port-forward".into());
    }
    flags.extend(flag("--kubeconfig", kubeconfig.to_str().unwrap()));
    flags.extend(flag("--kube-namespace", "sandboxes"));
    flags.extend(flag("--kube-agent-image", &agent_image.name));
    Cluster { flags, fake: Some(fake), _agent_image: Some(agent_image), _dir: dir, cleanup: None }
}

pub fn image() -> String {
    std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into())
}
