//! `podgate user …`, `podgate token …` and `podgate keys …`: manage users (admins), API tokens
//! and the server's session-token signing keys (admins).

use podgate_types::users::{CreateTokenRequest, CreateUserRequest, QuotaOverrides, TokenInfo};

use super::Conn;
use super::output::{OutputFormat, print_json, print_rows};

/// `podgate user`.
#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: UserCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum UserCmd {
    /// Create a user and print its first API token (shown once; admins only).
    Create {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// List users (admins only).
    Ls,
    /// Show a user's quota and usage (`me` for yourself); with limits, set them (admins).
    Quota {
        /// User name, id, or `me`.
        user: String,
        /// Live sandboxes at once.
        #[arg(long)]
        sandboxes: Option<u32>,
        /// CPU cores over all live sandboxes.
        #[arg(long)]
        cpu: Option<f64>,
        /// Memory over all live sandboxes, e.g. 8Gi.
        #[arg(long)]
        memory: Option<podgate_types::MemorySize>,
        /// Longest TTL of one sandbox, in seconds.
        #[arg(long)]
        max_ttl: Option<u64>,
        /// Which sidecars the user may start: none, unprivileged or privileged.
        #[arg(long)]
        sidecars: Option<podgate_types::api::SidecarPolicy>,
        /// Persistent volumes kept at once.
        #[arg(long)]
        volumes: Option<u32>,
        /// Disk held at once by sandboxes, volumes and snapshots, e.g. 50Gi.
        #[arg(long)]
        disk: Option<podgate_types::MemorySize>,
        /// Drop the user's overrides: the server's defaults apply again.
        #[arg(long, conflicts_with_all = ["sandboxes", "cpu", "memory", "max_ttl", "sidecars", "volumes", "disk"])]
        reset: bool,
    },
}

/// `podgate user`.
pub async fn user(a: UserArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        UserCmd::Create { name, admin } => {
            let req = CreateUserRequest { name, role: admin.then(|| "admin".into()) };
            let created = client.create_user(&req).await?;
            match a.output {
                OutputFormat::Json => print_json(&created)?,
                OutputFormat::Text => {
                    println!("user {} ({}, {}) created", created.user.name, created.user.id, created.user.role);
                    println!("token {} (shown once): {}", created.token.info.id, created.token.secret);
                }
            }
        }
        UserCmd::Quota { user, sandboxes, cpu, memory, max_ttl, sidecars, volumes, disk, reset } => {
            let id = user_id(&client, &user).await?;
            let set = QuotaOverrides { sandboxes, cpu, memory, max_ttl_seconds: max_ttl, sidecars, volumes, disk };
            let q = if reset || set != QuotaOverrides::default() {
                // Named limits change; the others keep their overrides.
                let mut o = if reset { QuotaOverrides::default() } else { client.quota(&id).await?.overrides };
                o.sandboxes = sandboxes.or(o.sandboxes);
                o.cpu = cpu.or(o.cpu);
                o.memory = memory.or(o.memory);
                o.max_ttl_seconds = max_ttl.or(o.max_ttl_seconds);
                o.sidecars = sidecars.or(o.sidecars);
                o.volumes = volumes.or(o.volumes);
                o.disk = disk.or(o.disk);
                client.set_quota(&id, &o).await?
            } else {
                client.quota(&id).await?
            };
            match a.output {
                OutputFormat::Json => print_json(&q)?,
                OutputFormat::Text => {
                    let gib = |m: podgate_types::MemorySize| format!("{:.2}Gi", m.0 as f64 / f64::from(1u32 << 30));
                    let rows = vec![
                        vec!["sandboxes".into(), q.usage.sandboxes.to_string(), q.limits.sandboxes.to_string()],
                        vec!["cpu".into(), q.usage.cpu.to_string(), q.limits.cpu.to_string()],
                        vec!["memory".into(), gib(q.usage.memory), gib(q.limits.memory)],
                        vec!["max ttl (s)".into(), "-".into(), q.limits.max_ttl_seconds.to_string()],
                        vec!["sidecars".into(), "-".into(), format!("{:?}", q.limits.sidecars).to_lowercase()],
                        vec!["volumes".into(), q.usage.volumes.to_string(), q.limits.volumes.to_string()],
                        vec!["disk".into(), gib(q.usage.disk), gib(q.limits.disk)],
                    ];
                    print_rows(&["LIMIT", "USED", "QUOTA"], &rows);
                }
            }
        }
        UserCmd::Ls => {
            let users = client.list_users().await?;
            match a.output {
                OutputFormat::Json => print_json(&users)?,
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> =
                        users.iter().map(|u| vec![u.name.clone(), u.id.clone(), u.role.clone()]).collect();
                    print_rows(&["NAME", "ID", "ROLE"], &rows);
                }
            }
        }
    }
    Ok(())
}

/// A user's id from a name, an id or `me` (names need the admin's user list).
async fn user_id(client: &podgate_client::Client, user: &str) -> anyhow::Result<String> {
    if user == "me" || user.starts_with("usr-") {
        return Ok(user.to_string());
    }
    let users = client.list_users().await?;
    users.into_iter().find(|u| u.name == user).map(|u| u.id).ok_or_else(|| anyhow::anyhow!("no user named {user:?}"))
}

/// `podgate token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: TokenCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum TokenCmd {
    /// Issue a token and print it (shown once).
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// It stops working after this many seconds [default: never].
        #[arg(long)]
        expires_in: Option<u64>,
        /// Whose token (a user id; admins only for others) [default: yours].
        #[arg(long, default_value = "me")]
        user: String,
    },
    /// List tokens (never their secrets).
    Ls {
        /// Whose tokens [default: yours].
        #[arg(long, default_value = "me")]
        user: String,
    },
    /// Revoke a token: it stops working at once.
    Revoke { id: String },
}

fn when(ms: Option<i64>) -> String {
    let fmt = time::format_description::well_known::Rfc3339;
    ms.and_then(|m| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000).ok())
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "-".into())
}

fn token_rows(tokens: &[TokenInfo]) {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
            vec![t.id.clone(), t.name.clone(), state.into(), when(t.expires_at), when(t.last_used_at)]
        })
        .collect();
    print_rows(&["ID", "NAME", "STATE", "EXPIRES", "LAST USED"], &rows);
}

/// `podgate token`.
pub async fn token(a: TokenArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        TokenCmd::Create { name, expires_in, user } => {
            let created =
                client.create_token(&user, &CreateTokenRequest { name, expires_in_seconds: expires_in }).await?;
            match a.output {
                OutputFormat::Json => print_json(&created)?,
                OutputFormat::Text => println!("token {} (shown once): {}", created.info.id, created.secret),
            }
        }
        TokenCmd::Ls { user } => {
            let tokens = client.list_tokens(&user).await?;
            match a.output {
                OutputFormat::Json => print_json(&tokens)?,
                OutputFormat::Text => token_rows(&tokens),
            }
        }
        TokenCmd::Revoke { id } => {
            let t = client.revoke_token(&id).await?;
            match a.output {
                OutputFormat::Json => print_json(&t)?,
                OutputFormat::Text => println!("token {} revoked", t.id),
            }
        }
    }
    Ok(())
}

/// `podgate keys`.
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: KeysCmd,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCmd {
    /// Make a new signing key current for terminal session tokens; the previous keys keep
    /// verifying for two hours (admins only).
    Rotate,
}

/// `podgate keys`.
pub async fn keys(a: KeysArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        KeysCmd::Rotate => println!("signing key {} is now current", client.rotate_signing_keys().await?),
    }
    Ok(())
}
