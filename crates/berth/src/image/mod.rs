//! Image commands.

pub mod archive;
pub mod auth;
pub mod progress;
pub mod pull;

use berth_api::models::ImageSummary;
use berth_api::{Client, Query};
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::errors::{describe, ExitStatus};
use crate::format::{self, ellipsis, short_id, units};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

fn image_headers() -> Value {
    json!({"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID", "CreatedSince": "CREATED",
           "CreatedAt": "CREATED AT", "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
           "VirtualSize": "VIRTUAL SIZE", "Containers": "CONTAINERS"})
}

/// One row per repo:tag, as docker's image list does.
fn image_rows(img: &ImageSummary, no_trunc: bool) -> Vec<Value> {
    let id = if no_trunc {
        img.id.clone()
    } else {
        short_id(&img.id)
    };
    let mut pairs: Vec<(String, String)> = img
        .repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .map(|t| match t.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
            _ => (t.clone(), "<none>".into()),
        })
        .collect();
    if pairs.is_empty() {
        let repo = img
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|(r, _)| r.to_string());
        pairs.push((repo.unwrap_or_else(|| "<none>".into()), "<none>".into()));
    }
    pairs
        .into_iter()
        .map(|(repo, tag)| {
            let digest = img
                .repo_digests
                .iter()
                .find_map(|d| d.split_once('@').filter(|(r, _)| *r == repo).map(|(_, d)| d.to_string()))
                .unwrap_or_else(|| "<none>".into());
            json!({
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "ID": id,
                "CreatedSince": units::ago(img.created),
                "CreatedAt": crate::container::ps::created_at(img.created),
                "Size": units::human_size(img.size as f64),
                "SharedSize": if img.shared_size < 0 { "N/A".to_string() } else { units::human_size(img.shared_size as f64) },
                "UniqueSize": if img.shared_size < 0 { "N/A".to_string() } else { units::human_size((img.size - img.shared_size) as f64) },
                "VirtualSize": units::human_size(img.size as f64),
                "Containers": if img.containers < 0 { "N/A".to_string() } else { img.containers.to_string() },
            })
        })
        .collect()
}

pub async fn images(client: &Client, a: ImagesArgs) -> anyhow::Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let q = Query::new()
        .flag("all", a.all)
        .opt("filters", crate::filters::to_json(&filters)?.as_deref());
    let list = client.image_list(q).await?;
    if a.quiet && a.format.is_none() {
        let mut seen = Vec::new();
        for img in &list {
            let id = if a.no_trunc {
                img.id.clone()
            } else {
                short_id(&img.id)
            };
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let fmt = a.format.clone().unwrap_or_else(|| {
        if a.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .into()
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
        }
    });
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, a.no_trunc))
        .collect();
    print!("{}", format::render_list(&fmt, &rows, &image_headers())?);
    Ok(0)
}

pub async fn inspect(client: &Client, a: ImageInspectArgs) -> anyhow::Result<i32> {
    crate::inspect::inspect_kinds(
        client,
        &[crate::inspect::Kind::Image],
        &a.images,
        a.format.as_deref(),
        false,
    )
    .await
}

pub async fn tag(client: &Client, a: TagArgs) -> anyhow::Result<i32> {
    let r = crate::reference::Reference::parse(&a.target);
    if r.digest.is_some() {
        anyhow::bail!("refusing to create a tag with a digest reference");
    }
    let repo = if r.domain == "docker.io" {
        r.path
            .strip_prefix("library/")
            .unwrap_or(&r.path)
            .to_string()
    } else {
        r.repository()
    };
    client
        .image_tag(&a.source, &repo, r.tag_or_latest().as_deref())
        .await?;
    Ok(0)
}

pub async fn rmi(client: &Client, a: RmiArgs) -> anyhow::Result<i32> {
    let mut failed = false;
    for name in &a.images {
        match client.image_remove(name, a.force, a.no_prune).await {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{}", describe(&e.into()));
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitStatus::code(1).into());
    }
    Ok(0)
}

pub async fn history(client: &Client, a: HistoryArgs) -> anyhow::Result<i32> {
    let items = client.image_history(&a.image).await?;
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = if h.id.starts_with("sha256:") {
                if a.no_trunc { h.id.clone() } else { short_id(&h.id) }
            } else {
                h.id.clone()
            };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if a.no_trunc { created_by } else { ellipsis(&created_by, 45) };
            json!({
                "ID": id,
                "CreatedSince": if a.human { units::ago(h.created) } else { chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()).unwrap_or_default() },
                "CreatedAt": chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { units::human_size(h.size as f64) } else { h.size.to_string() },
                "Comment": h.comment,
                "Tags": h.tags.join(", "),
            })
        })
        .collect();
    if a.quiet && a.format.is_none() {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let headers = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT", "Tags": "TAGS"});
    let fmt = a.format.unwrap_or_else(|| {
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
    });
    print!("{}", format::render_list(&fmt, &rows, &headers)?);
    Ok(0)
}

pub async fn prune(client: &Client, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
        if !matches!(line.trim(), "y" | "Y") {
            return Ok(0);
        }
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let q = Query::new().opt("filters", crate::filters::to_json(&filters)?.as_deref());
    let resp = client.image_prune(q).await?;
    let deleted = resp.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for item in deleted {
            if let Some(u) = item.untagged {
                println!("untagged: {u}");
            }
            if let Some(d) = item.deleted {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        units::human_size(resp.space_reclaimed.unwrap_or(0) as f64)
    );
    Ok(0)
}
