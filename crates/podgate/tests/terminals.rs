//! Terminals end to end through the gateway: real engine, real agent, real WebSockets.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::Server;
use common::term::{Term, connect_raw, open};
use podgate_types::api::CreateSandboxRequest;
use podgate_types::terminal::Control;
use serde_json::json;

async fn sandbox(srv: &Server) -> String {
    srv.client().create(&CreateSandboxRequest::default()).await.unwrap().id
}

fn prompt(t: &Term) -> bool {
    t.screen().contains('$')
}

#[tokio::test]
async fn echo_resize_signal_and_exit_code() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({"cols": 80, "rows": 24})).await;
    assert!(!s.read_only);
    let mut t = Term::connect(&srv, &s, 80, 24).await;
    t.until(10, "the prompt", prompt).await;
    t.send("echo hello-$((6*7))\r").await;
    t.until(10, "echo output", |t| t.screen().contains("hello-42")).await;
    // The login shell runs with TERM and a controlling terminal.
    t.send("echo term=$TERM; tty\r").await;
    t.until(10, "TERM", |t| t.screen().contains("term=xterm-256color") && t.screen().contains("/dev/pts/")).await;

    t.control(&Control::Resize { cols: 100, rows: 40 }).await;
    t.parser.screen_mut().set_size(40.try_into().unwrap(), 100.try_into().unwrap());
    t.send("stty size\r").await;
    t.until(10, "the new size", |t| t.screen().contains("40 100")).await;

    // Ctrl-C through a signal message interrupts a foreground sleep.
    t.send("sleep 30; echo not-interrupted\r").await;
    // Once sleep runs (before that, the shell itself would get the signal and ignore it).
    common::eventually(10, "sleep running", async || {
        let req = podgate_types::api::ExecRequest {
            argv: vec!["pgrep".into(), "-x".into(), "sleep".into()],
            ..Default::default()
        };
        srv.client().exec(&sb, &req).await.is_ok_and(|o| o.exit_code == 0)
    })
    .await;
    t.control(&Control::Signal { signal: "INT".into() }).await;
    t.send("echo after-$((1+1))\r").await;
    t.until(10, "the shell after the interrupt", |t| t.screen().contains("after-2")).await;
    assert!(!t.screen().lines().any(|l| l.trim() == "not-interrupted"), "sleep was not interrupted:\n{}", t.screen());

    t.send("exit 3\r").await;
    t.until(10, "the exit message", |t| t.exit.is_some()).await;
    assert_eq!(t.exit, Some(3));
}

#[tokio::test]
async fn reattach_restores_a_full_screen_program() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({"cols": 90, "rows": 30})).await;
    let mut t = Term::connect(&srv, &s, 90, 30).await;
    t.until(10, "the prompt", prompt).await;
    for i in 0..40 {
        t.send(&format!("echo scroll-line-{i}\r")).await;
    }
    t.until(10, "the scrolled lines", |t| t.screen().contains("scroll-line-39")).await;
    t.send("less /etc/passwd\r").await;
    t.until(10, "less on the alternate screen", |t| {
        t.parser.screen().alternate_screen() && t.screen().contains("root:x:0:0")
    })
    .await;
    t.settle(500).await;
    let before = t.screen();
    let cursor = t.parser.screen().cursor_position();
    drop(t);

    // A new connection to the same terminal draws the same screen.
    let again = open(&srv, &sb, json!({"terminal_id": s.terminal_id})).await;
    let mut t2 = Term::connect(&srv, &again, 90, 30).await;
    t2.until(10, "the restored screen", |t| t.screen() == before).await;
    assert!(t2.parser.screen().alternate_screen());
    assert_eq!(t2.parser.screen().cursor_position(), cursor);

    // Leaving less shows the shell, still alive, with the earlier lines in scrollback.
    t2.send("q").await;
    t2.send("echo still-here\r").await;
    t2.until(10, "the shell", |t| t.screen().contains("still-here")).await;
    drop(t2);
    let third = open(&srv, &sb, json!({"terminal_id": s.terminal_id})).await;
    let mut t3 = Term::connect(&srv, &third, 90, 30).await;
    t3.until(10, "the redraw", |t| t.screen().contains("still-here")).await;
    t3.parser.screen_mut().set_scrollback(1000);
    let top = t3.screen();
    assert!(top.contains("scroll-line-"), "scrollback replayed on attach:\n{top}");
}

