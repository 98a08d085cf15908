//! The flags of `podgate server` (each also a `PODGATE_*` variable and a config-file key).

use std::path::PathBuf;

use serde::Deserialize;

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `podgate server`; each also reads a `PODGATE_*` variable and the config file.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// TOML config file: keys are the long flags with '_' for '-' (`[kubernetes]` holds the
    /// `--kube-*` ones without `kube_`; `[[oidc]]` tables add issuers); unknown keys are an
    /// error. Flags win over variables, which win over the file.
    #[arg(long, env = "PODGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The `[[oidc]]` tables of the config file.
    #[arg(skip)]
    pub(crate) oidc_file: Vec<super::config_file::OidcFileEntry>,
    /// HTTP listen address (`:0` picks a port, written to DATA_DIR/http.addr) [default: 127.0.0.1:7070].
    #[arg(long, env = "PODGATE_LISTEN")]
    pub(crate) listen: Option<String>,
    /// SSH listen address (`:0` picks a port, written to DATA_DIR/ssh.addr), or `off` [default: 127.0.0.1:2222].
    #[arg(long, env = "PODGATE_SSH_LISTEN")]
    pub(crate) ssh_listen: Option<String>,
    /// E2B-compatible API listen address (the E2B SDKs' `E2B_API_URL` and `E2B_SANDBOX_URL`; `:0`
    /// picks a port, written to DATA_DIR/e2b.addr), or `off` [default: 127.0.0.1:3000].
    #[arg(long, env = "PODGATE_E2B_LISTEN")]
    pub(crate) e2b_listen: Option<String>,
    /// Domain under which sandboxes are reached as `PORT-SANDBOXID.DOMAIN` by the E2B SDKs (needs
    /// wildcard DNS and TLS in front) [default: none: clients set `E2B_SANDBOX_URL`].
    #[arg(long, env = "PODGATE_E2B_DOMAIN")]
    pub(crate) e2b_domain: Option<String>,
    /// Environment variables SSH clients may set, comma-separated (`LC_*` for a prefix) [default: LANG,LC_*,TERM].
    #[arg(long, env = "PODGATE_SSH_ENV_ALLOW", value_delimiter = ',')]
    pub(crate) ssh_env_allow: Option<Vec<String>>,
    /// Refuse all SSH forwarding: ports both ways (-L, -R) and the ssh-agent (-A).
    #[arg(long, env = "PODGATE_SSH_NO_FORWARDING", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) ssh_no_forwarding: Option<bool>,
    /// Refuse SSH local port forwarding (-L: connections dialled from inside the sandbox).
    #[arg(long, env = "PODGATE_SSH_NO_LOCAL_FORWARDING", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) ssh_no_local_forwarding: Option<bool>,
    /// Refuse SSH remote port forwarding (-R: ports listened on inside the sandbox).
    #[arg(long, env = "PODGATE_SSH_NO_REMOTE_FORWARDING", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) ssh_no_remote_forwarding: Option<bool>,
    /// Refuse SSH agent forwarding (-A).
    #[arg(long, env = "PODGATE_SSH_NO_AGENT_FORWARDING", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) ssh_no_agent_forwarding: Option<bool>,
    /// Most SSH connections one user may have open at once [default: 20].
    #[arg(long, env = "PODGATE_SSH_MAX_SESSIONS_PER_USER")]
    pub(crate) ssh_max_sessions_per_user: Option<usize>,
    /// Accept an API token as the SSH password (public keys are always accepted).
    #[arg(long, env = "PODGATE_SSH_PASSWORD_AUTH", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) ssh_password_auth: Option<bool>,
    /// Close SSH connections with no traffic for this long [default: 3600].
    #[arg(long, env = "PODGATE_SSH_IDLE_TIMEOUT_SECONDS")]
    pub(crate) ssh_idle_timeout_seconds: Option<u64>,
    /// New SSH connections one address may open per minute; more are closed at once (0: no
    /// limit) [default: 600].
    #[arg(long, env = "PODGATE_SSH_CONNECTION_RATE")]
    pub(crate) ssh_connection_rate: Option<u32>,
    /// A JSON sandbox request (the body of POST /v1/sandboxes): `ssh new@HOST` then creates a
    /// sandbox from it for the connection and deletes it when the connection ends.
    #[arg(long, env = "PODGATE_SSH_NEW_TEMPLATE")]
    pub(crate) ssh_new_template: Option<PathBuf>,
    /// A `new` connection's sandbox expires this long after the server last renewed it (every
    /// third of it), so it is deleted even if the server dies [default: 120].
    #[arg(long, env = "PODGATE_SSH_NEW_LEASE_SECONDS")]
    pub(crate) ssh_new_lease_seconds: Option<u64>,
    /// State directory: database, admin token, per-sandbox run dirs [default: /var/lib/podgate as root, else ~/.local/share/podgate].
    #[arg(long, env = "PODGATE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database: postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require for TLS], or
    /// sqlite://PATH. Servers with their own data dir sharing one PostgreSQL are replicas: each
    /// serves every sandbox, one at a time runs the reconciler. The server waits for an
    /// unreachable database at start and answers 503 while it is gone. Never printed
    /// [default: sqlite://DATA_DIR/podgate.db].
    #[arg(long, env = "PODGATE_DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub(crate) database_url: Option<secrecy::SecretString>,
    /// The static podgate-agent binary injected into sandboxes [default: podgate-agent next to this binary].
    #[arg(long, env = "PODGATE_AGENT_BIN")]
    pub(crate) agent_bin: Option<PathBuf>,
    /// Image for sandboxes that name none [default: podgate/base:latest].
    #[arg(long, env = "PODGATE_DEFAULT_IMAGE")]
    pub(crate) default_image: Option<String>,
    /// TTL for sandboxes that ask for none [default: 86400].
    #[arg(long, env = "PODGATE_DEFAULT_TTL_SECONDS")]
    pub(crate) default_ttl_seconds: Option<u64>,
    /// Longest TTL a sandbox may ask for [default: 604800].
    #[arg(long, env = "PODGATE_MAX_TTL_SECONDS")]
    pub(crate) max_ttl_seconds: Option<u64>,
    /// Pause sandboxes that ask for no idle timeout after this long without user activity;
    /// 0 = never [default: 0].
    #[arg(long, env = "PODGATE_DEFAULT_IDLE_TIMEOUT_SECONDS")]
    pub(crate) default_idle_timeout_seconds: Option<u64>,
    /// How long a create waits for the sandbox's agent [default: 60].
    #[arg(long, env = "PODGATE_STARTUP_TIMEOUT_SECONDS")]
    pub(crate) startup_timeout_seconds: Option<u64>,
    /// Reconciler period in milliseconds [default: 5000].
    #[arg(long, env = "PODGATE_RECONCILE_INTERVAL_MS")]
    pub(crate) reconcile_interval_ms: Option<u64>,
    /// Log format [default: text].
    #[arg(long, env = "PODGATE_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Browser origins (comma-separated, e.g. https://app.example.com) allowed to call the API
    /// (CORS, with credentials) and to open terminals, besides the server's own origin [default: none].
    #[arg(long, env = "PODGATE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub(crate) allowed_origins: Option<Vec<String>>,
    /// Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the
    /// client for rate limits and the audit trail [default: none; the header is ignored].
    #[arg(long, env = "PODGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Option<Vec<String>>,
    /// Directory of the built web UI, served at /ui/ [default: share/podgate/web next to the binary's directory, if present].
    #[arg(long, env = "PODGATE_WEB_DIR")]
    pub(crate) web_dir: Option<PathBuf>,
    /// A terminal with no client attached for this long is ended [default: 3600].
    #[arg(long, env = "PODGATE_TERMINAL_IDLE_SECONDS")]
    pub(crate) terminal_idle_seconds: Option<u64>,
    /// Let code bootstraps fetch plain http:// URLs [default: https only].
    #[arg(long, env = "PODGATE_CODE_ALLOW_HTTP", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) code_allow_http: Option<bool>,
    /// Let code bootstraps fetch from loopback, private and link-local addresses, for tests and
    /// air-gapped installs (cloud metadata addresses stay refused) [default: refused].
    #[arg(long, env = "PODGATE_CODE_ALLOW_PRIVATE_HOSTS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) code_allow_private_hosts: Option<bool>,
    /// The only hosts code may come from, comma-separated (`*.example.com` for subdomains) [default: any public host].
    #[arg(long, env = "PODGATE_CODE_HOSTS", value_delimiter = ',')]
    pub(crate) code_hosts: Option<Vec<String>>,
    /// PEM file of CA certificates trusted for https code hosts besides the public roots (a
    /// private CA) [default: public roots only].
    #[arg(long, env = "PODGATE_CODE_CA_FILE")]
    pub(crate) code_ca_file: Option<PathBuf>,
    /// uid (or uid:gid) of sandboxes that name no user; never root [default: 1000:1000].
    #[arg(long, env = "PODGATE_SANDBOX_USER")]
    pub(crate) sandbox_user: Option<String>,
    /// Let sandboxes ask for `"user": "root"` (they keep a minimal capability set) [default: refused].
    #[arg(long, env = "PODGATE_ALLOW_ROOT_SANDBOXES", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) allow_root_sandboxes: Option<bool>,
    /// Let users keep their persistent /workspace encrypted at rest (`up --persist --encrypt`),
    /// with a key derived from their passphrase that the server never stores; needs the server
    /// as root and a kernel with ext4 encryption (fscrypt).
    #[arg(long, env = "PODGATE_ALLOW_ENCRYPTED_WORKSPACES", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) allow_encrypted_workspaces: Option<bool>,
    /// Docker network of sandboxes with egress, created with inter-sandbox traffic off and
    /// guarded by the egress firewall [default: podgate].
    #[arg(long, env = "PODGATE_SANDBOX_NETWORK")]
    pub(crate) sandbox_network: Option<String>,
    /// Network of sandboxes that ask for none: egress or none [default: egress].
    #[arg(long, env = "PODGATE_DEFAULT_NETWORK")]
    pub(crate) default_network: Option<String>,
    /// Private IPv4 addresses or CIDRs sandboxes may reach anyway, comma-separated (the cloud
    /// metadata addresses stay blocked) [default: none].
    #[arg(long, env = "PODGATE_EGRESS_ALLOW", value_delimiter = ',')]
    pub(crate) egress_allow: Option<Vec<String>>,
    /// CPU limit (cores) of sandboxes that ask for none [default: 1].
    #[arg(long, env = "PODGATE_DEFAULT_CPU")]
    pub(crate) default_cpu: Option<f64>,
    /// Memory limit of sandboxes that ask for none, e.g. 512Mi [default: 1Gi].
    #[arg(long, env = "PODGATE_DEFAULT_MEMORY")]
    pub(crate) default_memory: Option<String>,
    /// Most bytes a sandbox that asks for no `disk` may write to its own filesystem, e.g. 5Gi;
    /// enforced where the engine's storage driver has quotas (see docs/SECURITY.md) [default: 10Gi].
    #[arg(long, env = "PODGATE_DEFAULT_DISK")]
    pub(crate) default_disk: Option<String>,
    /// Size of a new persistent `/workspace` that asks for no `volume_size`, e.g. 5Gi [default: 10Gi].
    #[arg(long, env = "PODGATE_DEFAULT_VOLUME_SIZE")]
    pub(crate) default_volume_size: Option<String>,
    /// Most processes a sandbox may have [default: 512].
    #[arg(long, env = "PODGATE_PIDS_LIMIT")]
    pub(crate) pids_limit: Option<i64>,
    /// Most open files of each process in a sandbox [default: 4096].
    #[arg(long, env = "PODGATE_NOFILE_LIMIT")]
    pub(crate) nofile_limit: Option<i64>,
    /// Registries sandbox and sidecar images may come from, comma-separated (`*`: any); an
    /// image from another registry is refused before the engine is asked [default: docker.io].
    #[arg(long, env = "PODGATE_IMAGE_REGISTRIES", value_delimiter = ',')]
    pub(crate) image_registries: Option<Vec<String>>,
    /// Which terminals are recorded (asciicast v2, kept in the database): off (a sandbox
    /// asking is refused), requested (sandboxes created with record_terminals) or always [default: off].
    #[arg(long, env = "PODGATE_TERMINAL_RECORDING")]
    pub(crate) terminal_recording: Option<String>,
    /// Default policy for sidecars: none, unprivileged (minimal capabilities) or privileged
    /// (e.g. Docker-in-Docker); per user with `podgate user quota NAME --sidecars` [default: none].
    #[arg(long, env = "PODGATE_SIDECARS")]
    pub(crate) sidecars: Option<String>,
    /// Days audit events are kept; 0 keeps them forever [default: 0].
    #[arg(long, env = "PODGATE_AUDIT_RETENTION_DAYS")]
    pub(crate) audit_retention_days: Option<u64>,
    /// Days terminal recordings are kept after their last write; 0 keeps them forever [default: 0].
    #[arg(long, env = "PODGATE_RECORDING_RETENTION_DAYS")]
    pub(crate) recording_retention_days: Option<u64>,
    /// Largest size of one terminal recording, e.g. 64Mi; it stops with a marker there [default: 64Mi].
    #[arg(long, env = "PODGATE_RECORDING_MAX_SIZE")]
    pub(crate) recording_max_size: Option<String>,
    /// Requests a minute from one source address, before authentication; 0 = no limit [default: 6000].
    #[arg(long, env = "PODGATE_RATE_LIMIT_PER_ADDRESS")]
    pub(crate) rate_limit_per_address: Option<u32>,
    /// Authenticated requests a minute of one user; 0 = no limit [default: 6000].
    #[arg(long, env = "PODGATE_RATE_LIMIT_PER_USER")]
    pub(crate) rate_limit_per_user: Option<u32>,
    /// Sandbox creations a minute of one user; 0 = no limit [default: 10].
    #[arg(long, env = "PODGATE_CREATE_RATE_LIMIT")]
    pub(crate) create_rate_limit: Option<u32>,
    /// Default quota: live sandboxes per user [default: 20].
    #[arg(long, env = "PODGATE_QUOTA_SANDBOXES")]
    pub(crate) quota_sandboxes: Option<u32>,
    /// Default quota: CPU cores over a user's live sandboxes [default: 16].
    #[arg(long, env = "PODGATE_QUOTA_CPU")]
    pub(crate) quota_cpu: Option<f64>,
    /// Default quota: memory over a user's live sandboxes [default: 32Gi].
    #[arg(long, env = "PODGATE_QUOTA_MEMORY")]
    pub(crate) quota_memory: Option<String>,
    /// Default quota: longest TTL of a user's sandbox [default: --max-ttl-seconds].
    #[arg(long, env = "PODGATE_QUOTA_MAX_TTL_SECONDS")]
    pub(crate) quota_max_ttl_seconds: Option<u64>,
    /// Largest image archive a snapshot import takes, e.g. 20Gi [default: 20Gi].
    #[arg(long, env = "PODGATE_MAX_IMPORT_BYTES")]
    pub(crate) max_import_bytes: Option<String>,
    /// Default quota: persistent volumes a user keeps [default: 10].
    #[arg(long, env = "PODGATE_QUOTA_VOLUMES")]
    pub(crate) quota_volumes: Option<u32>,
    /// Default quota: disk a user holds at once, over sandboxes' own filesystems, persistent
    /// volumes and snapshots [default: 100Gi].
    #[arg(long, env = "PODGATE_QUOTA_DISK")]
    pub(crate) quota_disk: Option<String>,
    /// Accept OIDC bearer tokens from this issuer (its `iss`); keys by discovery unless
    /// --oidc-jwks-url or --oidc-jwks-file. More issuers: `[[oidc]]` tables in the config file.
    #[arg(long, env = "PODGATE_OIDC_ISSUER")]
    pub(crate) oidc_issuer: Option<String>,
    /// The issuer's JWKS URL (instead of discovery).
    #[arg(long, env = "PODGATE_OIDC_JWKS_URL", requires = "oidc_issuer")]
    pub(crate) oidc_jwks_url: Option<String>,
    /// A JWKS file with the issuer's keys, for offline use.
    #[arg(long, env = "PODGATE_OIDC_JWKS_FILE", requires = "oidc_issuer")]
    pub(crate) oidc_jwks_file: Option<PathBuf>,
    /// Accepted audiences (the token's `aud` must hold one), comma-separated.
    #[arg(long, env = "PODGATE_OIDC_AUDIENCE", value_delimiter = ',', requires = "oidc_issuer")]
    pub(crate) oidc_audience: Option<Vec<String>>,
    /// Accepted signature algorithms [default: RS256,ES256].
    #[arg(long, env = "PODGATE_OIDC_ALGORITHMS", value_delimiter = ',', requires = "oidc_issuer")]
    pub(crate) oidc_algorithms: Option<Vec<String>>,
    /// Clock leeway for exp and nbf, in seconds [default: 60].
    #[arg(long, env = "PODGATE_OIDC_LEEWAY_SECONDS", requires = "oidc_issuer")]
    pub(crate) oidc_leeway_seconds: Option<u64>,
    /// The claim naming the user [default: sub].
    #[arg(long, env = "PODGATE_OIDC_USER_CLAIM", requires = "oidc_issuer")]
    pub(crate) oidc_user_claim: Option<String>,
    /// Create a user (role user) for an identity seen the first time [default: only identities
    /// named like an existing non-admin user are let in].
    #[arg(long, env = "PODGATE_OIDC_AUTO_PROVISION", requires = "oidc_issuer", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) oidc_auto_provision: Option<bool>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318
    /// (spans go to <URL>/v1/traces) [default: no export].
    #[arg(long, env = "PODGATE_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
    /// Where sandboxes run: the local Docker Engine, or pods in a Kubernetes cluster (the
    /// --kube-* flags) [default: docker].
    #[arg(long, env = "PODGATE_RUNTIME")]
    pub(crate) runtime: Option<crate::runtime_args::Runtime>,
    #[command(flatten)]
    pub(crate) kube: crate::runtime_args::KubeArgs,
}

/// A secret value: kept wrapped, so that `Debug` never prints it.
fn secret(s: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(s.into())
}
