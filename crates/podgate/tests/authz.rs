//! The authorization matrix: every authenticated route tried as the owner, another user, an
//! admin, anonymously, and with a revoked and an expired token. Another user's sandbox answers
//! exactly like a sandbox that does not exist; admin routes are 403 for users; everything is 401
//! without valid credentials; the owner and admins get through.

mod common;

use std::time::Duration;

use common::Server;
use podgate_client::Client;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::process::ProcessSpec;
use podgate_types::terminal::OpenTerminalRequest;
use podgate_types::users::{CreateTokenRequest, CreateUserRequest};
use reqwest::Method;
use serde_json::json;

const BUSYBOX: &str = "podgate/busybox:test";

/// One request: method, path (`{sb}`, `{tid}`, `{pid}`, `{user}` filled in) and JSON body.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<serde_json::Value>,
}

fn route(method: Method, path: &'static str, body: Option<serde_json::Value>) -> Route {
    Route { method, path, body }
}

/// Routes on one sandbox, in an order where the destructive ones come last.
fn sandbox_routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/v1/sandboxes/{sb}", None),
        route(M::POST, "/v1/sandboxes/{sb}/exec", Some(json!({"argv": ["true"]}))),
        route(M::GET, "/v1/sandboxes/{sb}/events", None),
        route(M::GET, "/v1/sandboxes/{sb}/logs", None),
        route(M::GET, "/v1/sandboxes/{sb}/terminals", None),
        route(M::POST, "/v1/sandboxes/{sb}/terminals", Some(json!({}))),
        route(M::POST, "/v1/sandboxes/{sb}/terminals/{tid}/share", None),
        route(M::GET, "/v1/sandboxes/{sb}/recordings", None),
        route(M::GET, "/v1/sandboxes/{sb}/recordings/{tid}", None),
        route(M::GET, "/v1/sandboxes/{sb}/files?path=/etc/hostname", None),
        route(M::PUT, "/v1/sandboxes/{sb}/files?path=/tmp/authz.txt", None),
        route(M::GET, "/v1/sandboxes/{sb}/files/tar?path=/tmp", None),
        route(M::PUT, "/v1/sandboxes/{sb}/files/tar?path=/tmp/authz-tar", None),
        route(M::GET, "/v1/sandboxes/{sb}/files/stat?path=/tmp", None),
        route(M::GET, "/v1/sandboxes/{sb}/files/list?path=/tmp", None),
        route(M::POST, "/v1/sandboxes/{sb}/files/mkdir", Some(json!({"path": "/tmp/authz-dir"}))),
        route(
            M::POST,
            "/v1/sandboxes/{sb}/files/move",
            Some(json!({"from": "/tmp/authz.txt", "to": "/tmp/authz.moved"})),
        ),
        route(M::DELETE, "/v1/sandboxes/{sb}/files?path=/tmp/authz.moved", None),
        route(M::GET, "/v1/sandboxes/{sb}/files/watch?path=/tmp", None),
        route(M::GET, "/v1/sandboxes/{sb}/ports", None),
        route(M::GET, "/v1/sandboxes/{sb}/ports/watch", None),
        route(M::GET, "/v1/sandboxes/{sb}/tunnel?port=80", None),
        route(M::GET, "/v1/sandboxes/{sb}/processes", None),
        route(M::POST, "/v1/sandboxes/{sb}/processes", Some(json!({"argv": ["sleep", "60"]}))),
        route(M::GET, "/v1/sandboxes/{sb}/processes/{pid}", None),
        route(M::GET, "/v1/sandboxes/{sb}/processes/{pid}/attach", None),
        route(M::POST, "/v1/sandboxes/{sb}/processes/{pid}/signal", Some(json!({"signal": "CONT"}))),
        route(M::DELETE, "/v1/sandboxes/{sb}/processes/{pid}", None),
        route(M::DELETE, "/v1/sandboxes/{sb}/terminals/{tid}", None),
        route(M::DELETE, "/v1/sandboxes/{sb}", None),
    ]
}

/// Routes that only admins may use.
fn admin_routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/v1/users", None),
        route(M::POST, "/v1/users", Some(json!({"name": "made-by-{who}"}))),
        route(M::PUT, "/v1/users/{user}/quota", Some(json!({"sandboxes": 5}))),
        route(M::GET, "/v1/audit", None),
        route(M::POST, "/v1/admin/signing-keys", None),
    ]
}

/// Routes on the owner's own account.
fn user_routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/v1/users/{user}/tokens", None),
        route(M::GET, "/v1/users/{user}/quota", None),
        route(M::GET, "/v1/users/{user}/ssh-keys", None),
        route(
            M::POST,
            "/v1/users/{user}/ssh-keys",
            Some(
                json!({"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}),
            ),
        ),
        route(M::POST, "/v1/users/{user}/tokens", Some(json!({"name": "by-{who}"}))),
    ]
}

struct Ctx {
    url: String,
    sb: String,
    tid: String,
    pid: String,
    user: String,
}

