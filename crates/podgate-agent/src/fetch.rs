//! Downloading a code archive over HTTP(S) to a file while hashing it. The agent connects only
//! to the addresses the server checked (no DNS lookup, no proxy, no redirects), verifies TLS
//! against the Mozilla roots and any CA the server's admin added (rustls with ring), and stops at a size limit. hyper is used
//! directly, so the workspace's reqwest stays without TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use podgate_types::bootstrap::CodeFetch;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest archive fetched.
pub const MAX_DOWNLOAD: u64 = 1 << 30;
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the whole download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// A byte stream to the code host (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

fn tls_config(extra_ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("the server's extra CA certificates: {e}"))?;
            roots.add(cert).map_err(|e| format!("the server's extra CA certificates: {e}"))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects to the first checked address that answers, with TLS for https.
async fn connect(url: &url::Url, addrs: &[SocketAddr], extra_ca_pem: Option<&str>) -> Result<Box<dyn Io>, String> {
    let mut last = "no checked address to connect to".to_string();
    for addr in addrs {
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = format!("connecting to {addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("connecting to {addr} timed out");
                continue;
            }
        };
        if url.scheme() != "https" {
            return Ok(Box::new(tcp));
        }
        let name = match url.host() {
            Some(url::Host::Domain(d)) => {
                rustls::pki_types::ServerName::try_from(d.to_string()).map_err(|e| e.to_string())?
            }
            Some(url::Host::Ipv4(a)) => rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(a).into()),
            Some(url::Host::Ipv6(a)) => rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V6(a).into()),
            None => return Err("the code url has no host".into()),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(extra_ca_pem)?));
        return match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(e)) => Err(format!("TLS with {addr}: {e}")),
            Err(_) => Err(format!("TLS with {addr} timed out")),
        };
    }
    Err(last)
}

/// Streams `code.url` into `to`; returns the SHA-256 (hex) and the size.
pub async fn download(code: &CodeFetch, to: &Path) -> Result<(String, u64), String> {
    match tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch(code, to)).await {
        Ok(r) => r,
        Err(_) => Err(format!("fetching {} took longer than {DOWNLOAD_TIMEOUT:?}", code.url)),
    }
}

async fn fetch(code: &CodeFetch, to: &Path) -> Result<(String, u64), String> {
    let url = url::Url::parse(&code.url).map_err(|e| format!("invalid code url: {e}"))?;
    let addrs: Vec<SocketAddr> = code.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let io = connect(&url, &addrs, code.ca_pem.as_deref()).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("fetching {}: {e}", code.url))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let req = hyper::Request::get(target)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, concat!("podgate-agent/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("fetching {}: {e}", code.url))?;
    let status = resp.status();
    if status.is_redirection() {
        let to = resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
        return Err(format!("{} redirects to {to}: give the final url", code.url));
    }
    if !status.is_success() {
        return Err(format!("fetching {} answered HTTP {status}", code.url));
    }
    let mut file = tokio::fs::File::create(to).await.map_err(|e| format!("{}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("fetching {} broke off: {e}", code.url))?;
        let Ok(chunk) = frame.into_data() else { continue };
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
