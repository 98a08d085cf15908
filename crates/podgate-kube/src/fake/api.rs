//! A fake Kubernetes API server for the driver's tests: pods, secrets, network policies,
//! claims and events in one namespace, with label and field selectors, lists, watches, merge
//! patches, and a fake kubelet that runs a pod shortly after it is created (or reports
//! `ErrImagePull` for images under `missing/` or named `no-such-image`, `InvalidImageName` for
//! `invalid/`, and never runs `slow/`) and removes a deleted pod after a grace period, and
//! `pods/portforward` to a pod's IP. With
//! [`Fake::with_docker`], pods really run: [`DockerKubelet`] starts them on the Docker engine.
//! It stands in for a cluster only in tests; the tests against a real cluster run when
//! `PODGATE_TEST_KUBECONFIG` names one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::kubelet::DockerKubelet;

#[derive(Default)]
pub(super) struct Store {
    rv: u64,
    /// (resource, name) → object.
    pub(super) objects: BTreeMap<(String, String), Value>,
    /// Every change: (resourceVersion, resource, event type, object).
    log: Vec<(u64, String, &'static str, Value)>,
    next_ip: u8,
    /// Events made so far (names and timestamps).
    pub(super) events: u64,
}

/// The fake API server's state; cloned into handlers.
#[derive(Clone, Default)]
pub struct Fake {
    pub(super) store: Arc<Mutex<Store>>,
    changed: Arc<tokio::sync::Notify>,
    pub(super) kubelet: Option<Arc<DockerKubelet>>,
    /// How the cluster behaves before pods run ([`super::Behaviour`]).
    pub(super) behaviour: Arc<Mutex<super::Behaviour>>,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "secrets" => "Secret",
        "networkpolicies" => "NetworkPolicy",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        _ => "Event",
    }
}

/// `a=b,c=d` selectors (equality only) against a map.
fn matches(selector: Option<&String>, get: impl Fn(&str) -> Option<String>) -> bool {
    selector.is_none_or(|s| {
        s.split(',').filter(|p| !p.is_empty()).all(|p| match p.split_once('=') {
            Some((k, v)) => get(k).as_deref() == Some(v),
            None => get(p).is_some(),
        })
    })
}

