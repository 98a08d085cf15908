//! `podgate server`: configuration (flags > `PODGATE_*` env > TOML file > defaults), start-up
//! (store, instance id, driver, admin bootstrap, crash recovery), the reconciler and the HTTP listener.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use podgate_core::sessions::SessionTokens;
use podgate_core::{Auth, CoreConfig, Metrics, Sandboxes, Terminals, ids};
use podgate_docker::{DockerConfig, DockerDriver};
use podgate_store::Store;
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
    /// TOML config file (keys as the long flags, with '_' for '-'; unknown keys are an error).
    #[arg(long, env = "PODGATE_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:7070].
    #[arg(long, env = "PODGATE_LISTEN")]
    listen: Option<String>,
    /// SSH listen address, or `off` [default: 127.0.0.1:2222].
    #[arg(long, env = "PODGATE_SSH_LISTEN")]
    ssh_listen: Option<String>,
    /// Environment variables SSH clients may set, comma-separated (`LC_*` for a prefix) [default: LANG,LC_*,TERM].
    #[arg(long, env = "PODGATE_SSH_ENV_ALLOW", value_delimiter = ',')]
    ssh_env_allow: Option<Vec<String>>,
    /// Refuse all SSH forwarding: ports both ways (-L, -R) and the ssh-agent (-A).
    #[arg(long, env = "PODGATE_SSH_NO_FORWARDING")]
    ssh_no_forwarding: bool,
    /// Refuse SSH local port forwarding (-L: connections dialled from inside the sandbox).
    #[arg(long, env = "PODGATE_SSH_NO_LOCAL_FORWARDING")]
    ssh_no_local_forwarding: bool,
    /// Refuse SSH remote port forwarding (-R: ports listened on inside the sandbox).
    #[arg(long, env = "PODGATE_SSH_NO_REMOTE_FORWARDING")]
    ssh_no_remote_forwarding: bool,
    /// Refuse SSH agent forwarding (-A).
    #[arg(long, env = "PODGATE_SSH_NO_AGENT_FORWARDING")]
    ssh_no_agent_forwarding: bool,
    /// Most SSH connections one user may have open at once [default: 20].
    #[arg(long, env = "PODGATE_SSH_MAX_SESSIONS_PER_USER")]
    ssh_max_sessions_per_user: Option<usize>,
    /// Accept an API token as the SSH password (public keys are always accepted).
    #[arg(long, env = "PODGATE_SSH_PASSWORD_AUTH")]
    ssh_password_auth: bool,
    /// Close SSH connections with no traffic for this long [default: 3600].
    #[arg(long, env = "PODGATE_SSH_IDLE_TIMEOUT_SECONDS")]
    ssh_idle_timeout_seconds: Option<u64>,
    /// New SSH connections one address may open per minute; more are closed at once (0: no
    /// limit) [default: 600].
    #[arg(long, env = "PODGATE_SSH_CONNECTION_RATE")]
    ssh_connection_rate: Option<u32>,
    /// A JSON sandbox request (the body of POST /v1/sandboxes): `ssh new@HOST` then creates a
    /// sandbox from it for the connection and deletes it when the connection ends.
    #[arg(long, env = "PODGATE_SSH_NEW_TEMPLATE")]
    ssh_new_template: Option<PathBuf>,
    /// A `new` connection's sandbox expires this long after the server last renewed it (every
    /// third of it), so it is deleted even if the server dies [default: 120].
    #[arg(long, env = "PODGATE_SSH_NEW_LEASE_SECONDS")]
    ssh_new_lease_seconds: Option<u64>,
    /// State directory: database, admin token, per-sandbox run dirs [default: /var/lib/podgate as root, else ~/.local/share/podgate].
    #[arg(long, env = "PODGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database: postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…] (several servers may share
    /// one), or sqlite://PATH [default: sqlite://DATA_DIR/podgate.db].
    #[arg(long, env = "PODGATE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The static podgate-agent binary injected into sandboxes [default: podgate-agent next to this binary].
    #[arg(long, env = "PODGATE_AGENT_BIN")]
    agent_bin: Option<PathBuf>,
    /// Image for sandboxes that name none [default: podgate/base:latest].
    #[arg(long, env = "PODGATE_DEFAULT_IMAGE")]
    default_image: Option<String>,
    /// TTL for sandboxes that ask for none [default: 86400].
    #[arg(long, env = "PODGATE_DEFAULT_TTL_SECONDS")]
    default_ttl_seconds: Option<u64>,
    /// Longest TTL a sandbox may ask for [default: 604800].
    #[arg(long, env = "PODGATE_MAX_TTL_SECONDS")]
    max_ttl_seconds: Option<u64>,
    /// Pause sandboxes that ask for no idle timeout after this long without user activity;
    /// 0 = never [default: 0].
    #[arg(long, env = "PODGATE_DEFAULT_IDLE_TIMEOUT_SECONDS")]
    default_idle_timeout_seconds: Option<u64>,
    /// How long a create waits for the sandbox's agent [default: 60].
    #[arg(long, env = "PODGATE_STARTUP_TIMEOUT_SECONDS")]
    startup_timeout_seconds: Option<u64>,
    /// Reconciler period in milliseconds [default: 5000].
    #[arg(long, env = "PODGATE_RECONCILE_INTERVAL_MS")]
    reconcile_interval_ms: Option<u64>,
    /// Log format [default: text].
    #[arg(long, env = "PODGATE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Browser origins (comma-separated, e.g. https://app.example.com) allowed to call the API
    /// (CORS, with credentials) and to open terminals, besides the server's own origin [default: none].
    #[arg(long, env = "PODGATE_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the
    /// client for rate limits and the audit trail [default: none; the header is ignored].
    #[arg(long, env = "PODGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Option<Vec<String>>,
    /// Directory of the built web UI, served at /ui/ [default: share/podgate/web next to the binary's directory, if present].
    #[arg(long, env = "PODGATE_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// A terminal with no client attached for this long is ended [default: 3600].
    #[arg(long, env = "PODGATE_TERMINAL_IDLE_SECONDS")]
    terminal_idle_seconds: Option<u64>,
    /// Let code bootstraps fetch plain http:// URLs [default: https only].
    #[arg(long, env = "PODGATE_CODE_ALLOW_HTTP")]
    code_allow_http: bool,
    /// Let code bootstraps fetch from loopback, private and link-local addresses, for tests and
    /// air-gapped installs (cloud metadata addresses stay refused) [default: refused].
    #[arg(long, env = "PODGATE_CODE_ALLOW_PRIVATE_HOSTS")]
    code_allow_private_hosts: bool,
    /// The only hosts code may come from, comma-separated (`*.example.com` for subdomains) [default: any public host].
    #[arg(long, env = "PODGATE_CODE_HOSTS", value_delimiter = ',')]
    code_hosts: Option<Vec<String>>,
    /// PEM file of CA certificates trusted for https code hosts besides the public roots (a
    /// private CA) [default: public roots only].
    #[arg(long, env = "PODGATE_CODE_CA_FILE")]
    code_ca_file: Option<PathBuf>,
    /// uid (or uid:gid) of sandboxes that name no user; never root [default: 1000:1000].
    #[arg(long, env = "PODGATE_SANDBOX_USER")]
    sandbox_user: Option<String>,
    /// Let sandboxes ask for `"user": "root"` (they keep a minimal capability set) [default: refused].
    #[arg(long, env = "PODGATE_ALLOW_ROOT_SANDBOXES")]
    allow_root_sandboxes: bool,
    /// Docker network of sandboxes with egress, created with inter-sandbox traffic off and
    /// guarded by the egress firewall [default: podgate].
    #[arg(long, env = "PODGATE_SANDBOX_NETWORK")]
    sandbox_network: Option<String>,
    /// Network of sandboxes that ask for none: egress or none [default: egress].
    #[arg(long, env = "PODGATE_DEFAULT_NETWORK")]
    default_network: Option<String>,
    /// Private IPv4 addresses or CIDRs sandboxes may reach anyway, comma-separated (the cloud
    /// metadata addresses stay blocked) [default: none].
    #[arg(long, env = "PODGATE_EGRESS_ALLOW", value_delimiter = ',')]
    egress_allow: Option<Vec<String>>,
    /// CPU limit (cores) of sandboxes that ask for none [default: 1].
    #[arg(long, env = "PODGATE_DEFAULT_CPU")]
    default_cpu: Option<f64>,
    /// Memory limit of sandboxes that ask for none, e.g. 512Mi [default: 1Gi].
    #[arg(long, env = "PODGATE_DEFAULT_MEMORY")]
    default_memory: Option<String>,
    /// Most processes a sandbox may have [default: 512].
    #[arg(long, env = "PODGATE_PIDS_LIMIT")]
    pids_limit: Option<i64>,
    /// Most open files of each process in a sandbox [default: 4096].
    #[arg(long, env = "PODGATE_NOFILE_LIMIT")]
    nofile_limit: Option<i64>,
    /// Registries sandbox and sidecar images may come from, comma-separated (`*`: any); an
    /// image from another registry is refused before the engine is asked [default: docker.io].
    #[arg(long, env = "PODGATE_IMAGE_REGISTRIES", value_delimiter = ',')]
    image_registries: Option<Vec<String>>,
    /// Which terminals are recorded (asciicast v2, in DATA_DIR/recordings): off (a sandbox
    /// asking is refused), requested (sandboxes created with record_terminals) or always [default: off].
    #[arg(long, env = "PODGATE_TERMINAL_RECORDING")]
    terminal_recording: Option<String>,
    /// Default policy for sidecars: none, unprivileged (minimal capabilities) or privileged
    /// (e.g. Docker-in-Docker); per user with `podgate user quota NAME --sidecars` [default: none].
    #[arg(long, env = "PODGATE_SIDECARS")]
    sidecars: Option<String>,
    /// Days audit events are kept; 0 keeps them forever [default: 0].
    #[arg(long, env = "PODGATE_AUDIT_RETENTION_DAYS")]
    audit_retention_days: Option<u64>,
    /// Days terminal recordings are kept after their last write; 0 keeps them forever [default: 0].
    #[arg(long, env = "PODGATE_RECORDING_RETENTION_DAYS")]
    recording_retention_days: Option<u64>,
    /// Largest size of one terminal recording, e.g. 64Mi; it stops with a marker there [default: 64Mi].
    #[arg(long, env = "PODGATE_RECORDING_MAX_SIZE")]
    recording_max_size: Option<String>,
    /// Requests a minute from one source address, before authentication; 0 = no limit [default: 6000].
    #[arg(long, env = "PODGATE_RATE_LIMIT_PER_ADDRESS")]
    rate_limit_per_address: Option<u32>,
    /// Authenticated requests a minute of one user; 0 = no limit [default: 6000].
    #[arg(long, env = "PODGATE_RATE_LIMIT_PER_USER")]
    rate_limit_per_user: Option<u32>,
    /// Sandbox creations a minute of one user; 0 = no limit [default: 10].
    #[arg(long, env = "PODGATE_CREATE_RATE_LIMIT")]
    create_rate_limit: Option<u32>,
    /// Default quota: live sandboxes per user [default: 20].
    #[arg(long, env = "PODGATE_QUOTA_SANDBOXES")]
    quota_sandboxes: Option<u32>,
    /// Default quota: CPU cores over a user's live sandboxes [default: 16].
    #[arg(long, env = "PODGATE_QUOTA_CPU")]
    quota_cpu: Option<f64>,
    /// Default quota: memory over a user's live sandboxes [default: 32Gi].
    #[arg(long, env = "PODGATE_QUOTA_MEMORY")]
    quota_memory: Option<String>,
    /// Default quota: longest TTL of a user's sandbox [default: --max-ttl-seconds].
    #[arg(long, env = "PODGATE_QUOTA_MAX_TTL_SECONDS")]
    quota_max_ttl_seconds: Option<u64>,
    /// Largest image archive a snapshot import takes, e.g. 20Gi [default: 20Gi].
    #[arg(long, env = "PODGATE_MAX_IMPORT_BYTES")]
    max_import_bytes: Option<String>,
    /// Default quota: persistent volumes a user keeps [default: 10].
    #[arg(long, env = "PODGATE_QUOTA_VOLUMES")]
    quota_volumes: Option<u32>,
    /// Accept OIDC bearer tokens from this issuer (its `iss`); keys by discovery unless
    /// --oidc-jwks-url or --oidc-jwks-file. More issuers: `[[oidc]]` tables in the config file.
    #[arg(long, env = "PODGATE_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The issuer's JWKS URL (instead of discovery).
    #[arg(long, env = "PODGATE_OIDC_JWKS_URL", requires = "oidc_issuer")]
    oidc_jwks_url: Option<String>,
    /// A JWKS file with the issuer's keys, for offline use.
    #[arg(long, env = "PODGATE_OIDC_JWKS_FILE", requires = "oidc_issuer")]
    oidc_jwks_file: Option<PathBuf>,
    /// Accepted audiences (the token's `aud` must hold one), comma-separated.
    #[arg(long, env = "PODGATE_OIDC_AUDIENCE", value_delimiter = ',', requires = "oidc_issuer")]
    oidc_audience: Option<Vec<String>>,
    /// Accepted signature algorithms [default: RS256,ES256].
    #[arg(long, env = "PODGATE_OIDC_ALGORITHMS", value_delimiter = ',', requires = "oidc_issuer")]
    oidc_algorithms: Option<Vec<String>>,
    /// Clock leeway for exp and nbf, in seconds [default: 60].
    #[arg(long, env = "PODGATE_OIDC_LEEWAY_SECONDS", requires = "oidc_issuer")]
    oidc_leeway_seconds: Option<u64>,
    /// The claim naming the user [default: sub].
    #[arg(long, env = "PODGATE_OIDC_USER_CLAIM", requires = "oidc_issuer")]
    oidc_user_claim: Option<String>,
    /// Create a user (role user) for an identity seen the first time [default: only identities
    /// named like an existing non-admin user are let in].
    #[arg(long, env = "PODGATE_OIDC_AUTO_PROVISION", requires = "oidc_issuer")]
    oidc_auto_provision: bool,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318
    /// (spans go to <URL>/v1/traces) [default: no export].
    #[arg(long, env = "PODGATE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Where sandboxes run: the local Docker Engine, or pods in a Kubernetes cluster (the
    /// --kube-* flags) [default: docker].
    #[arg(long, env = "PODGATE_RUNTIME")]
    runtime: Option<crate::runtime_args::Runtime>,
    #[command(flatten)]
    kube: crate::runtime_args::KubeArgs,
}

