//! The CLI verbs: `login`, `up`, `ls`, `exec`, `enter`, `cp`, `pause`, `resume`, `down`.

mod config;
mod cp;
mod e2b;
mod enter;
mod exec;
mod forward;
mod logs;
mod output;
mod recordings;
mod snapshots;
mod ssh_config;
mod ssh_keys;
mod sync;
mod templates;
mod users;
mod volumes;

use std::collections::BTreeMap;

use anyhow::bail;
use podgate_client::Client;
use podgate_types::MemorySize;
use podgate_types::api::{CreateSandboxRequest, NetworkMode, Sidecar};
use podgate_types::bootstrap::{CodeSource, CommandLine};

pub use config::{LoginArgs, login};
pub use cp::{CpArgs, cp};
pub use e2b::{E2bArgs, e2b};
pub use enter::{EnterArgs, TerminalsArgs, enter, terminals};
pub use exec::{ExecArgs, exec};
pub use forward::{PortForwardArgs, port_forward};
pub use logs::{LogsArgs, logs};
use output::OutputFormat;
pub use recordings::{RecordingsArgs, recordings};
pub use snapshots::{ForkArgs, SnapshotArgs, fork, snapshot};
pub use ssh_config::{SshConfigArgs, ssh_config};
pub use ssh_keys::{SshKeyArgs, ssh_key};
pub use sync::{SyncArgs, sync};
pub use templates::{TemplateArgs, template};
pub use users::{KeysArgs, TokenArgs, UserArgs, keys, token, user};
pub use volumes::{LockArgs, VolumeArgs, lock, unlock, volume};

/// Where to reach the server.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// Server URL [default: from `podgate login`, else http://127.0.0.1:7070].
    #[arg(long, env = "PODGATE_URL", global = true)]
    url: Option<String>,
    /// API token [default: from `podgate login`].
    #[arg(long, env = "PODGATE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A CA certificate file (PEM) to trust for an https:// server, besides the usual roots
    /// [default: from `podgate login`].
    #[arg(long, env = "PODGATE_CA_CERT", global = true)]
    ca_cert: Option<std::path::PathBuf>,
}

