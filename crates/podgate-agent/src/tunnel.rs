//! Tunnels: a WebSocket whose binary frames are the bytes of a TCP connection the agent opens
//! from inside the sandbox (used by `podgate port-forward` and SSH port forwarding).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The address to connect to: an IP literal, or `localhost` (the agent does no DNS lookups).
pub fn target(host: Option<&str>, port: u16) -> Result<SocketAddr, String> {
    if port == 0 {
        return Err("port must be between 1 and 65535".into());
    }
    let ip = match host.unwrap_or("127.0.0.1") {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| format!("host {h:?} must be an IP address or localhost"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Connects to `addr`, or says why not.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect to {addr} in the sandbox: {e}")),
        Err(_) => Err(format!("connecting to {addr} in the sandbox timed out")),
    }
}

/// Copies bytes both ways between `socket` and a connection until either side closes.
pub async fn splice<S: AsyncRead + AsyncWrite + Send>(socket: WebSocket, conn: S) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut tcp_rx, mut tcp_tx) = tokio::io::split(conn);
    let upstream = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                // The client's end of input: half-close, keep the connection for the answer.
                Message::Binary(b) if b.is_empty() => {
                    let _ = tcp_tx.shutdown().await;
                }
                Message::Binary(b) if tcp_tx.write_all(&b).await.is_err() => return,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = tcp_tx.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tcp_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    // Everything the sandbox side sends is delivered before the close. When the client stops
    // sending, the sandbox side sees end of file and may still answer.
    tokio::pin!(upstream, downstream);
    tokio::select! {
        _ = &mut downstream => { let _ = tokio::time::timeout(Duration::from_secs(5), &mut upstream).await; }
        _ = &mut upstream => downstream.await,
    }
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn targets() {
        assert_eq!(target(None, 80).unwrap().to_string(), "127.0.0.1:80");
        assert_eq!(target(Some("localhost"), 8080).unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(target(Some("[::1]"), 22).unwrap().to_string(), "[::1]:22");
        assert_eq!(target(Some("10.0.0.5"), 5432).unwrap().to_string(), "10.0.0.5:5432");
        assert!(target(Some("example.com"), 80).is_err());
        assert!(target(None, 0).is_err());
    }
}