/// One `[[oidc]]` table of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcFileEntry {
    issuer: String,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    audience: Vec<String>,
    algorithms: Option<Vec<String>>,
    leeway_seconds: Option<u64>,
    user_claim: Option<String>,
    auto_provision: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    ssh_listen: Option<String>,
    ssh_env_allow: Option<Vec<String>>,
    ssh_no_forwarding: Option<bool>,
    ssh_no_local_forwarding: Option<bool>,
    ssh_no_remote_forwarding: Option<bool>,
    ssh_no_agent_forwarding: Option<bool>,
    ssh_max_sessions_per_user: Option<usize>,
    ssh_new_template: Option<PathBuf>,
    ssh_new_lease_seconds: Option<u64>,
    ssh_password_auth: Option<bool>,
    ssh_idle_timeout_seconds: Option<u64>,
    ssh_connection_rate: Option<u32>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    agent_bin: Option<PathBuf>,
    default_image: Option<String>,
    default_ttl_seconds: Option<u64>,
    max_ttl_seconds: Option<u64>,
    default_idle_timeout_seconds: Option<u64>,
    startup_timeout_seconds: Option<u64>,
    reconcile_interval_ms: Option<u64>,
    log_format: Option<LogFormat>,
    allowed_origins: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    web_dir: Option<PathBuf>,
    terminal_idle_seconds: Option<u64>,
    code_allow_http: Option<bool>,
    code_allow_private_hosts: Option<bool>,
    code_hosts: Option<Vec<String>>,
    code_ca_file: Option<PathBuf>,
    sandbox_user: Option<String>,
    allow_root_sandboxes: Option<bool>,
    sandbox_network: Option<String>,
    default_network: Option<String>,
    egress_allow: Option<Vec<String>>,
    default_cpu: Option<f64>,
    default_memory: Option<String>,
    pids_limit: Option<i64>,
    nofile_limit: Option<i64>,
    image_registries: Option<Vec<String>>,
    terminal_recording: Option<String>,
    recording_max_size: Option<String>,
    sidecars: Option<String>,
    audit_retention_days: Option<u64>,
    recording_retention_days: Option<u64>,
    rate_limit_per_address: Option<u32>,
    rate_limit_per_user: Option<u32>,
    create_rate_limit: Option<u32>,
    quota_sandboxes: Option<u32>,
    quota_cpu: Option<f64>,
    quota_memory: Option<String>,
    quota_max_ttl_seconds: Option<u64>,
    quota_volumes: Option<u32>,
    max_import_bytes: Option<String>,
    oidc: Option<Vec<OidcFileEntry>>,
    otlp_endpoint: Option<String>,
    runtime: Option<crate::runtime_args::Runtime>,
    kubernetes: Option<crate::runtime_args::KubeFile>,
}

