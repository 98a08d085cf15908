//! File transfer benchmark: upload and download through podgate's file API (client → server →
//! agent, streamed) next to `docker cp` both ways, on the same container and file.

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use podgate_client::Client;
use podgate_types::api::CreateSandboxRequest;

const SIZE: usize = 256 << 20;
const RUNS: usize = 3;

fn mbps(d: Duration) -> f64 {
    SIZE as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn docker_cp(from: &str, to: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let st = Command::new("docker").args(["cp", from, to]).status()?;
    if !st.success() {
        bail!("docker cp {from} {to} failed");
    }
    Ok(t.elapsed())
}

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src.bin");
    let mut f = std::fs::File::create(&src)?;
    let block: Vec<u8> = (0..1 << 20).map(|i: usize| (i * 31 % 251) as u8).collect();
    for _ in 0..SIZE / block.len() {
        f.write_all(&block)?;
    }
    f.sync_all()?;
    drop(f);
    let sb = client.create(&CreateSandboxRequest { image: Some(image.into()), ..Default::default() }).await?;
    let container = crate::container(&sb.id)?;
    let result = async {
        let (mut up, mut down, mut dup, mut ddown) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let back = dir.path().join("back.bin");
        for i in 0..RUNS {
            let t = Instant::now();
            client.upload(&sb.id, &format!("/tmp/pg-{i}.bin"), &src, None, None).await?;
            up.push(t.elapsed());
            let t = Instant::now();
            let (n, _) = client.download(&sb.id, &format!("/tmp/pg-{i}.bin"), &back, None).await?;
            down.push(t.elapsed());
            if n as usize != SIZE {
                bail!("downloaded {n} bytes");
            }
            dup.push(docker_cp(src.to_str().unwrap_or_default(), &format!("{container}:/tmp/dc-{i}.bin"))?);
            ddown.push(docker_cp(&format!("{container}:/tmp/dc-{i}.bin"), back.to_str().unwrap_or_default())?);
        }
        let (u, d, du, dd) = (median(up), median(down), median(dup), median(ddown));
        println!("file bench: {} MiB file, median of {RUNS}, same container", SIZE >> 20);
        println!(
            "upload   podgate {:>7.1} MB/s   docker cp {:>7.1} MB/s   ratio {:.2}x",
            mbps(u),
            mbps(du),
            mbps(u) / mbps(du)
        );
        println!(
            "download podgate {:>7.1} MB/s   docker cp {:>7.1} MB/s   ratio {:.2}x",
            mbps(d),
            mbps(dd),
            mbps(d) / mbps(dd)
        );
        anyhow::Ok(())
    }
    .await;
    client.delete(&sb.id).await?;
    result
}
