//! Commands about a container's filesystem: cp, export, diff, commit.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_api::{Body, Client, Query};
use clap::Args;

use crate::reference::Reference;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub src: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// [REPOSITORY[:TAG]]
    pub repository: Option<String>,
}

/// Splits `CONTAINER:PATH` (a path with a '/' before the ':' is a local path).
fn split_container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    let (c, p) = s.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

pub async fn cp(client: &Client, a: CpArgs) -> anyhow::Result<i32> {
    match (split_container_path(&a.src), split_container_path(&a.dest)) {
        (Some((c, path)), None) => copy_from(client, c, path, &a.dest).await,
        (None, Some((c, path))) => copy_to(client, &a.src, c, path).await,
        (Some(_), Some(_)) => anyhow::bail!("copying between containers is not supported"),
        (None, None) => anyhow::bail!("must specify at least one container source"),
    }
}

async fn copy_from(
    client: &Client,
    container: &str,
    path: &str,
    dest: &str,
) -> anyhow::Result<i32> {
    let stream = client.container_archive_get(container, path).await?;
    let tar = stream.collect().await?;
    if dest == "-" {
        std::io::stdout().write_all(&tar)?;
        return Ok(0);
    }
    let dest = PathBuf::from(dest);
    // Into an existing directory: keep the source's name; otherwise the copy is renamed.
    let (into, rename) = if dest.is_dir() {
        (dest.clone(), None)
    } else {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (parent, dest.file_name().map(|n| n.to_os_string()))
    };
    let mut archive = tar::Archive::new(&tar[..]);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let rel = match &rename {
            Some(name) => {
                let mut comps = rel.components();
                comps.next();
                Path::new(name).join(comps.as_path())
            }
            None => rel,
        };
        if rel.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::RootDir
            )
        }) {
            anyhow::bail!(
                "refusing to extract {} outside {}",
                rel.display(),
                into.display()
            );
        }
        entry.unpack(into.join(rel))?;
    }
    Ok(0)
}

async fn copy_to(client: &Client, src: &str, container: &str, path: &str) -> anyhow::Result<i32> {
    if src == "-" {
        // A tar stream on stdin is extracted as is.
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return put(client, container, path, buf).await;
    }
    let src_path = Path::new(src);
    let meta = std::fs::symlink_metadata(src_path).with_context(|| format!("lstat {src}"))?;
    let dest_is_dir = path.ends_with('/') || stat_is_dir(client, container, path).await;
    let name = if dest_is_dir {
        src_path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        Path::new(path)
            .file_name()
            .map(PathBuf::from)
            .context("invalid destination path")?
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if meta.is_dir() {
        builder.append_dir_all(&name, src_path)?;
    } else {
        builder.append_path_with_name(src_path, &name)?;
    }
    let data = builder.into_inner()?;
    let target = if dest_is_dir {
        path.to_string()
    } else {
        Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into())
    };
    put(client, container, &target, data).await
}

async fn put(client: &Client, container: &str, path: &str, tar: Vec<u8>) -> anyhow::Result<i32> {
    client
        .container_archive_put(
            container,
            path,
            Body::Bytes(tar.into(), "application/x-tar"),
        )
        .await?;
    Ok(0)
}

/// `HEAD /containers/{id}/archive` reports the path's stat in a header.
async fn stat_is_dir(client: &Client, container: &str, path: &str) -> bool {
    let q = Query::new().set("path", path);
    let url = format!(
        "/containers/{}/archive{}",
        berth_api::query::path_segment(container),
        q.encode()
    );
    let Ok(resp) = client
        .send(berth_api::Method::HEAD, &url, Body::Empty, &[])
        .await
    else {
        return false;
    };
    let Some(stat) = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(stat) else {
        return false;
    };
    let mode = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["mode"].as_u64())
        .unwrap_or(0);
    // Go's os.ModeDir bit.
    mode & (1 << 31) != 0
}

pub async fn export(client: &Client, a: ExportArgs) -> anyhow::Result<i32> {
    let mut stream = client.container_export(&a.container).await?;
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
    while let Some(c) = stream.chunk().await? {
        out.write_all(&c)?;
    }
    out.flush()?;
    Ok(0)
}

pub async fn diff(client: &Client, a: DiffArgs) -> anyhow::Result<i32> {
    for change in client
        .container_changes(&a.container)
        .await?
        .unwrap_or_default()
    {
        let kind = match change.kind as u8 {
            0 => "C",
            1 => "A",
            _ => "D",
        };
        println!("{kind} {}", change.path);
    }
    Ok(0)
}

pub async fn commit(client: &Client, a: CommitArgs) -> anyhow::Result<i32> {
    let (repo, tag) = match a.repository.as_deref() {
        Some(r) if !r.is_empty() => {
            let r = Reference::parse(r);
            (r.repository(), r.tag.unwrap_or_else(|| "latest".into()))
        }
        _ => (String::new(), String::new()),
    };
    let mut q = Query::new()
        .set("author", a.author.clone().unwrap_or_default())
        .set("comment", a.message.clone().unwrap_or_default())
        .set("container", a.container.as_str())
        .set("repo", repo)
        .set("tag", tag);
    for c in &a.change {
        q = q.set("changes", c.as_str());
    }
    if !a.pause {
        q = q.set("pause", "0");
    }
    let resp = client.commit(q).await?;
    println!("{}", resp.id);
    Ok(0)
}
