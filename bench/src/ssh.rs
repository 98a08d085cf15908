//! SSH benchmark: `ssh host true` round trips and SFTP upload/download of a 256 MiB file through
//! podgate's SSH server into a sandbox, against OpenSSH's sshd on a loopback port of this host
//! (a private sshd started here: same client, same key, same machine), measured in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use podgate_client::Client;
use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::AddSshKeyRequest;

use crate::{ms, summary};

/// Where to log in, and how.
struct Target {
    user: String,
    host: String,
    port: String,
}

fn ssh_opts(key: &Path) -> Vec<String> {
    let mut v = vec!["-i".to_string(), key.display().to_string(), "-F".into(), "/dev/null".into()];
    for o in [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "LogLevel=ERROR",
    ] {
        v.extend(["-o".to_string(), o.to_string()]);
    }
    v
}

fn run_ok(c: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = c.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `n` sequential `ssh target true`.
fn round_trips(t: &Target, key: &Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        run_ok(
            Command::new("ssh")
                .args(ssh_opts(key))
                .args(["-p", &t.port])
                .arg(format!("{}@{}", t.user, t.host))
                .arg("true"),
            "ssh true",
        )?;
        v.push(started.elapsed());
    }
    Ok(v)
}

/// Seconds to put then get `file` with `sftp -b`, into `dir` on the target.
fn sftp_times(t: &Target, key: &Path, file: &Path, dir: &str, back: &Path) -> anyhow::Result<(f64, f64)> {
    let batch = tempfile::NamedTempFile::new()?;
    let time = |script: String| -> anyhow::Result<f64> {
        std::fs::write(batch.path(), script)?;
        let started = Instant::now();
        run_ok(
            Command::new("sftp")
                .args(ssh_opts(key))
                .args(["-P", &t.port, "-b"])
                .arg(batch.path())
                .arg(format!("{}@{}", t.user, t.host)),
            "sftp",
        )?;
        Ok(started.elapsed().as_secs_f64())
    };
    let up = time(format!("put {} {dir}/bench.bin\n", file.display()))?;
    let down = time(format!("get {dir}/bench.bin {}\nrm {dir}/bench.bin\n", back.display()))?;
    Ok((up, down))
}

/// A private sshd on a free loopback port, accepting `key` for the current user.
fn start_sshd(dir: &Path, key: &Path) -> anyhow::Result<(Child, String)> {
    let sshd = ["/usr/sbin/sshd", "/sbin/sshd"].into_iter().find(|p| Path::new(p).exists());
    let Some(sshd) = sshd else { bail!("OpenSSH's sshd is missing: bench/run installs openssh-server") };
    let host_key = dir.join("sshd_host_key");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&host_key), "ssh-keygen")?;
    let authorized = dir.join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {}\n\
             Subsystem sftp internal-sftp\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )?;
    std::fs::create_dir_all("/run/sshd")?;
    let child = Command::new(sshd).args(["-D", "-e", "-f"]).arg(&config).stderr(Stdio::null()).spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    Ok((child, port))
}

fn user_name() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into())
}

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let addr = std::env::var("PODGATE_SSH_ADDR").context("PODGATE_SSH_ADDR (bench/run sets it)")?;
    let (host, port) = addr.rsplit_once(':').context("PODGATE_SSH_ADDR is HOST:PORT")?;
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir()?;
    let key: PathBuf = dir.path().join("id");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key), "ssh-keygen")?;
    let public_key = std::fs::read_to_string(key.with_extension("pub"))?;
    let added = client.add_ssh_key("me", &AddSshKeyRequest { name: Some("bench".into()), public_key }).await?;
    let sb = client
        .create(&CreateSandboxRequest {
            name: Some("bench-ssh".into()),
            image: Some(image.into()),
            ..Default::default()
        })
        .await?;
    let podgate = Target { user: sb.name.clone(), host: host.into(), port: port.into() };
    let (mut sshd, sshd_port) = start_sshd(dir.path(), &key)?;
    let openssh = Target { user: user_name(), host: "127.0.0.1".into(), port: sshd_port };

    let result = async {
        // Warm-up, not counted.
        round_trips(&podgate, &key, 2)?;
        round_trips(&openssh, &key, 2)?;
        println!("ssh TARGET true: {n} sequential round trips each (new connection, key exchange, login, exec)");
        let (pg50, _) = summary("podgate ssh (sandbox)", round_trips(&podgate, &key, n)?);
        let (os50, _) = summary("OpenSSH sshd (host, loopback)", round_trips(&openssh, &key, n)?);
        println!("ratio podgate/OpenSSH p50: {:.2}x ({:.1} ms vs {:.1} ms)", ms(pg50) / ms(os50), ms(pg50), ms(os50));

        let file = dir.path().join("256m.bin");
        {
            use std::io::Read as _;
            let mut random = std::fs::File::open("/dev/urandom")?.take(256 << 20);
            std::io::copy(&mut random, &mut std::fs::File::create(&file)?)?;
        }
        let back = dir.path().join("back.bin");
        let mib = 256.0;
        let (pu, pd) = sftp_times(&podgate, &key, &file, "/tmp", &back)?;
        let (ou, od) = sftp_times(&openssh, &key, &file, dir.path().to_str().context("temp dir path")?, &back)?;
        println!("sftp 256 MiB          upload          download");
        println!("podgate ssh (sandbox)  {:>8.1} MiB/s  {:>8.1} MiB/s", mib / pu, mib / pd);
        println!("OpenSSH sshd (host)    {:>8.1} MiB/s  {:>8.1} MiB/s", mib / ou, mib / od);
        println!("ratio podgate/OpenSSH  {:>8.2}x        {:>8.2}x", ou / pu, od / pd);
        anyhow::Ok(())
    }
    .await;
    let _ = sshd.kill();
    let _ = sshd.wait();
    client.delete(&sb.id).await?;
    client.remove_ssh_key("me", &added.id).await?;
    result
}
