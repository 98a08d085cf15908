//! `podgate template put|ls|rm`: named sandbox requests with optional warm pools
//! (`podgate up --template NAME` starts from one).

use std::path::PathBuf;

use anyhow::Context as _;
use podgate_types::api::{Scheduling, TemplateRequest};

use super::Conn;
use super::output::{OutputFormat, print_json, print_rows};

/// `podgate template`.
#[derive(clap::Args, Debug)]
pub struct TemplateArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: TemplateCmd,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum TemplateCmd {
    /// Define or replace a template (admins) from a JSON sandbox request (the body of POST
    /// /v1/sandboxes, without name).
    Put {
        name: String,
        /// The request's JSON file (`-`: standard input).
        file: PathBuf,
        /// Ready sandboxes to keep for it.
        #[arg(long, default_value_t = 0)]
        pool: u32,
        /// On Kubernetes: the RuntimeClass of its pods (e.g. gvisor, kata).
        #[arg(long)]
        runtime_class: Option<String>,
        /// On Kubernetes: a node label its pods need, KEY=VALUE (repeatable).
        #[arg(long = "node-selector", value_name = "KEY=VALUE")]
        node_selector: Vec<String>,
        /// On Kubernetes: a toleration of its pods, KEY[=VALUE]:EFFECT (repeatable).
        #[arg(long = "toleration", value_name = "KEY[=VALUE]:EFFECT")]
        tolerations: Vec<String>,
    },
    /// Build the template's image from a folder with a Dockerfile (admins); nothing is pulled,
    /// so its FROM must be an image the engine has.
    Build {
        name: String,
        /// The build context: a folder with a Dockerfile.
        dir: PathBuf,
    },
    /// List templates and their warm pools.
    Ls,
    /// Delete a template and its pool's unclaimed sandboxes (admins).
    Rm { name: String },
}

/// `podgate template`.
pub async fn template(a: TemplateArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    match a.cmd {
        TemplateCmd::Put { name, file, pool, runtime_class, node_selector, tolerations } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let request = serde_json::from_str(&text).context("the file is not a sandbox request")?;
            let node_selector = node_selector
                .iter()
                .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Option<_>>()
                .context("--node-selector takes KEY=VALUE")?;
            let scheduling = Scheduling { runtime_class, node_selector, tolerations };
            let scheduling = (scheduling != Scheduling::default()).then_some(scheduling);
            let t = client.put_template(&name, &TemplateRequest { request, pool_size: pool, scheduling }).await?;
            match a.output {
                OutputFormat::Json => print_json(&t)?,
                OutputFormat::Text => println!("template {} (pool {})", t.name, t.pool_size),
            }
        }
        TemplateCmd::Build { name, dir } => {
            if !dir.join("Dockerfile").is_file() {
                anyhow::bail!("{} has no Dockerfile", dir.display());
            }
            let t = client.build_template(&name, dir).await?;
            match a.output {
                OutputFormat::Json => print_json(&t)?,
                OutputFormat::Text => {
                    println!("template {} built: {}", t.name, t.request.image.as_deref().unwrap_or("-"))
                }
            }
        }
        TemplateCmd::Ls => {
            let list = client.list_templates().await?;
            match a.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Text => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|t| {
                            let image = t.request.image.clone().unwrap_or_else(|| "-".into());
                            let error = t.pool_error.clone().unwrap_or_else(|| "-".into());
                            vec![t.name.clone(), image, format!("{}/{}", t.pool_ready, t.pool_size), error]
                        })
                        .collect();
                    print_rows(&["NAME", "IMAGE", "POOL", "LAST POOL ERROR"], &rows);
                }
            }
        }
        TemplateCmd::Rm { name } => {
            client.delete_template(&name).await?;
            println!("template {name} deleted");
        }
    }
    Ok(())
}
