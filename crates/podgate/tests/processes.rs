//! Streaming processes end to end through the server and the agent in a real container: separate
//! stdout/stderr channels, stdin and its end, signals, exit codes, timeouts, PTYs, users, shell
//! command lines, re-attach with missed output, and nothing lost when a process is killed.

mod common;

use std::time::Duration;

use common::Server;
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::{Client, Message, TerminalSocket};
use podgate_types::api::CreateSandboxRequest;
use podgate_types::process::{ClientMessage, ProcessExit, ProcessSpec, PtySize, STDERR, STDIN, STDOUT, ServerMessage};

fn argv(a: &[&str]) -> ProcessSpec {
    ProcessSpec { argv: a.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn sh(cmd: &str) -> ProcessSpec {
    argv(&["sh", "-c", cmd])
}

/// Everything a stream delivered, in order.
#[derive(Default, Debug)]
struct Collected {
    pid: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dropped: Vec<(String, u64)>,
    errors: Vec<String>,
    exit: Option<ProcessExit>,
}

impl Collected {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads one frame into `c`; false once the stream is over.
async fn read_one(ws: &mut TerminalSocket, c: &mut Collected) -> bool {
    let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a frame within 30 s");
    match msg {
        Some(Ok(Message::Binary(b))) => {
            match b[0] {
                STDOUT => c.stdout.extend_from_slice(&b[1..]),
                STDERR => c.stderr.extend_from_slice(&b[1..]),
                other => panic!("unexpected channel {other}"),
            }
            assert!(c.exit.is_none(), "output after the exit message");
            true
        }
        Some(Ok(Message::Text(t))) => {
            match serde_json::from_str::<ServerMessage>(&t).unwrap() {
                ServerMessage::Started { process } => c.pid = Some(process.id),
                ServerMessage::Dropped { stream, bytes } => c.dropped.push((stream, bytes)),
                ServerMessage::Error { message } => c.errors.push(message),
                ServerMessage::Exit { exit } => c.exit = Some(exit),
            }
            true
        }
        Some(Ok(Message::Close(_))) | None => false,
        Some(Ok(_)) => true,
        Some(Err(e)) => panic!("stream error: {e}"),
    }
}

async fn collect(mut ws: TerminalSocket) -> Collected {
    let mut c = Collected::default();
    while read_one(&mut ws, &mut c).await {}
    c
}

async fn run(c: &Client, sb: &str, spec: ProcessSpec) -> Collected {
    collect(c.start_process(sb, &spec).await.unwrap()).await
}

async fn send(ws: &mut TerminalSocket, msg: &ClientMessage) {
    ws.send(Message::Text(serde_json::to_string(msg).unwrap().into())).await.unwrap();
}

async fn stdin(ws: &mut TerminalSocket, data: &[u8]) {
    let mut frame = vec![STDIN];
    frame.extend_from_slice(data);
    ws.send(Message::Binary(frame.into())).await.unwrap();
}

/// Reads until stdout contains `needle`.
async fn read_until(ws: &mut TerminalSocket, c: &mut Collected, needle: &str) {
    while !c.out().contains(needle) {
        assert!(read_one(ws, c).await, "stream ended before {needle:?}: {c:?}");
    }
}

#[tokio::test]
async fn processes_stream_end_to_end() {
    let srv = Server::start_with(common::Opts { extra: vec!["--allow-root-sandboxes".into()], ..Default::default() });
    let c = srv.client();
    let sb = c.create(&CreateSandboxRequest::default()).await.unwrap().id;

    // Separate channels and the exit code.
    let r = run(&c, &sb, sh("printf out; printf err >&2; exit 3")).await;
    assert_eq!((r.out().as_str(), r.stderr.as_slice()), ("out", &b"err"[..]));
    assert_eq!(r.exit, Some(ProcessExit { exit_code: 3, signal: None, timed_out: false }));
    assert!(r.pid.is_some());

    // All 256 byte values through stdin and back, then the end of stdin ends `cat`.
    let data: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    let mut ws = c.start_process(&sb, &ProcessSpec { stdin: true, ..argv(&["cat"]) }).await.unwrap();
    for chunk in data.chunks(10_000) {
        stdin(&mut ws, chunk).await;
    }
    send(&mut ws, &ClientMessage::StdinEnd).await;
    let r = collect(ws).await;
    assert!(r.stdout == data, "binary round trip: {} bytes back of {}", r.stdout.len(), data.len());
    assert_eq!(r.exit.unwrap().exit_code, 0);

    // A process killed by a signal from inside: everything it wrote arrives before the exit.
    let r = run(&c, &sb, sh("echo before; echo err >&2; kill -9 $$")).await;
    assert_eq!((r.out().as_str(), r.stderr.as_slice()), ("before\n", &b"err\n"[..]));
    assert_eq!(r.exit, Some(ProcessExit { exit_code: 137, signal: Some(9), timed_out: false }));

    // Killed mid-output by the client: what arrived is an exact, gapless prefix of `seq`.
    let mut ws = c.start_process(&sb, &argv(&["seq", "1", "100000000"])).await.unwrap();
    let mut r = Collected::default();
    while r.stdout.len() < 2_000_000 {
        assert!(read_one(&mut ws, &mut r).await);
    }
    send(&mut ws, &ClientMessage::Signal { signal: "KILL".into() }).await;
    while read_one(&mut ws, &mut r).await {}
    assert_eq!(r.exit.map(|e| e.signal), Some(Some(9)));
    let text = r.out();
    let complete = &text[..text.rfind('\n').unwrap() + 1];
    let lines: Vec<&str> = complete.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.parse::<usize>().unwrap(), i + 1, "line {i} of the output");
    }
    eprintln!("seq killed after {} complete lines, {} bytes, no gap", lines.len(), r.stdout.len());

    // A signal the program handles.
    let mut ws = c
        .start_process(&sb, &sh("trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"))
        .await
        .unwrap();
    let mut r = Collected::default();
    read_until(&mut ws, &mut r, "ready").await;
    send(&mut ws, &ClientMessage::Signal { signal: "TERM".into() }).await;
    while read_one(&mut ws, &mut r).await {}
    assert!(r.out().contains("got TERM"), "{r:?}");
    assert_eq!(r.exit.unwrap().exit_code, 7);
    // An unknown signal is an error message and the stream goes on.
    let mut ws = c.start_process(&sb, &ProcessSpec { stdin: true, ..argv(&["cat"]) }).await.unwrap();
    send(&mut ws, &ClientMessage::Signal { signal: "NOPE".into() }).await;
    stdin(&mut ws, b"still here").await;
    send(&mut ws, &ClientMessage::StdinEnd).await;
    let r = collect(ws).await;
    assert_eq!(r.out(), "still here");
    assert!(r.errors.iter().any(|e| e.contains("NOPE")), "{r:?}");

    // Timeout.
    let r = run(&c, &sb, ProcessSpec { timeout_seconds: Some(1), ..argv(&["sleep", "30"]) }).await;
    assert_eq!(r.exit, Some(ProcessExit { exit_code: 137, signal: Some(9), timed_out: true }));

    // shell: true runs the line through the sandbox user's shell; argv alone never does.
    let r = run(&c, &sb, ProcessSpec { shell: true, ..argv(&["echo $HOME | tr a-z A-Z"]) }).await;
    assert_eq!(r.out(), "/HOME/PODGATE\n");
    let r = run(&c, &sb, argv(&["echo", "$HOME", ";", "id"])).await;
    assert_eq!(r.out(), "$HOME ; id\n");

    // Another user: only from a root sandbox. Env and cwd with `~` and relative paths.
    let e = c.spawn_process(&sb, &ProcessSpec { user: Some("nobody".into()), ..argv(&["id"]) }).await.unwrap_err();
    assert!(e.to_string().contains("cannot run processes as \"nobody\""), "{e}");
    let root = CreateSandboxRequest { user: Some("root".into()), ..Default::default() };
    let rsb = c.create(&root).await.unwrap().id;
    let r = run(&c, &rsb, ProcessSpec { user: Some("nobody".into()), ..sh("id -u; id -g; echo $USER") }).await;
    assert_eq!(r.out(), "65534\n65534\nnobody\n", "{r:?}");
    let spec = ProcessSpec {
        env: [("GREETING".to_string(), "hé".to_string())].into(),
        cwd: Some("~".into()),
        ..sh("echo $GREETING; pwd")
    };
    assert_eq!(run(&c, &sb, spec).await.out(), "hé\n/home/podgate\n");

    // A PTY: a terminal of the requested size, input echoed, resize followed.
    let pty = Some(PtySize { cols: 77, rows: 11 });
    let mut ws = c
        .start_process(&sb, &ProcessSpec { pty, ..sh("stty size; read line; echo got:$line; stty size") })
        .await
        .unwrap();
    let mut r = Collected::default();
    read_until(&mut ws, &mut r, "11 77").await;
    send(&mut ws, &ClientMessage::Resize { cols: 100, rows: 30 }).await;
    stdin(&mut ws, b"typed\r").await;
    while read_one(&mut ws, &mut r).await {}
    assert!(r.out().contains("got:typed"), "{r:?}");
    assert!(r.out().contains("30 100"), "{r:?}");
    assert!(r.stderr.is_empty());
    assert_eq!(r.exit.unwrap().exit_code, 0);
}

#[tokio::test]
async fn processes_are_listed_reattached_and_killed() {
    let srv = Server::start();
    let c = srv.client();
    let sb = c.create(&CreateSandboxRequest::default()).await.unwrap().id;

    // Leave a stream mid-way, re-attach from where we were: the rest, then the exit.
    let mkfifo =
        podgate_types::api::ExecRequest { argv: vec!["mkfifo".into(), "/tmp/fifo".into()], ..Default::default() };
    assert_eq!(c.exec(&sb, &mkfifo).await.unwrap().exit_code, 0);
    let mut ws = c.start_process(&sb, &sh("echo first; read x </tmp/fifo; echo second >&2; echo third")).await.unwrap();
    let mut r = Collected::default();
    read_until(&mut ws, &mut r, "first\n").await;
    let pid = r.pid.clone().unwrap();
    drop(ws);
    let listed = c.list_processes(&sb).await.unwrap();
    let p = listed.iter().find(|p| p.id == pid).expect("listed");
    assert!(p.exit.is_none());
    let spec = ProcessSpec { shell: true, ..argv(&["echo go > /tmp/fifo"]) };
    assert_eq!(run(&c, &sb, spec).await.exit.unwrap().exit_code, 0);
    let again = collect(c.attach_process(&sb, &pid, [r.stdout.len() as u64, 0]).await.unwrap()).await;
    assert_eq!((again.out().as_str(), again.stderr.as_slice()), ("third\n", &b"second\n"[..]));
    assert!(again.dropped.is_empty());
    assert_eq!(again.exit.unwrap().exit_code, 0);
    // From the start, after it ended: everything is still there.
    let all = collect(c.attach_process(&sb, &pid, [0, 0]).await.unwrap()).await;
    assert_eq!(all.out(), "first\nthird\n");
    assert_eq!(c.get_process(&sb, &pid).await.unwrap().exit.unwrap().exit_code, 0);

    // Output beyond the bounded buffer with nobody attached: the client is told what it missed.
    let bg = c.spawn_process(&sb, &argv(&["head", "-c", "3000000", "/dev/zero"])).await.unwrap();
    common::eventually(20, "the background process to end", async || {
        c.get_process(&sb, &bg.id).await.unwrap().exit.is_some()
    })
    .await;
    let r = collect(c.attach_process(&sb, &bg.id, [0, 0]).await.unwrap()).await;
    assert_eq!(r.dropped, vec![("stdout".to_string(), 3_000_000 - (1 << 20))]);
    assert_eq!(r.stdout.len(), 1 << 20);

    // Kill and signal by REST.
    let sleeper = c.spawn_process(&sb, &argv(&["sleep", "100"])).await.unwrap();
    c.kill_process(&sb, &sleeper.id).await.unwrap();
    common::eventually(10, "the killed process to be reported", async || {
        c.get_process(&sb, &sleeper.id).await.unwrap().exit.is_some_and(|e| e.signal == Some(9))
    })
    .await;
    let e = c.kill_process(&sb, &sleeper.id).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 409, .. }), "{e}");
    let sleeper = c.spawn_process(&sb, &argv(&["sleep", "100"])).await.unwrap();
    let e = c.signal_process(&sb, &sleeper.id, "BOGUS").await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 422, .. }), "{e}");
    c.signal_process(&sb, &sleeper.id, "TERM").await.unwrap();
    common::eventually(10, "the signalled process to be reported", async || {
        c.get_process(&sb, &sleeper.id).await.unwrap().exit.is_some_and(|e| e.exit_code == 143)
    })
    .await;

    // Bad input.
    let e = c.spawn_process(&sb, &argv(&["/no/such/program"])).await.unwrap_err();
    assert!(matches!(&e, podgate_client::Error::Api { status: 422, code, .. } if code == "spawn_failed"), "{e}");
    let e = c.spawn_process(&sb, &argv(&[])).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 422, .. }), "{e}");
    let e = c.spawn_process(&sb, &ProcessSpec { shell: true, ..argv(&["a", "b"]) }).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 422, .. }), "{e}");
    let e = c.spawn_process(&sb, &ProcessSpec { user: Some("ghost".into()), ..argv(&["id"]) }).await.unwrap_err();
    assert!(matches!(e, podgate_client::Error::Api { status: 422, .. }), "{e}");
    let big = ProcessSpec { pty: Some(PtySize { cols: 0, rows: 5 }), ..argv(&["true"]) };
    assert!(matches!(c.spawn_process(&sb, &big).await.unwrap_err(), podgate_client::Error::Api { status: 422, .. }));
    let r = srv
        .req(reqwest::Method::POST, &format!("/v1/sandboxes/{sb}/processes"))
        .json(&serde_json::json!({"argv": ["true"], "bogus": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    for bad in ["p-nope", "..%2F..%2Fhealth", "a%2Fb"] {
        let r = srv.req(reqwest::Method::GET, &format!("/v1/sandboxes/{sb}/processes/{bad}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{bad}");
    }
    assert!(podgate_client::is_not_found(&c.attach_process(&sb, "p-nope", [0, 0]).await.unwrap_err()));
    assert!(podgate_client::is_not_found(&c.start_process("nope", &argv(&["true"])).await.unwrap_err()));
    // A stream whose first message is not a start, or whose program cannot start: an error message.
    let r = run(&c, &sb, argv(&["/no/such/program"])).await;
    assert!(r.pid.is_none() && r.exit.is_none() && r.errors[0].contains("/no/such/program"), "{r:?}");
    let mut ws =
        c.websocket(&format!("/v1/sandboxes/{sb}/processes"), podgate_types::process::SUBPROTOCOL, true).await.unwrap();
    ws.send(Message::Binary(vec![0u8, 1, 2].into())).await.unwrap();
    let r = collect(ws).await;
    assert!(r.errors[0].contains("start"), "{r:?}");
    // Another user never sees this sandbox's processes.
    let other = Client::new(&srv.url, "pg_not_a_token").unwrap();
    assert!(matches!(other.list_processes(&sb).await.unwrap_err(), podgate_client::Error::Api { status: 401, .. }));
}
