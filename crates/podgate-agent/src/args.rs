//! Command-line arguments of `podgate-agent serve`.

use std::path::PathBuf;

/// Where the agent serves its API.
#[derive(Debug, PartialEq)]
pub enum Listen {
    /// A unix socket (Docker: the socket's folder is bind-mounted from the server's host).
    Unix(PathBuf),
    /// A TCP address (Kubernetes: the server reaches the pod's IP).
    Tcp(std::net::SocketAddr),
}

/// Where the per-sandbox secret comes from.
#[derive(Debug, PartialEq)]
pub enum SecretSource {
    /// A file, read once and removed.
    File(PathBuf),
    /// An environment variable, read once and removed from the environment.
    Env(String),
}

/// What the agent was asked to do.
#[derive(Debug, PartialEq)]
pub struct Args {
    /// Where to serve the API.
    pub listen: Listen,
    /// Where the secret every request must carry comes from.
    pub secret: SecretSource,
    /// Main command to start (argv), if any.
    pub cmd: Vec<String>,
    /// A terminal with no client for this long is ended.
    pub terminal_idle: std::time::Duration,
    /// `uid:gid` the agent drops to at start (when it runs as root).
    pub user: Option<(u32, u32)>,
}

pub const USAGE: &str = "usage: podgate-agent serve (--socket PATH | --listen ADDR:PORT) (--secret-file PATH | --secret-env NAME) [--terminal-idle-seconds N] [--user UID:GID] [-- CMD ARGS...]\n       podgate-agent install DEST\n       podgate-agent own DIR UID:GID\n       podgate-agent --version";

/// Parses `serve --socket P --secret-file F [-- cmd…]`.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut it = argv.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
        None => return Err(USAGE.to_string()),
    }
    let (mut listen, mut secret, mut cmd) = (None, None, Vec::new());
    let mut idle_secs: u64 = 3600;
    let mut user = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => listen = it.next().map(|p| Listen::Unix(PathBuf::from(p))),
            "--listen" => {
                let v = it.next().ok_or_else(|| format!("--listen needs ADDR:PORT\n{USAGE}"))?;
                let addr = v.parse().map_err(|_| format!("--listen: {v:?} is not ADDR:PORT\n{USAGE}"))?;
                listen = Some(Listen::Tcp(addr));
            }
            "--secret-file" => secret = it.next().map(|p| SecretSource::File(PathBuf::from(p))),
            "--secret-env" => secret = it.next().map(|n| SecretSource::Env(n.clone())),
            "--terminal-idle-seconds" => {
                idle_secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("--terminal-idle-seconds needs a positive number\n{USAGE}"))?;
            }
            "--user" => {
                let v = it.next().ok_or_else(|| format!("--user needs UID:GID\n{USAGE}"))?;
                user = Some(crate::privileges::parse_user(v)?);
            }
            "--" => {
                cmd = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or_else(|| format!("--socket or --listen is required\n{USAGE}"))?,
        secret: secret.ok_or_else(|| format!("--secret-file or --secret-env is required\n{USAGE}"))?,
        cmd,
        terminal_idle: std::time::Duration::from_secs(idle_secs),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_serve_with_cmd() {
        let a = parse(&s(&["serve", "--socket", "/s", "--secret-file", "/f", "--", "sh", "-c", "x"])).unwrap();
        assert_eq!(a.listen, Listen::Unix(PathBuf::from("/s")));
        assert_eq!(a.secret, SecretSource::File(PathBuf::from("/f")));
        assert_eq!(a.cmd, s(&["sh", "-c", "x"]));
    }

    #[test]
    fn rejects_missing_and_unknown() {
        assert!(parse(&s(&["serve", "--socket", "/s"])).is_err());
        assert!(parse(&s(&["serve", "--bogus"])).is_err());
        assert!(parse(&s(&[])).is_err());
    }

    #[test]
    fn parses_tcp_listen_and_secret_env() {
        let a = parse(&s(&["serve", "--listen", "0.0.0.0:49983", "--secret-env", "S", "--user", "1000"])).unwrap();
        assert_eq!(a.listen, Listen::Tcp("0.0.0.0:49983".parse().unwrap()));
        assert_eq!(a.secret, SecretSource::Env("S".into()));
        assert_eq!(a.user, Some((1000, 1000)));
        assert!(parse(&s(&["serve", "--listen", "nope", "--secret-env", "S"])).unwrap_err().contains("ADDR:PORT"));
        assert!(parse(&s(&["serve", "--listen", "0.0.0.0:1"])).unwrap_err().contains("--secret-env"));
    }
}
