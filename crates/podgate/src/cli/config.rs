//! The CLI's saved settings (`podgate login`): `$XDG_CONFIG_HOME/podgate/config.toml`, mode 0600.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What `podgate login` saves.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub url: Option<String>,
    pub token: Option<String>,
    /// A CA file (PEM) trusted for an `https://` server besides the usual roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("podgate").join("config.toml"))
}

/// The saved settings, or none.
pub fn load() -> anyhow::Result<Saved> {
    let Some(p) = path() else {
        return Ok(Saved::default());
    };
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// `podgate login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Server URL.
    #[arg(long, env = "PODGATE_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// API token; read from this file instead when it starts with `@` (e.g. @/var/lib/podgate/admin.token).
    #[arg(long, env = "PODGATE_TOKEN", hide_env_values = true)]
    token: String,
    /// A CA certificate file (PEM) to trust for an https:// server, besides the usual roots.
    #[arg(long, env = "PODGATE_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

/// Checks the token against the server, then saves URL and token.
pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let token = match a.token.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?.trim().to_string(),
        None => a.token,
    };
    let ca_cert = a.ca_cert.map(|p| std::path::absolute(&p).unwrap_or(p));
    let me = podgate_client::Client::with_ca(&a.url, &token, ca_cert.as_deref())?.me().await?;
    let p = path().context("cannot locate a config directory: set HOME or XDG_CONFIG_HOME")?;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = toml::to_string(&Saved { url: Some(a.url.clone()), token: Some(token), ca_cert })?;
    crate::files::write_private(&p, &text)?;
    println!("logged in to {} as {} ({}); saved in {}", a.url, me.name, me.role, p.display());
    Ok(())
}