/// The resolved server settings.
#[derive(Debug)]
struct Settings {
    listen: String,
    /// `None`: SSH is off.
    ssh_listen: Option<String>,
    ssh: podgate_ssh::SshConfig,
    data_dir: PathBuf,
    database_url: Option<String>,
    agent_bin: PathBuf,
    log_format: LogFormat,
    core: CoreConfig,
    allowed_origins: Vec<String>,
    trusted_proxies: Vec<ipnet::IpNet>,
    /// How long audit events and recordings are kept (`None`: forever).
    audit_retention: Option<Duration>,
    recording_retention: Option<Duration>,
    web_dir: Option<PathBuf>,
    terminal_idle_seconds: u64,
    sandbox_network: String,
    egress_allow: Vec<String>,
    pids_limit: i64,
    nofile_limit: i64,
    oidc: Vec<podgate_core::oidc::IssuerConfig>,
    otlp_endpoint: Option<String>,
    runtime: crate::runtime_args::Runtime,
    kube: podgate_kube::KubeConfig,
}

fn resolve(mut args: ServerArgs) -> anyhow::Result<Settings> {
    let mut file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let defaults = CoreConfig::default();
    let sandbox = sandbox_policy(&args, &file)?;
    let oidc = oidc_issuers(&args, file.oidc.take().unwrap_or_default())?;
    let runtime = args.runtime.or(file.runtime).unwrap_or(crate::runtime_args::Runtime::Docker);
    let kube =
        crate::runtime_args::resolve(std::mem::take(&mut args.kube), file.kubernetes.take().unwrap_or_default())?;
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir);
    let agent_bin = match args.agent_bin.or(file.agent_bin) {
        Some(p) => p,
        None => std::env::current_exe().context("locating this binary")?.with_file_name("podgate-agent"),
    };
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let rd = podgate_core::limits::RateLimits::default();
    let rates = podgate_core::limits::RateLimits {
        per_address: args.rate_limit_per_address.or(file.rate_limit_per_address).unwrap_or(rd.per_address),
        per_user: args.rate_limit_per_user.or(file.rate_limit_per_user).unwrap_or(rd.per_user),
        creates_per_user: args.create_rate_limit.or(file.create_rate_limit).unwrap_or(rd.creates_per_user),
    };
    let qd = podgate_core::limits::QuotaDefaults::default();
    let quota = podgate_core::limits::QuotaDefaults {
        sandboxes: args.quota_sandboxes.or(file.quota_sandboxes).unwrap_or(qd.sandboxes),
        cpu: match args.quota_cpu.or(file.quota_cpu).unwrap_or(qd.cpu) {
            c if c.is_finite() && c >= 0.0 => c,
            c => bail!("--quota-cpu {c} must be a number of cores"),
        },
        memory: match args.quota_memory.as_deref().or(file.quota_memory.as_deref()) {
            None => qd.memory,
            Some(m) => m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--quota-memory")?.0,
        },
        max_ttl_seconds: args.quota_max_ttl_seconds.or(file.quota_max_ttl_seconds).filter(|s| *s > 0),
        sidecars: match args.sidecars.as_deref().or(file.sidecars.as_deref()) {
            None => qd.sidecars,
            Some(p) => p.parse().map_err(anyhow::Error::msg).context("--sidecars")?,
        },
        volumes: args.quota_volumes.or(file.quota_volumes).unwrap_or(qd.volumes),
    };
    let recording = podgate_core::config::RecordingConfig {
        policy: match args.terminal_recording.as_deref().or(file.terminal_recording.as_deref()) {
            None => Default::default(),
            Some(p) => p.parse().map_err(anyhow::Error::msg).context("--terminal-recording")?,
        },
        dir: data_dir.join("recordings"),
        max_bytes: match args.recording_max_size.as_deref().or(file.recording_max_size.as_deref()) {
            None => podgate_core::config::RecordingConfig::default().max_bytes,
            Some(m) => {
                m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--recording-max-size")?.0
            }
        },
    };
    let core = CoreConfig {
        replica_id: defaults.replica_id.clone(),
        scratch_dir: defaults.scratch_dir.clone(),
        max_import_bytes: match args.max_import_bytes.as_deref().or(file.max_import_bytes.as_deref()) {
            None => defaults.max_import_bytes,
            Some(m) => {
                m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--max-import-bytes")?.0
            }
        },
        recording,
        sandbox,
        rates,
        quota,
        driver_deadlines: Default::default(),
        default_image: args.default_image.or(file.default_image).unwrap_or(defaults.default_image),
        default_ttl: secs(args.default_ttl_seconds.or(file.default_ttl_seconds), defaults.default_ttl),
        max_ttl: secs(args.max_ttl_seconds.or(file.max_ttl_seconds), defaults.max_ttl),
        default_idle_timeout: Duration::from_secs(
            args.default_idle_timeout_seconds.or(file.default_idle_timeout_seconds).unwrap_or(0),
        ),
        startup_timeout: secs(args.startup_timeout_seconds.or(file.startup_timeout_seconds), defaults.startup_timeout),
        reconcile_interval: args
            .reconcile_interval_ms
            .or(file.reconcile_interval_ms)
            .map_or(defaults.reconcile_interval, Duration::from_millis),
        code: podgate_core::code_source::CodePolicy {
            allow_http: args.code_allow_http || file.code_allow_http.unwrap_or(false),
            allow_private: args.code_allow_private_hosts || file.code_allow_private_hosts.unwrap_or(false),
            hosts: args.code_hosts.or(file.code_hosts).unwrap_or_default(),
            extra_ca_pem: match args.code_ca_file.or(file.code_ca_file) {
                None => None,
                Some(p) => {
                    let pem = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        bail!("{} holds no PEM certificate", p.display());
                    }
                    Some(pem)
                }
            },
        },
    };
    if core.reconcile_interval < Duration::from_millis(100) {
        bail!("reconcile interval must be at least 100 ms");
    }
    if core.default_ttl > core.max_ttl {
        bail!("default TTL ({:?}) exceeds the maximum TTL ({:?})", core.default_ttl, core.max_ttl);
    }
    let no_forwarding = args.ssh_no_forwarding || file.ssh_no_forwarding.unwrap_or(false);
    let new_template = match args.ssh_new_template.or(file.ssh_new_template) {
        Some(p) => {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let req: podgate_types::api::CreateSandboxRequest = serde_json::from_str(&text).with_context(|| {
                format!("{}: not a sandbox request (the JSON body of POST /v1/sandboxes)", p.display())
            })?;
            Some(req)
        }
        None => None,
    };
    let ssh_idle = args.ssh_idle_timeout_seconds.or(file.ssh_idle_timeout_seconds).unwrap_or(3600);
    if ssh_idle == 0 {
        bail!("--ssh-idle-timeout-seconds must be at least 1");
    }
    let new_lease = args.ssh_new_lease_seconds.or(file.ssh_new_lease_seconds).unwrap_or(120);
    if !(3..=86400).contains(&new_lease) {
        bail!("--ssh-new-lease-seconds {new_lease} is out of range: use 3 to 86400");
    }
    Ok(Settings {
        listen: args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:7070".into()),
        ssh_listen: Some(args.ssh_listen.or(file.ssh_listen).unwrap_or_else(|| "127.0.0.1:2222".into()))
            .filter(|l| l != "off"),
        ssh: podgate_ssh::SshConfig {
            env_allow: args
                .ssh_env_allow
                .or(file.ssh_env_allow)
                .unwrap_or_else(|| podgate_ssh::SshConfig::default().env_allow),
            allow_local_forwarding: !(no_forwarding
                || args.ssh_no_local_forwarding
                || file.ssh_no_local_forwarding.unwrap_or(false)),
            allow_remote_forwarding: !(no_forwarding
                || args.ssh_no_remote_forwarding
                || file.ssh_no_remote_forwarding.unwrap_or(false)),
            allow_agent_forwarding: !(no_forwarding
                || args.ssh_no_agent_forwarding
                || file.ssh_no_agent_forwarding.unwrap_or(false)),
            max_sessions_per_user: args
                .ssh_max_sessions_per_user
                .or(file.ssh_max_sessions_per_user)
                .unwrap_or(podgate_ssh::SshConfig::default().max_sessions_per_user),
            new_template,
            new_lease: Duration::from_secs(new_lease),
            allow_password: args.ssh_password_auth || file.ssh_password_auth.unwrap_or(false),
            idle_timeout: Duration::from_secs(ssh_idle),
            connections_per_minute: args
                .ssh_connection_rate
                .or(file.ssh_connection_rate)
                .unwrap_or(podgate_ssh::SshConfig::default().connections_per_minute),
        },
        data_dir,
        database_url: args.database_url.or(file.database_url),
        agent_bin,
        log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
        core,
        allowed_origins: args.allowed_origins.or(file.allowed_origins).unwrap_or_default(),
        audit_retention: days(args.audit_retention_days.or(file.audit_retention_days)),
        recording_retention: days(args.recording_retention_days.or(file.recording_retention_days)),
        trusted_proxies: args
            .trusted_proxies
            .or(file.trusted_proxies)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                // A bare address is a one-address network.
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow::anyhow!("--trusted-proxies: {p:?} is not an address or CIDR"))
            })
            .collect::<anyhow::Result<_>>()?,
        web_dir: match args.web_dir.or(file.web_dir) {
            Some(d) => Some(d),
            None => std::env::current_exe()
                .ok()
                .and_then(|e| e.parent()?.parent().map(|p| p.join("share/podgate/web")))
                .filter(|d| d.join("index.html").is_file()),
        },
        terminal_idle_seconds: args.terminal_idle_seconds.or(file.terminal_idle_seconds).unwrap_or(3600).max(1),
        sandbox_network: args.sandbox_network.or(file.sandbox_network).unwrap_or_else(|| "podgate".into()),
        egress_allow: args
            .egress_allow
            .or(file.egress_allow)
            .unwrap_or_default()
            .iter()
            .map(|c| podgate_docker::firewall::parse_cidr(c).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()
            .context("--egress-allow")?,
        oidc,
        otlp_endpoint: args.otlp_endpoint.or(file.otlp_endpoint),
        runtime,
        kube,
        pids_limit: match args.pids_limit.or(file.pids_limit).unwrap_or(512) {
            n if n >= 16 => n,
            n => bail!("--pids-limit {n} is too low: give at least 16"),
        },
        nofile_limit: match args.nofile_limit.or(file.nofile_limit).unwrap_or(4096) {
            n if (64..=1 << 20).contains(&n) => n,
            n => bail!("--nofile-limit {n} is out of range: give 64 to 1048576"),
        },
    })
}

