//! TLS for `https://` servers: one rustls configuration (ring) for REST calls and WebSockets,
//! trusting the Mozilla roots, the system's store and, if given, the PEM certificates of a CA
//! file (a private CA in front of a self-hosted server).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::{Error, Result};

/// The client configuration trusting the usual roots and `extra_ca`'s certificates.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // The system's store adds what its admin trusts; unreadable entries are skipped.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| Error::Transport(format!("reading CA certificates from {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Transport(format!("{} holds no PEM certificate", path.display())));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| Error::Transport(format!("a CA certificate of {} is unusable: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
