//! `berth compose …`: the compose model (crates/compose) on the engine, through the API only.

mod attach;
mod build;
mod down;
mod engine;
mod logs;
mod ops;
mod progress;
mod run;
mod spec;
mod up;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use berth_compose::{load_project, Options, Project};
use clap::{ArgAction, Args, Subcommand};
use std::path::PathBuf;

use progress::Progress;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    pub file: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first compose file)
    #[arg(long = "project-directory")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long = "profile")]
    pub profile: Vec<String>,
    /// Set type of progress output (auto, tty, plain, quiet)
    #[arg(long = "progress")]
    pub progress: Option<String>,
    /// Produce monochrome output
    #[arg(long = "ansi")]
    pub ansi: Option<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Parse, resolve and render compose file in canonical format
    Config(ConfigArgs),
    /// Create and start containers
    Up(UpArgs),
    /// Creates containers for a service
    Create(CreateArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
    /// View output from containers
    Logs(LogsArgs),
    /// Build or rebuild services
    Build(BuildArgs),
    /// Pull service images
    Pull(ServicesQuiet),
    /// Push service images
    Push(ServicesQuiet),
    /// Start services
    Start(Services),
    /// Stop services
    Stop(StopArgs),
    /// Restart service containers
    Restart(RestartArgs),
    /// Force stop service containers
    Kill(KillArgs),
    /// Removes stopped service containers
    Rm(RmArgs),
    /// Pause services
    Pause(Services),
    /// Unpause services
    Unpause(Services),
    /// Run a one-off command on a service
    Run(RunArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// List images used by the created containers
    Images(ImagesArgs),
    /// Display the running processes
    Top(Services),
    /// Print the public port for a port binding
    Port(PortArgs),
    /// Show the Docker Compose version information
    Version(VersionArgs),
}

#[derive(Debug, Args)]
pub struct Services {
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServicesQuiet {
    /// Pull/push without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
    /// Pull what it can and ignores images with pull failures
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Push what it can and ignores images with push failures
    #[arg(long)]
    pub ignore_push_failures: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present.
    #[arg(long = "scale", value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long)]
    pub wait_timeout: Option<u64>,
    /// Stops all containers if any container was stopped. Incompatible with -d
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit
    #[arg(long)]
    pub exit_code_from: Option<String>,
    /// Use this timeout in seconds for container shutdown when attached or when containers are already running
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Show timestamps
    #[arg(long)]
    pub timestamps: bool,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Restrict attaching to the specified services. Incompatible with --attach-dependencies.
    #[arg(long)]
    pub attach: Vec<String>,
    /// Automatically attach to log output of dependent services
    #[arg(long)]
    pub attach_dependencies: bool,
    /// Do not attach (stream logs) to the specified services
    #[arg(long)]
    pub no_attach: Vec<String>,
    /// Services
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long = "scale", value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")
    #[arg(long)]
    pub rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command)
    #[arg(short, long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output. Values: [table | json]
    #[arg(long)]
    pub format: Option<String>,
    /// Filter services by status
    #[arg(long)]
    pub status: Vec<String>,
    /// Filter services by a property (supported filters: status)
    #[arg(long)]
    pub filter: Vec<String>,
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// index of the container if service has multiple replicas
    #[arg(long)]
    pub index: Option<u32>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Don't print anything to STDOUT
    #[arg(short, long)]
    pub quiet: bool,
    /// Set build-time variables for services
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Push service images
    #[arg(long)]
    pub push: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    /// Don't restart dependent services
    #[arg(long)]
    pub no_deps: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short, long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short, long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Run as specified username or uid
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Add or override a label
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long)]
    pub service_ports: bool,
    /// Bind mount a volume
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Build image before starting container
    #[arg(long)]
    pub build: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long, action = ArgAction::SetTrue)]
    pub interactive: bool,
    /// SERVICE [COMMAND] [ARGS...]
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Disable pseudo-TTY allocation. By default `docker compose exec` allocates a TTY.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run the command as this user
    #[arg(short, long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// SERVICE COMMAND [ARGS...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short, long)]
    pub all: bool,
    /// Only display project names
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table")]
    pub format: String,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: String,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Shows only Compose's version number
    #[arg(long)]
    pub short: bool,
    /// Format the output. Values: [pretty | json]
    #[arg(short, long, default_value = "pretty")]
    pub format: String,
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
    /// Print the network names, one per line.
    #[arg(long)]
    pub networks: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    pub images: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    pub profiles: bool,
    /// Print the service config hash, one per line (`*` for all services).
    #[arg(long)]
    pub hash: Option<String>,
    /// Print environment used for interpolation.
    #[arg(long)]
    pub environment: bool,
    /// Don't check model consistency - warning: may produce invalid Compose output
    #[arg(long)]
    pub no_consistency: bool,
    /// Don't interpolate environment variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub quiet: bool,
    /// Save to file (default to stdout)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Services
    pub service_names: Vec<String>,
}

