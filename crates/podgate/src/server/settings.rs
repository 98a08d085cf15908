//! Resolving the server's settings once: flags over `PODGATE_*` variables over the TOML file over
//! defaults, validated.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use podgate_core::CoreConfig;

use super::args::{LogFormat, ServerArgs};
use super::config_file::OidcFileEntry;

/// The resolved server settings.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) listen: String,
    /// `None`: SSH is off.
    pub(super) ssh_listen: Option<String>,
    pub(super) ssh: podgate_ssh::SshConfig,
    /// `None`: the E2B API is off.
    pub(super) e2b_listen: Option<String>,
    pub(super) e2b: podgate_e2b::E2bConfig,
    pub(super) data_dir: PathBuf,
    pub(super) database_url: Option<secrecy::SecretString>,
    pub(super) agent_bin: PathBuf,
    pub(super) log_format: LogFormat,
    pub(super) core: CoreConfig,
    pub(super) allowed_origins: Vec<String>,
    pub(super) trusted_proxies: Vec<ipnet::IpNet>,
    /// How long audit events and recordings are kept (`None`: forever).
    pub(super) audit_retention: Option<Duration>,
    pub(super) recording_retention: Option<Duration>,
    pub(super) web_dir: Option<PathBuf>,
    pub(super) terminal_idle_seconds: u64,
    pub(super) sandbox_network: String,
    pub(super) egress_allow: Vec<String>,
    pub(super) pids_limit: i64,
    pub(super) nofile_limit: i64,
    pub(super) oidc: Vec<podgate_core::oidc::IssuerConfig>,
    pub(super) otlp_endpoint: Option<String>,
    pub(super) runtime: crate::runtime_args::Runtime,
    pub(super) kube: podgate_kube::KubeConfig,
}

