//! The shared driver conformance suite against the real Docker engine.

use podgate_docker::{DockerConfig, DockerDriver};

#[tokio::test]
async fn docker_driver_passes_conformance() {
    let tmp = tempfile::Builder::new()
        .prefix("pgc")
        .tempdir_in("/tmp")
        .unwrap();
    let agent = std::env::var("PODGATE_AGENT_BIN")
        .expect("PODGATE_AGENT_BIN must name the static agent (scripts/build-agent)");
    let driver = DockerDriver::connect(DockerConfig {
        agent_bin: agent.into(),
        run_dir: tmp.path().join("run"),
        instance: format!("conformance-{}", std::process::id()),
        agent_args: Vec::new(),
    })
    .await
    .expect("docker engine reachable");
    let image =
        std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into());
    podgate_runtime::conformance::run(&driver, &image, &format!("sb-conf{}", std::process::id()))
        .await;
}
