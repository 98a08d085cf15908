//! The shared driver conformance suite, plus hibernation, against a real cluster: run when
//! `PODGATE_TEST_KUBECONFIG` names a kubeconfig, skipped with a message otherwise. Images are
//! never pulled (`IfNotPresent`): load `PODGATE_TEST_IMAGE` (default `podgate/base:latest`) and
//! `PODGATE_TEST_AGENT_IMAGE` (default `podgate/agent:latest`) into the cluster first. The
//! namespace (`PODGATE_TEST_NAMESPACE`, default `podgate-test`) may enforce Pod Security
//! `restricted`: every sandbox here is non-root. What a run made is deleted when it ends, also
//! when it fails.

use podgate_kube::{Access, KubeConfig, KubeDriver};
use podgate_runtime::{AgentEndpoint, Driver, InstanceStatus, PlacementSpec};

/// The cluster's driver, or `None` (after saying why) when no cluster is configured.
/// `tag` tells this test's objects apart from the other's (both run at once).
async fn cluster(test: &str, tag: &str) -> Option<(KubeDriver, tempfile::TempDir, podgate_kube::fake::ClusterCleanup)> {
    let Ok(kubeconfig) = std::env::var("PODGATE_TEST_KUBECONFIG") else {
        eprintln!("SKIPPED {test}: PODGATE_TEST_KUBECONFIG is not set, so there is no cluster to run it on");
        return None;
    };
    let run = tempfile::Builder::new().prefix("pgk").tempdir_in("/tmp").unwrap();
    let namespace = std::env::var("PODGATE_TEST_NAMESPACE").unwrap_or_else(|_| "podgate-test".into());
    let instance = format!("conf-{}-{tag}", std::process::id());
    let cleanup = podgate_kube::fake::ClusterCleanup {
        kubeconfig: kubeconfig.clone().into(),
        namespace: namespace.clone(),
        instance: instance.clone(),
    };
    let cfg = KubeConfig {
        kubeconfig: Some(kubeconfig.into()),
        namespace,
        instance,
        agent_image: std::env::var("PODGATE_TEST_AGENT_IMAGE").unwrap_or_else(|_| "podgate/agent:latest".into()),
        access: Access::PortForward { run_dir: run.path().to_path_buf() },
        startup_timeout: std::time::Duration::from_secs(90),
        ..Default::default()
    };
    Some((KubeDriver::connect(cfg).await.expect("the test cluster is reachable"), run, cleanup))
}

fn image() -> String {
    std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into())
}

#[tokio::test]
async fn kubernetes_driver_passes_conformance() {
    let Some((driver, _run, _cleanup)) = cluster("kubernetes_driver_passes_conformance", "c").await else { return };
    podgate_runtime::conformance::run(&driver, &image(), &format!("sb-kconf{}", std::process::id())).await;
}

#[tokio::test]
async fn kubernetes_hibernation_keeps_the_workspace_claim() {
    let Some((driver, _run, _cleanup)) = cluster("kubernetes_hibernation_keeps_the_workspace_claim", "h").await else {
        return;
    };
    let id = format!("sb-khib{}", std::process::id());
    let volume = format!("podgate-vol-khib{}", std::process::id());
    let spec = PlacementSpec {
        sandbox_id: id.clone(),
        image: image(),
        agent_secret: "hibernate-secret".into(),
        user: (1000, 1000),
        memory: Some(256 << 20),
        cpu: Some(0.5),
        workspace_volume: Some(volume.clone()),
        ..Default::default()
    };
    driver.create(&spec).await.expect("create");
    let first = driver.start(&id).await.expect("start");
    assert!(matches!(first, AgentEndpoint::Unix(_)));
    driver.pause(&id).await.expect("pause hibernates");
    let paused = driver.inspect(&id).await.unwrap().expect("a hibernated sandbox still exists");
    assert_eq!(paused.status, InstanceStatus::Paused);
    let again = driver.resume(&id).await.expect("resume").expect("a recreated pod has an endpoint");
    assert_eq!(again, first, "port-forward sockets are named by sandbox");
    assert_eq!(driver.inspect(&id).await.unwrap().unwrap().status, InstanceStatus::Running);
    driver.delete(&id).await.expect("delete");
    assert!(driver.inspect(&id).await.unwrap().is_none());
    driver.delete_volume(&volume).await.expect("the claim outlives the sandbox until deleted");

    let plain = PlacementSpec { sandbox_id: format!("{id}p"), workspace_volume: None, ..spec };
    driver.create(&plain).await.expect("create");
    driver.start(&plain.sandbox_id).await.expect("start");
    let refused = driver.pause(&plain.sandbox_id).await;
    assert!(matches!(refused, Err(podgate_runtime::Error::Unsupported { .. })), "{refused:?}");
    driver.delete(&plain.sandbox_id).await.expect("delete");
}
