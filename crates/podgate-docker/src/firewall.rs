//! The egress firewall of the sandbox network: iptables rules that keep sandboxes away from
//! the cloud metadata service, private, loopback and link-local ranges, other sandboxes and the
//! host itself, while public addresses stay reachable.
//!
//! Two chains per bridge, rebuilt atomically with `iptables-restore --noflush` at every start:
//! `PODGATE-<bridge>` (jumped from `DOCKER-USER`, so it runs before Docker's own forwarding
//! rules) and `PGIN-<bridge>` (jumped from `INPUT` for packets from the bridge to the host).

use podgate_runtime::{Error, Result};

/// Always refused, even when an allowlist entry covers it: cloud metadata services.
pub const METADATA: &[&str] = &["169.254.169.254/32", "100.100.100.200/32"];

/// Refused unless allowlisted: non-public IPv4 ranges (RFC 6890 special-purpose blocks).
pub const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// The `iptables-restore` input that (re)defines both chains of `bridge`.
pub fn rules(bridge: &str, allow: &[String]) -> String {
    let (fwd, inp) = chains(bridge);
    let mut r = format!("*filter\n:{fwd} - [0:0]\n:{inp} - [0:0]\n");
    // Replies to connections a sandbox opened, and nothing for other bridges' packets.
    r.push_str(&format!("-A {fwd} -o {bridge} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"));
    r.push_str(&format!("-A {fwd} ! -i {bridge} -j RETURN\n"));
    r.push_str(&format!("-A {fwd} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"));
    for chain in [&fwd, &inp] {
        for m in METADATA {
            r.push_str(&format!("-A {chain} -d {m} -j DROP\n"));
        }
        for a in allow {
            r.push_str(&format!("-A {chain} -d {a} -j ACCEPT\n"));
        }
    }
    for b in BLOCKED {
        r.push_str(&format!("-A {fwd} -d {b} -j DROP\n"));
    }
    r.push_str(&format!("-A {fwd} -j RETURN\n"));
    // The host itself: only replies (the agent is reached through its socket, not the network).
    r.push_str(&format!("-A {inp} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"));
    r.push_str(&format!("-A {inp} -j DROP\nCOMMIT\n"));
    r
}

fn chains(bridge: &str) -> (String, String) {
    (format!("PODGATE-{bridge}"), format!("PGIN-{bridge}"))
}

/// Checks an allowlist entry: an IPv4 address or CIDR block, normalised to `a.b.c.d/n`.
pub fn parse_cidr(s: &str) -> std::result::Result<String, String> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let ip: std::net::Ipv4Addr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IPv4 address or CIDR"))?;
    let len: u8 =
        len.trim().parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{s:?} has a bad prefix length"))?;
    Ok(format!("{ip}/{len}"))
}

/// Installs the chains for `bridge` and the jumps to them (once).
pub async fn apply(bridge: &str, allow: &[String]) -> Result<()> {
    if bridge.is_empty() || bridge.len() > 15 || !bridge.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::InvalidSpec(format!("unexpected bridge name {bridge:?}")));
    }
    run("iptables-restore", &["-w", "--noflush"], Some(rules(bridge, allow))).await?;
    let (fwd, inp) = chains(bridge);
    for (parent, jump) in [("DOCKER-USER", vec!["-j", fwd.as_str()]), ("INPUT", vec!["-i", bridge, "-j", inp.as_str()])]
    {
        let mut check = vec!["-w", "-C", parent];
        check.extend(&jump);
        if run("iptables", &check, None).await.is_err() {
            let mut insert = vec!["-w", "-I", parent, "1"];
            insert.extend(&jump);
            run("iptables", &insert, None).await?;
        }
    }
    Ok(())
}

async fn run(program: &str, args: &[&str], stdin: Option<String>) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Unavailable(format!("cannot run {program}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(|e| Error::Unavailable(format!("{program}: {e}")))?;
    }
    let out = child.wait_with_output().await.map_err(|e| Error::Unavailable(format!("{program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Unavailable(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_dropped_before_the_allowlist() {
        let r = rules("br-abc", &["10.1.0.0/16".into()]);
        let meta = r.find("-A PODGATE-br-abc -d 169.254.169.254/32 -j DROP").unwrap();
        let allow = r.find("-A PODGATE-br-abc -d 10.1.0.0/16 -j ACCEPT").unwrap();
        let private = r.find("-A PODGATE-br-abc -d 10.0.0.0/8 -j DROP").unwrap();
        assert!(meta < allow && allow < private, "{r}");
        assert!(r.ends_with("-A PGIN-br-abc -j DROP\nCOMMIT\n"), "{r}");
    }

    #[test]
    fn parses_cidrs() {
        assert_eq!(parse_cidr("10.0.0.1").unwrap(), "10.0.0.1/32");
        assert_eq!(parse_cidr("172.20.0.0/16").unwrap(), "172.20.0.0/16");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
        assert!(parse_cidr("10.0.0.0/8 -j ACCEPT").is_err());
    }
}
