//! `run`, `create`, `start`, `attach`: the attached-container flow exactly in docker's order
//! (create → attach → wait → start → resize → stream → exit code).

use anyhow::Context;
use berth_api::{ApiError, Client, Query};
use clap::{ArgAction, Args};

use super::opts::{Attach, ContainerOpts};
use super::stdio::{self, RawTerminal, StreamEnd};
use crate::errors::{describe, run_exit_code, ExitStatus};
use crate::reference::Reference;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
}

const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Creates the container, pulling the image first when docker would.
async fn create_container(
    client: &Client,
    opts: &ContainerOpts,
    image: &str,
    body: &serde_json::Value,
) -> anyhow::Result<String> {
    let platform = opts.platform.as_deref();
    if opts.pull == "always" {
        crate::image::pull::pull(client, image, platform, opts.quiet, true).await?;
    }
    let created = match client
        .container_create(opts.name.as_deref(), platform, body)
        .await
    {
        Err(ApiError::Status {
            status: 404,
            message,
        }) if message.contains("No such image") && opts.pull != "never" => {
            eprintln!(
                "Unable to find image '{}' locally",
                Reference::parse(image).familiar()
            );
            crate::image::pull::pull(client, image, platform, opts.quiet, true).await?;
            client
                .container_create(opts.name.as_deref(), platform, body)
                .await?
        }
        other => other?,
    };
    for w in created.warnings.iter().filter(|w| !w.is_empty()) {
        eprintln!("WARNING: {w}");
    }
    if let Some(path) = &opts.cidfile {
        std::fs::write(path, &created.id)
            .with_context(|| format!("writing the container ID file {path}"))?;
    }
    Ok(created.id)
}

pub async fn create(client: &Client, args: CreateArgs) -> anyhow::Result<i32> {
    let (image, cmd) = split_image(&args.args);
    let attach = args.opts.attach_streams(false);
    let console = if args.opts.tty {
        stdio::terminal_size()
    } else {
        None
    };
    let body = args.opts.create_body(image, cmd, attach, console)?;
    let id = create_container(client, &args.opts, image, &body).await?;
    println!("{id}");
    Ok(0)
}

fn split_image(args: &[String]) -> (&str, &[String]) {
    match args.split_first() {
        Some((image, cmd)) => (image.as_str(), cmd),
        None => ("", &[]),
    }
}

pub async fn run(client: &Client, args: RunArgs) -> anyhow::Result<i32> {
    let opts = &args.opts;
    let (image, cmd) = split_image(&args.args);
    let attach = opts.attach_streams(args.detach);
    if opts.tty && attach.stdin && !stdio::stdin_is_tty() {
        return Err(ExitStatus {
            code: 1,
            message: Some("berth: the input device is not a TTY".into()),
        }
        .into());
    }
    let detach_keys =
        stdio::parse_detach_keys(opts.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))?;
    let console = if opts.tty {
        stdio::terminal_size()
    } else {
        None
    };
    let body = opts.create_body(image, cmd, attach, console)?;
    let id = create_container(client, opts, image, &body).await?;

    if args.detach {
        start_or_exit(client, &id).await?;
        println!("{id}");
        return Ok(0);
    }

    let attached = attach.stdin || attach.stdout || attach.stderr;
    let condition = if opts.rm { "removed" } else { "next-exit" };
    // Both must be in place before the start; neither depends on the other.
    let (conn, waiter) = tokio::join!(
        async {
            match attached {
                true => client
                    .container_attach(&id, attach_query(attach))
                    .await
                    .map(Some),
                false => Ok(None),
            }
        },
        client.container_wait_begin(&id, Some(condition))
    );
    let (conn, waiter) = (conn?, waiter?);

    let raw = if opts.tty && attach.stdin {
        RawTerminal::enable()
    } else {
        None
    };
    if let Err(e) = start_or_exit(client, &id).await {
        drop(raw);
        return Err(e);
    }
    let resize_task = if opts.tty {
        start_resizing(client, &id, false).await
    } else {
        None
    };
    let signals = if opts.sig_proxy && !opts.tty {
        Some(proxy_signals(client, &id))
    } else {
        None
    };

    let end = match conn {
        Some(conn) => stdio::pump(conn, opts.tty, attach.stdin, detach_keys).await?,
        None => StreamEnd::Finished,
    };
    drop(raw);
    for task in [resize_task, signals].into_iter().flatten() {
        task.abort();
    }
    if end == StreamEnd::Detached {
        return Ok(0);
    }
    let status = waiter.await?;
    if let Some(msg) = status
        .error
        .and_then(|e| e.message)
        .filter(|m| !m.is_empty())
    {
        eprintln!("berth: Error response from daemon: {msg}");
        return Ok(125);
    }
    Ok(status.status_code as i32)
}

/// Starts a container; a failure ends `run` with docker's 125/126/127.
async fn start_or_exit(client: &Client, id: &str) -> anyhow::Result<()> {
    match client.container_start(id, None).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = anyhow::Error::new(e);
            let msg = describe(&e);
            Err(ExitStatus {
                code: run_exit_code(&msg),
                message: Some(format!("berth: {msg}")),
            }
            .into())
        }
    }
}