impl Conn {
    fn client(&self) -> anyhow::Result<Client> {
        let saved = config::load()?;
        let url = self.url.clone().or(saved.url).unwrap_or_else(|| "http://127.0.0.1:7070".into());
        let Some(token) = self.token.clone().or(saved.token) else {
            bail!("no API token: set PODGATE_TOKEN or run `podgate login --url URL --token TOKEN`");
        };
        let ca_cert = self.ca_cert.clone().or(saved.ca_cert);
        Ok(Client::with_ca(&url, &token, ca_cert.as_deref())?)
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// `podgate up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    conn: Conn,
    /// Image [default: the server's, podgate/base:latest].
    #[arg(long)]
    image: Option<String>,
    /// Name, unique among your sandboxes [default: generated].
    #[arg(long)]
    name: Option<String>,
    /// Environment variable (repeatable); `K=` sets an empty value.
    #[arg(long = "env", short = 'e', value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// Label (repeatable).
    #[arg(long = "label", short = 'l', value_parser = parse_kv)]
    labels: Vec<(String, String)>,
    /// Seconds until the sandbox is deleted [default: the server's].
    #[arg(long)]
    ttl: Option<u64>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory limit, e.g. 512Mi or 1G.
    #[arg(long)]
    memory: Option<MemorySize>,
    /// Most the sandbox may write to its own filesystem (outside /workspace and /tmp), e.g. 5Gi
    /// [default: the server's].
    #[arg(long)]
    disk: Option<MemorySize>,
    /// Size of the /workspace volume `--persist` creates, e.g. 2Gi [default: the server's].
    #[arg(long, requires = "persist")]
    volume_size: Option<MemorySize>,
    /// Code bundle to fetch inside the sandbox (https URL of a .zip, .tar.gz or git repository).
    #[arg(long)]
    code: Option<String>,
    /// SHA-256 of the code archive.
    #[arg(long, requires = "code")]
    sha256: Option<String>,
    /// Commit of the git repository to check out.
    #[arg(long, requires = "code")]
    commit: Option<String>,
    /// Install step run in the code's folder (repeat for argv words; one line with --shell).
    #[arg(long, requires = "code")]
    install: Vec<String>,
    /// Command started in the sandbox's main terminal after the install (repeat for argv words;
    /// one line with --shell).
    #[arg(long)]
    run: Vec<String>,
    /// Run --install and --run as command lines through the sandbox shell.
    #[arg(long)]
    shell: bool,
    /// Run everything as this uid, uid:gid, or root (where the server allows root sandboxes)
    /// [default: the server's sandbox user, 1000].
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Network access: egress (public addresses only) or none [default: the server's].
    #[arg(long, value_parser = ["egress", "none"])]
    network: Option<String>,
    /// Mount the image's root filesystem read-only (/tmp and /workspace stay writable).
    #[arg(long)]
    read_only_root: bool,
    /// Record the sandbox's terminals (where the server's policy allows; see `podgate recordings`).
    #[arg(long)]
    record: bool,
    /// Keep /workspace in your volume named like the sandbox: it outlives `podgate down` and a
    /// later `podgate up --persist --name NAME` mounts it again (`podgate rm NAME --volume`
    /// deletes both).
    #[arg(long)]
    persist: bool,
    /// Keep the --persist /workspace encrypted at rest with a key derived from a passphrase
    /// (asked on the terminal, or --passphrase-file) that the server never stores; an existing
    /// encrypted volume is unlocked with it. Without --encrypt, an encrypted volume starts
    /// locked (`podgate unlock NAME`). Where the server allows it.
    #[arg(long, requires = "persist")]
    encrypt: bool,
    /// Read the --encrypt passphrase from this file (its first line).
    #[arg(long, requires = "encrypt")]
    passphrase_file: Option<std::path::PathBuf>,
    /// Pause the sandbox after this many seconds without activity; using it resumes it
    /// (0: never) [default: the server's].
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Start from one of your snapshots (see `podgate snapshot`) instead of an image.
    #[arg(long, conflicts_with = "image")]
    snapshot: Option<String>,
    /// Start from a template (see `podgate template ls`): its request, with these flags on top;
    /// a warm pool's ready sandbox when only --name, --env, --label and --ttl are given.
    #[arg(long)]
    template: Option<String>,
    /// A sidecar in the sandbox's network namespace: NAME=IMAGE (repeatable; where your sidecar
    /// policy allows).
    #[arg(long = "sidecar", value_parser = parse_kv)]
    sidecars: Vec<(String, String)>,
    /// Like --sidecar, privileged (e.g. dind=docker:dind; needs a privileged sidecar policy).
    #[arg(long = "privileged-sidecar", value_parser = parse_kv)]
    privileged_sidecars: Vec<(String, String)>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: OutputFormat,
    /// Main command started in the sandbox (after `--`).
    #[arg(last = true)]
    cmd: Vec<String>,
}

/// `podgate up`: creates a sandbox and prints its name.
pub async fn up(a: UpArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let req = CreateSandboxRequest {
        image: a.image,
        name: a.name,
        env: a.env.into_iter().collect::<BTreeMap<_, _>>(),
        cmd: (!a.cmd.is_empty()).then_some(a.cmd),
        cpu: a.cpu,
        memory: a.memory,
        disk: a.disk,
        volume_size: a.volume_size,
        encrypt: a.encrypt,
        passphrase: match a.encrypt {
            true => Some(volumes::read_passphrase(a.passphrase_file.as_deref(), true)?),
            false => None,
        },
        ttl_seconds: a.ttl,
        labels: a.labels.into_iter().collect(),
        code: a.code.map(|url| CodeSource { url, kind: None, sha256: a.sha256, commit: a.commit }),
        install: command_line(a.install, a.shell),
        command: command_line(a.run, a.shell),
        shell: a.shell,
        user: a.user,
        network: a.network.map(|n| if n == "none" { NetworkMode::None } else { NetworkMode::Egress }),
        read_only_root: a.read_only_root,
        record_terminals: a.record,
        persist: a.persist,
        idle_timeout_seconds: a.idle_timeout,
        snapshot: a.snapshot,
        template: a.template,
        sidecars: a
            .sidecars
            .into_iter()
            .map(|s| (s, false))
            .chain(a.privileged_sidecars.into_iter().map(|s| (s, true)))
            .map(|((name, image), privileged)| Sidecar { name, image, privileged, ..Default::default() })
            .collect(),
    };
    let sb = match req.name.clone() {
        // While the server waits for the sandbox to start, say what it waits for (on a cluster:
        // no node fits yet, a claim being bound, an image pulling).
        Some(name) => {
            let create = client.create(&req);
            tokio::pin!(create);
            let mut shown = None;
            loop {
                tokio::select! {
                    r = &mut create => break r?,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                        let progress = client.get(&name).await.ok().and_then(|s| s.progress);
                        if progress.is_some() && progress != shown {
                            eprintln!("{name}: waiting: {}", progress.as_deref().unwrap_or_default());
                            shown = progress;
                        }
                    }
                }
            }
        }
        None => client.create(&req).await?,
    };
    match a.output {
        OutputFormat::Json => output::print_json(&sb)?,
        OutputFormat::Text => {
            println!("{} ({}) is {}", sb.name, sb.id, sb.state);
            if sb.bootstrap.is_some() {
                println!("bootstrapping: follow it with `podgate logs {} -f`", sb.name);
            }
        }
    }
    Ok(())
}

/// Repeated words as argv, or with `shell` one word as a command line.
fn command_line(words: Vec<String>, shell: bool) -> Option<CommandLine> {
    match words.len() {
        0 => None,
        1 if shell => words.into_iter().next().map(CommandLine::Line),
        _ => Some(CommandLine::Argv(words)),
    }
}

/// `podgate ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: OutputFormat,
}

