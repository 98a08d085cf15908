//! `podgate exec`: runs a command in a sandbox over the process stream: output live on stdout
//! and stderr, stdin forwarded with `-i`, a PTY with `-t`, Ctrl-C forwarded, re-attach after a
//! dropped connection, and the remote exit code (128+N for signal N) as ours.

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::{Client, Message, TerminalSocket};
use podgate_types::process::{ClientMessage, ProcessSpec, PtySize, STDERR, STDIN, STDOUT, ServerMessage};
use tokio::io::AsyncReadExt as _;

use super::enter::{RawMode, local_size};
use super::{Conn, parse_kv};

/// `podgate exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Forward this command's standard input to the process.
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Run the command on a terminal (raw mode, window size followed).
    #[arg(long, short = 't')]
    tty: bool,
    /// Extra environment variable (repeatable).
    #[arg(long = "env", short = 'e', value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// Working directory (relative to the sandbox workdir; `~` is home).
    #[arg(long, short = 'w')]
    cwd: Option<String>,
    /// User to run as (name, uid or uid:gid).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Run the one argument as a command line through the sandbox user's shell.
    #[arg(long)]
    shell: bool,
    /// Kill the process after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Command and arguments (after `--`).
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

enum Ended {
    Exit(i32),
    Dropped,
}

/// Where the stream stands: the process id and how much of each stream was written out.
#[derive(Default)]
struct Progress {
    pid: Option<String>,
    offsets: [u64; 2],
}

/// `podgate exec`: returns the remote exit code.
pub async fn exec(a: ExecArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let spec = ProcessSpec {
        argv: a.argv,
        shell: a.shell,
        env: a.env.into_iter().collect(),
        cwd: a.cwd,
        user: a.user,
        pty: a.tty.then(|| {
            let (cols, rows) = local_size();
            PtySize { cols, rows }
        }),
        timeout_seconds: a.timeout,
        stdin: a.interactive,
        tag: None,
    };
    let _raw = if a.tty { Some(RawMode::enable()) } else { None };
    let (stdin_tx, mut stdin_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    if a.interactive {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stdin.read(&mut buf).await {
                if stdin_tx.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        });
    } else {
        drop(stdin_tx);
    }
    let mut progress = Progress::default();
    let mut ws = client.start_process(&a.sandbox, &spec).await?;
    loop {
        match pump(ws, &mut stdin_rx, &mut progress, a.tty).await? {
            Ended::Exit(code) => return Ok(code),
            Ended::Dropped => {
                let Some(pid) = progress.pid.clone() else { bail!("the connection closed before the process started") };
                eprint!("{}", crlf(a.tty, &format!("[podgate: connection lost, re-attaching to {pid}]")));
                ws = reattach(&client, &a.sandbox, &pid, progress.offsets).await?;
            }
        }
    }
}

fn crlf(tty: bool, line: &str) -> String {
    if tty { format!("\r\n{line}\r\n") } else { format!("{line}\n") }
}

async fn reattach(client: &Client, sandbox: &str, pid: &str, from: [u64; 2]) -> anyhow::Result<TerminalSocket> {
    let mut last = None;
    for attempt in 0..60 {
        tokio::time::sleep(Duration::from_millis(if attempt == 0 { 200 } else { 1000 })).await;
        match client.attach_process(sandbox, pid, from).await {
            Ok(ws) => return Ok(ws),
            Err(e @ podgate_client::Error::Api { status: 404 | 409, .. }) => return Err(e.into()),
            Err(e) => last = Some(e),
        }
    }
    bail!("could not re-attach to process {pid}: {}", last.map_or_else(String::new, |e| e.to_string()))
}

async fn send_json(tx: &mut (impl futures_util::Sink<Message> + Unpin), msg: &ClientMessage) -> bool {
    let text = serde_json::to_string(msg).unwrap_or_default();
    tx.send(Message::Text(text.into())).await.is_ok()
}

/// Copies the process's output out and our input in until it exits or the connection drops.
async fn pump(
    ws: TerminalSocket,
    stdin_rx: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    progress: &mut Progress,
    tty: bool,
) -> anyhow::Result<Ended> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut tx, mut rx) = ws.split();
    let mut winch = signal(SignalKind::window_change())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupts = 0;
    let mut stdin_open = true;
    // A failed send does not end the stream: the agent may have closed its side after the exit
    // message, which is still to be read. Reading decides.
    let mut sendable = true;
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let (channel, data) = b.split_first().map_or((0, &[][..]), |(c, d)| (*c, d));
                    match channel {
                        STDOUT => { stdout.write_all(data)?; stdout.flush()?; progress.offsets[0] += data.len() as u64; }
                        STDERR => { stderr.write_all(data)?; stderr.flush()?; progress.offsets[1] += data.len() as u64; }
                        _ => {}
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(&t) {
                    Ok(ServerMessage::Started { process }) => progress.pid = Some(process.id),
                    Ok(ServerMessage::Exit { exit }) => {
                        if exit.timed_out {
                            eprint!("{}", crlf(tty, "podgate: the command was killed by its timeout"));
                        }
                        return Ok(Ended::Exit(exit.exit_code & 0xff));
                    }
                    Ok(ServerMessage::Dropped { stream, bytes }) => {
                        eprint!("{}", crlf(tty, &format!("[podgate: {bytes} bytes of {stream} were dropped]")));
                    }
                    Ok(ServerMessage::Error { message }) if progress.pid.is_none() => bail!("{message}"),
                    Ok(ServerMessage::Error { message }) => eprint!("{}", crlf(tty, &format!("podgate: {message}"))),
                    Err(_) => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(Ended::Dropped),
                Some(Ok(_)) => {}
            },
            input = stdin_rx.recv(), if stdin_open && sendable => match input {
                Some(bytes) => {
                    let mut frame = Vec::with_capacity(bytes.len() + 1);
                    frame.push(STDIN);
                    frame.extend_from_slice(&bytes);
                    if tx.send(Message::Binary(frame.into())).await.is_err() {
                        sendable = false;
                    }
                }
                None => {
                    stdin_open = false;
                    if !send_json(&mut tx, &ClientMessage::StdinEnd).await {
                        sendable = false;
                    }
                }
            },
            _ = interrupt.recv() => {
                // Ctrl-C goes to the remote process; a third one gives up on it.
                interrupts += 1;
                let signal = if interrupts >= 3 { "KILL" } else { "INT" }.to_string();
                if sendable && !send_json(&mut tx, &ClientMessage::Signal { signal }).await {
                    sendable = false;
                }
            }
            _ = terminate.recv() => {
                if sendable && !send_json(&mut tx, &ClientMessage::Signal { signal: "TERM".into() }).await {
                    sendable = false;
                }
            }
            _ = winch.recv(), if tty && sendable => {
                let (cols, rows) = local_size();
                if !send_json(&mut tx, &ClientMessage::Resize { cols, rows }).await {
                    sendable = false;
                }
            }
        }
    }
}
