//! Terminal benchmark: keystroke round trip and bulk output through podgate's gateway (WebSocket →
//! server → agent → PTY) next to `docker exec -it` on the same container, driven from a local PTY
//! as a person's terminal would.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use podgate_client::{Client, Message, TerminalSocket};
use podgate_types::api::CreateSandboxRequest;
use podgate_types::terminal::{OpenTerminalRequest, TerminalSession};

use crate::{ms, percentile};

const KEYSTROKES: usize = 300;
const BULK_BYTES: usize = 50_000_000;
const BULK_RUNS: usize = 3;
const END: &[u8] = b"END-OF-BULK";

fn bulk_cmd() -> Vec<String> {
    let script = format!("read go; head -c {BULK_BYTES} /dev/zero | tr '\\0' x; echo; echo END-OF-BULK; sleep 1");
    vec!["sh".into(), "-c".into(), script]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn session(client: &Client, sb: &str, cmd: Vec<String>) -> anyhow::Result<TerminalSession> {
    let req = OpenTerminalRequest { cmd: Some(cmd), cols: Some(120), rows: Some(40), ..Default::default() };
    Ok(client.open_terminal(sb, &req).await?)
}

async fn next_bytes(ws: &mut TerminalSocket) -> anyhow::Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Text(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
            other => bail!("terminal closed: {other:?}"),
        }
    }
}

async fn gateway_keystrokes(client: &Client, sb: &str) -> anyhow::Result<Vec<Duration>> {
    let s = session(client, sb, vec!["cat".into()]).await?;
    let mut ws = client.connect_terminal(&s).await?;
    next_bytes(&mut ws).await?; // the initial redraw
    let mut out = Vec::with_capacity(KEYSTROKES);
    for i in 0..KEYSTROKES {
        let key = if i % 50 == 49 { b'\r' } else { b'a' + (i % 26) as u8 };
        let t = Instant::now();
        ws.send(Message::Binary(vec![key].into())).await?;
        // The PTY echoes the key (a carriage return comes back as CR LF, then cat's line).
        let got = next_bytes(&mut ws).await?;
        out.push(t.elapsed());
        if key == b'\r' {
            let deadline = Instant::now() + Duration::from_millis(200);
            while Instant::now() < deadline {
                if tokio::time::timeout(Duration::from_millis(50), ws.next()).await.is_err() {
                    break;
                }
            }
        } else if got.first() != Some(&key) {
            bail!("unexpected echo {got:?} for {key}");
        }
    }
    Ok(out)
}

/// Time until the end marker arrived, and how many bytes arrived (a client that falls too far
/// behind is sent a redraw of the current screen instead of the backlog, so it can be fewer).
async fn gateway_bulk(client: &Client, sb: &str) -> anyhow::Result<(Duration, usize)> {
    let s = session(client, sb, bulk_cmd()).await?;
    let mut ws = client.connect_terminal(&s).await?;
    next_bytes(&mut ws).await?;
    let t = Instant::now();
    ws.send(Message::Binary(b"\r".to_vec().into())).await?;
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let b = next_bytes(&mut ws).await?;
        total += b.len();
        tail.extend_from_slice(&b);
        if contains(&tail, END) {
            break;
        }
        let keep = tail.len().saturating_sub(64);
        tail.drain(..keep);
    }
    Ok((t.elapsed(), total))
}

/// `docker exec -it CONTAINER argv…` on a local PTY, as a terminal emulator would run it.
struct DockerExec {
    master: std::fs::File,
    child: std::process::Child,
}

impl DockerExec {
    fn start(container: &str, argv: &[String]) -> anyhow::Result<DockerExec> {
        let ws = nix::pty::Winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
        let pair = nix::pty::openpty(Some(&ws), None)?;
        let slave: OwnedFd = pair.slave;
        let child = Command::new("docker")
            .args(["exec", "-it", container])
            .args(argv)
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            .spawn()
            .context("docker exec")?;
        Ok(DockerExec { master: std::fs::File::from(pair.master), child })
    }

