//! The sandbox pod's containers, exactly as the driver writes them (commands, user, capabilities,
//! no-new-privileges, read-only agent folder, the secret from the sandbox secret), run on the real
//! Docker engine standing in for the kubelet (`podgate_kube::fake::DockerKubelet`): the agent image's installer copies the agent as a
//! non-root user, and the agent serves on its TCP port as the sandbox user, with its secret
//! hidden from the sandbox's processes. What only a cluster does (scheduling, network policies,
//! the watch) is in `conformance.rs`, run against a real cluster.

use std::collections::BTreeMap;

use base64::Engine as _;
use podgate_kube::KubeConfig;
use podgate_kube::fake::{AgentImage, DockerKubelet};
use podgate_runtime::PlacementSpec;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.1 request to the agent; returns the status and body.
async fn http(addr: &str, method: &str, path: &str, secret: Option<&str>, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connecting to the agent");
    let auth = secret.map(|v| format!("x-podgate-agent-secret: {v}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: agent\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_pods_containers_run_the_agent_as_the_sandbox_user() {
    let pid = std::process::id();
    let tmp = tempfile::Builder::new().prefix("pgkd").tempdir_in("/tmp").unwrap();
    // The agent image: the static agent alone, as deploy/agent.Dockerfile makes it.
    let agent = AgentImage::import(&podgate_runtime::conformance::agent_bin()).expect("importing the agent image");
    let agent_image = agent.name.clone();

    let cfg = KubeConfig { instance: format!("kubetest{pid}"), agent_image: agent_image.clone(), ..Default::default() };
    let spec = PlacementSpec {
        sandbox_id: format!("sb-kubetest{pid}"),
        image: std::env::var("PODGATE_TEST_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into()),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        agent_secret: format!("secret-{pid}"),
        user: (1000, 1000),
        ..Default::default()
    };
    let pod = podgate_kube::objects::pod(&cfg, &spec).unwrap();
    let secret = podgate_kube::objects::secret(&cfg, &spec, &pod).unwrap();
    let secret_value =
        String::from_utf8(secret.data.unwrap()[podgate_kube::objects::KEY_AGENT_SECRET].0.clone()).unwrap();
    let root = tmp.path().join("kubelet");
    let kubelet = DockerKubelet::new(root.clone());
    let pod_name = pod.metadata.name.clone().unwrap();
    struct Remove<'a>(&'a DockerKubelet, String);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            self.0.remove(&self.1);
        }
    }
    let _remove = Remove(&kubelet, pod_name.clone());
    let ip = kubelet
        .run(&pod, &|name, key| {
            (name == pod_name && key == podgate_kube::objects::KEY_AGENT_SECRET).then(|| secret_value.clone())
        })
        .unwrap_or_else(|w| panic!("the pod did not start: {w:?}"));
    let installed = std::fs::metadata(root.join("pods").join(&pod_name).join("podgate-agent").join("podgate-agent"))
        .expect("the installer copied the agent");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&installed), 1000, "copied as the sandbox user");
    let addr = podgate_kube::status::agent_address(&ip);

    let mut health = (0, String::new());
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            health = http(&addr, "GET", "/v1/health", Some(&secret_value), "").await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health.0, 200, "{health:?}; logs: {}", kubelet.logs(&pod_name, 50, false));
    assert!(health.1.contains("protocol_version"));
    assert_eq!(http(&addr, "GET", "/v1/health", None, "").await.0, 401, "no secret, no entry");
    assert_eq!(http(&addr, "GET", "/v1/health", Some("wrong"), "").await.0, 401);

    let script = "id -u; echo ${GREETING}; env | grep -c PODGATE_AGENT_SECRET; \
                  cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo unreadable; \
                  touch /workspace/f && echo wrote; \
                  touch /.podgate/bin/x 2>/dev/null && echo agent-writable || echo agent-read-only";
    let body = serde_json::json!({"argv": ["sh", "-c", script]}).to_string();
    let (status, out) = http(&addr, "POST", "/v1/exec", Some(&secret_value), &body).await;
    assert_eq!(status, 200, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stdout = base64::engine::general_purpose::STANDARD.decode(v["stdout"].as_str().unwrap()).unwrap();
    let lines: Vec<String> = String::from_utf8(stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(lines, ["1000", "hello", "0", "unreadable", "wrote", "agent-read-only"], "{out}");

    let (status, ports) = http(&addr, "GET", "/v1/ports", Some(&secret_value), "").await;
    assert_eq!(status, 200);
    assert!(!ports.contains("49983"), "the agent's own port is not one of the sandbox's: {ports}");
}
