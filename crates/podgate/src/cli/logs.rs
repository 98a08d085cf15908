//! `podgate logs NAME [-f]`: the sandbox's bootstrap log; with `-f`, followed until the bootstrap
//! ends. Exits non-zero when the bootstrap failed.

use std::io::Write as _;

use anyhow::bail;
use futures_util::StreamExt as _;
use podgate_types::bootstrap::BootstrapPhase;

use super::Conn;

/// `podgate logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id.
    sandbox: String,
    /// Keep printing until the bootstrap is over.
    #[arg(long, short = 'f')]
    follow: bool,
}

/// Prints the log; returns 1 when the bootstrap failed, else 0.
pub async fn logs(a: LogsArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let resp = client.bootstrap_log(&a.sandbox, a.follow).await?;
    let mut stream = resp.bytes_stream();
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                out.write_all(&b)?;
                out.flush()?;
            }
            Err(e) => bail!("the log stream broke: {e}"),
        }
    }
    let sb = client.get(&a.sandbox).await?;
    Ok(match sb.bootstrap.map(|b| b.phase) {
        Some(BootstrapPhase::Failed) => {
            eprintln!("podgate: {}", sb.error.unwrap_or_else(|| "the bootstrap failed".into()));
            1
        }
        _ => 0,
    })
}
