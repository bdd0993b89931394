//! `inspect` of any object, `container inspect`, `image inspect`: docker's lookup order
//! (container, image, network, volume) and its output (a 4-space-indented JSON array, or
//! one rendered `--format` line per object).

use berth_api::{ApiError, Client};
use clap::Args;
use serde_json::Value;

use crate::errors::ExitStatus;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Network,
    Volume,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }
}

async fn fetch(client: &Client, kind: Kind, name: &str, size: bool) -> Result<Value, ApiError> {
    match kind {
        Kind::Container => client.container_inspect_raw(name, size).await,
        Kind::Image => client.image_inspect_raw(name).await,
        Kind::Network => client.network_inspect_raw(name).await,
        Kind::Volume => client.volume_inspect_raw(name).await,
    }
}

pub async fn inspect(client: &Client, a: InspectArgs) -> anyhow::Result<i32> {
    let kinds: Vec<Kind> = match a.kind.as_deref() {
        None | Some("") => vec![Kind::Container, Kind::Image, Kind::Network, Kind::Volume],
        Some("container") => vec![Kind::Container],
        Some("image") => vec![Kind::Image],
        Some("network") => vec![Kind::Network],
        Some("volume") => vec![Kind::Volume],
        Some(other) => anyhow::bail!("\"{other}\" is not a valid value for --type"),
    };
    inspect_kinds(client, &kinds, &a.names, a.format.as_deref(), a.size).await
}

pub async fn inspect_kinds(
    client: &Client,
    kinds: &[Kind],
    names: &[String],
    format: Option<&str>,
    size: bool,
) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let mut hit = None;
        for &kind in kinds {
            match fetch(client, kind, name, size).await {
                Ok(v) => {
                    hit = Some(v);
                    break;
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match hit {
            Some(v) => found.push(v),
            None if kinds.len() == 1 => {
                errors.push(format!("No such {}: {name}", kinds[0].label()))
            }
            None => errors.push(format!("No such object: {name}")),
        }
    }
    match format {
        Some(f) => {
            for v in &found {
                println!("{}", crate::format::render_one(f, v)?);
            }
        }
        None => println!("{}", crate::pretty::to_string(&found)?),
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(ExitStatus {
            code: 1,
            message: Some(
                errors
                    .iter()
                    .map(|e| format!("Error: {e}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
        .into())
    }
}
