//! Images of services: `build:` through the CLI's own builder client (`POST /build`),
//! pulls and pushes through the image commands' clients.

use std::path::{Path, PathBuf};

use berth_api::Client;
use berth_compose::Project;
use serde_json::Value;

use super::spec;
use crate::build::{build, BuildArgs};
use crate::image::pull::{pull, push, PushArgs};

/// `compose build`'s flags that change how an image is built.
#[derive(Clone, Debug, Default)]
pub struct BuildFlags {
    pub no_cache: bool,
    pub pull: bool,
    pub quiet: bool,
    pub build_args: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                Value::Null => k.clone(),
                other => format!("{k}={other}"),
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Build one service's image, tagged with its image name (and `build.tags`).
pub async fn build_service(
    client: &Client,
    p: &Project,
    service: &str,
    flags: &BuildFlags,
) -> anyhow::Result<()> {
    let b = &p.model["services"][service]["build"];
    anyhow::ensure!(b.is_object(), "service {service:?} has no build section");
    let context = PathBuf::from(b["context"].as_str().unwrap_or("."));
    let context = if context.is_absolute() {
        context
    } else {
        p.working_dir.join(context)
    };
    // An inline Dockerfile is written beside (not into) the context.
    let mut inline = None;
    let file = match (b["dockerfile_inline"].as_str(), b["dockerfile"].as_str()) {
        (Some(text), _) => {
            let f = std::env::temp_dir().join(format!(
                "berth-compose-{}-{service}.Dockerfile",
                std::process::id()
            ));
            std::fs::write(&f, text)?;
            inline = Some(f.clone());
            Some(f)
        }
        (None, Some(f)) if Path::new(f).is_absolute() => Some(PathBuf::from(f)),
        (None, Some(f)) => Some(context.join(f)),
        (None, None) => None,
    };
    let mut tags = vec![spec::image_name(p, service)];
    tags.extend(strings(&b["tags"]));
    let mut build_args = strings(&b["args"]);
    build_args.extend(flags.build_args.iter().cloned());
    let mut labels = strings(&b["labels"]);
    labels.push(format!("{}={}", spec::LABEL_PROJECT, p.name));
    labels.push(format!("{}={service}", spec::LABEL_SERVICE));
    eprintln!(" Service {service}  Building");
    let args = BuildArgs {
        tags,
        file: file.map(|f| f.display().to_string()),
        build_args,
        target: b["target"].as_str().map(String::from),
        no_cache: flags.no_cache || b["no_cache"].as_bool() == Some(true),
        pull: flags.pull || b["pull"].as_bool() == Some(true),
        quiet: flags.quiet,
        iidfile: None,
        labels,
        check: false,
        platform: None,
        network: b["network"].as_str().map(String::from),
        rm: true,
        force_rm: false,
        context: context.display().to_string(),
    };
    let built = build(client, args).await;
    if let Some(f) = inline {
        let _ = std::fs::remove_file(f);
    }
    built.map_err(|e| e.context(format!("failed to build service {service:?}")))?;
    eprintln!(" Service {service}  Built");
    Ok(())
}

/// Pull an image, docker's progress to stderr unless `quiet`.
pub async fn pull_image(client: &Client, image: &str, quiet: bool) -> anyhow::Result<()> {
    pull(client, image, None, quiet, true)
        .await
        .map_err(|e| e.context(format!("pulling {image}")))
}

pub async fn push_image(client: &Client, image: &str, quiet: bool) -> anyhow::Result<()> {
    push(
        client,
        PushArgs {
            all_tags: false,
            quiet,
            name: image.to_string(),
        },
    )
    .await
    .map(|_| ())
}
