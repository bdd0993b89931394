//! `berth compose …`: the compose model (crates/compose) on the engine, through the API only.

mod up;

use anyhow::Context;
use berth_compose::{load_project, Options, Project};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file", global = true)]
    pub file: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name", global = true)]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first compose file)
    #[arg(long = "project-directory", global = true)]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file", global = true)]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long = "profile", global = true)]
    pub profile: Vec<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Parse, resolve and render compose file in canonical format
    Config(ConfigArgs),
    /// Create and start containers
    Up(UpArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Services
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file
    #[arg(short, long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short, long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Format the output. Values: [yaml | json]
    #[arg(long, default_value = "yaml")]
    pub format: String,
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,
    /// Print the service config hash, one per line (`*` for all services).
    #[arg(long)]
    pub hash: Option<String>,
    /// Print environment used for interpolation.
    #[arg(long)]
    pub environment: bool,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub quiet: bool,
    /// Save to file (default to stdout)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Services
    pub service_names: Vec<String>,
}

pub fn run(host: &str, a: ComposeArgs) -> anyhow::Result<i32> {
    let project = load(&a)?;
    let client = || -> anyhow::Result<(berth_api::Client, tokio::runtime::Runtime)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok((berth_api::Client::new(host)?, rt))
    };
    match a.command {
        ComposeCommand::Config(c) => config(&project, c),
        ComposeCommand::Up(u) => {
            anyhow::ensure!(
                u.detach,
                "attached `compose up` is not supported yet: use `compose up -d` and `logs -f`"
            );
            let (c, rt) = client()?;
            rt.block_on(up::up(&c, &project, &u.services))
        }
        ComposeCommand::Down(d) => {
            let (c, rt) = client()?;
            rt.block_on(up::down(&c, &project, d.volumes))
        }
        ComposeCommand::Ps(ps) => {
            let (c, rt) = client()?;
            rt.block_on(up::ps(&c, &project, ps.all, ps.quiet))
        }
    }
}

fn load(a: &ComposeArgs) -> anyhow::Result<Project> {
    let opts = Options {
        files: a.file.clone(),
        project_name: a.project_name.clone(),
        project_directory: a.project_directory.clone(),
        env_files: a.env_file.clone(),
        profiles: a.profile.clone(),
        environ: std::env::vars().collect(),
        cwd: std::env::current_dir().context("the current directory")?,
    };
    let p = load_project(&opts)?;
    for w in &p.warnings {
        eprintln!("WARN[0000] {w}");
    }
    Ok(p)
}

fn config(p: &Project, c: ConfigArgs) -> anyhow::Result<i32> {
    let mut out = String::new();
    if c.services {
        for s in p.service_names() {
            out.push_str(&s);
            out.push('\n');
        }
    } else if c.volumes {
        if let Some(v) = p.model["volumes"].as_object() {
            for k in v.keys() {
                out.push_str(k);
                out.push('\n');
            }
        }
    } else if let Some(h) = &c.hash {
        let names: Vec<String> = if h == "*" {
            p.service_names()
        } else {
            h.split(',').map(|s| s.trim().to_string()).collect()
        };
        for n in names {
            let hash = p
                .config_hash(&n)
                .with_context(|| format!("no such service: {n}"))?;
            out.push_str(&format!("{n} {hash}\n"));
        }
    } else {
        let mut model = p.model.clone();
        if !c.service_names.is_empty() {
            if let Some(s) = model["services"].as_object_mut() {
                for n in &c.service_names {
                    anyhow::ensure!(s.contains_key(n), "no such service: {n}");
                }
                s.retain(|k, _| c.service_names.contains(k));
            }
        }
        out = match c.format.as_str() {
            "json" => serde_json::to_string_pretty(&model)? + "\n",
            "yaml" | "" => serde_norway::to_string(&model)?,
            f => anyhow::bail!("unsupported format {f:?}: yaml or json"),
        };
    }
    if c.quiet {
        return Ok(0);
    }
    match c.output {
        Some(path) => {
            std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{out}"),
    }
    Ok(0)
}
