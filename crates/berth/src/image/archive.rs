//! Moving images as tar archives: load, save, import.

use std::io::Write;

use anyhow::Context;
use berth_api::{Body, Client, Query};
use clap::Args;

use super::progress;
use crate::reference::Reference;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Load only the given platform
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Save only the given platform
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|-
    pub source: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

async fn open_input(
    path: Option<&str>,
) -> anyhow::Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
    Ok(match path {
        None | Some("-") => Box::new(tokio::io::stdin()),
        Some(p) => Box::new(
            tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {p}"))?,
        ),
    })
}

pub async fn load(client: &Client, a: LoadArgs) -> anyhow::Result<i32> {
    if a.input.is_none() && crate::container::stdio::stdin_is_tty() {
        anyhow::bail!("requested load from stdin, but stdin is empty");
    }
    let input = open_input(a.input.as_deref()).await?;
    // docker asks for quiet output when it cannot draw progress bars.
    let quiet = a.quiet || !crate::container::stdio::stdout_is_tty();
    let stream = client
        .image_load(Body::Reader(input, "application/x-tar"), quiet)
        .await?;
    progress::display(stream.json_messages(), false, false).await?;
    Ok(0)
}

pub async fn save(client: &Client, a: SaveArgs) -> anyhow::Result<i32> {
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {p}"))?),
        None => {
            if crate::container::stdio::stdout_is_tty() {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            Box::new(std::io::stdout())
        }
    };
    let mut stream = client.image_save(&a.images).await?;
    while let Some(chunk) = stream.chunk().await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(0)
}

pub async fn import(client: &Client, a: ImportArgs) -> anyhow::Result<i32> {
    let (repo, tag) = match a.reference.as_deref() {
        Some(r) => {
            let r = Reference::parse(r);
            (Some(r.repository()), r.tag)
        }
        None => (None, None),
    };
    let url_source = a.source.starts_with("http://") || a.source.starts_with("https://");
    let mut q = Query::new()
        .set("fromSrc", if url_source { a.source.as_str() } else { "-" })
        .opt("message", a.message.as_deref())
        .opt("platform", a.platform.as_deref())
        .opt("repo", repo.as_deref())
        .opt("tag", tag.as_deref());
    for c in &a.change {
        q = q.set("changes", c.as_str());
    }
    let body = if url_source {
        Body::Empty
    } else {
        Body::Reader(open_input(Some(&a.source)).await?, "application/x-tar")
    };
    let stream = client.image_create(q, body, None).await?;
    progress::display(stream.json_messages(), false, false).await?;
    Ok(0)
}