#[tokio::test]
async fn viewers_share_output_and_read_only_cannot_type() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({})).await;
    let mut a = Term::connect(&srv, &s, 80, 24).await;
    a.until(10, "the prompt", prompt).await;
    let ro = open(&srv, &sb, json!({"terminal_id": s.terminal_id, "read_only": true})).await;
    assert!(ro.read_only);
    let mut b = Term::connect(&srv, &ro, 80, 24).await;
    b.until(10, "the prompt on the viewer", prompt).await;

    a.send("echo from-$((1+1))-writer\r").await;
    a.until(10, "writer output", |t| t.screen().contains("from-2-writer")).await;
    b.until(10, "the same output on the viewer", |t| t.screen().contains("from-2-writer")).await;

    b.send("echo from-viewer\r").await;
    b.control(&Control::Resize { cols: 20, rows: 5 }).await;
    b.control(&Control::Signal { signal: "KILL".into() }).await;
    a.send("echo sync-$((2+2)); stty size\r").await;
    a.until(10, "sync marker", |t| t.screen().contains("sync-4")).await;
    a.settle(300).await;
    assert!(!a.screen().contains("from-viewer"), "read-only input reached the shell:\n{}", a.screen());
    assert!(a.screen().contains("24 80"), "read-only resize applied:\n{}", a.screen());

    // Both clients are listed; closing them keeps the terminal.
    let terminals = format!("/v1/sandboxes/{sb}/terminals");
    let list: Vec<serde_json::Value> = srv.get_json(&terminals).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["clients"], 2);
    drop(a);
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list: Vec<serde_json::Value> = srv.get_json(&terminals).await;
    assert_eq!((list.len(), list[0]["clients"].as_u64()), (1, Some(0)));
    // Deleting it ends it.
    let r = srv.req(reqwest::Method::DELETE, &format!("{terminals}/{}", s.terminal_id)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r =
        srv.req(reqwest::Method::POST, &terminals).json(&json!({"terminal_id": s.terminal_id})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// Signs `claims` with the server's current key, read from its database (as a holder of the key could).
async fn sign_with_server_key(srv: &Server, claims: &serde_json::Value, kid_override: Option<&str>) -> String {
    let store = srv.store().await;
    let key = store.signing_keys(0).await.unwrap().into_iter().find(|k| k.retired_at.is_none()).unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(&key.private_key).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid_override.unwrap_or(&key.kid).to_string());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let other = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({})).await;
    let path = s.url.clone();

    assert_eq!(connect_raw(&srv, &path, "", None).await.err(), Some(401), "missing");
    assert_eq!(connect_raw(&srv, &path, "not-a-jwt", None).await.err(), Some(401), "garbage");
    // Flip one character in the middle of the signature (the last one only carries padding bits).
    let mut bad_sig = s.token.clone().into_bytes();
    let i = s.token.rfind('.').unwrap() + 10;
    bad_sig[i] = if bad_sig[i] == b'A' { b'B' } else { b'A' };
    let bad_sig = String::from_utf8(bad_sig).unwrap();
    assert_eq!(connect_raw(&srv, &path, &bad_sig, None).await.err(), Some(401), "bad signature");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = |aud: &str, sid: &str, exp: i64, jti: &str| json!({"sub": "x", "sid": sid, "tid": s.terminal_id, "aud": aud, "jti": jti, "iat": now, "exp": exp, "read_only": false});
    let expired = sign_with_server_key(&srv, &claims("terminal", &sb, now - 120, "j-exp"), None).await;
    assert_eq!(connect_raw(&srv, &path, &expired, None).await.err(), Some(401), "expired");
    let unknown_key = sign_with_server_key(&srv, &claims("terminal", &sb, now + 60, "j-kid"), Some("k-unknown")).await;
    assert_eq!(connect_raw(&srv, &path, &unknown_key, None).await.err(), Some(401), "unknown key id");
    let wrong_aud = sign_with_server_key(&srv, &claims("terminal-share", &sb, now + 60, "j-aud"), None).await;
    assert_eq!(connect_raw(&srv, &path, &wrong_aud, None).await.err(), Some(403), "wrong audience");
    // A valid token for another sandbox's URL.
    let other_path = path.replace(&sb, &other);
    assert_eq!(connect_raw(&srv, &other_path, &s.token, None).await.err(), Some(403), "wrong sandbox");
    // A foreign origin.
    assert_eq!(connect_raw(&srv, &path, &s.token, Some("https://evil.example")).await.err(), Some(403), "origin");
    // The real token works once (same origin allowed), then is spent.
    let url_origin = srv.url.clone();
    assert!(connect_raw(&srv, &path, &s.token, Some(&url_origin)).await.is_ok());
    assert_eq!(connect_raw(&srv, &path, &s.token, None).await.err(), Some(401), "replayed");
    // A plain GET (no upgrade) is a 400, not a hang.
    let r = srv.http().get(format!("{}{}?token={}", srv.url, path, s.token)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let metrics = srv.http().get(format!("{}/metrics", srv.url)).send().await.unwrap().text().await.unwrap();
    for reason in [
        "missing",
        "malformed",
        "bad_signature",
        "expired",
        "unknown_key",
        "wrong_audience",
        "wrong_target",
        "origin",
        "replayed",
    ] {
        assert!(
            metrics.contains(&format!("podgate_gateway_refused_total{{reason=\"{reason}\"}} 1")),
            "{reason} not counted:\n{metrics}"
        );
    }
    // The JWKS publishes the key that verifies the tokens.
    let jwks: serde_json::Value =
        srv.http().get(format!("{}/.well-known/jwks.json", srv.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

#[tokio::test]
async fn share_links_are_read_only_and_keys_rotate() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({})).await;
    let share: serde_json::Value = srv
        .http()
        .post(format!("{}/v1/sandboxes/{sb}/terminals/{}/share", srv.url, s.terminal_id))
        .bearer_auth(&srv.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let share_token = share["share_token"].as_str().unwrap();
    // Rotating the key keeps earlier tokens valid during the overlap.
    let r = srv.http().post(format!("{}/v1/admin/signing-keys", srv.url)).bearer_auth(&srv.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let jwks: serde_json::Value =
        srv.http().get(format!("{}/.well-known/jwks.json", srv.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let mut writer = Term::connect(&srv, &s, 80, 24).await;
    writer.until(10, "the prompt", prompt).await;
    // Anyone with the share link gets read-only sessions, as many as they need.
    for _ in 0..2 {
        let r = srv
            .http()
            .post(format!("{}/v1/terminal-sessions", srv.url))
            .json(&json!({"share_token": share_token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let viewer: podgate_types::terminal::TerminalSession = r.json().await.unwrap();
        assert!(viewer.read_only);
        let mut v = Term::connect(&srv, &viewer, 80, 24).await;
        v.until(10, "the viewer's screen", prompt).await;
        v.send("echo typed-by-viewer\r").await;
    }
    writer.send("echo writer-$((3*3))\r").await;
    writer.until(10, "writer output", |t| t.screen().contains("writer-9")).await;
    writer.settle(300).await;
    assert!(!writer.screen().contains("typed-by-viewer"));
    // A share token is not a session token, and a session token is not a share token.
    assert_eq!(connect_raw(&srv, &s.url, share_token, None).await.err(), Some(403));
    let r = srv
        .http()
        .post(format!("{}/v1/terminal-sessions", srv.url))
        .json(&json!({"share_token": s.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn a_stalled_client_does_not_stall_others_or_grow_memory() {
    let srv = Server::start();
    let sb = sandbox(&srv).await;
    let s = open(&srv, &sb, json!({})).await;
    let mut fast = Term::connect(&srv, &s, 80, 24).await;
    fast.until(10, "the prompt", prompt).await;
    // The stalled client connects and never reads.
    let stalled_session = open(&srv, &sb, json!({"terminal_id": s.terminal_id})).await;
    let mut stalled = Term::connect(&srv, &stalled_session, 80, 24).await;
    fast.send("yes podgate-output | head -c 40000000; echo DONE-$((40*1000))\r").await;
    fast.until(120, "the end of 40 MB of output", |t| t.screen().contains("DONE-40000")).await;
    let pid = common::docker(&["inspect", "-f", "{{.State.Pid}}", &common::container(&sb)]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let rss_kib: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rss_kib < 64 * 1024, "agent RSS {rss_kib} KiB after 40 MB to a stalled client");
    // The stalled client, once it reads again, is brought up to date with the current screen.
    stalled.until(60, "the stalled client catching up", |t| t.screen().contains("DONE-40000")).await;
}

#[tokio::test]
async fn idle_terminals_end_and_query_tokens_work() {
    let srv = Server::start_with(common::Opts {
        extra: vec!["--terminal-idle-seconds".into(), "1".into()],
        ..Default::default()
    });
    let sb = sandbox(&srv).await;
    // The token may also come in the query string (for clients that cannot set subprotocols).
    let s = open(&srv, &sb, json!({})).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}{}?token={}", srv.url.replacen("http://", "ws://", 1), s.url, s.token);
    let tcp = tokio::net::TcpStream::connect(srv.url.trim_start_matches("http://")).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url.into_client_request().unwrap(), tcp)
        .await
        .expect("query-string token accepted");
    use futures_util::StreamExt as _;
    assert!(matches!(ws.next().await, Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(_)))));
    // While a client is attached the terminal stays, however long.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let terminals = format!("/v1/sandboxes/{sb}/terminals");
    let list = async || srv.get_json::<Vec<serde_json::Value>>(&terminals).await;
    assert_eq!(list().await.len(), 1);
    drop(ws);
    // Once nobody is attached for the idle time, it ends.
    common::eventually(15, "the idle terminal ends", async || list().await.is_empty()).await;
}
