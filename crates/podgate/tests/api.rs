//! REST API end to end: real server binary, real Docker engine, real agent.

mod common;

use std::collections::BTreeMap;

use common::{Server, docker};
use podgate_client::Error;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, SandboxState};
use serde_json::{Value, json};

fn exec(argv: &[&str]) -> ExecRequest {
    ExecRequest { argv: argv.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn api_status(r: Result<impl std::fmt::Debug, Error>) -> (u16, String) {
    match r {
        Err(Error::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_exec_delete() {
    let srv = Server::start();
    let c = srv.client();
    let env = BTreeMap::from([("GREETING".to_string(), "hi there".to_string()), ("EMPTY".to_string(), String::new())]);
    let sb = c
        .create(&CreateSandboxRequest {
            name: Some("alpha".into()),
            env,
            labels: BTreeMap::from([("team".to_string(), "qa".to_string())]),
            memory: Some("256Mi".parse().unwrap()),
            cpu: Some(0.5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sb.state, SandboxState::Running);
    assert_eq!(sb.name, "alpha");
    assert_eq!(sb.image, "podgate/base:latest");
    assert!(sb.expires_at.unwrap() > sb.created_at);
    assert_eq!(srv.containers(), vec![common::container(&sb.id)]);
    // The engine applied the limits.
    let limits =
        docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", &common::container(&sb.id)]);
    assert_eq!(limits.trim(), format!("{} 500000000", 256 << 20));

    // echo, through the agent (PID 1 of the container is the agent).
    let r = c.exec("alpha", &exec(&["echo", "hello", "world"])).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.0.as_slice(), r.stderr.0.as_slice()), (0, &b"hello world\n"[..], &b""[..]));
    let r = c.exec(&sb.id, &exec(&["cat", "/proc/1/cmdline"])).await.unwrap();
    assert!(String::from_utf8_lossy(&r.stdout.0).starts_with("/.podgate/bin/podgate-agent\0serve"));

    // Non-zero exit and stderr.
    let r = c.exec("alpha", &exec(&["sh", "-c", "echo oops >&2; exit 42"])).await.unwrap();
    assert_eq!((r.exit_code, r.stderr.0.as_slice(), r.signal), (42, &b"oops\n"[..], None));

    // Binary stdout, every byte value, kept exact.
    let r = c
        .exec(
            "alpha",
            &exec(&["sh", "-c", "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done"]),
        )
        .await
        .unwrap();
    assert_eq!(r.stdout.0, (0u8..=255).collect::<Vec<u8>>());

    // Binary stdin in, the same bytes out.
    let input: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut req = exec(&["cat"]);
    req.stdin = Some(input.clone().into());
    assert_eq!(c.exec("alpha", &req).await.unwrap().stdout.0, input);

    // Env from the sandbox (including an empty value) and from the exec.
    let mut req = exec(&["sh", "-c", "printf '%s|%s|%s' \"$GREETING\" \"${EMPTY-unset}\" \"$EXTRA\""]);
    req.env.insert("EXTRA".into(), "x=y".into());
    assert_eq!(c.exec("alpha", &req).await.unwrap().stdout.0, b"hi there||x=y");

    // cwd: absolute, relative to the workdir, and ~.
    c.exec("alpha", &exec(&["sh", "-c", "mkdir -p $HOME/sub sub"])).await.unwrap();
    let cwds =
        [("/tmp", "/tmp\n"), ("~", "/home/podgate\n"), ("sub", "/workspace/sub\n"), ("~/sub", "/home/podgate/sub\n")];
    for (cwd, want) in cwds {
        let mut req = exec(&["sh", "-c", "pwd"]);
        req.cwd = Some(cwd.into());
        assert_eq!(String::from_utf8_lossy(&c.exec("alpha", &req).await.unwrap().stdout.0), want, "cwd {cwd}");
    }

    // Timeout kills the process.
    let mut req = exec(&["sleep", "30"]);
    req.timeout_seconds = Some(1);
    let r = c.exec("alpha", &req).await.unwrap();
    assert!(r.timed_out);
    assert_eq!((r.exit_code, r.signal), (137, Some(9)));

    // A program that does not exist is a 422, not a 500.
    assert_eq!(api_status(c.exec("alpha", &exec(&["no-such-program"])).await), (422, "invalid_request".into()));

    // Listed, then deleted: gone from the API and from the engine.
    assert_eq!(c.list().await.unwrap().iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![sb.id.clone()]);
    c.delete("alpha").await.unwrap();
    assert_eq!(api_status(c.get(&sb.id).await), (404, "not_found".into()));
    assert!(c.list().await.unwrap().is_empty());
    assert!(srv.containers().is_empty(), "container removed");
    assert!(!srv.dir.path().join("run").join(&sb.id).exists(), "run dir removed");
    // The name is free again.
    let again = c.create(&CreateSandboxRequest { name: Some("alpha".into()), ..Default::default() }).await.unwrap();
    assert_ne!(again.id, sb.id);
}

#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let srv = Server::start();
    let c = srv.client();

    // Unknown image: the engine's reason, and nothing left behind.
    let err = c
        .create(&CreateSandboxRequest { image: Some("podgate-test/does-not-exist:v1".into()), ..Default::default() })
        .await;
    match err {
        Err(Error::Api { status: 422, code, message }) => {
            assert_eq!(code, "image_unavailable");
            assert!(message.contains("podgate-test/does-not-exist:v1"), "{message}");
        }
        other => panic!("unknown image: {other:?}"),
    }
    // Invalid references, from us and from the engine.
    for bad in ["has space", "UPPER/case", "a//b", ""] {
        let r = c.create(&CreateSandboxRequest { image: Some(bad.into()), ..Default::default() }).await;
        assert_eq!(api_status(r).0, 422, "image {bad:?}");
    }
    assert!(c.list().await.unwrap().is_empty(), "failed creates are not listed");
    assert!(srv.containers().is_empty(), "failed creates leave no container");

    // Duplicate name.
    c.create(&CreateSandboxRequest { name: Some("dup".into()), ..Default::default() }).await.unwrap();
    let r = c.create(&CreateSandboxRequest { name: Some("dup".into()), ..Default::default() }).await;
    assert_eq!(api_status(r), (409, "conflict".into()));
    assert_eq!(srv.containers().len(), 1);

    // Bad names, env names, labels, limits, ttl, cmd.
    let bads = [
        json!({"name": "Bad_Name"}),
        json!({"env": {"1BAD": "x"}}),
        json!({"env": {"A-B": "x"}}),
        json!({"labels": {"bad key": "x"}}),
        json!({"cpu": -1}),
        json!({"memory": "1Ki"}),
        json!({"memory": "12 parsecs"}),
        json!({"ttl_seconds": 0}),
        json!({"ttl_seconds": 99999999999u64}),
        json!({"cmd": []}),
        json!({"unknown_field": 1}),
        json!({"env": "not-a-map"}),
    ];
    let http = srv.http();
    for body in bads {
        let r =
            http.post(format!("{}/v1/sandboxes", srv.url)).bearer_auth(&srv.token).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 422, "body {body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
    }
    // Malformed JSON is 400, a wrong content type 415.
    let r = http
        .post(format!("{}/v1/sandboxes", srv.url))
        .bearer_auth(&srv.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http.post(format!("{}/v1/sandboxes", srv.url)).bearer_auth(&srv.token).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // A huge body is refused with 413. The server answers and closes before it has read it all,
    // so the client keeps reading the answer while its writes may fail (an HTTP client library
    // gives up at the first failed write, which made this check flaky).
    let huge = format!("{{\"env\":{{\"A\":\"{}\"}}}}", "x".repeat(20 << 20));
    let addr = srv.url.trim_start_matches("http://").to_string();
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(&addr).await.unwrap().into_split();
    let head = format!(
        "POST /v1/sandboxes HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        srv.token,
        huge.len()
    );
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(huge.as_bytes()).await;
        wr
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        use tokio::io::AsyncReadExt as _;
        match tokio::time::timeout(std::time::Duration::from_secs(30), rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    drop(writer.await);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Unknown ids: 404 on every route.
    assert_eq!(api_status(c.get("sb-doesnotexist").await).0, 404);
    assert_eq!(api_status(c.delete("sb-doesnotexist").await).0, 404);
    assert_eq!(api_status(c.exec("sb-doesnotexist", &exec(&["true"])).await).0, 404);
    assert_eq!(api_status(c.get(&"x".repeat(5000)).await).0, 404);
    // Empty argv and NUL bytes in exec.
    assert_eq!(api_status(c.exec("dup", &exec(&[])).await).0, 422);
    assert_eq!(api_status(c.exec("dup", &exec(&["echo", "a\0b"])).await).0, 422);

    // Missing or wrong token: 401 everywhere.
    for (method, path) in [
        ("GET", "/v1/sandboxes"),
        ("POST", "/v1/sandboxes"),
        ("GET", "/v1/sandboxes/dup"),
        ("DELETE", "/v1/sandboxes/dup"),
        ("POST", "/v1/sandboxes/dup/exec"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = http.request(m.clone(), format!("{}{path}", srv.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{method} {path} without token");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthenticated");
        for bad in ["Bearer pgt_wrong", "Basic abc", "Bearer ", "pgt_raw"] {
            let r = http
                .request(m.clone(), format!("{}{path}", srv.url))
                .header("authorization", bad)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {bad:?}");
        }
    }
    // The sandbox survived all of that.
    assert_eq!(c.exec("dup", &exec(&["true"])).await.unwrap().exit_code, 0);
}

#[tokio::test]
async fn health_readiness_metrics_openapi() {
    let srv = Server::start();
    let http = srv.http();
    let r = http.get(format!("{}/healthz", srv.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http.get(format!("{}/readyz", srv.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http.get(format!("{}/no/such/route", srv.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_found");

    srv.client().create(&CreateSandboxRequest::default()).await.unwrap();
    let text = http.get(format!("{}/metrics", srv.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("podgate_sandboxes{state=\"running\"} 1"), "{text}");
    assert!(text.contains("podgate_sandboxes{state=\"failed\"} 0"), "{text}");
    assert!(text.contains("podgate_sandbox_create_seconds_count{outcome=\"ok\"} 1"), "{text}");
    assert!(
        text.contains("podgate_http_requests_total{route=\"/v1/sandboxes\",method=\"POST\",status=\"201\"} 1"),
        "{text}"
    );

    let doc: Value = http.get(format!("{}/v1/openapi.json", srv.url)).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in ["/v1/sandboxes", "/v1/sandboxes/{id}", "/v1/sandboxes/{id}/exec"] {
        assert!(doc["paths"][p].is_object(), "missing {p}");
    }
    assert_eq!(
        doc["components"]["schemas"]["ExecResponse"]["properties"]["stdout"]["$ref"],
        "#/components/schemas/Base64Bytes"
    );
    assert_eq!(doc["components"]["schemas"]["Base64Bytes"]["format"], "byte");
}

#[tokio::test]
async fn cors_only_for_listed_origins() {
    let preflight = async |srv: &Server, origin: &str| {
        srv.http()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/sandboxes", srv.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap()
    };
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    // None by default: no cross-origin access at all.
    let closed = Server::start();
    let r = preflight(&closed, "https://app.example.com").await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    let open = Server::start_with(common::Opts {
        extra: vec!["--allowed-origins".into(), "https://app.example.com".into()],
        ..Default::default()
    });
    let r = preflight(&open, "https://app.example.com").await;
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert_eq!(header(&r, "access-control-allow-credentials").as_deref(), Some("true"));
    let methods = header(&r, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
    let r = preflight(&open, "https://evil.example").await;
    assert_eq!(header(&r, "access-control-allow-origin"), None, "an origin not on the list");
    // Simple requests carry the header for the listed origin only; authentication still applies.
    let r = open
        .req(reqwest::Method::GET, "/v1/sandboxes")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    let r = open
        .http()
        .get(format!("{}/v1/sandboxes", open.url))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// The config file is the lowest layer: a switch it turns on is turned off again by a flag
/// (`--flag=false`), as the README says.
#[tokio::test]
async fn a_flag_turns_off_what_the_config_file_turned_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("podgate.toml");
    std::fs::write(&config, "allow_root_sandboxes = true\n").unwrap();
    let root = || CreateSandboxRequest { user: Some("root".into()), ..Default::default() };
    let flags = |extra: &[&str]| {
        let mut v = vec!["--config".to_string(), config.display().to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        common::Opts { extra: v, ..Default::default() }
    };
    let srv = Server::start_with(flags(&[]));
    let sb = srv.client().create(&root()).await.expect("the file allows root sandboxes");
    assert_eq!(sb.user, "0:0");
    srv.client().delete(&sb.id).await.unwrap();
    drop(srv);
    let srv = Server::start_with(flags(&["--allow-root-sandboxes=false"]));
    let err = srv.client().create(&root()).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}
