//! SSH session channels served by the sandbox's agent: a session channel becomes an agent process
//! stream (a shell or a command, with a PTY when the client asked for one, `SSH_AUTH_SOCK` when
//! it forwards its agent) or the agent's SFTP server. Output is flushed before the exit status,
//! which comes before EOF and close.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use podgate_core::Caller;
use podgate_core::agent_client::AgentClient;
use podgate_core::agent_requests::SshUse;
use podgate_types::process::{self, ClientMessage, ProcessSpec, PtySize, ServerMessage};
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, Sig};
use tokio_tungstenite::tungstenite::Message;

use crate::Shared;
use crate::forward;

/// Who logged in, to which sandbox.
pub(crate) struct Login {
    pub caller: Caller,
    pub sandbox_id: String,
    pub agent: AgentClient,
    /// `SSH_AUTH_SOCK` in the sandbox once the client asked for agent forwarding (`None`
    /// when it could not be opened).
    agent_socket: tokio::sync::OnceCell<Option<String>>,
    /// Tasks serving this connection's listeners (and renewing a leased sandbox), stopped
    /// when it ends.
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
    /// The sandbox was created for this connection, and goes with it.
    leased: bool,
}

impl Login {
    pub(crate) fn new(caller: Caller, sandbox_id: String, agent: AgentClient) -> Login {
        Login { caller, sandbox_id, agent, agent_socket: Default::default(), tasks: Default::default(), leased: false }
    }

    /// Marks the sandbox as the connection's own.
    pub(crate) fn leased(self) -> Login {
        Login { leased: true, ..self }
    }

    pub(crate) fn is_leased(&self) -> bool {
        self.leased
    }

    /// Keeps `task` until the connection ends.
    pub(crate) fn keep(&self, task: tokio::task::AbortHandle) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }

    /// Stops the connection's tasks (closing its listeners in the sandbox).
    pub(crate) fn end(&self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// The path of this connection's ssh-agent socket in the sandbox, opened on first use.
    async fn agent_socket(&self, handle: &Handle) -> Option<String> {
        let open = || async {
            match forward::listen_unix(&self.agent).await {
                Ok(listener) => {
                    let path = listener.address.clone();
                    let to = forward::Destination::Agent;
                    let task = tokio::spawn(forward::serve(listener, self.agent.clone(), handle.clone(), to));
                    self.keep(task.abort_handle());
                    Some(path)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the ssh-agent socket in the sandbox");
                    None
                }
            }
        };
        self.agent_socket.get_or_init(open).await.clone()
    }
}

pub(crate) type Ws = podgate_core::agent_client::AgentSocket;

/// The user's login shell, as a login shell (`$0` is the shell the agent runs the line with).
const LOGIN_SHELL: &str = "exec \"$0\" -l";

/// Whether `name` matches the allowlist (`LC_*` matches every `LC_` name).
fn env_allowed(allow: &[String], name: &str) -> bool {
    allow.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => a == name,
    })
}

/// A PTY dimension from the client, kept within what the agent accepts.
fn dim(v: u32, default: u16) -> u16 {
    if v == 0 { default } else { v.min(1000) as u16 }
}

fn sig_name(s: &Sig) -> String {
    match s {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(c) => c,
    }
    .to_string()
}

fn sig_of(n: i32) -> Sig {
    match n {
        1 => Sig::HUP,
        2 => Sig::INT,
        3 => Sig::QUIT,
        4 => Sig::ILL,
        6 => Sig::ABRT,
        8 => Sig::FPE,
        9 => Sig::KILL,
        10 => Sig::USR1,
        11 => Sig::SEGV,
        13 => Sig::PIPE,
        14 => Sig::ALRM,
        15 => Sig::TERM,
        other => Sig::Custom(other.to_string()),
    }
}

