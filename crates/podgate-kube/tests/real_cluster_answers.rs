//! What a real single-node cluster answered the driver (issue 18), replayed by the fake API
//! server ([`podgate_kube::fake::Behaviour`]) and guarded here, each test named after the
//! cluster's own message: refusals reach the caller as the request's fault (Pod Security) or
//! the cluster's quota; no node fitting yet and claims that bind late are waited out with
//! progress, up to the startup timeout; an autoscaler that will not help ends the wait at once.

use std::time::{Duration, Instant};

use podgate_kube::fake::{Behaviour, Fake};
use podgate_kube::{Access, KubeConfig, KubeDriver};
use podgate_runtime::{Driver, Error, PlacementSpec};

async fn driver(b: Behaviour, startup_secs: u64) -> (KubeDriver, Fake) {
    podgate_kube::ensure_crypto_provider();
    let fake = Fake::default().behaving(b);
    let url = fake.serve().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let cfg = KubeConfig {
        namespace: "sandboxes".into(),
        instance: "i1".into(),
        access: Access::PodIp,
        startup_timeout: Duration::from_secs(startup_secs),
        // The scheduler's arithmetic in these tests is on whole limits.
        requests: podgate_kube::Requests::LIMITS,
        ..Default::default()
    };
    (KubeDriver::with_client(client, cfg).await.expect("driver"), fake)
}

fn spec(id: &str) -> PlacementSpec {
    PlacementSpec {
        sandbox_id: id.into(),
        image: "podgate/base:latest".into(),
        agent_secret: "fake-secret".into(),
        user: (1000, 1000),
        ..Default::default()
    }
}

#[tokio::test]
async fn violates_pod_security_restricted() {
    let (d, fake) = driver(Behaviour { restricted: true, ..Default::default() }, 10).await;
    // A non-root sandbox's pod passes the restricted standard as it is.
    d.create(&spec("sb-ok")).await.unwrap();
    d.start("sb-ok").await.expect("a non-root sandbox is admitted in a restricted namespace");
    // A root one is refused with the admission's own words, as the request's fault.
    d.create(&PlacementSpec { user: (0, 0), ..spec("sb-root") }).await.unwrap();
    match d.start("sb-root").await {
        Err(Error::Refused(m)) => {
            assert!(m.contains("violates PodSecurity \"restricted:latest\"") && m.contains("runAsUser=0"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!fake.names("pods").contains(&"podgate-sb-root".to_string()));
    assert!(!fake.names("secrets").contains(&"podgate-sb-root".to_string()), "a refused start leaves nothing");
}

#[tokio::test]
async fn exceeded_quota() {
    let (d, _fake) = driver(Behaviour { max_pods: Some(1), ..Default::default() }, 10).await;
    d.create(&spec("sb-1")).await.unwrap();
    d.start("sb-1").await.unwrap();
    d.create(&spec("sb-2")).await.unwrap();
    match d.start("sb-2").await {
        Err(Error::QuotaExhausted(m)) => assert!(m.contains("exceeded quota") && m.contains("limited: pods=1"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn insufficient_cpu_is_waited_out_with_progress() {
    let (d, fake) = driver(Behaviour { node_cpu_millis: Some(1000), ..Default::default() }, 30).await;
    let sized = |id: &str| PlacementSpec { cpu: Some(0.8), ..spec(id) };
    d.create(&sized("sb-a")).await.unwrap();
    d.start("sb-a").await.unwrap();
    d.create(&sized("sb-b")).await.unwrap();
    let d = std::sync::Arc::new(d);
    let starting = tokio::spawn({
        let d = d.clone();
        async move { d.start("sb-b").await }
    });
    // While no node fits, the wait is shown as progress; then an autoscaler adds room.
    let mut seen = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(p) = d.progress("sb-b") {
            seen = Some(p);
            break;
        }
    }
    let seen = seen.expect("progress while the pod is unschedulable");
    assert!(seen.contains("0/1 nodes are available: 1 Insufficient cpu"), "{seen}");
    assert!(!starting.is_finished(), "an unschedulable pod is waited for, not failed");
    fake.set_node_cpu(2000);
    starting.await.unwrap().expect("started once the node had room");
    assert_eq!(d.progress("sb-b"), None, "no progress once it runs");
}

#[tokio::test]
async fn insufficient_cpu_past_the_startup_timeout_says_so() {
    let (d, fake) = driver(Behaviour { node_cpu_millis: Some(500), ..Default::default() }, 2).await;
    d.create(&PlacementSpec { cpu: Some(0.8), ..spec("sb-big") }).await.unwrap();
    match d.start("sb-big").await {
        Err(Error::NotStarted(m)) => {
            assert!(m.contains("did not run within 2s") && m.contains("Insufficient cpu"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.names("pods").is_empty() && fake.names("secrets").is_empty());
}

#[tokio::test]
async fn pod_didnt_trigger_scale_up() {
    let b = Behaviour { node_cpu_millis: Some(500), autoscaler_gives_up: true, ..Default::default() };
    let (d, _fake) = driver(b, 60).await;
    d.create(&PlacementSpec { cpu: Some(0.8), ..spec("sb-never") }).await.unwrap();
    let started = Instant::now();
    match d.start("sb-never").await {
        Err(Error::NotStarted(m)) => assert!(m.contains("autoscaler will not add one"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15), "not the 60 s startup timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn pod_has_unbound_immediate_persistent_volume_claims() {
    // As on the real cluster: the provisioner binds the claim about 4 s after it is made.
    let b = Behaviour { claim_bind_delay: Some(Duration::from_secs(4)), ..Default::default() };
    let (d, _fake) = driver(b, 30).await;
    d.create(&PlacementSpec { workspace_volume: Some("podgate-vol-late".into()), ..spec("sb-late") }).await.unwrap();
    let d = std::sync::Arc::new(d);
    let started = Instant::now();
    let starting = tokio::spawn({
        let d = d.clone();
        async move { d.start("sb-late").await }
    });
    let mut seen = Vec::new();
    while !starting.is_finished() {
        if let Some(p) = d.progress("sb-late")
            && seen.last() != Some(&p)
        {
            seen.push(p);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    starting.await.unwrap().expect("started once the claim was bound");
    assert!(started.elapsed() >= Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(seen.iter().any(|p| p.contains("pod has unbound immediate PersistentVolumeClaims")), "{seen:?}");
}

#[tokio::test]
async fn the_workspace_owner_step_violates_pod_security_restricted() {
    podgate_kube::ensure_crypto_provider();
    let fake = Fake::default().behaving(Behaviour { restricted: true, ..Default::default() });
    let url = fake.serve().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let cfg = KubeConfig {
        namespace: "sandboxes".into(),
        instance: "i1".into(),
        workspace_owner_init: true,
        ..Default::default()
    };
    let d = KubeDriver::with_client(client, cfg).await.unwrap();
    d.create(&spec("sb-own")).await.unwrap();
    // The admin enabled a root init step where the namespace refuses root: the cluster says so.
    match d.start("sb-own").await {
        Err(Error::Refused(m)) => assert!(m.contains("container \"podgate-workspace\""), "{m}"),
        other => panic!("{other:?}"),
    }
}
