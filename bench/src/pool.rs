//! Warm pool benchmark: create from a template with a warm pool (a ready sandbox is claimed)
//! until the first exec answers, against a cold create until the first exec answers, in the same
//! run with the same image.

use std::time::{Duration, Instant};

use anyhow::bail;
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, TemplateRequest};

use crate::{ms, summary};

const TEMPLATE: &str = "bench-pool";

pub async fn bench(client: &Client, image: &str) -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20).min(50);
    let probe = ExecRequest { argv: vec!["true".into()], ..Default::default() };
    let request = CreateSandboxRequest { image: Some(image.into()), ..Default::default() };
    client
        .put_template(TEMPLATE, &TemplateRequest { request: request.clone(), pool_size: 3, scheduling: None })
        .await?;
    let result = async {
        let (mut warm, mut cold) = (Vec::new(), Vec::new());
        for i in 0..n {
            // Untimed: wait for a ready sandbox, so every timed claim is a warm one.
            let deadline = Instant::now() + Duration::from_secs(120);
            while client.list_templates().await?.iter().find(|t| t.name == TEMPLATE).map_or(0, |t| t.pool_ready) == 0 {
                if Instant::now() > deadline {
                    bail!("the warm pool did not refill in 120 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let req = CreateSandboxRequest { template: Some(TEMPLATE.into()), ..Default::default() };
            let asked = time::OffsetDateTime::now_utc();
            let t = Instant::now();
            let sb = client.create(&req).await?;
            client.exec(&sb.id, &probe).await?;
            warm.push(t.elapsed());
            if sb.created_at >= asked {
                bail!("claim {i} was not warm");
            }
            client.delete(&sb.id).await?;

            let t = Instant::now();
            let sb = client.create(&request).await?;
            client.exec(&sb.id, &probe).await?;
            cold.push(t.elapsed());
            client.delete(&sb.id).await?;
        }
        println!("create -> first exec answered: {n} each, warm (claimed from a pool of 3) and cold");
        let (w50, w95) = summary("podgate warm-pool claim", warm);
        let (c50, c95) = summary("podgate cold create", cold);
        println!(
            "ratio warm/cold: p50 {:.2}x ({:.1} vs {:.1} ms), p95 {:.2}x ({:.1} vs {:.1} ms)",
            ms(w50) / ms(c50),
            ms(w50),
            ms(c50),
            ms(w95) / ms(c95),
            ms(w95),
            ms(c95)
        );
        anyhow::Ok(())
    }
    .await;
    client.delete_template(TEMPLATE).await?;
    result
}
