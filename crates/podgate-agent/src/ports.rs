//! Listening TCP ports of the sandbox (its network namespace), read from /proc/net/tcp{,6} and
//! matched to processes through their socket descriptors. A watcher re-reads them every 200 ms and
//! publishes a new list only when it changed, so clients are pushed changes instead of polling.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use podgate_types::ports::ListeningPort;
use tokio::sync::watch;

/// How often the kernel's socket tables are read.
pub const SCAN_EVERY: Duration = Duration::from_millis(200);

/// Parses one /proc/net/tcp or tcp6 table into (address, port, inode) of LISTEN sockets.
pub fn parse_table(text: &str, v6: bool) -> Vec<(String, u16, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = f[9].parse().ok()?;
            Some((decode_addr(addr, v6)?, port, inode))
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in hex, in host (little-endian on x86) order.
fn decode_addr(hex: &str, v6: bool) -> Option<String> {
    let words: Vec<u32> =
        (0..hex.len() / 8).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16)).collect::<Result<_, _>>().ok()?;
    if v6 {
        let mut b = [0u8; 16];
        for (i, w) in words.iter().enumerate().take(4) {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        Some(Ipv6Addr::from(b).to_string())
    } else {
        words.first().map(|w| Ipv4Addr::from(w.to_le_bytes()).to_string())
    }
}

/// socket inode → (pid, comm) for every process we can see.
fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut owners = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return owners };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) =
                    target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
            {
                owners.entry(inode).or_insert((pid, comm.clone()));
            }
        }
    }
    owners
}

/// The agent's own TCP port (Kubernetes), which is not one of the sandbox's.
static HIDDEN_PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// Leaves `port` (the agent's own API port) out of every scan.
pub fn hide_port(port: u16) {
    let _ = HIDDEN_PORT.set(port);
}

fn listen_sockets() -> Vec<(String, u16, u64)> {
    let mut socks = Vec::new();
    let hidden = HIDDEN_PORT.get().copied();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            socks.extend(
                parse_table(&text, v6)
                    .into_iter()
                    .filter(|(address, port, _)| address != DOCKER_DNS && Some(*port) != hidden),
            );
        }
    }
    socks.sort();
    socks
}

/// Docker's embedded DNS resolver listens on this address inside sandboxes on a user-defined
/// network (from outside, through dockerd): not a port of the sandbox's.
const DOCKER_DNS: &str = "127.0.0.11";

/// The listening TCP ports now, sorted.
pub fn scan() -> Vec<ListeningPort> {
    with_owners(listen_sockets())
}

fn with_owners(socks: Vec<(String, u16, u64)>) -> Vec<ListeningPort> {
    if socks.is_empty() {
        return Vec::new();
    }
    let owners = socket_owners();
    let mut out: Vec<ListeningPort> = socks
        .into_iter()
        .map(|(address, port, inode)| {
            let owner = owners.get(&inode);
            ListeningPort { port, address, pid: owner.map(|o| o.0), process: owner.map(|o| o.1.clone()) }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Re-reads the socket tables every [`SCAN_EVERY`]; only when the set of listening sockets changed
/// does it look up their processes and publish the new list.
pub async fn watch(tx: watch::Sender<Vec<ListeningPort>>) {
    let mut last: Option<Vec<(String, u16, u64)>> = None;
    loop {
        let socks = listen_sockets();
        if last.as_ref() != Some(&socks) {
            last = Some(socks.clone());
            let now = tokio::task::spawn_blocking(move || with_owners(socks)).await.unwrap_or_default();
            tx.send_if_modified(|cur| {
                let changed = *cur != now;
                if changed {
                    *cur = now;
                }
                changed
            });
        }
        tokio::time::sleep(SCAN_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_sockets() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 654 1 0 100 0 0 10 0\n   1: 0100007F:1B9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 46767 1 0 100 0 0 10 0\n   2: 0100007F:1B9E 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0 100 0 0 10 0\n";
        assert_eq!(parse_table(v4, false), vec![("0.0.0.0".into(), 8080, 654), ("127.0.0.1".into(), 7070, 46767)]);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0\n";
        assert_eq!(parse_table(v6, true), vec![("::1".into(), 80, 77)]);
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = scan().into_iter().find(|p| p.port == port).expect("listed");
        assert_eq!(found.pid, Some(std::process::id()));
    }
}
