//! The driver's calls, watches and state handling against a fake API server (`fake_api`): the
//! conformance suite, hibernation, fail-fast reasons, timeouts, vanished pods and other
//! instances' objects. A unit test of the driver's logic; the same suite runs against a real
//! cluster in `conformance.rs`.

use podgate_kube::fake as fake_api;
use podgate_kube::{Access, KubeConfig, KubeDriver};
use podgate_runtime::{AgentEndpoint, Driver, Error, InstanceStatus, PlacementSpec};

async fn driver(instance: &str, startup_secs: u64) -> (KubeDriver, fake_api::Fake) {
    podgate_kube::ensure_crypto_provider();
    // As the namespaces deploy/ ships (and a real test namespace may be): Pod Security restricted.
    let fake = fake_api::Fake::default().behaving(fake_api::Behaviour { restricted: true, ..Default::default() });
    let url = fake.serve().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let cfg = KubeConfig {
        namespace: "sandboxes".into(),
        instance: instance.into(),
        access: Access::PodIp,
        startup_timeout: std::time::Duration::from_secs(startup_secs),
        ..Default::default()
    };
    (KubeDriver::with_client(client, cfg).await.expect("driver"), fake)
}

fn spec(id: &str, image: &str) -> PlacementSpec {
    PlacementSpec {
        sandbox_id: id.into(),
        image: image.into(),
        agent_secret: "fake-secret".into(),
        user: (1000, 1000),
        ..Default::default()
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let (d, fake) = driver("i1", 10).await;
    podgate_runtime::conformance::run(&d, "podgate/base:latest", "sb-fake").await;
    assert!(fake.names("pods").is_empty() && fake.names("secrets").is_empty(), "nothing left");
    assert!(fake.names("networkpolicies").is_empty());
}

#[tokio::test]
async fn create_writes_the_policy_and_secret_and_start_the_pod() {
    let (d, fake) = driver("i1", 10).await;
    d.create(&spec("sb-one", "podgate/base:latest")).await.unwrap();
    assert_eq!(fake.names("networkpolicies"), ["podgate-sb-one"]);
    assert_eq!(fake.names("secrets"), ["podgate-sb-one"]);
    assert!(fake.names("pods").is_empty(), "no pod before start");
    let e = d.start("sb-one").await.unwrap();
    assert!(matches!(&e, AgentEndpoint::Tcp(a) if a.starts_with("10.244.0.") && a.ends_with(":49983")), "{e:?}");
    assert_eq!(fake.names("pods"), ["podgate-sb-one"]);
    assert_eq!(d.logs("sb-one", 5).await.unwrap(), "2026-01-01T00:00:00.000000000Z podgate-agent: serving\n");
    d.delete("sb-one").await.unwrap();
    assert!(fake.names("pods").is_empty() && fake.names("secrets").is_empty());
}

#[tokio::test]
async fn image_errors_fail_fast_with_the_clusters_reason() {
    let (d, fake) = driver("i1", 60).await;
    d.create(&spec("sb-pull", "missing/app:1")).await.unwrap();
    let started = std::time::Instant::now();
    match d.start("sb-pull").await {
        Err(Error::ImageUnavailable { image, reason }) => {
            assert_eq!(image, "missing/app:1");
            assert!(reason.starts_with("ErrImagePull: pull access denied"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "not the 60 s startup timeout");
    assert!(d.inspect("sb-pull").await.unwrap().is_none(), "a failed start leaves nothing");
    assert!(fake.names("networkpolicies").is_empty());

    d.create(&spec("sb-inv", "invalid/x")).await.unwrap();
    assert!(matches!(d.start("sb-inv").await, Err(Error::InvalidSpec(m)) if m.contains("InvalidImageName")));
}

#[tokio::test]
async fn a_pod_that_never_runs_times_out_and_is_removed() {
    let (d, fake) = driver("i1", 1).await;
    d.create(&spec("sb-slow", "slow/app:1")).await.unwrap();
    match d.start("sb-slow").await {
        Err(Error::NotStarted(m)) => assert!(m.contains("did not run within"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.names("pods").is_empty() && fake.names("secrets").is_empty());
}

#[tokio::test]
async fn hibernation_keeps_the_claim_and_resume_moves_the_agent() {
    let (d, fake) = driver("i1", 10).await;
    let persisted =
        PlacementSpec { workspace_volume: Some("podgate-vol-w".into()), ..spec("sb-hib", "podgate/base:latest") };
    d.create(&persisted).await.unwrap();
    assert_eq!(fake.names("persistentvolumeclaims"), ["podgate-vol-w"]);
    let first = d.start("sb-hib").await.unwrap();
    d.pause("sb-hib").await.unwrap();
    assert!(fake.names("pods").is_empty(), "hibernation deletes the pod");
    assert_eq!(d.inspect("sb-hib").await.unwrap().unwrap().status, InstanceStatus::Paused);
    assert!(d.list().await.unwrap().iter().any(|i| i.sandbox_id == "sb-hib" && i.status == InstanceStatus::Paused));
    d.pause("sb-hib").await.expect("pausing twice is fine");
    let second = d.resume("sb-hib").await.unwrap().expect("a new endpoint");
    assert_ne!(first, second, "a new pod, a new IP");
    assert_eq!(d.inspect("sb-hib").await.unwrap().unwrap().status, InstanceStatus::Running);
    assert_eq!(d.resume("sb-hib").await.unwrap(), Some(second), "resuming a running sandbox changes nothing");
    d.delete("sb-hib").await.unwrap();
    assert_eq!(fake.names("persistentvolumeclaims"), ["podgate-vol-w"], "the claim outlives the sandbox");
    d.delete_volume("podgate-vol-w").await.unwrap();
    assert!(fake.names("persistentvolumeclaims").is_empty());
    d.delete_volume("podgate-vol-w").await.expect("deleting a missing claim is fine");

    d.create(&spec("sb-plain", "podgate/base:latest")).await.unwrap();
    d.start("sb-plain").await.unwrap();
    assert!(matches!(d.pause("sb-plain").await, Err(Error::Unsupported { .. })));
    assert_eq!(d.inspect("sb-plain").await.unwrap().unwrap().status, InstanceStatus::Running, "left running");
}

#[tokio::test]
async fn a_vanished_pod_is_an_exit_and_other_instances_are_left_alone() {
    let (d, fake) = driver("i1", 10).await;
    d.create(&spec("sb-gone", "podgate/base:latest")).await.unwrap();
    d.start("sb-gone").await.unwrap();
    // Someone (a node failure, an operator) removes the pod.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client(&fake).await, "sandboxes");
    pods.delete("podgate-sb-gone", &Default::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let i = d.inspect("sb-gone").await.unwrap().unwrap();
    assert!(matches!(i.status, InstanceStatus::Exited { ref reason } if reason.contains("gone")), "{i:?}");

    // Another server's driver on the same cluster sees none of it and removes nothing.
    let d2 = KubeDriver::with_client(client(&fake).await, cfg("i2")).await.unwrap();
    assert!(d2.list().await.unwrap().is_empty());
    d2.delete("sb-gone").await.unwrap();
    assert_eq!(fake.names("secrets"), ["podgate-sb-gone"]);
    assert!(d2.inspect("sb-gone").await.unwrap().is_none());
}

/// Another client of the same fake API server.
async fn client(fake: &fake_api::Fake) -> kube::Client {
    kube::Client::try_from(kube::Config::new(fake.serve().await.parse().unwrap())).unwrap()
}

fn cfg(instance: &str) -> KubeConfig {
    KubeConfig { namespace: "sandboxes".into(), instance: instance.into(), ..Default::default() }
}
