//! `podgate ssh-config`: OpenSSH `Host` blocks for the caller's sandboxes, so that `ssh NAME`,
//! `scp`, `rsync -e ssh` and editors' remote-SSH features reach them unchanged.

use super::Conn;

/// `podgate ssh-config`.
#[derive(clap::Args, Debug)]
pub struct SshConfigArgs {
    #[command(flatten)]
    conn: Conn,
    /// SSH host [default: the host of the server URL].
    #[arg(long)]
    host: Option<String>,
    /// SSH port of the server.
    #[arg(long, default_value_t = 2222)]
    port: u16,
    /// Put before each sandbox name to make the `Host` alias.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// The `Host` block of one sandbox.
fn block(alias: &str, name: &str, host: &str, port: u16) -> String {
    format!("Host {alias}\n  HostName {host}\n  Port {port}\n  User {name}\n  HostKeyAlias podgate-{host}-{port}\n\n")
}

/// Prints the blocks.
pub async fn ssh_config(a: SshConfigArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let host = match a.host {
        Some(h) => h,
        None => url::Url::parse(client.base())?
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("the server URL has no host: pass --host"))?
            .to_string(),
    };
    let mut out = String::from("# podgate sandboxes (podgate ssh-config)\n\n");
    for sb in client.list().await? {
        out.push_str(&block(&format!("{}{}", a.prefix, sb.name), &sb.name, &host, a.port));
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn blocks_name_the_sandbox_as_user() {
        let b = super::block("pg-dev", "dev", "127.0.0.1", 2222);
        assert!(b.starts_with("Host pg-dev\n") && b.contains("  User dev\n") && b.contains("  Port 2222\n"), "{b}");
    }
}
