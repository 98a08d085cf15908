//! SSH benchmark: `ssh host true` round trips and SFTP upload/download of a 256 MiB file through
//! podgate's SSH server into a sandbox, against OpenSSH's sshd in a container of the base image
//! (`podgate/bench-sshd`, which bench/run builds: the base image plus openssh-server, reached at
//! the container's address) and on a loopback port of this host, measured in the same run with
//! the same client and key.

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

/// Image of the containerized sshd baseline (bench/run builds it).
const SSHD_IMAGE: &str = "podgate/bench-sshd:latest";

/// Removes the baseline container when dropped.
struct SshdContainer(String);

impl Drop for SshdContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// OpenSSH's sshd in a container of the base image, accepting `key` for the sandbox user
/// `podgate` (unlocked: sshd without PAM refuses a `!` password field); returns the container and
/// its address on the Docker network.
fn start_sshd_container(key: &Path) -> anyhow::Result<(SshdContainer, String)> {
    let name = format!("podgate-bench-sshd-{}", std::process::id());
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
    let script = format!(
        "sed -i 's/^podgate:!:/podgate:*:/' /etc/shadow && mkdir -p /run/sshd && printf '%s\\n' '{}' >/etc/ssh/bench_keys && chmod 644 /etc/ssh/bench_keys && \
         exec /usr/sbin/sshd -D -e -o AuthorizedKeysFile=/etc/ssh/bench_keys -o PasswordAuthentication=no \
         -o KbdInteractiveAuthentication=no -o UsePAM=no",
        pubkey.trim()
    );
    run_ok(
        Command::new("docker").args(["run", "-d", "--name", &name, SSHD_IMAGE, "sh", "-c", &script]),
        "docker run sshd",
    )?;
    let container = SshdContainer(name);
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &container.0])
        .output()?;
    let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if ip.is_empty() {
        bail!("the sshd container has no address");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip.as_str(), 22)).is_err() {
        if Instant::now() > deadline {
            bail!("sshd in the container did not listen on {ip}:22");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((container, ip))
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
    let (_container, ip) = start_sshd_container(&key)?;
    let contained = Target { user: "podgate".into(), host: ip, port: "22".into() };

    let result = async {
        // Warm-up, not counted.
        round_trips(&podgate, &key, 2)?;
        round_trips(&openssh, &key, 2)?;
        round_trips(&contained, &key, 2)?;
        println!("ssh TARGET true: {n} sequential round trips each (new connection, key exchange, login, exec)");
        let (pg50, _) = summary("podgate ssh (sandbox)", round_trips(&podgate, &key, n)?);
        let (oc50, _) = summary("OpenSSH sshd (container of the base image)", round_trips(&contained, &key, n)?);
        let (os50, _) = summary("OpenSSH sshd (host, loopback)", round_trips(&openssh, &key, n)?);
        println!(
            "ratio podgate/OpenSSH p50: {:.2}x against sshd in a container ({:.1} ms vs {:.1} ms), {:.2}x against sshd on the host ({:.1} ms)",
            ms(pg50) / ms(oc50),
            ms(pg50),
            ms(oc50),
            ms(pg50) / ms(os50),
            ms(os50)
        );

        let file = dir.path().join("256m.bin");
        {
            use std::io::Read as _;
            let mut random = std::fs::File::open("/dev/urandom")?.take(256 << 20);
            std::io::copy(&mut random, &mut std::fs::File::create(&file)?)?;
        }
        let back = dir.path().join("back.bin");
        let mib = 256.0;
        let (pu, pd) = sftp_times(&podgate, &key, &file, "/tmp", &back)?;
        let (cu, cd) = sftp_times(&contained, &key, &file, "/tmp", &back)?;
        let (ou, od) = sftp_times(&openssh, &key, &file, dir.path().to_str().context("temp dir path")?, &back)?;
        println!("sftp 256 MiB                   upload          download");
        println!("podgate ssh (sandbox)           {:>8.1} MiB/s  {:>8.1} MiB/s", mib / pu, mib / pd);
        println!("OpenSSH sshd (container)        {:>8.1} MiB/s  {:>8.1} MiB/s", mib / cu, mib / cd);
        println!("OpenSSH sshd (host)             {:>8.1} MiB/s  {:>8.1} MiB/s", mib / ou, mib / od);
        println!("ratio podgate/sshd (container)  {:>8.2}x        {:>8.2}x", cu / pu, cd / pd);
        println!("ratio podgate/sshd (host)       {:>8.2}x        {:>8.2}x", ou / pu, od / pd);
        anyhow::Ok(())
    }
    .await;
    let _ = sshd.kill();
    let _ = sshd.wait();
    client.delete(&sb.id).await?;
    client.remove_ssh_key("me", &added.id).await?;
    result
}