/// `podgate ls`: lists sandboxes as a table or JSON.
pub async fn ls(a: LsArgs) -> anyhow::Result<()> {
    let list = a.conn.client()?.list().await?;
    match a.output {
        OutputFormat::Json => output::print_json(&list),
        OutputFormat::Text => output::print_table(&list),
    }
}

/// `podgate down` (and `podgate rm`).
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    conn: Conn,
    /// Also delete each sandbox's persistent volume (see `up --persist`).
    #[arg(long)]
    volume: bool,
    /// Sandbox names or ids.
    #[arg(required = true)]
    sandboxes: Vec<String>,
}

/// `podgate pause` and `podgate resume`.
#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox names or ids.
    #[arg(required = true)]
    sandboxes: Vec<String>,
}

/// `podgate pause` (`resume: false`) or `podgate resume`, for each sandbox; fails if any failed.
pub async fn pause(a: PauseArgs, resume: bool) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let mut failed = 0;
    for s in &a.sandboxes {
        let r = if resume { client.resume(s).await } else { client.pause(s).await };
        match r {
            Ok(sb) => println!("{s} {}", sb.state),
            Err(e) => {
                eprintln!("podgate: {s}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} sandboxes failed", a.sandboxes.len());
    }
    Ok(())
}

/// `podgate extend`.
#[derive(clap::Args, Debug)]
pub struct ExtendArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Expire this many seconds from now.
    #[arg(long)]
    ttl: Option<u64>,
    /// Pause after this many seconds without activity (0: never).
    #[arg(long)]
    idle: Option<u64>,
}

/// `podgate extend`: moves a sandbox's expiry and/or sets its idle timeout.
pub async fn extend(a: ExtendArgs) -> anyhow::Result<()> {
    if a.ttl.is_none() && a.idle.is_none() {
        bail!("give --ttl SECONDS and/or --idle SECONDS");
    }
    let req = podgate_types::api::ExtendRequest { ttl_seconds: a.ttl, idle_timeout_seconds: a.idle };
    let sb = a.conn.client()?.extend(&a.sandbox, &req).await?;
    let expires = sb.expires_at.map(|t| t.to_string()).unwrap_or_else(|| "never".into());
    println!("{} expires {expires}, idle timeout {} s", sb.name, sb.idle_timeout_seconds);
    Ok(())
}

/// `podgate down`: deletes each sandbox; fails if any could not be deleted.
pub async fn down(a: DownArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let mut failed = 0;
    for s in &a.sandboxes {
        let r = if a.volume { client.delete_with_volume(s).await } else { client.delete(s).await };
        match r {
            Ok(()) if a.volume => println!("{s} deleted with its volume"),
            Ok(()) => println!("{s} deleted"),
            Err(e) => {
                eprintln!("podgate: {s}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} sandboxes could not be deleted", a.sandboxes.len());
    }
    Ok(())
}
