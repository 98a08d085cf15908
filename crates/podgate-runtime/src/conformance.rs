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
/// Panics with a description of the first violation. Every method of [`Driver`] is called: what
/// a driver does not offer must say so with [`Error::Unsupported`], never fail otherwise.
pub async fn run(driver: &dyn Driver, image: &str, prefix: &str) {
    assert!(!driver.name().is_empty());
    driver.ping().await.expect("ping");
    let _ = driver.disk_caps();
    lifecycle(driver, image, &format!("{prefix}-life")).await;
    pause_and_resume(driver, image, &format!("{prefix}-pause")).await;
    images(driver, image, &format!("{prefix}-img")).await;
    volumes(driver, &format!("{prefix}-vol")).await;
    delete_is_idempotent(driver, &format!("{prefix}-none")).await;
    bad_images(driver, &format!("{prefix}-bad")).await;
}

/// Whether `r` is a driver saying it does not offer something.
fn unsupported<T: std::fmt::Debug>(r: &crate::Result<T>) -> bool {
    matches!(r, Err(Error::Unsupported { .. }))
}

async fn lifecycle(driver: &dyn Driver, image: &str, id: &str) {
    let labels = std::collections::BTreeMap::from([
        ("team".to_string(), "a b/c".to_string()),
        ("example.com/owner".to_string(), "x=y".to_string()),
    ]);
    driver.create(&PlacementSpec { labels: labels.clone(), ..spec(id, image) }).await.expect("create");
    let created = driver.inspect(id).await.expect("inspect").expect("instance after create");
    assert_eq!(created.status, InstanceStatus::Created, "a created instance is not started");
    assert_eq!(created.labels, labels, "the user's labels are kept on the instance");
    let _ = driver.progress(id);
    let endpoint = driver.start(id).await.expect("start");
    assert!(!endpoint.to_url().is_empty());
    let running = driver.inspect(id).await.expect("inspect").expect("instance after start");
    assert_eq!(running.status, InstanceStatus::Running);
    assert_eq!(running.labels, labels);
    let listed = driver.list().await.expect("list");
    assert!(listed.iter().any(|i| i.sandbox_id == id), "list must include {id}: {listed:?}");
    let logs = driver.logs(id, 10).await.expect("logs of a running instance");
    for line in logs.lines() {
        let stamp = line.split_once(' ').map_or(line, |(t, _)| t);
        assert!(stamp.len() >= 20 && stamp.as_bytes()[10] == b'T', "a log line without its timestamp: {line:?}");
    }
    driver.delete(id).await.expect("delete");
    assert!(driver.inspect(id).await.expect("inspect").is_none(), "instance gone after delete");
    assert!(!driver.list().await.expect("list").iter().any(|i| i.sandbox_id == id));
    assert!(matches!(driver.logs(id, 10).await, Err(Error::NotFound(_))), "logs of a deleted instance");
}

async fn pause_and_resume(driver: &dyn Driver, image: &str, id: &str) {
    place(driver, &spec(id, image)).await.expect("place");
    match driver.pause(id).await {
        Ok(()) => {
            let paused = driver.inspect(id).await.expect("inspect").expect("a paused instance");
            assert_eq!(paused.status, InstanceStatus::Paused);
            driver.pause(id).await.expect("pausing a paused instance is fine");
            driver.resume(id).await.expect("resume");
            let resumed = driver.inspect(id).await.expect("inspect").expect("a resumed instance");
            assert_eq!(resumed.status, InstanceStatus::Running);
        }
        Err(Error::Unsupported { .. }) => {
            let still = driver.inspect(id).await.expect("inspect").expect("a refused pause keeps it");
            assert_eq!(still.status, InstanceStatus::Running, "a refused pause changes nothing");
        }
        Err(e) => panic!("pause: {e:?}"),
    }
    driver.delete(id).await.expect("delete");
    assert!(matches!(driver.pause(id).await, Err(Error::NotFound(_))), "pause of a missing instance");
    assert!(matches!(driver.resume(id).await, Err(Error::NotFound(_))), "resume of a missing instance");
}

/// Snapshots, export and import, builds: all or nothing per driver.
async fn images(driver: &dyn Driver, image: &str, id: &str) {
    let dir = tempfile_dir(id);
    place(driver, &spec(id, image)).await.expect("place");
    let snap = format!("podgate-conformance/{id}:snap");
    let snapshot = driver.snapshot(id, &snap).await;
    driver.delete(id).await.expect("delete");
    if unsupported(&snapshot) {
        assert!(unsupported(&driver.save_image(&snap, &dir.join("x.tar")).await));
        assert!(unsupported(&driver.load_image(&dir.join("x.tar"), &snap).await));
        assert!(unsupported(&driver.delete_image(&snap).await));
    } else {
        // Its size is what the sandbox added to its image (nothing here: 0 is right).
        snapshot.expect("snapshot");
        let archive = dir.join("snap.tar");
        driver.save_image(&snap, &archive).await.expect("save");
        assert!(std::fs::metadata(&archive).expect("the archive").len() > 0);
        // As the core hands archives over: one image, untagged.
        let untagged = dir.join("untagged.tar");
        let (input, output) =
            (std::fs::File::open(&archive).expect("archive"), std::fs::File::create(&untagged).expect("out"));
        podgate_tar::image::sanitize_image_archive(input, output).expect("sanitize");
        driver.delete_image(&snap).await.expect("delete the snapshot before loading it back");
        let copy = format!("podgate-conformance/{id}:copy");
        assert!(driver.load_image(&untagged, &copy).await.expect("load") > 0, "a loaded image has a size");
        place(driver, &spec(&format!("{id}-from"), &copy)).await.expect("a sandbox from the loaded image");
        driver.delete(&format!("{id}-from")).await.expect("delete");
        driver.delete_image(&copy).await.expect("delete the copy");
        driver.delete_image(&snap).await.expect("deleting a missing image is fine");
    }
    let files = dir.join("context");
    std::fs::create_dir_all(&files).expect("context dir");
    std::fs::write(files.join("Dockerfile"), format!("FROM {image}\nRUN true\n")).expect("Dockerfile");
    let context = dir.join("context.tar");
    podgate_tar::pack(&files, std::fs::File::create(&context).expect("context tar")).expect("pack");
    let built = format!("podgate-conformance/{id}:built");
    match driver.build_image(&context, &built).await {
        Err(Error::Unsupported { .. }) => {}
        Ok(_) => driver.delete_image(&built).await.expect("delete the build"),
        Err(e) => panic!("build: {e:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn volumes(driver: &dyn Driver, name: &str) {
    driver.delete_volume(name).await.expect("deleting a missing volume succeeds");
    let lock = driver.lock_volume(name).await;
    assert!(lock.is_ok() || unsupported(&lock), "locking a missing volume: {lock:?}");
}

fn tempfile_dir(id: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("podgate-conformance-{id}"));
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    dir
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
