//! Pause benchmark: pause and resume of a sandbox holding 1 GiB of memory (a file in its `/tmp`
//! tmpfs, charged to its memory cgroup) through the API, against `docker pause` / `docker
//! unpause` of the same container, measured in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use podgate_client::Client;
use podgate_types::MemorySize;
use podgate_types::api::{CreateSandboxRequest, ExecRequest};

use crate::{ms, summary};

fn docker(verb: &str, container: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let st = Command::new("docker").args([verb, container]).stdout(Stdio::null()).status().context("docker CLI")?;
    if !st.success() {
        bail!("docker {verb} {container} failed");
    }
    Ok(started.elapsed())
}

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10).min(30);
    let sb = client
        .create(&CreateSandboxRequest {
            image: Some(image.into()),
            memory: Some(MemorySize(2 << 30)),
            ..Default::default()
        })
        .await?;
    let fill = ExecRequest {
        argv: vec!["head -c 1073741824 /dev/zero > /tmp/fill && du -m /tmp/fill".into()],
        shell: true,
        timeout_seconds: Some(120),
        ..Default::default()
    };
    let out = client.exec(&sb.id, &fill).await?;
    if out.exit_code != 0 {
        bail!("filling 1 GiB failed: {}", String::from_utf8_lossy(&out.stderr.0));
    }
    let container = crate::container(&sb.id)?;
    let result = async {
        let (mut pause, mut resume, mut dpause, mut dresume) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let t = Instant::now();
            client.pause(&sb.id).await?;
            pause.push(t.elapsed());
            let t = Instant::now();
            client.resume(&sb.id).await?;
            resume.push(t.elapsed());
            dpause.push(docker("pause", &container)?);
            dresume.push(docker("unpause", &container)?);
        }
        println!("pause/resume of a sandbox holding 1 GiB: {n} cycles each");
        let (p50, _) = summary("podgate pause (API)", pause);
        let (dp50, _) = summary("docker pause (CLI)", dpause);
        let (r50, _) = summary("podgate resume (API)", resume);
        let (dr50, _) = summary("docker unpause (CLI)", dresume);
        println!(
            "ratio podgate/docker p50: pause {:.2}x ({:.1} vs {:.1} ms), resume {:.2}x ({:.1} vs {:.1} ms)",
            ms(p50) / ms(dp50),
            ms(p50),
            ms(dp50),
            ms(r50) / ms(dr50),
            ms(r50),
            ms(dr50)
        );
        anyhow::Ok(())
    }
    .await;
    client.delete(&sb.id).await?;
    result
}
