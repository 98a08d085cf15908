//! Command-line arguments of `podgate-agent serve`.

use std::path::PathBuf;

/// What the agent was asked to do.
#[derive(Debug, PartialEq)]
pub struct Args {
    /// Unix socket to serve the API on.
    pub socket: PathBuf,
    /// File holding the per-sandbox secret; read once and removed.
    pub secret_file: PathBuf,
    /// Main command to start (argv), if any.
    pub cmd: Vec<String>,
    /// A terminal with no client for this long is ended.
    pub terminal_idle: std::time::Duration,
    /// `uid:gid` the agent drops to at start (when it runs as root).
    pub user: Option<(u32, u32)>,
}

pub const USAGE: &str = "usage: podgate-agent serve --socket PATH --secret-file PATH [--terminal-idle-seconds N] [--user UID:GID] [-- CMD ARGS...]\n       podgate-agent --version";

/// Parses `serve --socket P --secret-file F [-- cmd…]`.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut it = argv.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
        None => return Err(USAGE.to_string()),
    }
    let (mut socket, mut secret_file, mut cmd) = (None, None, Vec::new());
    let mut idle_secs: u64 = 3600;
    let mut user = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => socket = it.next().map(PathBuf::from),
            "--secret-file" => secret_file = it.next().map(PathBuf::from),
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
        socket: socket.ok_or_else(|| format!("--socket is required\n{USAGE}"))?,
        secret_file: secret_file.ok_or_else(|| format!("--secret-file is required\n{USAGE}"))?,
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
        assert_eq!(a.socket, PathBuf::from("/s"));
        assert_eq!(a.cmd, s(&["sh", "-c", "x"]));
    }

    #[test]
    fn rejects_missing_and_unknown() {
        assert!(parse(&s(&["serve", "--socket", "/s"])).is_err());
        assert!(parse(&s(&["serve", "--bogus"])).is_err());
        assert!(parse(&s(&[])).is_err());
    }
}
