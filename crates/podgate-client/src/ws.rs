//! WebSockets to the server: `ws://` for an `http://` server and `wss://` (rustls, the same
//! trust as REST calls) for `https://`, at the URL's port or the scheme's default, below the
//! server URL's path.

use podgate_types::api::ErrorBody;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::{Client, Error, Result, TerminalSocket};

/// Parses and checks a server URL.
pub(crate) fn server_url(base: &str) -> Result<url::Url> {
    let bad = |why: String| {
        Error::Transport(format!("invalid server URL {base:?}: {why}; give http://HOST[:PORT] or https://HOST[:PORT]"))
    };
    let url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it has a query, a fragment or credentials".into()));
    }
    Ok(url)
}

impl Client {
    /// Opens a WebSocket to `path_and_query` on the server offering `protocols` (none if empty);
    /// with `bearer` the client's token goes in the `Authorization` header.
    pub async fn websocket(&self, path_and_query: &str, protocols: &str, bearer: bool) -> Result<TerminalSocket> {
        let mut url = server_url(&self.base)?;
        let tls = url.scheme() == "https";
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(Error::Transport(format!("invalid server URL {:?}: it names no host", self.base))),
        };
        url.set_scheme(if tls { "wss" } else { "ws" })
            .map_err(|()| Error::Transport(format!("no WebSocket URL for {}", self.base)))?;
        let mut req = format!("{}{path_and_query}", url.as_str().trim_end_matches('/'))
            .into_client_request()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let invalid = |_| Error::Transport("token is not a valid header value".into());
        if !protocols.is_empty() {
            req.headers_mut().insert("sec-websocket-protocol", protocols.parse().map_err(invalid)?);
        }
        if bearer {
            req.headers_mut().insert("authorization", format!("Bearer {}", self.token).parse().map_err(invalid)?);
        }
        let connector = match (&self.tls, tls) {
            (Some(config), true) => Connector::Rustls(config.clone()),
            (None, true) => Connector::Rustls(crate::tls::client_config(None)?),
            (_, false) => Connector::Plain,
        };
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Error::Transport(format!("cannot reach podgate at {}: {e}", self.base)))?;
        match tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let parsed = resp.body().as_deref().and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok());
                Err(match parsed {
                    Some(b) => Error::Api { status, code: b.error.code, message: b.error.message },
                    None => Error::Api {
                        status,
                        code: "websocket_refused".into(),
                        message: format!("WebSocket connection refused (HTTP {status})"),
                    },
                })
            }
            Err(e) => Err(Error::Transport(format!("WebSocket connection to {} failed: {e}", self.base))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        for ok in ["http://127.0.0.1:7070", "https://podgate.example", "https://h.example/podgate", "http://[::1]:80"] {
            assert!(server_url(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1:7070", "localhost:7070", "ftp://h", "http://", "https://u:p@h", "http://h/?x=1", ""] {
            let e = server_url(bad).unwrap_err().to_string();
            assert!(e.contains("give http://HOST[:PORT] or https://HOST[:PORT]"), "{bad}: {e}");
        }
        assert_eq!(server_url("https://h.example").unwrap().port_or_known_default(), Some(443));
        assert_eq!(server_url("http://h.example").unwrap().port_or_known_default(), Some(80));
    }
}
