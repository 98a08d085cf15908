//! Forwarding through the sandbox's agent: `-L` (a `direct-tcpip` channel becomes an agent
//! tunnel dialled from inside the sandbox), `-R` (the agent listens on a TCP port inside the
//! sandbox and each connection becomes a `forwarded-tcpip` channel to the client) and `-A` (the
//! agent listens on a private Unix socket, `SSH_AUTH_SOCK`, and each connection becomes an
//! `auth-agent@openssh.com` channel to the client's ssh-agent).

use futures_util::StreamExt as _;
use podgate_core::agent_client::AgentClient;
use podgate_types::ports::ListenMessage;
use russh::Channel;
use russh::server::{Handle, Msg};
use tokio_tungstenite::tungstenite::Message;

use crate::channel::{Login, Ws, splice};

/// Opens an agent tunnel to `host:port` inside the sandbox.
pub(crate) async fn open_tunnel(login: &Login, host: &str, port: u32) -> Result<Ws, String> {
    let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or("invalid port")?;
    // The agent takes IP literals and `localhost` only; anything else is refused there.
    login.agent.tunnel(host, port).await.map_err(|e| e.to_string())
}

/// Copies bytes both ways between a forwarding channel and an agent WebSocket.
pub(crate) async fn forward(channel: Channel<Msg>, ws: Ws) {
    let (rx, tx) = channel.split();
    splice(rx, &tx, ws).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}

/// A listener open inside the sandbox.
pub(crate) struct Listener {
    /// Holds the listener open: it closes with this socket.
    control: Ws,
    id: String,
    /// `IP:PORT`, or the Unix socket's path.
    pub address: String,
    pub port: u16,
}

/// Where a listener's connections go.
#[derive(Clone)]
pub(crate) enum Destination {
    /// `forwarded-tcpip` channels for the client's `-R` forward of `address:port`.
    Tcp { address: String, port: u32 },
    /// `auth-agent@openssh.com` channels to the client's agent.
    Agent,
}

/// Opens a TCP listener on `host:port` (port 0: the kernel chooses) inside the sandbox.
pub(crate) async fn listen_tcp(agent: &AgentClient, host: &str, port: u16) -> Result<Listener, String> {
    listen(agent.listen_tcp(host, port).await.map_err(|e| e.to_string())?).await
}

/// Opens a private Unix socket inside the sandbox.
pub(crate) async fn listen_unix(agent: &AgentClient) -> Result<Listener, String> {
    listen(agent.listen_unix().await.map_err(|e| e.to_string())?).await
}

async fn listen(mut control: Ws) -> Result<Listener, String> {
    match first_message(&mut control).await? {
        ListenMessage::Listening { id, address, port } => Ok(Listener { control, id, address, port }),
        other => Err(format!("the agent answered {other:?} instead of listening")),
    }
}

/// The first frame of a listener socket, which must be a message.
async fn first_message(ws: &mut Ws) -> Result<ListenMessage, String> {
    match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).map_err(|e| format!("a bad listener message: {e}")),
        Some(Ok(other)) => Err(format!("a listener socket sent {other:?} first")),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the listener socket closed".into()),
    }
}

/// Serves a listener's connections until it or the SSH connection goes: each one is carried by
/// a new channel to the client. Aborting the task closes the listener.
pub(crate) async fn serve(mut listener: Listener, agent: AgentClient, handle: Handle, to: Destination) {
    loop {
        let next = async {
            let mut ws = agent.accept(&listener.id).await.map_err(|e| e.to_string())?;
            match first_message(&mut ws).await? {
                ListenMessage::Accepted { peer } => Ok::<_, String>((ws, peer)),
                other => Err(format!("the agent answered {other:?} instead of a connection")),
            }
        };
        tokio::select! {
            r = next => match r {
                Ok((ws, peer)) => {
                    tokio::spawn(deliver(ws, peer, handle.clone(), to.clone()));
                }
                Err(e) => {
                    tracing::info!(error = %e, address = %listener.address, "a sandbox listener stopped");
                    break;
                }
            },
            m = listener.control.next() => if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                tracing::info!(address = %listener.address, "the sandbox closed a listener");
                break;
            },
        }
    }
}

/// Opens the channel for one accepted connection and carries it.
async fn deliver(ws: Ws, peer: String, handle: Handle, to: Destination) {
    let opened = match to {
        Destination::Tcp { address, port } => {
            let (ip, peer_port) = match peer.parse::<std::net::SocketAddr>() {
                Ok(a) => (a.ip().to_string(), u32::from(a.port())),
                Err(_) => ("127.0.0.1".to_string(), 0),
            };
            handle.channel_open_forwarded_tcpip(address, port, ip, peer_port).await
        }
        Destination::Agent => handle.channel_open_agent().await,
    };
    match opened {
        Ok(channel) => forward(channel, ws).await,
        Err(e) => {
            // The client refused it (e.g. nothing listens on its side): the connection is closed.
            tracing::info!(error = %e, "the SSH client refused a forwarded connection");
            let mut ws = ws;
            let _ = ws.close(None).await;
        }
    }
}
