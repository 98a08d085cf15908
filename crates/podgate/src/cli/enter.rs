//! `podgate enter` and `podgate terminals`: an interactive terminal in a sandbox, in raw mode,
//! following window resizes, re-attaching after a dropped connection, exiting with the remote
//! command's exit code.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::bail;
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::{Client, Message, TerminalSocket};
use podgate_types::terminal::{Control, OpenTerminalRequest, TerminalSession};
use tokio::io::AsyncReadExt as _;

use super::Conn;
use super::output::OutputFormat;

/// `podgate enter`.
#[derive(clap::Args, Debug)]
pub struct EnterArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Attach to this terminal instead of starting a new one (see `podgate terminals`); a
    /// sandbox whose bootstrap started a command opens its main terminal by default.
    #[arg(long)]
    terminal: Option<String>,
    /// Watch without typing.
    #[arg(long)]
    read_only: bool,
    /// Command to run instead of the login shell (after `--`).
    #[arg(last = true)]
    cmd: Vec<String>,
}

/// Restores the local terminal when dropped (also on errors and panics that unwind).
pub struct RawMode(bool);

impl RawMode {
    pub fn enable() -> RawMode {
        RawMode(std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

pub fn local_size() -> (u16, u16) {
    crossterm::terminal::size().ok().filter(|(c, r)| *c > 0 && *r > 0).unwrap_or((80, 24))
}

enum Ended {
    Exit(i32),
    Dropped,
}

/// `podgate enter`: returns the remote command's exit code.
pub async fn enter(a: EnterArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let (cols, rows) = local_size();
    // A sandbox whose bootstrap started a command has a main terminal: that is where to go.
    let main_terminal = match (&a.terminal, a.cmd.is_empty()) {
        (None, true) => client.get(&a.sandbox).await?.bootstrap.and_then(|b| b.terminal_id),
        _ => None,
    };
    let request = |terminal_id: Option<String>| OpenTerminalRequest {
        terminal_id,
        read_only: a.read_only,
        cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
        cols: Some(cols),
        rows: Some(rows),
        term: std::env::var("TERM").ok().filter(|t| !t.is_empty() && t.len() < 64),
        ..Default::default()
    };
    let first = match client.open_terminal(&a.sandbox, &request(a.terminal.clone().or(main_terminal.clone()))).await {
        // The main terminal has ended and is gone: a new shell instead.
        Err(e) if main_terminal.is_some() && podgate_client::is_not_found(&e) => {
            client.open_terminal(&a.sandbox, &request(None)).await?
        }
        r => r?,
    };
    let terminal_id = first.terminal_id.clone();
    let _raw = RawMode::enable();
    let (stdin_tx, mut stdin_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 || stdin_tx.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
        }
    });
    let mut session = first;
    // Connections in a row that failed to open: the first one failing, or a few after a
    // re-attach, is an error (a wrong URL or a proxy refusing WebSockets), not a dropped line.
    let (mut connected_once, mut failed) = (false, 0);
    loop {
        let ended = match client.connect_terminal(&session).await {
            Ok(ws) => {
                (connected_once, failed) = (true, 0);
                pump(ws, &mut stdin_rx, a.read_only).await?
            }
            Err(e) if !connected_once => bail!("cannot open terminal {terminal_id}: {e}"),
            Err(e) => {
                failed += 1;
                if failed >= 5 {
                    bail!("cannot re-open terminal {terminal_id} after {failed} tries: {e}");
                }
                eprint!("\r\n[podgate: {e}]\r\n");
                Ended::Dropped
            }
        };
        if let Ended::Exit(code) = ended {
            return Ok(code);
        }
        eprint!("\r\n[podgate: connection lost, re-attaching to {terminal_id}]\r\n");
        session = reattach(&client, &a, &terminal_id).await?;
    }
}

/// A new session on the same terminal, retrying for about a minute while the server is away.
async fn reattach(client: &Client, a: &EnterArgs, terminal_id: &str) -> anyhow::Result<TerminalSession> {
    let req =
        OpenTerminalRequest { terminal_id: Some(terminal_id.into()), read_only: a.read_only, ..Default::default() };
    let mut last = None;
    for attempt in 0..60 {
        tokio::time::sleep(Duration::from_millis(if attempt == 0 { 200 } else { 1000 })).await;
        match client.open_terminal(&a.sandbox, &req).await {
            Ok(s) => return Ok(s),
            // The terminal or sandbox is gone for good.
            Err(e @ podgate_client::Error::Api { status: 404 | 409, .. }) => return Err(e.into()),
            Err(e) => last = Some(e),
        }
    }
    bail!("could not re-attach to terminal {terminal_id}: {}", last.map_or_else(String::new, |e| e.to_string()))
}

/// Copies stdin to the terminal and its output to stdout until it exits or the connection drops.
async fn pump(
    ws: TerminalSocket,
    stdin_rx: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    read_only: bool,
) -> anyhow::Result<Ended> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut tx, mut rx) = ws.split();
    let mut winch = signal(SignalKind::window_change())?;
    if !read_only {
        let (cols, rows) = local_size();
        let msg = serde_json::to_string(&Control::Resize { cols, rows })?;
        tx.send(Message::Text(msg.into())).await?;
    }
    let mut stdin_open = true;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    stdout.write_all(&b)?;
                    stdout.flush()?;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Ok(Control::Exit { code }) = serde_json::from_str::<Control>(&t) {
                        return Ok(Ended::Exit(code));
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(Ended::Dropped),
                Some(Ok(_)) => {}
            },
            input = stdin_rx.recv(), if stdin_open => match input {
                Some(bytes) if !read_only => {
                    if tx.send(Message::Binary(bytes.into())).await.is_err() {
                        return Ok(Ended::Dropped);
                    }
                }
                Some(_) => {}
                // Standard input ended (a pipe): keep showing output until the command exits.
                None => stdin_open = false,
            },
            _ = winch.recv() => {
                if !read_only {
                    let (cols, rows) = local_size();
                    let msg = serde_json::to_string(&Control::Resize { cols, rows })?;
                    if tx.send(Message::Text(msg.into())).await.is_err() {
                        return Ok(Ended::Dropped);
                    }
                }
            }
        }
    }
}

/// `podgate terminals`.
#[derive(clap::Args, Debug)]
pub struct TerminalsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: OutputFormat,
}

/// `podgate terminals`: lists a sandbox's terminals.
pub async fn terminals(a: TerminalsArgs) -> anyhow::Result<()> {
    let list = a.conn.client()?.list_terminals(&a.sandbox).await?;
    match a.output {
        OutputFormat::Json => super::output::print_json(&list),
        OutputFormat::Text => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.cmd.join(" "),
                        format!("{}x{}", t.cols, t.rows),
                        t.clients.to_string(),
                        t.exit_code.map_or_else(|| "running".into(), |c| format!("exited {c}")),
                    ]
                })
                .collect();
            super::output::print_rows(&["ID", "COMMAND", "SIZE", "CLIENTS", "STATE"], &rows);
            Ok(())
        }
    }
}