pub(super) fn resolve(mut args: ServerArgs) -> anyhow::Result<Settings> {
    let defaults = CoreConfig::default();
    let sandbox = sandbox_policy(&args)?;
    let file_issuers = std::mem::take(&mut args.oidc_file);
    let oidc = oidc_issuers(&args, file_issuers)?;
    let runtime = args.runtime.unwrap_or(crate::runtime_args::Runtime::Docker);
    let kube = crate::runtime_args::resolve(std::mem::take(&mut args.kube))?;
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let agent_bin = match args.agent_bin {
        Some(p) => p,
        None => std::env::current_exe().context("locating this binary")?.with_file_name("podgate-agent"),
    };
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let rd = podgate_core::limits::RateLimits::default();
    let rates = podgate_core::limits::RateLimits {
        per_address: args.rate_limit_per_address.unwrap_or(rd.per_address),
        per_user: args.rate_limit_per_user.unwrap_or(rd.per_user),
        creates_per_user: args.create_rate_limit.unwrap_or(rd.creates_per_user),
    };
    let qd = podgate_core::limits::QuotaDefaults::default();
    let quota = podgate_core::limits::QuotaDefaults {
        sandboxes: args.quota_sandboxes.unwrap_or(qd.sandboxes),
        cpu: match args.quota_cpu.unwrap_or(qd.cpu) {
            c if c.is_finite() && c >= 0.0 => c,
            c => bail!("--quota-cpu {c} must be a number of cores"),
        },
        memory: match args.quota_memory.as_deref() {
            None => qd.memory,
            Some(m) => m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--quota-memory")?.0,
        },
        max_ttl_seconds: args.quota_max_ttl_seconds.filter(|s| *s > 0),
        sidecars: match args.sidecars.as_deref() {
            None => qd.sidecars,
            Some(p) => p.parse().map_err(anyhow::Error::msg).context("--sidecars")?,
        },
        volumes: args.quota_volumes.unwrap_or(qd.volumes),
        disk: size_setting(args.quota_disk.as_deref(), "--quota-disk")?.unwrap_or(qd.disk),
    };
    let recording = podgate_core::config::RecordingConfig {
        policy: match args.terminal_recording.as_deref() {
            None => Default::default(),
            Some(p) => p.parse().map_err(anyhow::Error::msg).context("--terminal-recording")?,
        },
        max_bytes: match args.recording_max_size.as_deref() {
            None => podgate_core::config::RecordingConfig::default().max_bytes,
            Some(m) => {
                m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--recording-max-size")?.0
            }
        },
    };
    let core = CoreConfig {
        replica_id: defaults.replica_id.clone(),
        scratch_dir: defaults.scratch_dir.clone(),
        max_import_bytes: match args.max_import_bytes.as_deref() {
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
        default_image: args.default_image.unwrap_or(defaults.default_image),
        default_ttl: secs(args.default_ttl_seconds, defaults.default_ttl),
        max_ttl: secs(args.max_ttl_seconds, defaults.max_ttl),
        default_idle_timeout: Duration::from_secs(args.default_idle_timeout_seconds.unwrap_or(0)),
        startup_timeout: secs(args.startup_timeout_seconds, defaults.startup_timeout),
        reconcile_interval: args.reconcile_interval_ms.map_or(defaults.reconcile_interval, Duration::from_millis),
        code: podgate_core::code_source::CodePolicy {
            allow_http: args.code_allow_http.unwrap_or(false),
            allow_private: args.code_allow_private_hosts.unwrap_or(false),
            hosts: args.code_hosts.unwrap_or_default(),
            extra_ca_pem: match args.code_ca_file {
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
    let no_forwarding = args.ssh_no_forwarding.unwrap_or(false);
    let new_template = match args.ssh_new_template {
        Some(p) => {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let req: podgate_types::api::CreateSandboxRequest = serde_json::from_str(&text).with_context(|| {
                format!("{}: not a sandbox request (the JSON body of POST /v1/sandboxes)", p.display())
            })?;
            Some(req)
        }
        None => None,
    };
    let ssh_idle = args.ssh_idle_timeout_seconds.unwrap_or(3600);
    if ssh_idle == 0 {
        bail!("--ssh-idle-timeout-seconds must be at least 1");
    }
    let new_lease = args.ssh_new_lease_seconds.unwrap_or(120);
    if !(3..=86400).contains(&new_lease) {
        bail!("--ssh-new-lease-seconds {new_lease} is out of range: use 3 to 86400");
    }
    let e2b_domain = match args.e2b_domain.map(|d| d.trim_matches('.').to_ascii_lowercase()) {
        Some(d) if d.is_empty() || !d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') => {
            bail!("--e2b-domain {d:?} is not a domain name")
        }
        d => d,
    };
    Ok(Settings {
        listen: args.listen.unwrap_or_else(|| "127.0.0.1:7070".into()),
        ssh_listen: Some(args.ssh_listen.unwrap_or_else(|| "127.0.0.1:2222".into())).filter(|l| l != "off"),
        e2b_listen: Some(args.e2b_listen.unwrap_or_else(|| "127.0.0.1:3000".into())).filter(|l| l != "off"),
        e2b: podgate_e2b::E2bConfig { domain: e2b_domain },
        ssh: podgate_ssh::SshConfig {
            env_allow: args.ssh_env_allow.unwrap_or_else(|| podgate_ssh::SshConfig::default().env_allow),
            allow_local_forwarding: !(no_forwarding || args.ssh_no_local_forwarding.unwrap_or(false)),
            allow_remote_forwarding: !(no_forwarding || args.ssh_no_remote_forwarding.unwrap_or(false)),
            allow_agent_forwarding: !(no_forwarding || args.ssh_no_agent_forwarding.unwrap_or(false)),
            max_sessions_per_user: args
                .ssh_max_sessions_per_user
                .unwrap_or(podgate_ssh::SshConfig::default().max_sessions_per_user),
            new_template,
            new_lease: Duration::from_secs(new_lease),
            allow_password: args.ssh_password_auth.unwrap_or(false),
            idle_timeout: Duration::from_secs(ssh_idle),
            connections_per_minute: args
                .ssh_connection_rate
                .unwrap_or(podgate_ssh::SshConfig::default().connections_per_minute),
        },
        data_dir,
        database_url: args.database_url,
        agent_bin,
        log_format: args.log_format.unwrap_or(LogFormat::Text),
        core,
        allowed_origins: args.allowed_origins.unwrap_or_default(),
        audit_retention: days(args.audit_retention_days),
        recording_retention: days(args.recording_retention_days),
        trusted_proxies: args
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| {
                // A bare address is a one-address network.
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow::anyhow!("--trusted-proxies: {p:?} is not an address or CIDR"))
            })
            .collect::<anyhow::Result<_>>()?,
        web_dir: match args.web_dir {
            Some(d) => Some(d),
            None => std::env::current_exe()
                .ok()
                .and_then(|e| e.parent()?.parent().map(|p| p.join("share/podgate/web")))
                .filter(|d| d.join("index.html").is_file()),
        },
        terminal_idle_seconds: args.terminal_idle_seconds.unwrap_or(3600).max(1),
        sandbox_network: args.sandbox_network.unwrap_or_else(|| "podgate".into()),
        egress_allow: args
            .egress_allow
            .unwrap_or_default()
            .iter()
            .map(|c| podgate_docker::firewall::parse_cidr(c).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()
            .context("--egress-allow")?,
        oidc,
        otlp_endpoint: args.otlp_endpoint,
        runtime,
        kube,
        pids_limit: match args.pids_limit.unwrap_or(512) {
            n if n >= 16 => n,
            n => bail!("--pids-limit {n} is too low: give at least 16"),
        },
        nofile_limit: match args.nofile_limit.unwrap_or(4096) {
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
            auto_provision: args.oidc_auto_provision,
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

fn sandbox_policy(args: &ServerArgs) -> anyhow::Result<podgate_core::SandboxPolicy> {
    let d = podgate_core::SandboxPolicy::default();
    let user = match args.sandbox_user.clone() {
        None => d.user,
        Some(u) => podgate_core::sandboxes::parse_user(&u).map_err(|e| anyhow::anyhow!("--sandbox-user: {e}"))?,
    };
    if user.0 == 0 {
        bail!("--sandbox-user must not be root; use --allow-root-sandboxes and ask for root per sandbox");
    }
    let network = match args.default_network.as_deref() {
        None => d.network,
        Some("egress") => podgate_types::api::NetworkMode::Egress,
        Some("none") => podgate_types::api::NetworkMode::None,
        Some(other) => bail!("--default-network {other:?}: give egress or none"),
    };
    let default_cpu = args.default_cpu.unwrap_or(d.default_cpu);
    if !(default_cpu.is_finite() && default_cpu > 0.0) {
        bail!("--default-cpu must be a positive number of cores");
    }
    let default_memory = match args.default_memory.as_deref() {
        None => d.default_memory,
        Some(m) => m.parse::<podgate_types::MemorySize>().map_err(anyhow::Error::msg).context("--default-memory")?.0,
    };
    let disk_range = podgate_core::sandboxes::MIN_DISK..=podgate_core::sandboxes::MAX_DISK;
    let default_disk = size_setting(args.default_disk.as_deref(), "--default-disk")?.unwrap_or(d.default_disk);
    let default_volume_size =
        size_setting(args.default_volume_size.as_deref(), "--default-volume-size")?.unwrap_or(d.default_volume_size);
    if !disk_range.contains(&default_disk) || !disk_range.contains(&default_volume_size) {
        bail!("--default-disk and --default-volume-size must be from 16Mi to 16Ti");
    }
    let image_registries = args.image_registries.clone().unwrap_or(d.image_registries);
    if image_registries.iter().any(|r| r.is_empty() || r.contains('/')) {
        bail!("--image-registries: give registry hosts (host or host:port), or *");
    }
    Ok(podgate_core::SandboxPolicy {
        user,
        allow_root: args.allow_root_sandboxes.unwrap_or(false),
        allow_encrypted_workspaces: args.allow_encrypted_workspaces.unwrap_or(false),
        network,
        default_cpu,
        default_memory,
        default_disk,
        default_volume_size,
        image_registries,
    })
}

/// A size setting (`10Gi`, bytes…), if given.
fn size_setting(value: Option<&str>, flag: &str) -> anyhow::Result<Option<u64>> {
    value
        .map(|v| {
            v.parse::<podgate_types::MemorySize>().map(|m| m.0).map_err(anyhow::Error::msg).context(flag.to_string())
        })
        .transpose()
}

pub(super) fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (nix::unistd::geteuid().is_root(), home) {
        (false, Some(h)) => h.join(".local/share/podgate"),
        _ => PathBuf::from("/var/lib/podgate"),
    }
}

/// A retention in days; 0 or none is forever.
pub(super) fn days(d: Option<u64>) -> Option<Duration> {
    d.filter(|d| *d > 0).map(|d| Duration::from_secs(d.saturating_mul(86400)))
}
