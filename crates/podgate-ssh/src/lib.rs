//! podgate's SSH server: `ssh NAME@host` logs a user in (by a registered public key) to their
//! sandbox NAME, whose agent serves the channels: shells and commands (with or without a PTY),
//! signals, exit status, SFTP, and `-L`, `-R` and `-A` forwarding.

mod channel;
mod forward;
mod host_key;
mod session;
mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use podgate_core::{Auth, Sandboxes};

pub use host_key::load_or_create;

/// How the SSH server behaves.
#[derive(Clone, Debug)]
pub struct SshConfig {
    /// Environment variables a client may set (`*` at the end matches a prefix).
    pub env_allow: Vec<String>,
    /// Whether `-L` (direct-tcpip) forwarding is allowed.
    pub allow_local_forwarding: bool,
    /// Whether `-R` (tcpip-forward) forwarding is allowed.
    pub allow_remote_forwarding: bool,
    /// Whether `-A` (ssh-agent) forwarding is allowed.
    pub allow_agent_forwarding: bool,
    /// Whether an API token is accepted as the password (public keys always are).
    pub allow_password: bool,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Most SSH connections one user may have open on this server at once.
    pub max_sessions_per_user: usize,
    /// When set, logging in as [`NEW_USER`] creates a sandbox from this request for the
    /// connection, deleted when it ends.
    pub new_template: Option<podgate_types::api::CreateSandboxRequest>,
    /// A connection's sandbox expires this long after its last renewal (the connection renews
    /// it every third of this), so the reconciler deletes it if the server dies.
    pub new_lease: Duration,
    /// New connections one address may open per minute; more are closed before the handshake
    /// (0: no limit).
    pub connections_per_minute: u32,
}

/// The SSH user name that asks for a new sandbox per connection (with a template configured).
pub const NEW_USER: &str = "new";

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            env_allow: vec!["LANG".into(), "LC_*".into(), "TERM".into()],
            allow_local_forwarding: true,
            allow_remote_forwarding: true,
            allow_agent_forwarding: true,
            allow_password: false,
            idle_timeout: Duration::from_secs(3600),
            max_sessions_per_user: 20,
            new_template: None,
            new_lease: Duration::from_secs(120),
            connections_per_minute: 600,
        }
    }
}

/// What every connection's handler shares.
pub(crate) struct Shared {
    pub auth: Auth,
    pub sandboxes: Sandboxes,
    pub cfg: SshConfig,
    /// Open logged-in connections per user id.
    pub sessions: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Shared {
    /// Counts a connection of `user_id` in, unless the user is at the limit.
    pub(crate) fn enter(&self, user_id: &str) -> bool {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let n = s.entry(user_id.to_string()).or_default();
        if *n >= self.cfg.max_sessions_per_user {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts a connection of `user_id` out.
    pub(crate) fn leave(&self, user_id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = s.get_mut(user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.remove(user_id);
            }
        }
    }
}

/// Key exchanges offered: hybrid post-quantum and curve25519 first, then finite-field groups of
/// 3072 bits and more (no 2048-bit group14, no SHA-1), and the protocol's extension markers.
const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::DH_G18_SHA512,
    russh::kex::DH_G17_SHA512,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G15_SHA512,
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// MACs offered (for the CTR ciphers; the AEAD ciphers carry their own): encrypt-then-MAC only.
const MACS: &[russh::mac::Name] = &[russh::mac::HMAC_SHA512_ETM, russh::mac::HMAC_SHA256_ETM];

/// The algorithms the server offers.
pub fn preferred() -> russh::Preferred {
    russh::Preferred {
        kex: std::borrow::Cow::Borrowed(KEX),
        mac: std::borrow::Cow::Borrowed(MACS),
        ..russh::Preferred::DEFAULT
    }
}

/// Serves SSH on `listener` with `host_key` (see [`load_or_create`]) until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    host_key: russh::keys::PrivateKey,
    auth: Auth,
    sandboxes: Sandboxes,
    cfg: SshConfig,
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use russh::server::Server as _;
    let config = Arc::new(russh::server::Config {
        keys: vec![host_key],
        preferred: preferred(),
        // Every refusal takes as long, so keys and sandbox names cannot be told apart by time.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(cfg.idle_timeout),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        methods: if cfg.allow_password {
            russh::MethodSet::from(&[russh::MethodKind::PublicKey, russh::MethodKind::Password][..])
        } else {
            russh::MethodSet::from(&[russh::MethodKind::PublicKey][..])
        },
        ..Default::default()
    });
    let throttle = throttle::Throttle::new(cfg.connections_per_minute);
    let shared = Arc::new(Shared { auth, sandboxes, cfg, sessions: Default::default() });
    let mut server = Listener { shared };
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            a = listener.accept() => a,
            // Ended sessions are collected as they end.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accepting an SSH connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !throttle.admit(peer.ip()) {
            tracing::warn!(address = %peer.ip(), "SSH connection rate exceeded; connection closed");
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        let handler = server.new_client(Some(peer));
        let config = config.clone();
        sessions.spawn(async move {
            match russh::server::run_stream(config, socket, handler).await {
                Ok(session) => {
                    if let Err(e) = session.await {
                        tracing::debug!(error = ?e, "SSH connection ended with an error");
                    }
                }
                Err(e) => tracing::debug!(error = ?e, "SSH connection setup failed"),
            }
        });
    }
    // Stopping: no new connections; open ones get a moment to finish, then are closed.
    drop(listener);
    let open = sessions.len();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while sessions.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(open, "closing SSH connections at shutdown");
        sessions.shutdown().await;
    }
    Ok(())
}

/// How long open SSH connections may go on after the server was told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct Listener {
    shared: Arc<Shared>,
}

impl russh::server::Server for Listener {
    type Handler = session::Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> session::Connection {
        session::Connection::new(self.shared.clone(), peer)
    }
}
