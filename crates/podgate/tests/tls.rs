//! The CLI in front of a TLS-terminating proxy, as the runbook's Ingress + TLS puts it: an
//! `https://` URL without a port (443), a private CA given with `--ca-cert`/`PODGATE_CA_CERT`,
//! and every kind of call through it: REST (`up`, `cp`, `ls`), process streams (`exec`) and
//! terminals (`enter`) over `wss://`. Without the CA the CLI refuses the server's certificate.

mod common;

use std::process::Output;

use common::Server;

const BUSYBOX: &str = "podgate/busybox:test";

fn text(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_works_over_https_on_the_default_port() {
    let srv = Server::start();
    let (ca, cert, key) = common::tls::certificates(&["localhost", "127.0.0.1"]);
    let backend = srv.url.trim_start_matches("http://").to_string();
    let _proxy = common::tls::tls_proxy(cert, key, backend).await;
    let ca_file = srv.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let run = |args: &[&str], stdin: Option<&[u8]>, ca: bool| {
        tokio::task::block_in_place(|| {
            use std::io::Write as _;
            let mut cmd = srv.cli_command(args);
            cmd.env("PODGATE_URL", "https://localhost");
            if ca {
                cmd.env("PODGATE_CA_CERT", &ca_file);
            }
            let mut child = cmd
                .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(input) = stdin {
                child.stdin.take().unwrap().write_all(input).unwrap();
            }
            child.wait_with_output().unwrap()
        })
    };

    text(&run(&["up", "--name", "tls", "--image", BUSYBOX], None, true));
    assert!(text(&run(&["ls"], None, true)).contains("tls"));
    // A process stream over wss://.
    assert_eq!(text(&run(&["exec", "tls", "--", "sh", "-c", "echo over-$((1+1))"], None, true)), "over-2\n");
    // A terminal over wss://, its exit code passed on.
    let o = run(&["enter", "tls"], Some(b"echo in-$((20+3))\nexit 4\n"), true);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-23"));
    // Files over https://.
    let local = srv.dir.path().join("f.txt");
    std::fs::write(&local, "through TLS\n").unwrap();
    text(&run(&["cp", local.to_str().unwrap(), "tls:/workspace/f.txt"], None, true));
    assert_eq!(text(&run(&["exec", "tls", "--", "cat", "/workspace/f.txt"], None, true)), "through TLS\n");

    // Without the private CA the certificate is refused, at once and saying so.
    let started = std::time::Instant::now();
    let o = run(&["ls"], None, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && started.elapsed() < std::time::Duration::from_secs(30), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let o = run(&["enter", "tls"], Some(b"exit 0\n"), false);
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
