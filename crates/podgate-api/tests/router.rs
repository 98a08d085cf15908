//! The HTTP API in process: the real router, core and store (SQLite) over a fake driver and a fake
//! agent, called without a socket. These check what the API itself decides (status codes, error
//! bodies, ownership, what reaches the agent and what is audited); the end-to-end suite checks the
//! same paths with the real engine and agent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use podgate_core::{Auth, CoreConfig, Metrics, Role, Sandboxes, Terminals};
use podgate_runtime::fake::FakeDriver;
use podgate_store::Store;
use podgate_types::agent::{AgentHealth, SECRET_HEADER, paths};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// One request the fake agent saw: method, path and query, whether it carried a secret, body.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: String,
    secret: bool,
    body: Vec<u8>,
}

/// Serves the agent's health and answers every other request with 200 `{"ok":true}`, keeping
/// what it was sent.
async fn fake_agent(socket: &std::path::Path) -> Arc<Mutex<Vec<Seen>>> {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new()
        .route(
            paths::HEALTH,
            axum::routing::get(|| async {
                axum::Json(AgentHealth {
                    protocol_version: podgate_types::AGENT_PROTOCOL_VERSION,
                    agent_version: "test".into(),
                    pid: 1,
                })
            }),
        )
        .fallback(move |req: Request<Body>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                log.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    secret: parts.headers.contains_key(SECRET_HEADER),
                    body,
                });
                axum::Json(json!({"ok": true}))
            }
        });
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    seen
}

struct Api {
    app: Router,
    admin: String,
    alice: String,
    bob: String,
    agent: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = fake_agent(&socket).await;
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let auth = Auth::new(store.clone());
    let (_, admin) = auth.create_user("root", Role::Admin, "t").await.unwrap();
    let (_, alice) = auth.create_user("alice", Role::User, "t").await.unwrap();
    let (_, bob) = auth.create_user("bob", Role::User, "t").await.unwrap();
    let driver = Arc::new(FakeDriver::new(socket));
    let sandboxes = Sandboxes::new(store.clone(), driver, CoreConfig::default(), Metrics::default());
    let tokens = podgate_core::sessions::SessionTokens::load(store).await.unwrap();
    let terminals = Terminals::new(sandboxes.clone(), tokens);
    let app = podgate_api::router(podgate_api::AppState {
        sandboxes,
        terminals,
        auth,
        metrics: Metrics::default(),
        allowed_origins: Vec::new(),
        web_dir: None,
        trusted_proxies: Vec::new(),
    });
    Api { app, admin, alice, bob, agent, _dir: dir }
}