fn text(m: &ClientMessage) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// Serves one session channel until its program ends or the client goes.
pub(crate) async fn session(channel: Channel<Msg>, login: Arc<Login>, shared: Arc<Shared>, handle: Handle) {
    let id = channel.id();
    let (mut rx, tx) = channel.split();
    let mut pty: Option<(String, u16, u16)> = None;
    let mut env = BTreeMap::new();
    // Requests come first; the shell or exec request names the program.
    let command = loop {
        match rx.wait().await {
            Some(ChannelMsg::RequestPty { term, col_width, row_height, .. }) => {
                pty = Some((term, dim(col_width, 80), dim(row_height, 24)));
            }
            Some(ChannelMsg::SetEnv { variable_name, variable_value, .. }) => {
                if env_allowed(&shared.cfg.env_allow, &variable_name) {
                    env.insert(variable_name, variable_value);
                }
            }
            Some(ChannelMsg::AgentForward { .. }) if shared.cfg.allow_agent_forwarding => {
                if let Some(path) = login.agent_socket(&handle).await {
                    let what = SshUse::AgentForward { socket: &path };
                    shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, what).await;
                    env.insert("SSH_AUTH_SOCK".into(), path);
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => break None,
            Some(ChannelMsg::Exec { command, .. }) => break Some(String::from_utf8_lossy(&command).into_owned()),
            Some(ChannelMsg::RequestSubsystem { name, .. }) if name == "sftp" => {
                shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, SshUse::Sftp).await;
                let code = match login.agent.sftp().await {
                    Ok(ws) => {
                        splice(rx, &tx, ws).await;
                        0
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the sandbox's SFTP server cannot be reached");
                        255
                    }
                };
                // Like sshd's sftp-server ending: scp counts a missing exit status as a failure.
                let _ = tx.exit_status(code).await;
                let _ = tx.eof().await;
                let _ = tx.close().await;
                return;
            }
            Some(ChannelMsg::Close | ChannelMsg::RequestSubsystem { .. }) | None => {
                let _ = tx.close().await;
                return;
            }
            Some(_) => {}
        }
    };
    let command_line = command.as_deref().map(|c| c.chars().take(300).collect::<String>());
    let what = match &command_line {
        Some(c) => SshUse::Exec { command: c },
        None => SshUse::Shell,
    };
    shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, what).await;
    if let Some((term, _, _)) = &pty {
        env.insert("TERM".into(), term.clone());
    }
    let spec = ProcessSpec {
        argv: vec![command.unwrap_or_else(|| LOGIN_SHELL.into())],
        shell: true,
        env,
        pty: pty.map(|(_, cols, rows)| PtySize { cols, rows }),
        stdin: true,
        ..Default::default()
    };
    let mut ws = match login.agent.process_stream().await {
        Ok(ws) => ws,
        Err(e) => {
            let _ = tx.extended_data_bytes(1, format!("podgate: the sandbox cannot be reached: {e}\r\n")).await;
            let _ = tx.exit_status(255).await;
            let _ = tx.eof().await;
            let _ = tx.close().await;
            return;
        }
    };
    if ws.send(text(&ClientMessage::Start { process: spec })).await.is_err() {
        let _ = tx.close().await;
        return;
    }
    let mut input_open = true;
    let broken = loop {
        tokio::select! {
            msg = rx.wait() => {
                let out = match msg {
                    Some(ChannelMsg::Data { data }) => {
                        let mut frame = Vec::with_capacity(data.len() + 1);
                        frame.push(process::STDIN);
                        frame.extend_from_slice(&data);
                        Some(Message::Binary(frame.into()))
                    }
                    Some(ChannelMsg::Eof) => Some(text(&ClientMessage::StdinEnd)),
                    Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                        Some(text(&ClientMessage::Resize { cols: dim(col_width, 80), rows: dim(row_height, 24) }))
                    }
                    Some(ChannelMsg::Signal { signal }) => Some(text(&ClientMessage::Signal { signal: sig_name(&signal) })),
                    Some(ChannelMsg::Close) | None => {
                        // The client is gone: hang up on the program, as sshd does.
                        let _ = ws.send(text(&ClientMessage::Signal { signal: "HUP".into() })).await;
                        let _ = ws.close(None).await;
                        return;
                    }
                    Some(_) => None,
                };
                // The agent may have finished and closed its side already: what it sent before
                // (the rest of the output, the exit status) is still to be read below.
                if let Some(m) = out
                    && input_open
                    && let Err(e) = ws.send(m).await
                {
                    tracing::debug!(error = %e, "the process stream takes no more input");
                    input_open = false;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let data = b.slice(1..);
                    let sent = if b[0] == process::STDERR {
                        tx.extended_data_bytes(1, data).await
                    } else {
                        tx.data_bytes(data).await
                    };
                    if sent.is_err() {
                        let _ = ws.send(text(&ClientMessage::Signal { signal: "HUP".into() })).await;
                        return;
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(&t) {
                    Ok(ServerMessage::Exit { exit }) => {
                        match exit.signal {
                            Some(n) => {
                                let _ = handle.exit_signal_request(id, sig_of(n), false, String::new(), String::new()).await;
                            }
                            None => {
                                let _ = tx.exit_status(exit.exit_code as u32).await;
                            }
                        }
                        let _ = tx.eof().await;
                        let _ = tx.close().await;
                        return;
                    }
                    Ok(ServerMessage::Error { message }) => {
                        tracing::info!(%message, "the agent refused an SSH channel's request");
                        let _ = tx.extended_data_bytes(1, format!("podgate: {message}\r\n")).await;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(c))) => break format!("closed ({c:?})"),
                Some(Err(e)) => break e.to_string(),
                None => break "ended".to_string(),
                Some(Ok(_)) => {}
            },
        }
    };
    // The stream broke without an exit status.
    tracing::warn!(%broken, "an SSH channel's process stream ended without an exit status");
    let _ = tx.extended_data_bytes(1, format!("podgate: the sandbox's process stream broke: {broken}\r\n")).await;
    let _ = tx.exit_status(255).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}

/// Copies bytes both ways between a channel and a WebSocket of binary frames, until either ends.
pub(crate) async fn splice(mut rx: russh::ChannelReadHalf, tx: &russh::ChannelWriteHalf<Msg>, mut ws: Ws) {
    loop {
        tokio::select! {
            msg = rx.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if ws.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Binary(b))) => {
                    if tx.data_bytes(b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = ws.close(None).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_allowlist_matches_names_and_prefixes() {
        let allow = vec!["LANG".to_string(), "LC_*".to_string(), "TERM".to_string()];
        for ok in ["LANG", "LC_ALL", "LC_CTYPE", "TERM"] {
            assert!(super::env_allowed(&allow, ok), "{ok}");
        }
        for no in ["LD_PRELOAD", "PATH", "LANGUAGE", "TERMINFO"] {
            assert!(!super::env_allowed(&allow, no), "{no}");
        }
    }
}
