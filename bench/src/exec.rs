//! Exec rate benchmark: round trips of `true` per second through podgate (the request/response
//! exec API, and the streaming process WebSocket) next to `docker exec CONTAINER true`, on the
//! same container, sequentially and with 8 clients at once.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt as _;
use podgate_client::{Client, Message};
use podgate_types::api::{CreateSandboxRequest, ExecRequest};
use podgate_types::process::{ProcessSpec, ServerMessage};

const CONCURRENCY: usize = 8;

fn count() -> usize {
    std::env::var("BENCH_EXEC_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

async fn api_exec(client: &Client, id: &str) -> anyhow::Result<()> {
    let r = client.exec(id, &ExecRequest { argv: vec!["true".into()], ..Default::default() }).await?;
    if r.exit_code != 0 {
        bail!("true exited with {}", r.exit_code);
    }
    Ok(())
}

async fn stream_exec(client: &Client, id: &str) -> anyhow::Result<()> {
    let mut ws = client.start_process(id, &ProcessSpec { argv: vec!["true".into()], ..Default::default() }).await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg?
            && let Ok(ServerMessage::Exit { exit }) = serde_json::from_str::<ServerMessage>(&t)
        {
            if exit.exit_code != 0 {
                bail!("true exited with {}", exit.exit_code);
            }
            return Ok(());
        }
    }
    bail!("the stream ended without an exit")
}

fn docker_exec(container: &str) -> anyhow::Result<()> {
    if !Command::new("docker").args(["exec", container, "true"]).status()?.success() {
        bail!("docker exec failed");
    }
    Ok(())
}

/// Runs `n` calls of `f` spread over `clients` concurrent loops; returns the wall time.
async fn timed<F, Fut>(n: usize, clients: usize, f: F) -> anyhow::Result<Duration>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let f = f.clone();
        let share = n / clients + usize::from(c < n % clients);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                f().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(t.elapsed())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let sb = client.create(&CreateSandboxRequest { image: Some(image.into()), ..Default::default() }).await?;
    let container = crate::container(&sb.id)?;
    let n = count();
    let result = async {
        // Warm-up.
        api_exec(client, &sb.id).await?;
        stream_exec(client, &sb.id).await?;
        docker_exec(&container)?;
        println!("exec bench: `true`, {n} round trips per row, same container");
        for clients in [1, CONCURRENCY] {
            let (c1, id1) = (client.clone(), sb.id.clone());
            let api = timed(n, clients, move || {
                let (c, id) = (c1.clone(), id1.clone());
                async move { api_exec(&c, &id).await }
            })
            .await?;
            let (c2, id2) = (client.clone(), sb.id.clone());
            let stream = timed(n, clients, move || {
                let (c, id) = (c2.clone(), id2.clone());
                async move { stream_exec(&c, &id).await }
            })
            .await?;
            let name = container.clone();
            let docker = timed(n, clients, move || {
                let name = name.clone();
                async move { tokio::task::spawn_blocking(move || docker_exec(&name)).await? }
            })
            .await?;
            let (a, s, d) = (rate(n, api), rate(n, stream), rate(n, docker));
            println!(
                "{clients} client(s): exec API {a:>7.1}/s   process stream {s:>7.1}/s   docker exec {d:>7.1}/s   ratios {:.2}x {:.2}x",
                a / d,
                s / d
            );
        }
        anyhow::Ok(())
    }
    .await;
    client.delete(&sb.id).await?;
    result
}
