//! `podgate snapshot create|ls|rm|export|import` (also `podgate image …`) and `podgate fork`: sandboxes' filesystems saved as your
//! images (`podgate up --snapshot NAME` starts from one).

use super::Conn;
use super::output::{OutputFormat, print_json, print_rows};

/// `podgate snapshot`.
#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: SnapshotCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum SnapshotCmd {
    /// Save a sandbox's filesystem (not its memory, /tmp or volume) as a snapshot.
    Create {
        /// Sandbox name or id.
        sandbox: String,
        /// The snapshot's name [default: the sandbox's name and a suffix].
        #[arg(long)]
        name: Option<String>,
    },
    /// List your snapshots.
    Ls,
    /// Delete snapshots (by name or id).
    Rm {
        #[arg(required = true)]
        snapshots: Vec<String>,
    },
    /// Write a snapshot as an image archive (`docker save` format) to a file.
    Export {
        snapshot: String,
        /// The archive to write.
        #[arg(long, short = 'f')]
        file: std::path::PathBuf,
    },
    /// Import an image archive (`docker save` format, one image) as a snapshot of yours.
    Import {
        /// The archive.
        file: std::path::PathBuf,
        /// The snapshot's name.
        #[arg(long)]
        name: String,
    },
}

/// `podgate snapshot`.
pub async fn snapshot(a: SnapshotArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        SnapshotCmd::Create { sandbox, name } => {
            let s = client.snapshot(&sandbox, name.as_deref()).await?;
            match a.output {
                OutputFormat::Json => print_json(&s)?,
                OutputFormat::Text => println!("snapshot {} ({}) of {sandbox}", s.name, s.id),
            }
        }
        SnapshotCmd::Ls => {
            let list = client.list_snapshots().await?;
            match a.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> =
                        list.iter().map(|s| vec![s.name.clone(), s.id.clone(), s.sandbox.clone()]).collect();
                    print_rows(&["NAME", "ID", "FROM"], &rows);
                }
            }
        }
        SnapshotCmd::Export { snapshot, file } => {
            let progress = super::cp::Progress::start(None);
            let n = client.export_snapshot(&snapshot, &file, progress.counter()).await?;
            drop(progress);
            println!("snapshot {snapshot} exported to {} ({n} bytes)", file.display());
        }
        SnapshotCmd::Import { file, name } => {
            let total = std::fs::metadata(&file).map(|m| m.len()).ok();
            let progress = super::cp::Progress::start(total);
            let s = client.import_snapshot(&name, &file, progress.counter()).await?;
            drop(progress);
            match a.output {
                OutputFormat::Json => print_json(&s)?,
                OutputFormat::Text => println!("snapshot {} ({}) imported", s.name, s.id),
            }
        }
        SnapshotCmd::Rm { snapshots } => {
            let mut failed = 0;
            for s in &snapshots {
                match client.delete_snapshot(s).await {
                    Ok(()) => println!("snapshot {s} deleted"),
                    Err(e) => {
                        eprintln!("podgate: {s}: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} snapshots could not be deleted", snapshots.len());
            }
        }
    }
    Ok(())
}

/// `podgate fork`.
#[derive(clap::Args, Debug)]
pub struct ForkArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// The new sandbox's name [default: one the server picks].
    #[arg(long)]
    name: Option<String>,
}

/// `podgate fork`: a new sandbox from a snapshot of a running one; prints its name.
pub async fn fork(a: ForkArgs) -> anyhow::Result<()> {
    let sb = a.conn.client()?.fork(&a.sandbox, a.name.as_deref()).await?;
    println!("{}", sb.name);
    Ok(())
}
