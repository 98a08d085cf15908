//! Downloading a code archive over HTTP(S) to a file while hashing it. The agent connects only
//! to the addresses the server checked (no DNS lookup, no proxy, no redirects), verifies TLS
//! against the Mozilla roots (rustls with aws-lc-rs), and stops at a size limit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use podgate_types::bootstrap::CodeFetch;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// Largest archive fetched.
pub const MAX_DOWNLOAD: u64 = 1 << 30;

fn client(code: &CodeFetch) -> Result<reqwest::Client, String> {
    let url = reqwest::Url::parse(&code.url).map_err(|e| format!("invalid code url: {e}"))?;
    let addrs: Vec<SocketAddr> = code.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    if addrs.is_empty() {
        return Err("no checked address to fetch the code from".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(900))
        .user_agent(concat!("podgate-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.domain() {
        builder = builder.resolve_to_addrs(host, &addrs);
    }
    builder.build().map_err(|e| format!("http client: {e}"))
}

/// Streams `code.url` into `to`; returns the SHA-256 (hex) and the size.
pub async fn download(code: &CodeFetch, to: &Path) -> Result<(String, u64), String> {
    let resp = client(code)?.get(&code.url).send().await.map_err(|e| format!("fetching {}: {e}", code.url))?;
    let status = resp.status();
    if status.is_redirection() {
        let to = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
        return Err(format!("{} redirects to {to}: give the final url", code.url));
    }
    if !status.is_success() {
        return Err(format!("fetching {} answered HTTP {status}", code.url));
    }
    let mut file = tokio::fs::File::create(to).await.map_err(|e| format!("{}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("fetching {} broke off: {e}", code.url))?;
        size += chunk.len() as u64;
        if size > MAX_DOWNLOAD {
            return Err(format!("{} is larger than {MAX_DOWNLOAD} bytes", code.url));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| format!("{}: {e}", to.display()))?;
    }
    file.flush().await.map_err(|e| format!("{}: {e}", to.display()))?;
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, size))
}
