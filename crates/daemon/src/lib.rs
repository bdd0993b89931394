//! berth-daemon: the engine. Serves the Docker Engine API on a unix socket and composes the
//! image store, the runtime (through per-container shims), and the state store.
//!
//! It is not: a CLI (that is `crates/berth`), nor a container runtime (that is `berth-shim`
//! and `berth-runtime`); it never clones or setns-es itself.

// The Engine API's JSON answers are large `json!` literals.
#![recursion_limit = "256"]

mod builder;
mod changes;
mod container;
mod error;
mod events;
mod exec;
mod health;
mod hijack;
mod lifecycle;
mod logs;
mod mounts;
mod networking;
mod paths;
mod query;
mod restart;
mod routes;
mod shim;
mod signal;
mod state;
mod volumes;

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

/// The highest Engine API version served (the docker 28.2 CLI speaks 1.50).
pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";

/// Everything `berth daemon` is started with (flags as dockerd's).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--data-root`, default `/var/lib/berth`.
    pub data_root: PathBuf,
    /// `--exec-root`, default `/run/berth`: shim sockets, runtime state, pid file.
    pub exec_root: PathBuf,
    /// `-H/--host`, default `unix:///run/berth/berth.sock`.
    pub host: String,
    /// `--runtime`: `builtin`, `runc`, or a path to an OCI runtime binary.
    pub runtime: String,
    /// `--shim`: path of `berth-shim`; default: next to the running executable.
    pub shim: Option<PathBuf>,
    /// `--log-level`: error, warn, info, debug, trace.
    pub log_level: String,
    /// `--pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `--registry-mirror`: mirrors tried first for docker.io images.
    pub registry_mirrors: Vec<String>,
    /// `--insecure-registry`: plain-HTTP registries (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// `--registry-certs-dir`: per-registry CAs and client certificates,
    /// `<dir>/<host:port>/{ca.crt,client.cert,client.key}` (default `/etc/berth/certs.d`).
    pub registry_certs_dir: PathBuf,
    /// `--registry-stall-timeout`: a blob download that receives nothing for this long is
    /// cut and resumed (None: 30 s).
    pub registry_stall_timeout: Option<std::time::Duration>,
    /// `-b/--bridge-name`: the default bridge's device (default `berth0`).
    pub bridge_name: String,
    /// `--bip`: the default bridge's address and prefix (default 172.17.0.1/16).
    pub bip: Option<String>,
    /// `--default-address-pool`: `base=CIDR,size=N` for new networks.
    pub default_address_pool: Option<String>,
}

fn socket_path(host: &str) -> anyhow::Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => anyhow::bail!("unsupported host {host:?}: berth listens on unix:///path/to.sock"),
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn runtime_choice(s: &str) -> anyhow::Result<state::RuntimeChoice> {
    Ok(match s {
        "" | "builtin" => state::RuntimeChoice::Builtin,
        "runc" | "crun" => {
            state::RuntimeChoice::External(find_in_path(s).with_context(|| {
                format!("--runtime {s}: {s} is not installed (not found in PATH)")
            })?)
        }
        p => {
            let p = PathBuf::from(p);
            anyhow::ensure!(p.is_file(), "--runtime {}: no such file", p.display());
            state::RuntimeChoice::External(p)
        }
    })
}

fn shim_path(config: &Config) -> anyhow::Result<PathBuf> {
    let p = match &config.shim {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating the berth executable")?
            .with_file_name("berth-shim"),
    };
    anyhow::ensure!(
        p.is_file(),
        "berth-shim not found at {} (use --shim PATH)",
        p.display()
    );
    Ok(p)
}

