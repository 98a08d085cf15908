//! `podgate volume ls|rm`: the persistent volumes `podgate up --persist` keeps.

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
                        .map(|v| vec![v.name.clone(), v.id.clone(), v.sandbox.clone().unwrap_or_else(|| "-".into())])
                        .collect();
                    print_rows(&["NAME", "ID", "SANDBOX"], &rows);
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
