//! `podgate-bench [create|terminal|files|exec|ssh|pause|pool|all]`: create → first exec answered against `docker run`
//! baselines, the agent's resident memory per idle sandbox, and terminal keystroke latency and
//! output throughput through the gateway against `docker exec -it`, all measured in the same run.
//! Expects PODGATE_URL and PODGATE_TOKEN of a running server (bench/run starts one).

mod exec;
mod files;
mod pause;
mod pool;
mod ssh;
mod terminal;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn summary(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p95) = (percentile(&v, 0.5), percentile(&v, 0.95));
    println!(
        "{name:<34} n={:<3} p50={:>8.1} ms  p95={:>8.1} ms  min={:>8.1} ms  max={:>8.1} ms",
        v.len(),
        ms(p50),
        ms(p95),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
    (p50, p95)
}

/// The engine's name of a sandbox's container, found by its label (the name does not show the
/// sandbox id).
fn container(sandbox_id: &str) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--filter", &format!("label=io.podgate.sandbox={sandbox_id}")])
        .args(["--format", "{{.Names}} {{.Label \"io.podgate.sidecar\"}}"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains(' '))
        .map(str::to_string)
        .with_context(|| format!("no container of sandbox {sandbox_id}"))
}

/// VmRSS of a host pid, in KiB.
fn rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("bad VmRSS")?.parse()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let client = Client::new(&std::env::var("PODGATE_URL")?, &std::env::var("PODGATE_TOKEN")?)?;
    let image = std::env::var("BENCH_IMAGE").unwrap_or_else(|_| "podgate/base:latest".into());
    if which == "create" || which == "all" {
        create_bench(&client, &image).await?;
    }
    if which == "terminal" || which == "all" {
        terminal::bench(&client, &image).await?;
    }
    if which == "files" || which == "all" {
        files::bench(&client, &image).await?;
    }
    if which == "exec" || which == "all" {
        exec::bench(&client, &image).await?;
    }
    if which == "ssh" || which == "all" {
        ssh::bench(&client, &image).await?;
    }
    if which == "pause" || which == "all" {
        pause::bench(&client, &image).await?;
    }
    if which == "pool" || which == "all" {
        pool::bench(&client, &image).await?;
    }
    Ok(())
}

async fn create_bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let image = image.to_string();
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let probe = ExecRequest { argv: vec!["true".into()], ..Default::default() };

    // Warm-up, not counted: first use of the image and of the engine's caches.
    let w = client.create(&CreateSandboxRequest { image: Some(image.clone()), ..Default::default() }).await?;
    client.exec(&w.id, &probe).await?;
    client.delete(&w.id).await?;
    let st = Command::new("docker").args(["run", "--rm", &image, "true"]).status()?;
    if !st.success() {
        bail!("docker run --rm {image} true failed");
    }

    let mut podgate = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let sb = client
            .create(&CreateSandboxRequest {
                image: Some(image.clone()),
                name: Some(format!("bench-{i}")),
                ..Default::default()
            })
            .await?;
        let r = client.exec(&sb.id, &probe).await?;
        podgate.push(t.elapsed());
        if r.exit_code != 0 {
            bail!("exec in {} exited {}", sb.id, r.exit_code);
        }
        ids.push(sb.id);
    }

    let mut baseline = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let st = Command::new("docker").args(["run", "--rm", &image, "true"]).status()?;
        baseline.push(t.elapsed());
        if !st.success() {
            bail!("docker run failed");
        }
    }

    // The same work through the docker CLI: start a container, then a first `docker exec`.
    let mut docker_exec = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = Command::new("docker").args(["run", "-d", &image, "sleep", "infinity"]).output()?;
        let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let st = Command::new("docker").args(["exec", &cid, "true"]).status()?;
        docker_exec.push(t.elapsed());
        Command::new("docker").args(["rm", "-f", &cid]).output()?;
        if !out.status.success() || !st.success() {
            bail!("docker run -d / docker exec failed");
        }
    }

    // Agents of the idle sandboxes: host pid of each container's PID 1.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut rss = Vec::new();
    for id in &ids {
        let out = Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &container(id)?]).output()?;
        rss.push(rss_kib(String::from_utf8_lossy(&out.stdout).trim())?);
    }
    for id in &ids {
        client.delete(id).await?;
    }

    println!("podgate bench: {n} sandboxes of {image}, sequential");
    let (p50, p95) = summary("podgate create -> first exec", podgate);
    let (b50, b95) = summary("docker run --rm IMAGE true", baseline);
    let (d50, d95) = summary("docker run -d + first docker exec", docker_exec);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("ratio vs docker run --rm            p50={:.2}x  p95={:.2}x", ratio(p50, b50), ratio(p95, b95));
    println!("ratio vs docker run -d + exec       p50={:.2}x  p95={:.2}x", ratio(p50, d50), ratio(p95, d95));
    rss.sort();
    let mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64;
    println!(
        "agent RSS per idle sandbox          mean={:.0} KiB  min={} KiB  max={} KiB (n={})",
        mean,
        rss[0],
        rss[rss.len() - 1],
        rss.len()
    );
    Ok(())
}
