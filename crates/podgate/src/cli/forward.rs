//! `podgate port-forward NAME [LOCAL:]REMOTE…`: listens on local ports and carries each
//! connection through a tunnel to a port inside the sandbox.

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::{Client, Message};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::Conn;

/// `podgate port-forward`.
#[derive(clap::Args, Debug)]
pub struct PortForwardArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Port pairs `LOCAL:REMOTE` (or `REMOTE` for the same number; LOCAL 0 picks a free port).
    #[arg(required = true, value_parser = parse_pair)]
    ports: Vec<(u16, u16)>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// Address to connect to inside the sandbox (an IP address or localhost).
    #[arg(long, default_value = "127.0.0.1")]
    remote_host: String,
}

fn parse_pair(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("{p:?} is not a port number"));
    match s.split_once(':') {
        Some((l, r)) => Ok((port(l)?, port(r)?))
            .and_then(|(l, r)| if r == 0 { Err("the remote port cannot be 0".to_string()) } else { Ok((l, r)) }),
        None => match port(s)? {
            0 => Err("the remote port cannot be 0".into()),
            p => Ok((p, p)),
        },
    }
}

/// Runs until interrupted.
pub async fn port_forward(a: PortForwardArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    // Fail early with the API's message if the sandbox cannot be used.
    client.get(&a.sandbox).await?;
    let mut tasks = Vec::new();
    for (local, remote) in &a.ports {
        let listener = TcpListener::bind((a.address.as_str(), *local))
            .await
            .with_context(|| format!("cannot listen on {}:{local}", a.address))?;
        println!("forwarding {} -> {}:{remote}", listener.local_addr()?, a.sandbox);
        tasks.push(tokio::spawn(serve(listener, client.clone(), a.sandbox.clone(), a.remote_host.clone(), *remote)));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        r = futures_util::future::select_all(tasks) => match r.0 {
            Ok(Err(e)) => Err(e),
            _ => bail!("a listener stopped"),
        },
    }
}

async fn serve(listener: TcpListener, client: Client, sandbox: String, host: String, port: u16) -> anyhow::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (client, sandbox, host) = (client.clone(), sandbox.clone(), host.clone());
        tokio::spawn(async move {
            if let Err(e) = carry(tcp, &client, &sandbox, &host, port).await {
                eprintln!("podgate: connection from {peer}: {e}");
            }
        });
    }
}

/// One local connection through one tunnel.
async fn carry(tcp: TcpStream, client: &Client, sandbox: &str, host: &str, port: u16) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let ws = client.open_tunnel(sandbox, Some(host), port).await?;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut tcp_rx, mut tcp_tx) = tcp.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tcp_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => ws_tx.send(Message::Binary(buf[..n].to_vec().into())).await?,
            }
        }
        // End of input is an empty frame (a half-close): the answer still comes back.
        ws_tx.send(Message::Binary(Vec::new().into())).await?;
        anyhow::Ok(())
    };
    let down = async {
        while let Some(msg) = ws_rx.next().await {
            match msg? {
                Message::Binary(b) => tcp_tx.write_all(&b).await?,
                Message::Close(_) => break,
                _ => {}
            }
        }
        tcp_tx.shutdown().await?;
        anyhow::Ok(())
    };
    // The sandbox side closing ends the connection; our side ending first waits for the answer.
    tokio::pin!(up, down);
    tokio::select! {
        d = &mut down => d,
        u = &mut up => {
            u?;
            down.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pair;

    #[test]
    fn pairs() {
        assert_eq!(parse_pair("8080"), Ok((8080, 8080)));
        assert_eq!(parse_pair("0:80"), Ok((0, 80)));
        assert!(parse_pair("80:0").is_err());
        assert!(parse_pair("x:80").is_err());
        assert!(parse_pair("70000").is_err());
    }
}
