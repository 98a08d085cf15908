//! The client's address for rate limits and the audit trail: the connection's peer, or — when the
//! peer is a trusted proxy (`--trusted-proxies`) — the nearest address in `X-Forwarded-For` that
//! is not a trusted proxy. Nobody else can choose the address they are counted under.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address, set on every request that has a peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub IpAddr);

/// Resolves the client address of `peer` given the request's headers.
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it received from: walk from the right past trusted proxies.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // Garbage ends the walk at the last address a trusted proxy vouched for.
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Middleware: records [`ClientAddr`] for what runs after it.
pub(crate) async fn set_client_addr(
    State(trusted): State<std::sync::Arc<Vec<IpNet>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let addr = resolve(peer, req.headers(), &trusted);
        req.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_peers_forward() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(resolve(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &trusted), ip("203.0.113.9"));
        // A trusted peer: the rightmost untrusted hop, past other trusted proxies.
        let h = headers(&["1.2.3.4, 198.51.100.1", "10.1.1.1"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &trusted), ip("198.51.100.1"));
        // Only trusted hops: the leftmost of them; no header: the peer; garbage stops the walk.
        assert_eq!(resolve(ip("127.0.0.1"), &headers(&["10.2.2.2"]), &trusted), ip("10.2.2.2"));
        assert_eq!(resolve(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        assert_eq!(resolve(ip("127.0.0.1"), &headers(&["evil, 10.3.3.3"]), &trusted), ip("10.3.3.3"));
        assert_eq!(resolve(ip("::1"), &headers(&["198.51.100.1"]), &[]), ip("::1"));
    }
}
