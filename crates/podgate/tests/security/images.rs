//! Images as an attacker's tool: an imported image's HEALTHCHECK, USER and ONBUILD (finding 2),
//! image names that make the engine connect anywhere (finding 5), and what engine errors tell
//! (finding 22).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Server, docker};
use crate::{sh, user};
use podgate_types::api::CreateSandboxRequest;

/// Builds `tag` from a Dockerfile on the engine (its FROM image is local) and saves it to `out`.
fn build_and_save(tag: &str, dockerfile: &str, out: &std::path::Path) {
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "docker build: {}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("docker").args(["save", "-o"]).arg(out).arg(tag).output().unwrap();
    assert!(o.status.success(), "docker save: {}", String::from_utf8_lossy(&o.stderr));
    docker(&["rmi", "-f", tag]);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_config_is_neutralised() {
    let srv = Server::start();
    let mallory = user(&srv, "mallory").await;
    let dir = tempfile::tempdir().unwrap();
    // A health check that would run as root every second, and a USER that would start the
    // agent as nobody.
    let archive = dir.path().join("hc.tar");
    build_and_save(
        "podgate-sec/healthcheck:test",
        &format!(
            "FROM {}\nHEALTHCHECK --interval=1s --timeout=1s CMD [\"/bin/sh\", \"-c\", \"id -u > /tmp/hc-ran\"]\n",
            crate::BUSYBOX
        ),
        &archive,
    );
    mallory.import_snapshot("hc", &archive, None).await.unwrap();
    let req = CreateSandboxRequest { snapshot: Some("hc".into()), name: Some("hc".into()), ..Default::default() };
    let sb = mallory.create(&req).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, out) = sh(&mallory, &sb.id, "cat /tmp/hc-ran").await;
    assert_ne!(code, 0, "the image's health check ran (as uid {})", out.trim());
    let health = docker(&["inspect", "-f", "{{json .Config.Healthcheck.Test}}", &crate::common::container(&sb.id)]);
    assert_eq!(health.trim(), "[\"NONE\"]");

    // An image's USER does not decide who the agent starts as: the sandbox runs as the
    // server's sandbox user.
    let archive = dir.path().join("user.tar");
    build_and_save("podgate-sec/user:test", &format!("FROM {}\nUSER 65534\n", crate::BUSYBOX), &archive);
    mallory.import_snapshot("nobody", &archive, None).await.unwrap();
    let req = CreateSandboxRequest { snapshot: Some("nobody".into()), ..Default::default() };
    let sb = mallory.create(&req).await.unwrap();
    assert_eq!(sh(&mallory, &sb.id, "id -u").await, (0, "1000\n".into()));

    // ONBUILD triggers would run in an admin's template build FROM this image: refused.
    let archive = dir.path().join("onbuild.tar");
    build_and_save(
        "podgate-sec/onbuild:test",
        &format!("FROM {}\nONBUILD RUN touch /pwned\n", crate::BUSYBOX),
        &archive,
    );
    let r = mallory.import_snapshot("ob", &archive, None).await;
    let e = r.as_ref().err().map(|e| (e.status(), e.to_string()));
    assert!(matches!(&e, Some((Some(422), m)) if m.contains("ONBUILD")), "{e:?}");
    assert!(mallory.list_snapshots().await.unwrap().iter().all(|s| s.name != "ob"));
}

#[tokio::test(flavor = "multi_thread")]
async fn registries_are_allowlisted() {
    // A service on the host's loopback that counts who connects.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let srv = Server::start();
    let mallory = user(&srv, "mallory").await;
    for image in [
        format!("127.0.0.1:{port}/x:1"),
        format!("localhost:{port}/x"),
        format!("[::1]:{port}/x"),
        "169.254.169.254/latest:meta".to_string(),
        "internal.example:80/app".to_string(),
    ] {
        let r = mallory.create(&CreateSandboxRequest { image: Some(image.clone()), ..Default::default() }).await;
        let e = r.as_ref().err().map(|e| (e.status(), e.to_string()));
        assert!(matches!(&e, Some((Some(403 | 422), _))), "{image}: {e:?}");
    }
    assert!(listener.accept().is_err(), "the engine connected to the host's loopback");

    // A docker.io name that is not here: the pull fails, and the answer names no host address
    // (the engine's messages carry its resolver's, e.g. "lookup … on 10.0.2.3:53").
    let r = mallory
        .create(&CreateSandboxRequest { image: Some("podgate-sec/absent:1".into()), ..Default::default() })
        .await;
    let msg = r.map(|s| s.id).expect_err("no such image").to_string();
    let leaked = msg.split(|c: char| c.is_whitespace() || c == '"').any(|w| {
        let w = w.trim_end_matches([':', '.', ',']);
        let host = w.rsplit_once(':').map_or(w, |(h, _)| h);
        host.parse::<std::net::IpAddr>().is_ok() || w.parse::<std::net::SocketAddr>().is_ok()
    });
    assert!(!leaked, "an address in {msg:?}");
    assert!(!msg.contains("/var/lib/"), "a host path in {msg:?}");

    // An admin who allows the registry lets names from it through to the engine.
    let srv = Server::start_with(crate::common::Opts {
        extra: vec!["--image-registries".into(), format!("docker.io,127.0.0.1:{port}")],
        ..Default::default()
    });
    let admin = srv.client();
    let req = CreateSandboxRequest { image: Some(format!("127.0.0.1:{port}/x:1")), ..Default::default() };
    let r = admin.create(&req);
    let accepted = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if listener.accept().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let (r, accepted) = tokio::join!(r, accepted);
    assert!(r.is_err(), "no registry really serves there");
    assert!(accepted.unwrap(), "an allowed registry is contacted");
}
