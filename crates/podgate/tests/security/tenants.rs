//! Tenant against tenant: another user's snapshot by image id (finding 1), templates' values and
//! their env (finding 20).

use crate::common::{Server, docker};
use crate::{busybox, sh, user};
use podgate_types::api::{CreateSandboxRequest, TemplateRequest};

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_by_image_id() {
    let srv = Server::start();
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let sb = alice.create(&busybox("secret")).await.unwrap();
    assert_eq!(sh(&alice, &sb.id, "echo alice-private > /workspace/key").await.0, 0);
    let snap = alice.snapshot(&sb.id, Some("mine")).await.unwrap();
    let full = docker(&["image", "inspect", "-f", "{{.Id}}", &format!("podgate-snapshot:{}", snap.id)]);
    let full = full.trim().to_string();
    let hex = full.strip_prefix("sha256:").expect("an image id").to_string();
    assert_eq!(hex.len(), 64, "{full}");
    // Every way the engine would resolve to that image: the id, bare hex, 12 characters, short
    // prefixes, and the id in a digest or tag position.
    let attempts = [
        full.clone(),
        hex.clone(),
        hex[..12].to_string(),
        hex[..4].to_string(),
        hex[..2].to_string(),
        format!("{}:latest", &hex[..12]),
    ];
    for image in &attempts {
        let req = CreateSandboxRequest { image: Some(image.clone()), ..Default::default() };
        let r = bob.create(&req).await;
        let status = r.as_ref().err().and_then(|e| e.status());
        assert!(
            matches!(status, Some(400..=499)),
            "bob's create from {image:?} must be refused with a 4xx, got {:?}",
            r.map(|s| s.id)
        );
    }
    assert!(bob.list().await.unwrap().is_empty(), "no sandbox of bob's exists");
    // The owner still uses it, by name.
    let req = CreateSandboxRequest { snapshot: Some("mine".into()), ..Default::default() };
    let again = alice.create(&req).await.unwrap();
    assert_eq!(sh(&alice, &again.id, "cat /workspace/key").await, (0, "alice-private\n".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_are_checked_and_private() {
    let srv = Server::start();
    let admin = srv.client();
    let bob = user(&srv, "bob").await;
    let bad = |request: CreateSandboxRequest| TemplateRequest { request, pool_size: 0, scheduling: None };
    for (what, req) in [
        ("ttl 0", CreateSandboxRequest { ttl_seconds: Some(0), ..Default::default() }),
        ("ttl over the maximum", CreateSandboxRequest { ttl_seconds: Some(u64::MAX / 2), ..Default::default() }),
        ("idle over the maximum", CreateSandboxRequest { idle_timeout_seconds: Some(u64::MAX), ..Default::default() }),
        (
            "memory 2^63",
            CreateSandboxRequest { memory: Some(podgate_types::MemorySize(1 << 63)), ..Default::default() },
        ),
        ("cpu -1", CreateSandboxRequest { cpu: Some(-1.0), ..Default::default() }),
        (
            "an image by id",
            CreateSandboxRequest { image: Some(format!("sha256:{}", "a".repeat(64))), ..Default::default() },
        ),
    ] {
        let r = admin.put_template(&format!("t{}", what.len()), &bad(req)).await;
        assert_eq!(r.as_ref().err().and_then(|e| e.status()), Some(422), "{what}: {:?}", r.map(|t| t.name));
    }
    let secret = CreateSandboxRequest {
        image: Some(crate::BUSYBOX.into()),
        env: [("API_KEY".to_string(), "s3cr3t".to_string())].into(),
        ..Default::default()
    };
    admin.put_template("withkey", &bad(secret)).await.unwrap();
    let seen = bob.list_templates().await.unwrap();
    let t = seen.iter().find(|t| t.name == "withkey").expect("bob lists the template");
    assert!(t.request.env.contains_key("API_KEY"), "the name is shown");
    assert_ne!(t.request.env["API_KEY"], "s3cr3t", "the value is not");
    let theirs = admin.list_templates().await.unwrap();
    assert_eq!(theirs.iter().find(|t| t.name == "withkey").unwrap().request.env["API_KEY"], "s3cr3t");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_does_not_reveal_other_sandboxes() {
    let srv = Server::start();
    let alice = user(&srv, "alice").await;
    let mallory = user(&srv, "mallory").await;
    let hers = alice.create(&busybox("hers")).await.unwrap();
    let mine = mallory.create(&busybox("probe")).await.unwrap();
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &crate::common::container(&hers.id),
    ]);
    let ip = ip.trim();
    assert!(!ip.is_empty(), "alice's sandbox has an address");
    // The engine's DNS answers a reverse lookup of her address, and a lookup of the name the
    // sandbox id would give: neither may carry her sandbox's id.
    let (_, reverse) = sh(&mallory, &mine.id, &format!("nslookup {ip} 2>&1")).await;
    assert!(!reverse.contains(&hers.id), "{reverse}");
    let (_, forward) = sh(&mallory, &mine.id, &format!("nslookup podgate-{} 2>&1", hers.id)).await;
    assert!(!forward.contains(ip), "{forward}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_fork_leaves_no_snapshot() {
    let srv = Server::start();
    let alice = user(&srv, "alice").await;
    let id = alice.me().await.unwrap().id;
    let one = podgate_types::users::QuotaOverrides { sandboxes: Some(1), ..Default::default() };
    srv.client().set_quota(&id, &one).await.unwrap();
    let sb = alice.create(&busybox("only")).await.unwrap();
    let r = alice.fork(&sb.id, Some("second")).await;
    assert_eq!(r.as_ref().err().and_then(|e| e.status()), Some(403), "{:?}", r.map(|s| s.id));
    assert!(alice.list_snapshots().await.unwrap().is_empty(), "the fork's snapshot stayed");
    let label = format!("label=io.podgate.instance={}", srv.instance);
    assert!(docker(&["images", "-q", "--filter", &label, "podgate-snapshot"]).trim().is_empty());
}
