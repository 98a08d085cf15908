//! Printing results: a table for people, JSON for programs.

use podgate_types::api::Sandbox;
use serde::Serialize;

/// `--output` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn print_table(list: &[Sandbox]) -> anyhow::Result<()> {
    let fmt = time::format_description::well_known::Rfc3339;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.id.clone(),
                s.state.to_string(),
                s.image.clone(),
                s.expires_at.and_then(|t| t.format(&fmt).ok()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_rows(&["NAME", "ID", "STATE", "IMAGE", "EXPIRES"], &rows);
    Ok(())
}

/// Prints aligned columns under a header.
pub fn print_rows(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows.iter()) {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}