/// The OIDC issuers of the config file, plus the one of the flags.
fn oidc_issuers(args: &ServerArgs, file: Vec<OidcFileEntry>) -> anyhow::Result<Vec<podgate_core::oidc::IssuerConfig>> {
    use podgate_core::oidc::{IssuerConfig, KeySource};
    let mut entries = file;
    if let Some(issuer) = &args.oidc_issuer {
        entries.push(OidcFileEntry {
            issuer: issuer.clone(),
            jwks_url: args.oidc_jwks_url.clone(),
            jwks_file: args.oidc_jwks_file.clone(),
            audience: args.oidc_audience.clone().unwrap_or_default(),
            algorithms: args.oidc_algorithms.clone(),
            leeway_seconds: args.oidc_leeway_seconds,
            user_claim: args.oidc_user_claim.clone(),
            auto_provision: Some(args.oidc_auto_provision),
        });
    }
    entries
        .into_iter()
        .map(|e| {
            let keys = match (e.jwks_url, e.jwks_file) {
                (Some(_), Some(_)) => bail!("OIDC issuer {}: give a JWKS URL or a file, not both", e.issuer),
                (Some(u), None) => KeySource::Url(u),
                (None, Some(f)) => KeySource::File(f),
                (None, None) => KeySource::Discovery,
            };
            let algorithms = e
                .algorithms
                .unwrap_or_else(|| vec!["RS256".into(), "ES256".into()])
                .iter()
                .map(|a| {
                    a.parse::<podgate_core::oidc::Algorithm>().map_err(|_| anyhow::anyhow!("unknown algorithm {a:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let cfg = IssuerConfig {
                issuer: e.issuer,
                keys,
                audience: e.audience,
                algorithms,
                leeway_seconds: e.leeway_seconds.unwrap_or(60),
                user_claim: e.user_claim.unwrap_or_else(|| "sub".into()),
                auto_provision: e.auto_provision.unwrap_or(false),
            };
            podgate_core::oidc::validate_config(&cfg).map_err(anyhow::Error::msg)?;
            Ok(cfg)
        })
        .collect()
}

fn sandbox_policy(args: &ServerArgs, file: &FileConfig) -> anyhow::Result<podgate_core::SandboxPolicy> {
    let d = podgate_core::SandboxPolicy::default();
    let user = match args.sandbox_user.clone().or(file.sandbox_user.clone()) {
        None => d.user,
        Some(u) => podgate_core::sandboxes::parse_user(&u).map_err(|e| anyhow::anyhow!("--sandbox-user: {e}"))?,
    };
    if user.0 == 0 {
        bail!("--sandbox-user must not be root; use --allow-root-sandboxes and ask for root per sandbox");
    }
    let network = match args.default_network.as_deref().or(file.default_network.as_deref()) {
        None => d.network,
        Some("egress") => podgate_types::api::NetworkMode::Egress,
        Some("none") => podgate_types::api::NetworkMode::None,
        Some(other) => bail!("--default-network {other:?}: give egress or none"),
    };
    let default_cpu = args.default_cpu.or(file.default_cpu).unwrap_or(d.default_cpu);
    if !(default_cpu.is_finite() && default_cpu > 0.0) {
        bail!("--default-cpu must be a positive number of cores");
    }
    let default_memory = match args.default_memory.as_deref().or(file.default_memory.as_deref()) {
        None => d.default_memory,
        Some(m) => m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--default-memory")?.0,
    };
    let image_registries =
        args.image_registries.clone().or(file.image_registries.clone()).unwrap_or(d.image_registries);
    if image_registries.iter().any(|r| r.is_empty() || r.contains('/')) {
        bail!("--image-registries: give registry hosts (host or host:port), or *");
    }
    Ok(podgate_core::SandboxPolicy {
        user,
        allow_root: args.allow_root_sandboxes || file.allow_root_sandboxes.unwrap_or(false),
        network,
        default_cpu,
        default_memory,
        image_registries,
    })
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (nix::unistd::geteuid().is_root(), home) {
        (false, Some(h)) => h.join(".local/share/podgate"),
        _ => PathBuf::from("/var/lib/podgate"),
    }
}

/// Log lines on stderr (text or JSON), and with an OTLP endpoint the same spans exported as
/// traces; the returned provider flushes them at shutdown.
fn init_logging(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).boxed(),
    };
    let provider = match otlp_endpoint {
        None => None,
        Some(url) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", url.trim_end_matches('/')))
                .build()
                .with_context(|| format!("the OTLP exporter for {url}"))?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name("podgate").build();
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("podgate"))
    });
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).init();
    Ok(provider)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let s = resolve(args)?;
    let traces = init_logging(s.log_format, s.otlp_endpoint.as_deref())?;
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("creating {}", s.data_dir.display()))?;
    std::fs::set_permissions(&s.data_dir, std::fs::Permissions::from_mode(0o700))?;
    let data_dir = s.data_dir.canonicalize()?;

    let database_url =
        s.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", data_dir.join("podgate.db").display()));
    let store = open_store(&database_url).await?;
    let instance = store.meta_get_or_init("instance_id", &ids::random_base32(12)).await?;
    let agent_args = vec!["--terminal-idle-seconds".into(), s.terminal_idle_seconds.to_string()];
    let driver: Arc<dyn podgate_runtime::Driver> = match s.runtime {
        crate::runtime_args::Runtime::Docker => {
            if !s.agent_bin.is_file() {
                bail!(
                    "the agent binary {} does not exist: build it with scripts/build-agent and pass --agent-bin",
                    s.agent_bin.display()
                );
            }
            let driver = DockerDriver::connect(DockerConfig {
                agent_bin: s.agent_bin.canonicalize()?,
                run_dir: data_dir.join("run"),
                instance: instance.clone(),
                agent_args,
                network: s.sandbox_network.clone(),
                egress_allow: s.egress_allow.clone(),
                pids_limit: s.pids_limit,
                nofile_limit: s.nofile_limit,
                pull_registries: s.core.sandbox.image_registries.clone(),
            })
            .await
            .context("starting the docker driver")?;
            Arc::new(driver)
        }
        crate::runtime_args::Runtime::Kubernetes => {
            let access = match s.kube.access.clone() {
                podgate_kube::Access::PortForward { .. } => {
                    podgate_kube::Access::PortForward { run_dir: data_dir.join("run") }
                }
                a => a,
            };
            let cfg = podgate_kube::KubeConfig {
                instance: instance.clone(),
                agent_args,
                access,
                egress_allow: s.egress_allow.clone(),
                startup_timeout: s.core.startup_timeout,
                ..s.kube.clone()
            };
            Arc::new(podgate_kube::KubeDriver::connect(cfg).await.context("starting the kubernetes driver")?)
        }
    };
    let auth = Auth::new(store.clone()).with_oidc(podgate_core::oidc::Oidc::new(s.oidc)?);
    if let Some(token) = auth.bootstrap_admin().await? {
        let path = data_dir.join("admin.token");
        crate::files::write_private(&path, &format!("{token}\n"))?;
        tracing::info!(path = %path.display(), "created the admin user; its API token is in this file (mode 0600)");
    }
    let metrics = Metrics::default();
    let scratch_dir = data_dir.join("tmp");
    std::fs::create_dir_all(&scratch_dir).with_context(|| format!("creating {}", scratch_dir.display()))?;
    let core = podgate_core::CoreConfig { replica_id: replica_id(&data_dir)?, scratch_dir, ..s.core };
    let sandboxes = Sandboxes::new(store.clone(), driver, core, metrics.clone());
    sandboxes.recover().await.context("recovering sandboxes after the last run")?;
    tokio::spawn(sandboxes.clone().run_reconciler());
    if s.audit_retention.is_some() || s.recording_retention.is_some() {
        tokio::spawn(enforce_retention(sandboxes.clone(), s.audit_retention, s.recording_retention));
    }
    let limiter = sandboxes.limiter().clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = limiter.purge().await {
                tracing::warn!(error = %e, "purging rate-limit counters failed");
            }
        }
    });
    let tokens = SessionTokens::load(store.clone()).await.context("loading signing keys")?;
    let terminals = Terminals::new(sandboxes.clone(), tokens.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = tokens.purge().await {
                tracing::warn!(error = %e, "purging used session tokens failed");
            }
        }
    });

    if let Some(ssh_listen) = &s.ssh_listen {
        let ssh = tokio::net::TcpListener::bind(ssh_listen)
            .await
            .with_context(|| format!("listening for SSH on {ssh_listen}"))?;
        let ssh_addr = ssh.local_addr()?;
        tracing::info!(%ssh_addr, "podgate listening for SSH on {ssh_addr}");
        crate::files::write_private(&data_dir.join("ssh.addr"), &format!("{ssh_addr}\n"))?;
        let host_key =
            podgate_ssh::load_or_create(&data_dir.join("ssh_host_ed25519_key")).context("the SSH host key")?;
        let (auth, sandboxes, cfg) = (auth.clone(), sandboxes.clone(), s.ssh.clone());
        tokio::spawn(async move {
            if let Err(e) = podgate_ssh::serve(ssh, host_key, auth, sandboxes, cfg).await {
                tracing::error!(error = %e, "the SSH server stopped");
            }
        });
    }
    let listener =
        tokio::net::TcpListener::bind(&s.listen).await.with_context(|| format!("listening on {}", s.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), instance = %instance, "podgate listening on http://{addr}");
    // Written last: its presence means the server is up (scripts and tests wait for it).
    crate::files::write_private(&data_dir.join("http.addr"), &format!("{addr}\n"))?;
    if let Some(dir) = &s.web_dir {
        tracing::info!(dir = %dir.display(), "serving the web UI at /ui/");
    }
    let app = podgate_api::router(podgate_api::AppState {
        sandboxes,
        terminals,
        auth,
        metrics,
        allowed_origins: s.allowed_origins,
        trusted_proxies: s.trusted_proxies,
        web_dir: s.web_dir,
    });
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    tracing::info!("podgate stopped; sandboxes keep running and are picked up at the next start");
    if let Some(p) = traces
        && let Err(e) = p.shutdown()
    {
        eprintln!("podgate: flushing traces failed: {e}");
    }
    Ok(())
}

