//! The shared driver conformance suite against the real Docker engine.

use podgate_docker::{DockerConfig, DockerDriver};

#[tokio::test]
async fn docker_driver_passes_conformance() {
    let tmp = tempfile::Builder::new().prefix("pgc").tempdir_in("/tmp").unwrap();
    // The static agent: PODGATE_AGENT_BIN, else built by scripts/build-agent.
    let agent = std::env::var("PODGATE_AGENT_BIN").unwrap_or_else(|_| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-agent");
        let out = std::process::Command::new(script).output().expect("running scripts/build-agent");
        assert!(out.status.success(), "build-agent: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    });
    let driver = DockerDriver::connect(DockerConfig {
        agent_bin: agent.into(),
        run_dir: tmp.path().join("run"),
        instance: format!("conformance-{}", std::process::id()),
        ..Default::default()
    })
    .await
    .expect("docker engine reachable");
    let image = std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into());
    podgate_runtime::conformance::run(&driver, &image, &format!("sb-conf{}", std::process::id())).await;
}
