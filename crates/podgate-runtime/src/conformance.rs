//! The driver conformance suite: behaviour every [`Driver`] must show, run by each driver's tests
//! against a real engine.

use crate::{Driver, Error, InstanceStatus, PlacementSpec};

/// The static agent for drivers' tests: `PODGATE_AGENT_BIN`, else what `scripts/build-agent`
/// builds (at the workspace root, two folders above each crate).
pub fn agent_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("PODGATE_AGENT_BIN") {
        return p.into();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-agent");
    let out = std::process::Command::new(script).output().expect("running scripts/build-agent");
    assert!(out.status.success(), "build-agent: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("a path").trim().into()
}

fn spec(id: &str, image: &str) -> PlacementSpec {
    PlacementSpec {
        sandbox_id: id.to_string(),
        image: image.to_string(),
        agent_secret: "conformance-secret".to_string(),
        // Non-root: the suite must pass where root pods are refused (Pod Security `restricted`).
        user: (1000, 1000),
        memory: Some(256 << 20),
        cpu: Some(0.5),
        ..Default::default()
    }
}

/// Runs every check with sandbox ids starting with `prefix`. `image` must exist in the engine.
/// Panics with a description of the first violation.
pub async fn run(driver: &dyn Driver, image: &str, prefix: &str) {
    driver.ping().await.expect("ping");
    lifecycle(driver, image, &format!("{prefix}-life")).await;
    delete_is_idempotent(driver, &format!("{prefix}-none")).await;
    bad_images(driver, &format!("{prefix}-bad")).await;
}

async fn lifecycle(driver: &dyn Driver, image: &str, id: &str) {
    driver.create(&spec(id, image)).await.expect("create");
    let created = driver.inspect(id).await.expect("inspect").expect("instance after create");
    assert_eq!(created.status, InstanceStatus::Created, "a created instance is not started");
    let endpoint = driver.start(id).await.expect("start");
    assert!(!endpoint.to_url().is_empty());
    let running = driver.inspect(id).await.expect("inspect").expect("instance after start");
    assert_eq!(running.status, InstanceStatus::Running);
    let listed = driver.list().await.expect("list");
    assert!(listed.iter().any(|i| i.sandbox_id == id), "list must include {id}: {listed:?}");
    driver.delete(id).await.expect("delete");
    assert!(driver.inspect(id).await.expect("inspect").is_none(), "instance gone after delete");
    assert!(!driver.list().await.expect("list").iter().any(|i| i.sandbox_id == id));
}

async fn delete_is_idempotent(driver: &dyn Driver, id: &str) {
    driver.delete(id).await.expect("deleting a missing instance succeeds");
    assert!(driver.inspect(id).await.expect("inspect").is_none());
    assert!(matches!(driver.start(id).await, Err(Error::NotFound(_))), "start of a missing instance is NotFound");
}

/// Creates and starts: a driver may learn that an image is missing at either step (Docker pulls
/// on create; Kubernetes knows once the kubelet tries).
async fn place(driver: &dyn Driver, spec: &PlacementSpec) -> crate::Result<()> {
    driver.create(spec).await?;
    driver.start(&spec.sandbox_id).await.map(|_| ())
}

async fn bad_images(driver: &dyn Driver, id: &str) {
    let missing = place(driver, &spec(id, "podgate-conformance/no-such-image:v0")).await;
    assert!(matches!(missing, Err(Error::ImageUnavailable { .. })), "missing image: {missing:?}");
    assert!(driver.inspect(id).await.expect("inspect").is_none(), "nothing left after a failed create");
    let invalid = place(driver, &spec(id, "Not A Valid//Reference")).await;
    assert!(
        matches!(invalid, Err(Error::InvalidSpec(_)) | Err(Error::ImageUnavailable { .. })),
        "invalid reference: {invalid:?}"
    );
    assert!(driver.inspect(id).await.expect("inspect").is_none());
}
