//! `podgate volume ls|rm`: the persistent volumes `podgate up --persist` keeps; `podgate
//! unlock|lock NAME` for an encrypted one, and reading its passphrase.

use podgate_types::passphrase::Passphrase;

use super::Conn;
use super::output::{OutputFormat, print_json, print_rows};

/// `podgate volume`.
#[derive(clap::Args, Debug)]
pub struct VolumeArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: VolumeCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum VolumeCmd {
    /// List your volumes and the sandbox each is mounted in.
    Ls,
    /// Delete volumes (by name or id) with their data; one mounted in a sandbox is refused.
    Rm {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
}

/// `podgate volume`.
pub async fn volume(a: VolumeArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        VolumeCmd::Ls => {
            let list = client.list_volumes().await?;
            match a.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|v| {
                            vec![
                                v.name.clone(),
                                v.id.clone(),
                                v.sandbox.clone().unwrap_or_else(|| "-".into()),
                                if v.size.0 == 0 {
                                    "-".into()
                                } else {
                                    format!("{:.2}Gi", v.size.0 as f64 / f64::from(1u32 << 30))
                                },
                                if v.encrypted { "yes" } else { "no" }.into(),
                            ]
                        })
                        .collect();
                    print_rows(&["NAME", "ID", "SANDBOX", "SIZE", "ENCRYPTED"], &rows);
                }
            }
        }
        VolumeCmd::Rm { volumes } => {
            let mut failed = 0;
            for v in &volumes {
                match client.delete_volume(v).await {
                    Ok(()) => println!("volume {v} deleted"),
                    Err(e) => {
                        eprintln!("podgate: {v}: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} volumes could not be deleted", volumes.len());
            }
        }
    }
    Ok(())
}

/// `podgate unlock` and `podgate lock`.
#[derive(clap::Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    conn: Conn,
    /// The encrypted volume (the name of its sandbox, or its id).
    volume: String,
    /// Read the passphrase from this file (its first line) instead of asking on the terminal.
    #[arg(long)]
    passphrase_file: Option<std::path::PathBuf>,
}

/// `podgate unlock NAME`: opens an encrypted workspace with its passphrase.
pub async fn unlock(a: LockArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let passphrase = read_passphrase(a.passphrase_file.as_deref(), false)?;
    let v = client.unlock_volume(&a.volume, &passphrase).await?;
    println!("volume {} unlocked", v.name);
    Ok(())
}

/// `podgate lock NAME`: locks an encrypted workspace again.
pub async fn lock(a: LockArgs) -> anyhow::Result<()> {
    let v = a.conn.client()?.lock_volume(&a.volume).await?;
    println!("volume {} locked (files still open in the sandbox stay readable until closed)", v.name);
    Ok(())
}

/// A passphrase from `file` (its first line) or asked on the terminal (twice when `confirm`).
pub fn read_passphrase(file: Option<&std::path::Path>, confirm: bool) -> anyhow::Result<Passphrase> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        return Ok(Passphrase::new(text.lines().next().unwrap_or_default()));
    }
    let first = rpassword::prompt_password("passphrase: ")
        .map_err(|e| anyhow::anyhow!("reading the passphrase from the terminal: {e} (or give --passphrase-file)"))?;
    if confirm && rpassword::prompt_password("again: ")? != first {
        anyhow::bail!("the passphrases differ");
    }
    Ok(Passphrase::new(first))
}