fn selected(obj: &Value, q: &BTreeMap<String, String>) -> bool {
    let labels = |k: &str| obj["metadata"]["labels"][k].as_str().map(String::from);
    let fields = |k: &str| match k {
        "metadata.name" => obj["metadata"]["name"].as_str().map(String::from),
        "involvedObject.name" => obj["involvedObject"]["name"].as_str().map(String::from),
        _ => None,
    };
    matches(q.get("labelSelector"), labels) && matches(q.get("fieldSelector"), fields)
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl Fake {
    /// A fake whose pods run on the Docker engine, their folders under `root`.
    pub fn with_docker(root: std::path::PathBuf) -> Fake {
        Fake { kubelet: Some(Arc::new(DockerKubelet::new(root))), ..Fake::default() }
    }

    /// Serves the fake on a loopback port; returns its URL.
    pub async fn serve(&self) -> String {
        let ns = "/api/v1/namespaces/{ns}/{resource}";
        let app = Router::new()
            .route(ns, get(list_or_watch).post(create))
            .route("/api/v1/namespaces/{ns}/{resource}/{name}", get(read).delete(remove).patch(patch))
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(logs))
            .route("/api/v1/namespaces/{ns}/pods/{name}/portforward", get(portforward))
            .route("/apis/networking.k8s.io/v1/namespaces/{ns}/{resource}", get(list_or_watch).post(create))
            .route(
                "/apis/networking.k8s.io/v1/namespaces/{ns}/{resource}/{name}",
                get(read).delete(remove).patch(patch),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// Stores a change and tells watchers.
    pub(super) fn put(&self, resource: &str, name: &str, mut obj: Option<Value>, event: &'static str) -> Option<Value> {
        let mut s = self.store.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let key = (resource.to_string(), name.to_string());
        let stored = match obj.as_mut() {
            Some(o) => {
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                s.objects.insert(key, o.clone());
                o.clone()
            }
            None => {
                let mut old = s.objects.remove(&key)?;
                old["metadata"]["resourceVersion"] = json!(rv.to_string());
                old
            }
        };
        s.log.push((rv, resource.to_string(), event, stored.clone()));
        drop(s);
        self.changed.notify_waiters();
        Some(stored)
    }

    /// A key of a stored secret.
    fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(self.get("secrets", name)?).ok()?;
        String::from_utf8(secret.data?.get(key)?.0.clone()).ok()
    }

    pub(super) fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.store.lock().unwrap().objects.get(&(resource.to_string(), name.to_string())).cloned()
    }

    /// A stored object, as the API would return it.
    pub fn object(&self, resource: &str, name: &str) -> Option<Value> {
        self.get(resource, name)
    }

    /// Names of the stored objects of a resource.
    pub fn names(&self, resource: &str) -> Vec<String> {
        self.store.lock().unwrap().objects.keys().filter(|(r, _)| r == resource).map(|(_, n)| n.clone()).collect()
    }

    /// The fake kubelet: runs (or fails) a new pod after a moment.
    pub(super) fn kubelet_start(&self, name: String) {
        let fake = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let Some(mut pod) = fake.get("pods", &name) else { return };
            if pod["metadata"]["deletionTimestamp"].is_string() {
                return;
            }
            if let Some(kubelet) = fake.kubelet.clone() {
                let (f, typed) = (fake.clone(), serde_json::from_value::<Pod>(pod.clone()));
                let Ok(typed) = typed else { return };
                let run = tokio::task::spawn_blocking(move || {
                    kubelet.run(&typed, &|secret, key| f.secret_value(secret, key))
                });
                let image = pod["spec"]["containers"][0]["image"].clone();
                pod["status"] = match run.await {
                    Ok(Ok(ip)) => json!({"phase": "Running", "podIP": ip, "containerStatuses": [
                        {"name": "sandbox", "image": image, "ready": true, "restartCount": 0, "imageID": "",
                         "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
                    Ok(Err(w)) => json!({"phase": "Pending", "containerStatuses": [
                        {"name": "sandbox", "image": image, "ready": false, "restartCount": 0, "imageID": "",
                         "state": {"waiting": {"reason": w.reason, "message": w.message}}}]}),
                    Err(e) => json!({"phase": "Failed", "message": e.to_string()}),
                };
                // Deleted meanwhile: the container goes too.
                if fake.get("pods", &name).is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string()) {
                    fake.kubelet.as_ref().unwrap().remove(&name);
                    return;
                }
                let running = pod["status"]["phase"] == json!("Running");
                fake.put("pods", &name, Some(pod), "MODIFIED");
                if running {
                    fake.watch_container(name);
                }
                return;
            }
            let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string();
            if image.starts_with("slow/") {
                return;
            }
            let main = if image.starts_with("missing/") || image.contains("no-such-image") {
                json!({"name": "sandbox", "image": image, "ready": false, "restartCount": 0, "imageID": "",
                    "state": {"waiting": {"reason": "ErrImagePull",
                        "message": format!("pull access denied for {image}")}}})
            } else if image.starts_with("invalid/") {
                json!({"name": "sandbox", "image": image, "ready": false, "restartCount": 0, "imageID": "",
                    "state": {"waiting": {"reason": "InvalidImageName", "message": "bad reference"}}})
            } else {
                json!({"name": "sandbox", "image": image, "ready": true, "restartCount": 0, "imageID": "",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
            };
            let running = main["state"]["running"].is_object();
            let ip = {
                let mut s = fake.store.lock().unwrap();
                s.next_ip += 1;
                format!("10.244.0.{}", s.next_ip)
            };
            pod["status"] = json!({
                "phase": if running { "Running" } else { "Pending" },
                "podIP": ip,
                "initContainerStatuses": [{"name": "podgate-agent", "image": "agent", "ready": false,
                    "restartCount": 0, "imageID": "",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [main],
            });
            fake.put("pods", &name, Some(pod), "MODIFIED");
        });
    }
}

impl Fake {
    /// Reports the sandbox container's end as a kubelet does (phase Failed, the container
    /// terminated with its exit code and, as `FallbackToLogsOnError`, its last output).
    fn watch_container(&self, name: String) {
        let fake = self.clone();
        tokio::spawn(async move {
            let Some(kubelet) = fake.kubelet.clone() else { return };
            let n = name.clone();
            let Ok(Some((code, output))) = tokio::task::spawn_blocking(move || kubelet.wait(&n)).await else { return };
            let Some(mut pod) = fake.get("pods", &name) else { return };
            if pod["metadata"]["deletionTimestamp"].is_string() {
                return;
            }
            let image = pod["spec"]["containers"][0]["image"].clone();
            let reason = if code == 0 { "Completed" } else { "Error" };
            pod["status"] = json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [
                {"name": "sandbox", "image": image, "ready": false, "restartCount": 0, "imageID": "",
                 "state": {"terminated": {"exitCode": code, "reason": reason, "message": output}}}]});
            fake.put("pods", &name, Some(pod), "MODIFIED");
        });
    }
}

fn list_body(resource: &str, items: Vec<Value>, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{}List", kind_of(resource)),
        "metadata": {"resourceVersion": rv.to_string()}, "items": items})
}

async fn list_or_watch(
    State(fake): State<Fake>,
    Path((_ns, resource)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if q.get("watch").map(String::as_str) != Some("true") {
        let s = fake.store.lock().unwrap();
        let items: Vec<Value> =
            s.objects.iter().filter(|((r, _), o)| *r == resource && selected(o, &q)).map(|(_, o)| o.clone()).collect();
        return axum::Json(list_body(&resource, items, s.rv)).into_response();
    }
    let from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let stream = futures_util::stream::unfold((fake, from), move |(fake, mut seen)| {
        let (resource, q) = (resource.clone(), q.clone());
        async move {
            loop {
                let changed = fake.changed.clone();
                let notified = changed.notified();
                let next = {
                    let s = fake.store.lock().unwrap();
                    s.log.iter().find(|(rv, r, _, o)| *rv > seen && *r == resource && selected(o, &q)).cloned().or_else(
                        || {
                            // Nothing for this watch: skip ahead.
                            seen = seen.max(s.rv);
                            None
                        },
                    )
                };
                if let Some((rv, _, event, obj)) = next {
                    seen = rv;
                    let line = format!("{}\n", json!({"type": event, "object": obj}));
                    return Some((Ok::<_, std::convert::Infallible>(line), (fake, seen)));
                }
                notified.await;
            }
        }
    });
    Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap()
}

async fn create(
    State(fake): State<Fake>,
    Path((ns, resource)): Path<(String, String)>,
    axum::Json(mut obj): axum::Json<Value>,
) -> Response {
    let Some(name) = obj["metadata"]["name"].as_str().map(String::from) else {
        return status(422, "Invalid", "metadata.name is required");
    };
    if fake.get(&resource, &name).is_some() {
        return status(409, "AlreadyExists", &format!("{resource} \"{name}\" already exists"));
    }
    obj["metadata"]["namespace"] = json!(ns);
    obj["metadata"]["uid"] = json!(format!("uid-{name}-{}", fake.store.lock().unwrap().rv));
    if resource == "pods" {
        if let Some((code, message)) = fake.admit(&obj, &name) {
            return status(code, "Forbidden", &message);
        }
        obj["status"] = json!({"phase": "Pending"});
    }
    if resource == "persistentvolumeclaims" {
        obj["status"] = json!({"phase": if fake.bind_later(&name) { "Pending" } else { "Bound" }});
    }
    let stored = fake.put(&resource, &name, Some(obj), "ADDED").unwrap();
    if resource == "pods" {
        fake.schedule(name);
    }
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

async fn read(State(fake): State<Fake>, Path((_ns, resource, name)): Path<(String, String, String)>) -> Response {
    match fake.get(&resource, &name) {
        Some(o) => axum::Json(o).into_response(),
        None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
    }
}

async fn remove(State(fake): State<Fake>, Path((_ns, resource, name)): Path<(String, String, String)>) -> Response {
    let Some(mut obj) = fake.get(&resource, &name) else {
        return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    };
    if resource != "pods" {
        if let (Some(k), "persistentvolumeclaims") = (&fake.kubelet, resource.as_str()) {
            k.remove_claim(&name);
        }
        // Another delete may have got there first.
        return match fake.put(&resource, &name, None, "DELETED") {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        };
    }
    // A pod terminates for a moment first, like a kubelet's grace period.
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let stored = fake.put("pods", &name, Some(obj), "MODIFIED").unwrap();
    let f = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        if let Some(k) = f.kubelet.clone() {
            let n = name.clone();
            let _ = tokio::task::spawn_blocking(move || k.remove(&n)).await;
        }
        f.put("pods", &name, None, "DELETED");
        // Its CPU is free again.
        f.reschedule();
    });
    axum::Json(stored).into_response()
}

async fn patch(
    State(fake): State<Fake>,
    Path((_ns, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let merge_patch = headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/merge-patch+json");
    if !merge_patch {
        return status(415, "UnsupportedMediaType", "only merge patches");
    }
    let Some(mut obj) = fake.get(&resource, &name) else {
        return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    };
    let Ok(p) = serde_json::from_str::<Value>(&body) else { return status(400, "BadRequest", "bad patch") };
    merge(&mut obj, &p);
    axum::Json(fake.put(&resource, &name, Some(obj), "MODIFIED").unwrap()).into_response()
}

async fn logs(
    State(fake): State<Fake>,
    Path((_ns, name)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if fake.get("pods", &name).is_none() {
        return status(404, "NotFound", "pod not found");
    }
    match fake.kubelet.clone() {
        Some(k) => {
            let tail = q.get("tailLines").and_then(|t| t.parse().ok()).unwrap_or(100);
            let stamped = q.get("timestamps").is_some_and(|t| t == "true");
            tokio::task::spawn_blocking(move || k.logs(&name, tail, stamped)).await.unwrap_or_default().into_response()
        }
        None if q.get("timestamps").is_some_and(|t| t == "true") => {
            "2026-01-01T00:00:00.000000000Z podgate-agent: serving\n".into_response()
        }
        None => "podgate-agent: serving\n".into_response(),
    }
}

/// `pods/portforward` over a WebSocket (`v4.channel.k8s.io`): channel 0 carries the bytes of the
/// first port, channel 1 its errors; each starts with the port number (little endian). The
/// bytes go to the pod's IP, as a kubelet's port-forward reaches the pod.
async fn portforward(
    State(fake): State<Fake>,
    Path((_ns, name)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let Some(port) = q.get("ports").and_then(|p| p.parse::<u16>().ok()) else {
        return status(400, "BadRequest", "one port is required");
    };
    let Some(ip) = fake.get("pods", &name).and_then(|p| p["status"]["podIP"].as_str().map(String::from)) else {
        return status(404, "NotFound", "the pod has no IP");
    };
    let Ok(tcp) = tokio::net::TcpStream::connect((ip.as_str(), port)).await else {
        return status(500, "InternalError", "cannot reach the pod's port");
    };
    ws.protocols(["v4.channel.k8s.io"]).on_upgrade(move |socket| async move {
        let (mut tx, mut rx) = socket.split();
        let (mut from_pod, mut to_pod) = tcp.into_split();
        let le = port.to_le_bytes();
        for ch in [0u8, 1] {
            if tx.send(Message::Binary(vec![ch, le[0], le[1]].into())).await.is_err() {
                return;
            }
        }
        let up = async move {
            while let Some(Ok(msg)) = rx.next().await {
                match msg {
                    Message::Binary(b) if b.len() > 1 && b[0] == 0 => {
                        let written = to_pod.write_all(&b[1..]).await;
                        if written.is_err() {
                            break;
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_pod.shutdown().await;
        };
        let down = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from_pod.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut frame = Vec::with_capacity(n + 1);
                        frame.push(0);
                        frame.extend_from_slice(&buf[..n]);
                        if tx.send(Message::Binary(frame.into())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Message::Close(None)).await;
        };
        tokio::join!(up, down);
    })
}
