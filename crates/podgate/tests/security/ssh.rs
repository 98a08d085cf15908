//! SSH (finding 23): only strong key exchanges and encrypt-then-MAC, and a connection rate per
//! address. Driven with the real OpenSSH client.

use std::io::Read as _;
use std::process::Command;
use std::time::Duration;

use crate::common::{Opts, Server, ssh_opts};

/// What `ssh` says when offering only `opts` to the server: (success, stderr).
fn offer(srv: &Server, key: &std::path::Path, opts: &[&str]) -> (bool, String) {
    let (host, port) = srv.ssh_addr.rsplit_once(':').unwrap();
    let o = Command::new("ssh")
        // INFO: OpenSSH reports a failed negotiation at that level.
        .args(ssh_opts(key).into_iter().map(|o| if o == "LogLevel=ERROR" { "LogLevel=INFO".into() } else { o }))
        .args(["-p", port])
        .args(opts)
        .args(["-o", "ConnectTimeout=10", &format!("nobody-here@{host}"), "true"])
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_is_strict() {
    let srv =
        Server::start_with(Opts { extra: vec!["--ssh-connection-rate".into(), "8".into()], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let key = crate::common::keygen(dir.path(), "k");
    // Weak offers are refused at negotiation.
    for weak in [
        ["-o", "KexAlgorithms=diffie-hellman-group14-sha256"],
        ["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
        ["-o", "MACs=hmac-sha2-256"],
    ] {
        let extra: Vec<&str> = if weak[1].starts_with("MACs") {
            vec![weak[0], weak[1], "-o", "Ciphers=aes128-ctr"]
        } else {
            weak.to_vec()
        };
        let (ok, err) = offer(&srv, &key, &extra);
        assert!(!ok && err.contains("no matching"), "{extra:?}: {err}");
    }
    // A strong offer gets as far as authentication (the user is unknown).
    let (ok, err) =
        offer(&srv, &key, &["-o", "KexAlgorithms=curve25519-sha256", "-o", "MACs=hmac-sha2-256-etm@openssh.com"]);
    assert!(!ok && err.contains("Permission denied"), "{err}");

    // Four connections above were made; the rest of the minute's eight get the banner, and
    // then connections are closed before it.
    let (banners, closed) = (0..8).fold((0, 0), |(b, c), _| {
        let mut s = std::net::TcpStream::connect(&srv.ssh_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) if n > 0 && buf.starts_with(b"SSH-2.0-") => (b + 1, c),
            _ => (b, c + 1),
        }
    });
    assert_eq!((banners, closed), (4, 4), "connections past the rate are closed");
}
