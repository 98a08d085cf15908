//! `scripts/build-images` builds the server and agent images from the checkout with no registry
//! (this machine reaches none, so a pull would fail the build): the agent image runs the static
//! agent as nobody, the server image runs the server as uid 10001 with its data dir and web UI.

use std::process::Command;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn images_build_without_a_registry() {
    let tag = format!("test-{}", std::process::id());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/build-images");
    let out = Command::new(script)
        .env("PODGATE_IMAGE_TAG", &tag)
        .env("PODGATE_SERVER_BIN", env!("CARGO_BIN_EXE_podgate"))
        .output()
        .expect("running scripts/build-images");
    assert!(out.status.success(), "build-images: {}", String::from_utf8_lossy(&out.stderr));
    let (server, agent) = (format!("podgate/server:{tag}"), format!("podgate/agent:{tag}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{server} {agent}"));

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(docker(&["run", "--rm", "--network", "none", &server, "--version"]), format!("podgate {version}"));
    assert!(docker(&["run", "--rm", "--network", "none", &agent]).starts_with(&format!("podgate-agent {version}")));
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Config.User}}", &server]), "10001:10001");
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Config.User}}", &agent]), "65534:65534");
    // The agent image holds the agent alone, where the Kubernetes init container runs it.
    assert_eq!(docker(&["image", "inspect", "-f", "{{json .Config.Entrypoint}}", &agent]), "[\"/podgate-agent\"]");
    let inside = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        &server,
        "-c",
        "id -u; stat -c '%u %a' /var/lib/podgate; test -f /usr/local/share/podgate/web/index.html && echo ui",
    ]);
    assert_eq!(inside, "10001\n10001 700\nui");
    docker(&["rmi", &server, &agent]);
}
