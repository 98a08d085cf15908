//! `podgate recordings NAME [TERMINAL]`: a sandbox's terminal recordings, or one of them
//! (asciicast v2, for `asciinema play`) written to standard output or a file.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;

use super::Conn;
use super::output::{OutputFormat, print_json};

/// `podgate recordings`.
#[derive(clap::Args, Debug)]
pub struct RecordingsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Sandbox name or id (the id once it is deleted).
    sandbox: String,
    /// Print this terminal's recording instead of the list.
    terminal: Option<String>,
    /// Write the recording to this file instead of standard output.
    #[arg(long, requires = "terminal")]
    to: Option<std::path::PathBuf>,
    /// Output format of the list.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: OutputFormat,
}

pub async fn recordings(a: RecordingsArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let Some(terminal) = &a.terminal else {
        let list = client.recordings(&a.sandbox).await?;
        match a.output {
            OutputFormat::Json => print_json(&list)?,
            OutputFormat::Text => {
                println!("{:<28} {:>12}  MODIFIED", "TERMINAL", "BYTES");
                for r in list.recordings {
                    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.modified_at) * 1_000_000)
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    println!("{:<28} {:>12}  {at}", r.terminal_id, r.size);
                }
            }
        }
        return Ok(());
    };
    let resp = client.recording(&a.sandbox, terminal).await?;
    let mut out: Box<dyn std::io::Write> = match &a.to {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => out.write_all(&b)?,
            Err(e) => bail!("the download broke: {e}"),
        }
    }
    out.flush()?;
    Ok(())
}