fn parse_scale(v: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    v.iter()
        .map(|s| {
            let (k, n) = s
                .split_once('=')
                .with_context(|| format!("invalid --scale {s:?}: SERVICE=NUM"))?;
            let n: u32 = n
                .parse()
                .with_context(|| format!("invalid --scale {s:?}: SERVICE=NUM"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}

pub fn run(host: &str, a: ComposeArgs) -> anyhow::Result<i32> {
    if let Some(p) = &a.progress {
        std::env::set_var("COMPOSE_PROGRESS", p);
    }
    if let ComposeCommand::Version(v) = &a.command {
        return version(v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let ComposeCommand::Ls(l) = &a.command {
        let c = berth_api::Client::new(host)?;
        return rt.block_on(ops::ls(&c, l.all, l.quiet, &l.format));
    }
    let no_interpolate = matches!(&a.command, ComposeCommand::Config(c) if c.no_interpolate);
    let project = Arc::new(load(&a, no_interpolate)?);
    if let ComposeCommand::Config(c) = a.command {
        return config(&project, c);
    }
    let c = berth_api::Client::new(host)?;
    let p = &project;
    rt.block_on(async move {
        match a.command {
            ComposeCommand::Config(_) | ComposeCommand::Version(_) | ComposeCommand::Ls(_) => Ok(0),
            ComposeCommand::Up(u) => up_cmd(&c, p, u).await,
            ComposeCommand::Create(cr) => {
                let o = up::UpOptions {
                    services: cr.services,
                    build: build_policy(cr.build, cr.no_build)?,
                    force_recreate: cr.force_recreate,
                    no_recreate: cr.no_recreate,
                    remove_orphans: cr.remove_orphans,
                    scale: parse_scale(&cr.scale)?,
                    start: false,
                    ..Default::default()
                };
                up::converge(&c, p, &o, &Progress::new("Running")).await?;
                Ok(0)
            }
            ComposeCommand::Down(d) => {
                down::down(
                    &c,
                    p,
                    &down::DownOptions {
                        volumes: d.volumes,
                        rmi: d.rmi,
                        remove_orphans: d.remove_orphans,
                        timeout: d.timeout,
                        services: d.services,
                    },
                )
                .await
            }
            ComposeCommand::Ps(ps) => {
                ops::ps(
                    &c,
                    p,
                    &ps.service_names,
                    ops::PsOptions {
                        all: ps.all,
                        quiet: ps.quiet,
                        services: ps.services,
                        format: ps.format,
                        status: ps.status,
                        filter: ps.filter,
                    },
                )
                .await
            }
            ComposeCommand::Logs(l) => logs_cmd(&c, p, l).await,
            ComposeCommand::Build(b) => {
                let flags = build::BuildFlags {
                    no_cache: b.no_cache,
                    pull: b.pull,
                    quiet: b.quiet,
                    build_args: b.build_arg,
                };
                for s in up::selection(p, &b.services, true)? {
                    if p.model["services"][&s]["build"].is_object() {
                        build::build_service(&c, p, &s, &flags).await?;
                        if b.push && p.model["services"][&s]["image"].is_string() {
                            build::push_image(&c, &spec::image_name(p, &s), b.quiet).await?;
                        }
                    }
                }
                Ok(0)
            }
            ComposeCommand::Pull(q) => {
                let progress = Progress::new("Pulling");
                for s in up::selection(p, &q.services, true)? {
                    let svc = &p.model["services"][&s];
                    let Some(image) = svc["image"].as_str() else {
                        continue;
                    };
                    progress.working("", &s, "Pulling");
                    match build::pull_image(&c, image, true).await {
                        Ok(()) => progress.done("", &s, "Pulled"),
                        // A service that can be built may not be pullable yet.
                        Err(_) if svc["build"].is_object() || q.ignore_pull_failures => {
                            progress.failed("", &s, "Skipped")
                        }
                        Err(e) => {
                            progress.failed("", &s, "Error");
                            return Err(e);
                        }
                    }
                }
                Ok(0)
            }
            ComposeCommand::Push(q) => {
                for s in up::selection(p, &q.services, true)? {
                    let svc = &p.model["services"][&s];
                    if svc["build"].is_object() && svc["image"].is_string() {
                        let r = build::push_image(&c, &spec::image_name(p, &s), q.quiet).await;
                        if let Err(e) = r {
                            if !q.ignore_push_failures {
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(0)
            }
            ComposeCommand::Start(s) => ops::start(&c, p, &s.services).await,
            ComposeCommand::Stop(s) => ops::stop(&c, p, &s.services, s.timeout).await,
            ComposeCommand::Restart(s) => {
                ops::restart(&c, p, &s.services, s.timeout, s.no_deps).await
            }
            ComposeCommand::Kill(k) => ops::kill(&c, p, &k.services, &k.signal).await,
            ComposeCommand::Rm(r) => {
                ops::rm(
                    &c,
                    p,
                    &r.services,
                    ops::RmOptions {
                        force: r.force,
                        stop: r.stop,
                        volumes: r.volumes,
                    },
                )
                .await
            }
            ComposeCommand::Pause(s) => ops::pause(&c, p, &s.services, true).await,
            ComposeCommand::Unpause(s) => ops::pause(&c, p, &s.services, false).await,
            ComposeCommand::Top(s) => ops::top(&c, p, &s.services).await,
            ComposeCommand::Port(po) => {
                ops::port(&c, p, &po.service, &po.private_port, &po.protocol, po.index).await
            }
            ComposeCommand::Images(i) => ops::images(&c, p, &i.services, i.quiet, &i.format).await,
            ComposeCommand::Run(r) => {
                let (service, command) = r
                    .args
                    .split_first()
                    .context("compose run requires a service")?;
                run::run(
                    &c,
                    p,
                    service,
                    command,
                    run::RunOptions {
                        detach: r.detach,
                        rm: r.rm,
                        name: r.name,
                        env: r.env,
                        entrypoint: r.entrypoint,
                        no_tty: r.no_tty,
                        no_deps: r.no_deps,
                        user: r.user,
                        workdir: r.workdir,
                        labels: r.label,
                        service_ports: r.service_ports,
                        volumes: r.volume,
                        build: r.build,
                    },
                )
                .await
            }
            ComposeCommand::Exec(e) => {
                let (service, command) = e
                    .args
                    .split_first()
                    .context("compose exec requires a service and a command")?;
                run::exec(
                    &c,
                    p,
                    service,
                    command,
                    run::ExecOptions {
                        detach: e.detach,
                        no_tty: e.no_tty,
                        env: e.env,
                        user: e.user,
                        workdir: e.workdir,
                        privileged: e.privileged,
                        index: e.index,
                    },
                )
                .await
            }
        }
    })
}

fn build_policy(build: bool, no_build: bool) -> anyhow::Result<up::BuildPolicy> {
    anyhow::ensure!(
        !(build && no_build),
        "--build and --no-build are incompatible"
    );
    Ok(if build {
        up::BuildPolicy::Always
    } else if no_build {
        up::BuildPolicy::Never
    } else {
        up::BuildPolicy::Missing
    })
}

async fn up_cmd(c: &berth_api::Client, p: &Arc<Project>, u: UpArgs) -> anyhow::Result<i32> {
    let abort = u.abort_on_container_exit || u.exit_code_from.is_some();
    anyhow::ensure!(
        !(u.detach && abort),
        "--abort-on-container-exit and --detach are incompatible"
    );
    anyhow::ensure!(
        !(u.force_recreate && u.no_recreate),
        "--force-recreate and --no-recreate are incompatible"
    );
    if let Some(s) = &u.exit_code_from {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
    }
    anyhow::ensure!(
        u.attach.is_empty() || !u.attach_dependencies,
        "--attach and --attach-dependencies are incompatible"
    );
    for s in u.attach.iter().chain(&u.no_attach) {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
    }
    let o = up::UpOptions {
        services: u.services.clone(),
        no_deps: u.no_deps,
        build: build_policy(u.build, u.no_build)?,
        force_recreate: u.force_recreate,
        no_recreate: u.no_recreate,
        remove_orphans: u.remove_orphans,
        scale: parse_scale(&u.scale)?,
        start: !u.no_start,
        pull: u.pull.clone(),
    };
    let began = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let progress = Progress::new("Running");
    let running = up::converge(c, p, &o, &progress).await?;
    if u.wait {
        up::wait_ready(
            c,
            &running,
            u.wait_timeout.map(std::time::Duration::from_secs),
            &progress,
        )
        .await?;
        return Ok(0);
    }
    if u.detach || u.no_start {
        return Ok(0);
    }
    let (shown, unattached) = attach_selection(p, &u, running)?;
    attach::attached(
        c,
        &p.name,
        shown,
        attach::AttachOptions {
            abort_on_exit: abort,
            exit_code_from: u.exit_code_from,
            no_color: u.no_color,
            no_prefix: u.no_log_prefix,
            timestamps: u.timestamps,
            timeout: u.timeout,
            since: Some(format!("{}.{:09}", began.as_secs(), began.subsec_nanos())),
            expected_exits: completion_dependencies(p),
            unattached,
        },
    )
    .await
}

/// Which of `up`'s containers an attached `up` follows, and the rest: `--attach` services
/// if given; else the named services (all when none) — with `--attach-dependencies` what
/// they depend on too — that do not say `attach: false`; less `--no-attach` ones.
fn attach_selection(
    p: &Project,
    u: &UpArgs,
    running: Vec<up::Running>,
) -> anyhow::Result<(Vec<up::Running>, Vec<up::Running>)> {
    for s in &u.attach {
        anyhow::ensure!(
            running.iter().any(|r| &r.service == s),
            "cannot attach to services not included in up: {s}"
        );
    }
    let attached = |r: &up::Running| {
        let wanted = if u.attach.is_empty() {
            (u.services.is_empty() || u.attach_dependencies || u.services.contains(&r.service))
                && p.model["services"][&r.service]["attach"].as_bool() != Some(false)
        } else {
            u.attach.contains(&r.service)
        };
        wanted && !u.no_attach.contains(&r.service)
    };
    Ok(running.into_iter().partition(|r| attached(r)))
}

/// Services another one waits on with `service_completed_successfully`.
fn completion_dependencies(p: &Project) -> Vec<String> {
    let mut out = Vec::new();
    for s in p.service_names() {
        if let Some(deps) = p.model["services"][&s]["depends_on"].as_object() {
            for (d, v) in deps {
                if v["condition"] == "service_completed_successfully" && !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
    }
    out
}

async fn logs_cmd(c: &berth_api::Client, p: &Project, l: LogsArgs) -> anyhow::Result<i32> {
    for s in &l.services {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
    }
    let cs: Vec<serde_json::Value> = engine::project_containers(c, &p.name, None)
        .await?
        .into_iter()
        .filter(|x| l.services.is_empty() || l.services.iter().any(|s| s == engine::service_of(x)))
        .filter(|x| l.index.is_none_or(|i| engine::number_of(x) == i))
        .collect();
    let since = l
        .since
        .as_deref()
        .map(crate::container::logs::timestamp_arg)
        .transpose()?;
    let until = l
        .until
        .as_deref()
        .map(crate::container::logs::timestamp_arg)
        .transpose()?;
    let lo = logs::LogOptions {
        follow: l.follow,
        timestamps: l.timestamps,
        tail: Some(l.tail.clone()),
        since,
        until,
        no_prefix: l.no_log_prefix,
        no_color: l.no_color,
    };
    let names: Vec<String> = cs
        .iter()
        .map(|x| logs::display_name(&p.name, engine::service_of(x), engine::name_of(x)))
        .collect();
    let printer = logs::Printer::new(&names, &lo);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, x) in cs.iter().enumerate() {
        let info = c
            .container_inspect_raw(x["Id"].as_str().unwrap_or(""), false)
            .await?;
        let t = logs::Target {
            id: x["Id"].as_str().unwrap_or("").to_string(),
            name: names[i].clone(),
            tty: info["Config"]["Tty"].as_bool() == Some(true),
        };
        logs::spawn(c, i, t, &lo, printer.clone(), tx.clone());
    }
    drop(tx);
    let mut left = cs.len();
    while left > 0 {
        tokio::select! {
            r = rx.recv() => match r { Some(_) => left -= 1, None => break },
            _ = tokio::signal::ctrl_c() => return Ok(130),
        }
    }
    Ok(0)
}

fn version(v: &VersionArgs) -> anyhow::Result<i32> {
    let ver = env!("CARGO_PKG_VERSION");
    if v.short {
        println!("{ver}");
    } else if v.format == "json" {
        println!("{}", serde_json::json!({ "version": format!("v{ver}") }));
    } else {
        println!(
            "berth compose version v{ver} (compose spec, Docker Compose {} compatible)",
            spec::COMPOSE_VERSION
        );
    }
    Ok(0)
}

fn load(a: &ComposeArgs, no_interpolate: bool) -> anyhow::Result<Project> {
    let opts = Options {
        files: a.file.clone(),
        project_name: a.project_name.clone(),
        project_directory: a.project_directory.clone(),
        env_files: a.env_file.clone(),
        profiles: a.profile.clone(),
        environ: std::env::vars().collect(),
        cwd: std::env::current_dir().context("the current directory")?,
        no_interpolate,
    };
    let p = load_project(&opts)?;
    for w in &p.warnings {
        eprintln!("WARN[0000] {w}");
    }
    Ok(p)
}

fn escape_dollars(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        serde_json::Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        serde_json::Value::Object(o) => o.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

fn config(p: &Project, c: ConfigArgs) -> anyhow::Result<i32> {
    let mut out = String::new();
    let lines = |v: &mut String, items: &mut dyn Iterator<Item = String>| {
        for i in items {
            v.push_str(&i);
            v.push('\n');
        }
    };
    let keys = |kind: &str| -> Vec<String> {
        p.model[kind]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    if c.services {
        // Dependencies first, as compose walks them.
        lines(&mut out, &mut p.start_order()?.into_iter());
    } else if c.volumes {
        lines(&mut out, &mut keys("volumes").into_iter());
    } else if c.networks {
        lines(&mut out, &mut keys("networks").into_iter());
    } else if c.images {
        let images = p.service_names().into_iter();
        lines(&mut out, &mut images.map(|s| spec::image_name(p, &s)));
    } else if c.profiles {
        lines(&mut out, &mut p.all_profiles.iter().cloned());
    } else if c.environment {
        for (k, v) in &p.environment {
            out.push_str(&format!("{k}={v}\n"));
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
        // The printed model can be loaded again: literal `$` are written `$$`, as compose
        // does (uninterpolated, every `$` is as written).
        if !c.no_interpolate {
            escape_dollars(&mut model);
        }
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