fn attach_query(a: Attach) -> Query {
    Query::new()
        .flag("stderr", a.stderr)
        .flag("stdin", a.stdin)
        .flag("stdout", a.stdout)
        .set("stream", "1")
}

/// Sends the initial size, then follows SIGWINCH.
async fn start_resizing(
    client: &Client,
    id: &str,
    exec: bool,
) -> Option<tokio::task::JoinHandle<()>> {
    let (h, w) = stdio::terminal_size()?;
    let resize = {
        let client = client.clone();
        let id = id.to_string();
        move |h: u16, w: u16| {
            let client = client.clone();
            let id = id.clone();
            async move {
                let _ = if exec {
                    client.exec_resize(&id, h, w).await
                } else {
                    client.container_resize(&id, h, w).await
                };
            }
        }
    };
    resize(h, w).await;
    stdio::watch_resize(resize)
}

pub(crate) async fn resize_exec(
    client: &Client,
    exec_id: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    start_resizing(client, exec_id, true).await
}

/// docker's sig-proxy: SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 go to the container.
fn proxy_signals(client: &Client, id: &str) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let client = client.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
        for (kind, name) in kinds {
            if let Ok(mut s) = signal(kind) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(name).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
        while let Some(name) = rx.recv().await {
            let _ = client.container_kill(&id, Some(name)).await;
        }
    })
}

pub async fn start(client: &Client, args: StartArgs) -> anyhow::Result<i32> {
    if !(args.attach || args.interactive) {
        let mut failed = false;
        for c in &args.containers {
            match client.container_start(c, args.detach_keys.as_deref()).await {
                Ok(()) => println!("{c}"),
                Err(e) => {
                    eprintln!("{}", describe(&e.into()));
                    failed = true;
                }
            }
        }
        if failed {
            return Err(ExitStatus {
                code: 1,
                message: Some("Error: failed to start containers".into()),
            }
            .into());
        }
        return Ok(0);
    }
    let [container] = args.containers.as_slice() else {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    };
    let info = client.container_inspect(container).await?;
    let id = info.id.clone().unwrap_or_else(|| container.clone());
    let config = info.config.unwrap_or_default();
    let tty = config.tty.unwrap_or(false);
    let stdin = args.interactive && config.open_stdin.unwrap_or(false);
    let detach_keys =
        stdio::parse_detach_keys(args.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))?;
    let conn = client
        .container_attach(
            &id,
            attach_query(Attach {
                stdin,
                stdout: true,
                stderr: true,
            }),
        )
        .await?;
    let waiter = client.container_wait_begin(&id, Some("next-exit")).await?;
    let raw = if tty && stdin {
        RawTerminal::enable()
    } else {
        None
    };
    client
        .container_start(&id, args.detach_keys.as_deref())
        .await?;
    let resize = if tty {
        start_resizing(client, &id, false).await
    } else {
        None
    };
    let signals = if !tty {
        Some(proxy_signals(client, &id))
    } else {
        None
    };
    let end = stdio::pump(conn, tty, stdin, detach_keys).await?;
    drop(raw);
    for t in [resize, signals].into_iter().flatten() {
        t.abort();
    }
    if end == StreamEnd::Detached {
        return Ok(0);
    }
    Ok(waiter.await?.status_code as i32)
}

pub async fn attach(client: &Client, args: AttachArgs) -> anyhow::Result<i32> {
    let info = client.container_inspect(&args.container).await?;
    let id = info.id.clone().unwrap_or_else(|| args.container.clone());
    let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    if !running {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let config = info.config.unwrap_or_default();
    let tty = config.tty.unwrap_or(false);
    let stdin = !args.no_stdin && config.open_stdin.unwrap_or(false);
    let keys = args.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS);
    let detach_keys = stdio::parse_detach_keys(keys)?;
    let q = attach_query(Attach {
        stdin,
        stdout: true,
        stderr: true,
    })
    .opt("detachKeys", args.detach_keys.as_deref());
    let conn = client.container_attach(&id, q).await?;
    let raw = if tty && stdin {
        RawTerminal::enable()
    } else {
        None
    };
    let resize = if tty {
        start_resizing(client, &id, false).await
    } else {
        None
    };
    let signals = if args.sig_proxy && !tty {
        Some(proxy_signals(client, &id))
    } else {
        None
    };
    let end = stdio::pump(conn, tty, stdin, detach_keys).await?;
    drop(raw);
    for t in [resize, signals].into_iter().flatten() {
        t.abort();
    }
    if end == StreamEnd::Detached {
        return Ok(0);
    }
    // The stream can end a moment before the daemon has recorded the exit: wait for it
    // (as docker attach does) rather than reading a state that may still say running.
    if let Ok(w) = client.container_wait(&id, Some("not-running")).await {
        return Ok(w.status_code as i32);
    }
    let info = client.container_inspect(&id).await?;
    Ok(info.state.and_then(|s| s.exit_code).unwrap_or(0) as i32)
}