impl Api {
    /// Sends one request (a JSON body, or raw bytes) and returns the status and the body as JSON
    /// (`Value::Null` when it is not JSON).
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, token, body, "application/json").await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let mut req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// The error code of an API error body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_with_an_error_body() {
    let api = api().await;
    let (status, body) = api.call(Method::GET, "/v1/sandboxes", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated", "{body}");
    let (status, body) = api.call(Method::GET, "/v1/sandboxes", Some("pg_not-a-token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Health needs no token; the admin pages refuse a user.
    assert_eq!(api.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    let (status, body) = api.call(Method::GET, "/v1/audit", Some(&api.alice), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(api.call(Method::GET, "/v1/audit", Some(&api.admin), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_a_4xx_that_says_why() {
    let api = api().await;
    let alice = Some(api.alice.as_str());
    let (status, body) =
        api.raw(Method::POST, "/v1/sandboxes", alice, Some(b"{not json".to_vec()), "application/json").await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let (status, body) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"ttl_seconds": "soon"}))).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"name": "Not A Name!"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("name"), "{body}");
    let (status, body) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"memroy": "1g"}))).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("memroy"), "an unknown field is named: {body}");
    let (status, body) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"memory": "100t"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("memory"), "{body}");
    let (status, _) = api.call(Method::GET, "/v1/no-such-route", alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(api.call(Method::GET, "/v1/sandboxes", alice, None).await.1["sandboxes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_sandbox_is_its_owners_alone_and_another_users_answers_like_a_missing_one() {
    let api = api().await;
    let (alice, bob) = (Some(api.alice.as_str()), Some(api.bob.as_str()));
    let (status, sb) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"name": "dev"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{sb}");
    let id = sb["id"].as_str().unwrap().to_string();
    assert_eq!(sb["state"], "running", "{sb}");
    assert_eq!(api.call(Method::GET, "/v1/sandboxes/dev", alice, None).await.1["id"], id.as_str());

    let missing = api.call(Method::GET, "/v1/sandboxes/sb-neverexisted", bob, None).await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    for (method, path) in [
        (Method::GET, format!("/v1/sandboxes/{id}")),
        (Method::DELETE, format!("/v1/sandboxes/{id}")),
        (Method::GET, format!("/v1/sandboxes/{id}/files?path=/etc/hostname")),
        (Method::PUT, format!("/v1/sandboxes/{id}/files?path=/workspace/x")),
        (Method::POST, format!("/v1/sandboxes/{id}/pause")),
        (Method::GET, format!("/v1/sandboxes/{id}/events")),
    ] {
        let (status, body) = api.call(method.clone(), &path, bob, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        let said = body["error"]["message"].as_str().unwrap().replace(&id, "X");
        assert_eq!(said, missing.1["error"]["message"].as_str().unwrap().replace("sb-neverexisted", "X"), "{path}");
    }
    assert!(
        api.agent.lock().unwrap().iter().all(|s| s.uri.starts_with(paths::HEALTH)),
        "nothing of bob's reached the agent"
    );
    assert!(api.call(Method::GET, "/v1/sandboxes", bob, None).await.1["sandboxes"].as_array().unwrap().is_empty());
    // Bob may use the name too: names are per owner.
    assert_eq!(api.call(Method::POST, "/v1/sandboxes", bob, Some(json!({"name": "dev"}))).await.0, StatusCode::CREATED);
    let (status, body) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({"name": "dev"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The admin sees both, and deletes alice's.
    let all = api.call(Method::GET, "/v1/sandboxes", Some(&api.admin), None).await.1;
    assert_eq!(all["sandboxes"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(
        api.call(Method::DELETE, &format!("/v1/sandboxes/{id}"), Some(&api.admin), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.call(Method::GET, &format!("/v1/sandboxes/{id}"), alice, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_file_write_reaches_the_agent_once_with_its_secret_and_is_audited() {
    let api = api().await;
    let alice = Some(api.alice.as_str());
    let (_, sb) = api.call(Method::POST, "/v1/sandboxes", alice, Some(json!({}))).await;
    let id = sb["id"].as_str().unwrap().to_string();
    let path = format!("/v1/sandboxes/{id}/files?path=%2Fworkspace%2Fnotes.txt");
    let (status, body) = api.raw(Method::PUT, &path, alice, Some(b"hello".to_vec()), "application/octet-stream").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": true}), "the agent's answer comes back as it is");

    let writes: Vec<Seen> = api.agent.lock().unwrap().iter().filter(|s| s.method == Method::PUT).cloned().collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].uri, format!("{}?path=%2Fworkspace%2Fnotes.txt", paths::FILES));
    assert!(writes[0].secret, "the server authenticates to the agent");
    assert_eq!(writes[0].body, b"hello");

    // A read is not audited; the write is, with the path decoded and the agent's status.
    let (status, _) = api.call(Method::GET, &format!("/v1/sandboxes/{id}/files?path=/etc/hostname"), alice, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, events) = api.call(Method::GET, &format!("/v1/sandboxes/{id}/events"), alice, None).await;
    let events = events["events"].as_array().unwrap();
    let writes: Vec<&Value> = events.iter().filter(|e| e["action"] == "file.write").collect();
    assert_eq!(writes.len(), 1, "{events:?}");
    assert_eq!(writes[0]["result"], "ok");
    assert_eq!(writes[0]["detail"], "PUT /v1/files path=/workspace/notes.txt");
    assert!(events.iter().all(|e| e["action"] != "file.read"), "{events:?}");
}