/// A retention in days; 0 or none is forever.
fn days(d: Option<u64>) -> Option<Duration> {
    d.filter(|d| *d > 0).map(|d| Duration::from_secs(d.saturating_mul(86400)))
}

/// Every hour, forgets audit events and recordings past their retention.
async fn enforce_retention(sandboxes: Sandboxes, audit: Option<Duration>, recordings: Option<Duration>) {
    loop {
        if let Some(r) = audit {
            match sandboxes.audit().purge(r).await {
                Ok(n) => tracing::info!(removed = n, "purged old audit events"),
                Err(e) => tracing::warn!(error = %e, "purging audit events failed"),
            }
        }
        if let Some(r) = recordings {
            match sandboxes.purge_recordings(r).await {
                Ok(n) => tracing::info!(removed = n, "purged old terminal recordings"),
                Err(e) => tracing::warn!(error = %e, "purging terminal recordings failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Opens the database, waiting for it while it is unreachable (a server started before its
/// database comes up once the database does); a bad URL or a failed migration ends the start.
async fn open_store(url: &str) -> anyhow::Result<Store> {
    let mut wait = Duration::from_millis(500);
    loop {
        match Store::open(url).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, retry_in = ?wait, "the database is unreachable; waiting for it");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown() => bail!("stopped while waiting for the database"),
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e).context("opening the database"),
        }
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// This server's replica name, kept in `DATA/replica-id` so that a restart on the same data dir
/// is the same replica (it takes its reconciler lease back at once).
fn replica_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = ids::random_base32(12);
            crate::files::write_private(&path, &format!("{id}\n"))?;
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        args: ServerArgs,
    }

    #[test]
    fn the_kubernetes_deployments_config_file_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/podgate.toml");
        let flags = Flags::try_parse_from(["server", "--config", path.to_str().unwrap()]).unwrap();
        let s = resolve(flags.args).unwrap();
        assert_eq!(s.runtime, crate::runtime_args::Runtime::Kubernetes);
        assert_eq!(s.listen, "0.0.0.0:7070");
        assert_eq!(s.ssh_listen.as_deref(), Some("0.0.0.0:2222"));
        assert_eq!(s.kube.namespace, "podgate-sandboxes");
        assert_eq!(s.kube.server_namespace, "podgate");
        assert_eq!(s.kube.access, podgate_kube::Access::PodIp);
        assert!(s.database_url.is_none(), "the database URL comes from the Secret, not the file");
    }
}