    /// Reads until `pred` holds for everything read by this call.
    fn read_all_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 4096];
        let mut all = Vec::new();
        while !pred(&all) {
            let n = self.master.read(&mut buf)?;
            if n == 0 {
                bail!("docker exec ended");
            }
            all.extend_from_slice(&buf[..n]);
        }
        Ok(())
    }

    /// Reads until `pred` holds for the last bytes read; returns how many bytes were read.
    fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> anyhow::Result<usize> {
        let mut buf = vec![0u8; 65536];
        let mut tail = Vec::new();
        let mut total = 0;
        loop {
            let n = self.master.read(&mut buf)?;
            if n == 0 {
                bail!("docker exec ended");
            }
            total += n;
            tail.extend_from_slice(&buf[..n]);
            if pred(&tail) {
                return Ok(total);
            }
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
        }
    }
}

impl Drop for DockerExec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker_keystrokes(container: &str) -> anyhow::Result<Vec<Duration>> {
    let mut d = DockerExec::start(container, &["cat".into()])?;
    std::thread::sleep(Duration::from_millis(500));
    let mut out = Vec::with_capacity(KEYSTROKES);
    for i in 0..KEYSTROKES {
        let key = if i % 50 == 49 { b'\r' } else { b'a' + (i % 26) as u8 };
        let t = Instant::now();
        d.master.write_all(&[key])?;
        if key == b'\r' {
            // The echo (CR LF) and cat's copy of the line may come in one read or two.
            d.read_all_until(|b| b.iter().filter(|c| **c == b'\n').count() >= 2)?;
        } else {
            d.read_all_until(|b| b.contains(&key))?;
        }
        out.push(t.elapsed());
    }
    Ok(out)
}

fn docker_bulk(container: &str) -> anyhow::Result<Duration> {
    let mut d = DockerExec::start(container, &bulk_cmd())?;
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    d.master.write_all(b"\r")?;
    let total = d.read_until(|b| contains(b, END))?;
    let el = t.elapsed();
    if total < BULK_BYTES {
        bail!("docker exec delivered {total} bytes");
    }
    Ok(el)
}

fn mbps(d: Duration) -> f64 {
    BULK_BYTES as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let sb = client.create(&CreateSandboxRequest { image: Some(image.into()), ..Default::default() }).await?;
    let container = crate::container(&sb.id)?;
    let result = async {
        let mut g = gateway_keystrokes(client, &sb.id).await?;
        let c = container.clone();
        let mut dk = tokio::task::spawn_blocking(move || docker_keystrokes(&c)).await??;
        let mut gb = Vec::new();
        let mut db = Vec::new();
        let mut delivered = Vec::new();
        for _ in 0..BULK_RUNS {
            let (d, bytes) = gateway_bulk(client, &sb.id).await?;
            gb.push(d);
            delivered.push(bytes);
            let c = container.clone();
            db.push(tokio::task::spawn_blocking(move || docker_bulk(&c)).await??);
        }
        g.sort();
        dk.sort();
        println!("terminal bench: {KEYSTROKES} keystrokes, {BULK_RUNS}x {} MB of output, same container", BULK_BYTES / 1_000_000);
        let (g50, g99) = (percentile(&g, 0.5), percentile(&g, 0.99));
        let (d50, d99) = (percentile(&dk, 0.5), percentile(&dk, 0.99));
        println!("keystroke RTT podgate gateway      p50={:>7.3} ms  p99={:>7.3} ms", ms(g50), ms(g99));
        println!("keystroke RTT docker exec -it      p50={:>7.3} ms  p99={:>7.3} ms", ms(d50), ms(d99));
        println!(
            "ratio podgate/docker               p50={:.2}x  p99={:.2}x",
            g50.as_secs_f64() / d50.as_secs_f64(),
            g99.as_secs_f64() / d99.as_secs_f64()
        );
        let (gm, dm) = (median(gb), median(db));
        println!("bulk output podgate gateway        {:>7.1} MB/s (median of {BULK_RUNS})", mbps(gm));
        println!("bulk output docker exec -it        {:>7.1} MB/s (median of {BULK_RUNS})", mbps(dm));
        println!("ratio podgate/docker               {:.2}x", mbps(gm) / mbps(dm));
        println!("bytes delivered through gateway    {delivered:?} of {BULK_BYTES} per run (fewer = the client was sent a redraw instead of a backlog)");
        anyhow::Ok(())
    }
    .await;
    client.delete(&sb.id).await?;
    result
}