impl Ctx {
    async fn call(&self, r: &Route, token: Option<&str>, who: &str, sb: Option<&str>) -> (u16, String) {
        let path = r
            .path
            .replace("{sb}", sb.unwrap_or(&self.sb))
            .replace("{tid}", &self.tid)
            .replace("{pid}", &self.pid)
            .replace("{user}", &self.user)
            .replace("{who}", who);
        let mut req = reqwest::Client::new().request(r.method.clone(), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &r.body {
            req = req.body(b.to_string().replace("{who}", who)).header("content-type", "application/json");
        } else if r.method == Method::PUT {
            req = req.body(if path.contains("/tar") { tar_body() } else { b"x".to_vec() });
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(json!({}));
        (status, body["error"]["code"].as_str().unwrap_or("").to_string())
    }
}

fn tar_body() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    podgate_tar::pack(dir.path(), Vec::new()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_checks_who_is_asking() {
    // Every terminal recorded, so that the recording routes have something to serve.
    let extra = vec!["--terminal-recording".into(), "always".into()];
    let srv = Server::start_with(common::Opts { extra, ..Default::default() });
    let admin = srv.client();
    let new_user = async |name: &str| {
        let u = admin.create_user(&CreateUserRequest { name: name.into(), role: None }).await.unwrap();
        (u.user.id, u.token.secret)
    };
    let (alice_id, alice) = new_user("alice").await;
    let (_, bob) = new_user("bob").await;
    let a = Client::new(&srv.url, &alice).unwrap();
    let revoked =
        a.create_token("me", &CreateTokenRequest { name: "gone".into(), expires_in_seconds: None }).await.unwrap();
    a.revoke_token(&revoked.info.id).await.unwrap();
    let expired =
        a.create_token("me", &CreateTokenRequest { name: "old".into(), expires_in_seconds: Some(1) }).await.unwrap();
    // Two sandboxes of alice's: one for her, one for the admin (the routes change them).
    let mut ctxs = Vec::new();
    for _ in 0..2 {
        let sb =
            a.create(&CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() }).await.unwrap().id;
        let tid = a.open_terminal(&sb, &OpenTerminalRequest::default()).await.unwrap().terminal_id;
        let spec = ProcessSpec { argv: vec!["sleep".into(), "600".into()], ..Default::default() };
        let pid = a.spawn_process(&sb, &spec).await.unwrap().id;
        ctxs.push(Ctx { url: srv.url.clone(), sb, tid, pid, user: alice_id.clone() });
    }
    let (ctx, admins) = (&ctxs[0], &ctxs[1]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let missing = "sb-doesnotexist00000000";
    let no_creds: [(&str, Option<&str>); 4] = [
        ("anonymous", None),
        ("a revoked token", Some(&revoked.secret)),
        ("an expired token", Some(&expired.secret)),
        ("a forged token", Some("pgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
    ];

    let all: Vec<Route> = [sandbox_routes(), admin_routes(), user_routes()].into_iter().flatten().collect();
    for r in &all {
        for (who, token) in no_creds {
            assert_eq!(
                ctx.call(r, token, who, None).await,
                (401, "unauthenticated".into()),
                "{who}: {} {}",
                r.method,
                r.path
            );
        }
    }
    // Another user: the sandbox, its terminals, files, processes, ports and events answer
    // exactly like those of a sandbox that does not exist.
    for r in &sandbox_routes() {
        let theirs = ctx.call(r, Some(&bob), "bob", None).await;
        let nobodys = ctx.call(r, Some(&bob), "bob", Some(missing)).await;
        assert_eq!(theirs, (404, "not_found".into()), "bob: {} {}", r.method, r.path);
        assert_eq!(theirs, nobodys, "{} {}", r.method, r.path);
    }
    for r in &admin_routes() {
        assert_eq!(
            ctx.call(r, Some(&bob), "bob", None).await,
            (403, "forbidden".into()),
            "bob: {} {}",
            r.method,
            r.path
        );
    }
    for r in &user_routes() {
        assert_eq!(ctx.call(r, Some(&bob), "bob", None).await.0, 404, "bob: {} {}", r.method, r.path);
    }
    // The owner and an admin get through (a WebSocket route without an upgrade is a 400).
    let through = |status: u16| ![401, 403, 404].contains(&status) && status < 500;
    // A sandbox without a code bootstrap has no log: its owner gets a 404 that says so.
    let no_log = |r: &Route, status: u16| r.path.ends_with("/logs") && status == 404;
    for r in &user_routes() {
        for (who, token) in [("alice", &alice), ("admin", &srv.token)] {
            let (status, code) = ctx.call(r, Some(token), who, None).await;
            assert!(through(status), "{who}: {} {} -> {status} {code}", r.method, r.path);
        }
    }
    for r in &admin_routes() {
        let (status, code) = ctx.call(r, Some(&srv.token), "admin", None).await;
        assert!(through(status), "admin: {} {} -> {status} {code}", r.method, r.path);
    }
    for r in &sandbox_routes() {
        for (who, token, c) in [("alice", &alice, ctx), ("admin", &srv.token, admins)] {
            let (status, code) = c.call(r, Some(token), who, None).await;
            assert!(through(status) || no_log(r, status), "{who}: {} {} -> {status} {code}", r.method, r.path);
        }
    }
    assert!(a.list().await.unwrap().is_empty(), "the owner and the admin deleted the sandboxes");
}
