//! `podgate e2b env`: the environment that points an unmodified E2B program (the `e2b` SDKs and
//! the agent frameworks on them) at this server's E2B-compatible API, as the logged-in user.

use super::Conn;

/// `podgate e2b`.
#[derive(clap::Args, Debug)]
pub struct E2bArgs {
    #[command(subcommand)]
    cmd: E2bCmd,
}

#[derive(clap::Subcommand, Debug)]
enum E2bCmd {
    /// Print `export` lines for E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL (or E2B_DOMAIN);
    /// use as `eval "$(podgate e2b env)"`.
    Env(EnvArgs),
}

#[derive(clap::Args, Debug)]
struct EnvArgs {
    #[command(flatten)]
    conn: Conn,
    /// The server's E2B API URL [default: with --domain, none (the SDKs use https://api.DOMAIN);
    /// else the server URL's scheme and host, port 3000].
    #[arg(long)]
    api_url: Option<String>,
    /// The server's `--e2b-domain`, when sandboxes are reached as PORT-SANDBOXID.DOMAIN (then
    /// E2B_DOMAIN is printed instead of E2B_SANDBOX_URL, and E2B_API_URL only with --api-url).
    #[arg(long)]
    domain: Option<String>,
}

/// `value` quoted for a POSIX shell.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The export lines.
fn exports(token: &str, api_url: Option<&str>, domain: Option<&str>) -> String {
    let mut out = format!("export E2B_API_KEY={}\n", quote(token));
    if let Some(url) = api_url {
        out.push_str(&format!("export E2B_API_URL={}\n", quote(url)));
    }
    match (domain, api_url) {
        (Some(d), _) => out.push_str(&format!("export E2B_DOMAIN={}\n", quote(d))),
        (None, Some(url)) => out.push_str(&format!("export E2B_SANDBOX_URL={}\n", quote(url))),
        (None, None) => {}
    }
    out
}

/// The default E2B API URL of the server at `base`.
fn default_api_url(base: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(base)?;
    url.set_port(Some(3000)).map_err(|()| anyhow::anyhow!("the server URL {base} has no host: pass --api-url"))?;
    url.set_path("");
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Runs `podgate e2b`.
pub async fn e2b(a: E2bArgs) -> anyhow::Result<()> {
    let E2bCmd::Env(a) = a.cmd;
    let client = a.conn.client()?;
    // The token is checked, so that a stale login fails here rather than in the E2B program.
    client.me().await?;
    let api_url = match (a.api_url, &a.domain) {
        (Some(u), _) => Some(u.trim_end_matches('/').to_string()),
        (None, Some(_)) => None,
        (None, None) => Some(default_api_url(client.base())?),
    };
    print!("{}", exports(client.token(), api_url.as_deref(), a.domain.as_deref()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_point_the_sdks_at_the_server() {
        let out = exports("pgt_x", Some("http://h:3000"), None);
        assert_eq!(
            out,
            "export E2B_API_KEY='pgt_x'\nexport E2B_API_URL='http://h:3000'\nexport E2B_SANDBOX_URL='http://h:3000'\n"
        );
        assert!(
            exports("t", Some("https://e2b.example.com"), Some("sb.example.com"))
                .contains("export E2B_DOMAIN='sb.example.com'\n")
        );
        // With a domain alone the SDKs find the API at https://api.DOMAIN.
        assert_eq!(
            exports("t", None, Some("sb.example.com")),
            "export E2B_API_KEY='t'\nexport E2B_DOMAIN='sb.example.com'\n"
        );
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(default_api_url("https://podgate.example.com:7070/").unwrap(), "https://podgate.example.com:3000");
    }
}
