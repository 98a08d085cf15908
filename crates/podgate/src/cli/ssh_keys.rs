//! `podgate ssh-key add|ls|rm`: the SSH public keys you log in to sandboxes with
//! (`ssh -p 2222 NAME@host`).

use std::path::PathBuf;

use anyhow::Context as _;
use podgate_types::users::AddSshKeyRequest;

use super::Conn;
use super::output::{OutputFormat, print_json, print_rows};

/// `podgate ssh-key`.
#[derive(clap::Args, Debug)]
pub struct SshKeyArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: SshKeyCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum SshKeyCmd {
    /// Register a public key (a `.pub` file; `-` reads standard input).
    Add {
        /// The public key file [default: ~/.ssh/id_ed25519.pub].
        file: Option<PathBuf>,
        /// A name for the key [default: its comment].
        #[arg(long)]
        name: Option<String>,
        /// Whose key (admins) [default: me].
        #[arg(long, default_value = "me")]
        user: String,
    },
    /// List registered keys.
    Ls {
        /// Whose keys (admins) [default: me].
        #[arg(long, default_value = "me")]
        user: String,
    },
    /// Remove a key by id.
    Rm {
        id: String,
        /// Whose key (admins) [default: me].
        #[arg(long, default_value = "me")]
        user: String,
    },
}

/// The public key line from `file` (`-`: standard input; none: `~/.ssh/id_ed25519.pub`).
fn read_key(file: Option<PathBuf>) -> anyhow::Result<String> {
    let path = match file {
        Some(p) if p.as_os_str() == "-" => return Ok(std::io::read_to_string(std::io::stdin())?),
        Some(p) => p,
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set: name the key file")?;
            PathBuf::from(home).join(".ssh/id_ed25519.pub")
        }
    };
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `podgate ssh-key`.
pub async fn ssh_key(a: SshKeyArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        SshKeyCmd::Add { file, name, user } => {
            let public_key = read_key(file)?;
            let key = client.add_ssh_key(&user, &AddSshKeyRequest { name, public_key }).await?;
            match a.output {
                OutputFormat::Json => print_json(&key)?,
                OutputFormat::Text => println!("added {} ({}) {}", key.name, key.id, key.fingerprint),
            }
        }
        SshKeyCmd::Ls { user } => {
            let list = client.ssh_keys(&user).await?;
            match a.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> =
                        list.keys.iter().map(|k| vec![k.id.clone(), k.name.clone(), k.fingerprint.clone()]).collect();
                    print_rows(&["ID", "NAME", "FINGERPRINT"], &rows);
                }
            }
        }
        SshKeyCmd::Rm { id, user } => {
            client.remove_ssh_key(&user, &id).await?;
            println!("removed {id}");
        }
    }
    Ok(())
}
