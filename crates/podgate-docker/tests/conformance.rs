//! The shared driver conformance suite against the real Docker engine.

use podgate_docker::{DockerConfig, DockerDriver};

#[tokio::test]
async fn docker_driver_passes_conformance() {
    let tmp = tempfile::Builder::new().prefix("pgc").tempdir_in("/tmp").unwrap();
    let driver = DockerDriver::connect(DockerConfig {
        agent_bin: podgate_runtime::conformance::agent_bin(),
        run_dir: tmp.path().join("run"),
        instance: format!("conformance-{}", std::process::id()),
        ..Default::default()
    })
    .await
    .expect("docker engine reachable");
    let image = std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into());
    podgate_runtime::conformance::run(&driver, &image, &format!("sb-conf{}", std::process::id())).await;
}
