//! A hostile sandbox against the host's disk (finding 7): it fills its own filesystem and its
//! persistent `/workspace` past their caps, and its owner's snapshots and volumes past the
//! owner's disk quota. Needs an engine whose storage driver has quotas (`scripts/start-docker`
//! runs one on btrfs); a server on any other engine says so, and the first test fails.

use crate::common::{Server, docker};
use crate::{BUSYBOX, sh, user};
use podgate_types::MemorySize;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::QuotaOverrides;

const MIB: u64 = 1 << 20;

/// Size in bytes of a file in the sandbox (0 when it is missing).
async fn size_of(c: &podgate_client::Client, id: &str, path: &str) -> u64 {
    let (_, out) = sh(c, id, &format!("stat -c %s {path} 2>/dev/null || echo 0")).await;
    out.trim().parse().unwrap_or_else(|_| panic!("stat {path}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn filling_a_sandbox_stops_at_its_caps() {
    let srv = Server::start();
    let gina = user(&srv, "gina").await;
    let req = CreateSandboxRequest {
        name: Some("filler".into()),
        image: Some(BUSYBOX.into()),
        disk: Some(MemorySize(64 * MIB)),
        persist: true,
        volume_size: Some(MemorySize(32 * MIB)),
        ..Default::default()
    };
    let sb = gina.create(&req).await.unwrap();
    assert_eq!(sb.disk, Some(MemorySize(64 * MIB)));

    // Its own filesystem: 200 MiB asked, the cap stops it.
    let (code, out) = sh(&gina, &sb.id, "dd if=/dev/zero of=/home/podgate/big bs=1M count=200 2>&1").await;
    assert_ne!(code, 0, "200 MiB fit in a 64 MiB cap: {out}");
    assert!(out.contains("quota") || out.contains("space"), "{out}");
    let written = size_of(&gina, &sb.id, "/home/podgate/big").await;
    assert!(written <= 64 * MIB, "{written} bytes written past a 64 MiB cap");

    // Its persistent /workspace: 100 MiB asked of a 32 MiB volume.
    let (code, out) = sh(&gina, &sb.id, "dd if=/dev/zero of=/workspace/big bs=1M count=100 2>&1").await;
    assert_ne!(code, 0, "100 MiB fit in a 32 MiB volume: {out}");
    assert!(out.contains("No space left"), "{out}");
    let written = size_of(&gina, &sb.id, "/workspace/big").await;
    assert!(written <= 32 * MIB, "{written} bytes written past a 32 MiB volume");

    // The sandbox itself still answers, and freeing space lets it write again.
    assert_eq!(
        sh(&gina, &sb.id, "rm /workspace/big /home/podgate/big && echo ok > /workspace/f && cat /workspace/f").await,
        (0, "ok\n".into())
    );
    let volumes = gina.list_volumes().await.unwrap();
    assert_eq!(volumes[0].size, MemorySize(32 * MIB));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_disk_quota_counts_sandboxes_volumes_and_snapshots() {
    let srv = Server::start();
    let hal = user(&srv, "hal").await;
    let id = hal.me().await.unwrap().id;
    let quota = QuotaOverrides { disk: Some(MemorySize(200 * MIB)), ..Default::default() };
    srv.client().set_quota(&id, &quota).await.unwrap();
    let req = |name: &str, disk: u64| CreateSandboxRequest {
        name: Some(name.into()),
        image: Some(BUSYBOX.into()),
        disk: Some(MemorySize(disk)),
        ..Default::default()
    };
    let first = CreateSandboxRequest { persist: true, volume_size: Some(MemorySize(64 * MIB)), ..req("one", 64 * MIB) };
    let sb = hal.create(&first).await.unwrap();
    assert_eq!(hal.quota("me").await.unwrap().usage.disk, MemorySize(128 * MIB), "64 MiB sandbox + 64 MiB volume");

    // A sandbox that does not fit is refused, naming the disk.
    let e = hal.create(&req("two", 100 * MIB)).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(e.to_string().contains("disk"), "{e}");
    assert!(hal.get("two").await.is_err(), "a refused sandbox stayed");

    // Snapshots count what they hold: 50 MiB written fits once (178 MiB), not twice.
    assert_eq!(
        sh(&hal, &sb.id, "dd if=/dev/urandom of=/home/podgate/data bs=1M count=50 2>/dev/null; echo $?").await.1,
        "0\n"
    );
    let snap = hal.snapshot(&sb.id, Some("s1")).await.unwrap();
    assert!(snap.bytes >= 50 * MIB && snap.bytes < 64 * MIB, "{} bytes", snap.bytes);
    let e = hal.snapshot(&sb.id, Some("s2")).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(e.to_string().contains("disk"), "{e}");
    let names: Vec<String> = hal.list_snapshots().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["s1"]);
    // The refused snapshot's image is gone from the engine too.
    let label = format!("label=io.podgate.instance={}", srv.instance);
    let images = docker(&["images", "-q", "--filter", &label, "podgate-snapshot"]);
    assert_eq!(images.lines().count(), 1, "{images}");

    // Deleting the snapshot gives its bytes back.
    hal.delete_snapshot("s1").await.unwrap();
    assert_eq!(hal.quota("me").await.unwrap().usage.disk, MemorySize(128 * MIB));
    assert!(hal.snapshot(&sb.id, Some("s3")).await.is_ok());
}