/// Run the daemon until SIGTERM or SIGINT. Blocks the calling thread.
/// Running containers are left running: their shims are independent, and the next daemon
/// re-adopts them.
pub fn run(config: Config) -> anyhow::Result<()> {
    let filter = tracing_filter(&config.log_level);
    let _ = tracing_subscriber_init(filter);
    let socket = socket_path(&config.host)?;
    routes::registry::set_config(berth_registry::RegistryConfig {
        mirrors: config.registry_mirrors.clone(),
        insecure: config.insecure_registries.clone(),
        certs_dir: Some(config.registry_certs_dir.clone()),
        stall_timeout: config.registry_stall_timeout,
    });
    let runtime = runtime_choice(&config.runtime)?;
    let shim = shim_path(&config)?;
    for dir in [&config.data_root, &config.exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let images = Arc::new(
        berth_image::ImageStore::open(&config.data_root).with_context(|| {
            format!("opening the image store in {}", config.data_root.display())
        })?,
    );
    let paths = paths::Paths {
        data_root: config.data_root.clone(),
        exec_root: config.exec_root.clone(),
    };
    std::fs::create_dir_all(paths.containers())?;
    let volumes = Arc::new(
        volumes::VolumeStore::open(config.data_root.join("volumes")).with_context(|| {
            format!("opening the volume store in {}", config.data_root.display())
        })?,
    );
    let networks = networking::Networks::open(
        networking::NetConfig {
            bridge: if config.bridge_name.is_empty() {
                "berth0".into()
            } else {
                config.bridge_name.clone()
            },
            bip: config.bip.clone(),
            pool: config.default_address_pool.clone(),
        },
        &config.data_root,
    )
    .context("setting up the default bridge network")?;
    let mut daemon = state::Daemon::new(paths, images, runtime, shim);
    daemon.volumes = volumes;
    let networks = Arc::new(networks);
    // The first container's network namespace, made while the daemon is idle.
    networks.refill_sandbox();
    daemon.networks = Some(networks);
    let daemon = Arc::new(daemon);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(serve(daemon.clone(), socket, config.pidfile.clone()));
    if let Some(n) = &daemon.networks {
        n.shutdown();
    }
    res
}

/// Give the memory that bursts of work freed back to the system now and then: glibc keeps
/// freed heap pages mapped (RSS after 100 containers came and went was 17.8 MB, against
/// 12.8 MB before them).
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        // SAFETY: malloc_trim only returns free pages of glibc's arenas to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

fn tracing_filter(level: &str) -> String {
    match level {
        "error" | "warn" | "info" | "debug" | "trace" => level.to_string(),
        "fatal" | "panic" => "error".into(),
        _ => "info".into(),
    }
}

fn tracing_subscriber_init(level: String) -> Result<(), String> {
    use tracing::Level;
    let lvl = match level.as_str() {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => Level::INFO,
    };
    let sub = tracing_fmt_subscriber(lvl);
    tracing::subscriber::set_global_default(sub).map_err(|e| e.to_string())
}

fn tracing_fmt_subscriber(level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .finish()
}

async fn serve(d: state::Shared, socket: PathBuf, pidfile: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if socket.exists() {
        // A live daemon answers on it; a dead one left a stale file.
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            anyhow::bail!(
                "another daemon is already listening on {}",
                socket.display()
            );
        }
        std::fs::remove_file(&socket)
            .with_context(|| format!("removing stale socket {}", socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660));
    }
    if let Some(p) = &pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    lifecycle::restore(&d).await;
    tokio::spawn(return_freed_memory());
    tracing::info!("berth daemon listening on unix://{}", socket.display());
    let inner = routes::router(d.clone());
    let app = axum::Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::map_request(
            |req: axum::extract::Request| async move { routes::strip_version(req) },
        ));
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let int = tokio::signal::ctrl_c();
        tokio::select! {
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            _ = int => {}
        }
        tracing::info!("shutting down; containers keep running");
    };
    // Graceful shutdown waits for open connections, and attach, logs -f, wait and events
    // connections may stay open indefinitely: give them a few seconds, then stop anyway.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut graceful_rx = stop_rx.clone();
    let graceful = async move {
        let _ = graceful_rx.wait_for(|stop| *stop).await;
    };
    let mut deadline_rx = stop_rx;
    let deadline = async move {
        let _ = deadline_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    };
    let app = app.into_make_service_with_connect_info::<hijack::PeerSocket>();
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    // On a worker, not the thread that blocks on the runtime: a connection's task then starts
    // on the thread that accepted it, without a wake-up across threads.
    tokio::spawn(async move {
        tokio::select! {
            res = server => res,
            _ = deadline => {
                tracing::warn!("connections still open 3 s after the signal; stopping anyway");
                Ok(())
            }
        }
    })
    .await??;
    let _ = std::fs::remove_file(&socket);
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
