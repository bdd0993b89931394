//! berth-daemon: the engine. Serves the Docker Engine API on a unix socket and composes the
//! image store, the runtime (through per-container shims), and the state store.
//!
//! It is not: a CLI (that is `crates/berth`), nor a container runtime (that is `berth-shim`
//! and `berth-runtime`); it never clones or setns-es itself.

use std::path::PathBuf;

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
}

/// Run the daemon until SIGTERM or SIGINT. Blocks the calling thread.
pub fn run(config: Config) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("the daemon is being written")
}
