//! `podgate server`: configuration (flags > `PODGATE_*` env > TOML file > defaults), start-up
//! (store, instance id, driver, admin bootstrap, crash recovery), the reconciler and the HTTP listener.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::serve::ListenerExt as _;
use podgate_core::sessions::SessionTokens;
use podgate_core::{Auth, Metrics, Sandboxes, Terminals, ids};
use podgate_docker::{DockerConfig, DockerDriver};
use podgate_store::Store;
use secrecy::ExposeSecret as _;

mod args;
mod config_file;
mod data_dir;
#[cfg(test)]
mod options_doc;
mod settings;
mod supervisor;

pub use args::{LogFormat, ServerArgs};
pub use config_file::ConfigFile;
use settings::resolve;

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
    data_dir::prepare(&s.data_dir)?;
    let data_dir = s.data_dir.canonicalize()?;

    let database_url = s
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_string())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("podgate.db").display()));
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
                volume_dir: data_dir.join("volumes"),
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
    sandboxes.reconciler().recover().await.context("recovering sandboxes after the last run")?;
    // Recordings now live in the database; move any an older server left on this disk.
    match sandboxes.recordings().import_dir(&data_dir.join("recordings")).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(moved = n, "moved terminal recordings from the data dir into the database"),
        Err(e) => tracing::warn!(error = %e, "moving old terminal recordings into the database failed"),
    }
    let parts = supervisor::Supervisor::default();
    parts.spawn_loop("reconciler", sandboxes.reconciler().run());
    parts.spawn_loop("waker", sandboxes.lifecycle().run_waker());
    if s.audit_retention.is_some() || s.recording_retention.is_some() {
        parts.spawn_loop("retention", enforce_retention(sandboxes.clone(), s.audit_retention, s.recording_retention));
    }
    let limiter = sandboxes.limiter().clone();
    parts.spawn_loop("rate-limit purge", async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = limiter.purge().await {
                tracing::warn!(error = %e, "purging rate-limit counters failed");
            }
        }
    });
    let tokens = SessionTokens::load(store.clone()).await.context("loading signing keys")?;
    let terminals = Terminals::new(sandboxes.clone(), tokens.clone());
    parts.spawn_loop("session-token purge", async move {
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
        parts.spawn("ssh", move |stop| async move {
            podgate_ssh::serve(ssh, host_key, auth, sandboxes, cfg, stop.cancelled_owned())
                .await
                .context("the SSH server")
        });
    }
    if let Some(e2b_listen) = &s.e2b_listen {
        let e2b = tokio::net::TcpListener::bind(e2b_listen)
            .await
            .with_context(|| format!("listening for the E2B API on {e2b_listen}"))?;
        let e2b_addr = e2b.local_addr()?;
        tracing::info!(%e2b_addr, "podgate's E2B-compatible API listening on http://{e2b_addr}");
        crate::files::write_private(&data_dir.join("e2b.addr"), &format!("{e2b_addr}\n"))?;
        let app = podgate_e2b::router(podgate_e2b::E2bState::new(sandboxes.clone(), auth.clone(), s.e2b.clone()))
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        parts.spawn("e2b", move |stop| async move {
            axum::serve(e2b.tap_io(no_delay), app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .context("the E2B API server")
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
    parts.spawn("http", move |stop| async move {
        axum::serve(listener.tap_io(no_delay), app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("the HTTP server")
    });
    tokio::select! {
        () = shutdown() => tracing::info!("stopping: HTTP, SSH, the reconciler and the purgers"),
        () = parts.failure() => {}
    }
    let stopped = parts.stop(Duration::from_secs(10)).await;
    tracing::info!("podgate stopped; sandboxes keep running and are picked up at the next start");
    if let Some(p) = traces
        && let Err(e) = p.shutdown()
    {
        eprintln!("podgate: flushing traces failed: {e}");
    }
    stopped
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
            match sandboxes.recordings().purge(r).await {
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

/// Sends small writes at once (streamed frames, WebSocket messages) instead of holding them for
/// Nagle's algorithm, which with the peer's delayed ACK adds 40 ms to a small answer that follows
/// another one.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _};

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        args: ServerArgs,
    }

    #[test]
    fn the_kubernetes_deployments_config_file_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/podgate.toml");
        let cmd = Flags::command();
        let file = ConfigFile::read(&path, &cmd).unwrap();
        let flags = Flags::from_arg_matches(&file.apply(cmd).try_get_matches_from(["server"]).unwrap()).unwrap();
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
