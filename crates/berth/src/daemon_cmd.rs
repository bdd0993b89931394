//! `berth daemon`: dockerd's flags → `berth_daemon::Config`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Root directory of persistent berth state
    #[arg(long = "data-root", default_value = "/var/lib/berth")]
    pub data_root: PathBuf,
    /// Root directory for execution state files
    #[arg(long = "exec-root", default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Daemon socket to listen on
    #[arg(short = 'H', long = "host", default_value = berth_api::DEFAULT_HOST)]
    pub host: String,
    /// OCI runtime: builtin, runc, or a path to a runtime binary
    #[arg(long, default_value = "builtin")]
    pub runtime: String,
    /// Path of the berth-shim binary (default: next to berth)
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Path to use for daemon PID file
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// Attach containers to a network bridge
    #[arg(short = 'b', long = "bridge-name", default_value = "berth0")]
    pub bridge_name: String,
    /// Network bridge IP
    #[arg(long)]
    pub bip: Option<String>,
    /// Default address pools for node specific local networks (base=CIDR,size=N)
    #[arg(long = "default-address-pool")]
    pub default_address_pool: Option<String>,
    /// Preferred registry mirror (for docker.io images; repeatable)
    #[arg(long = "registry-mirror")]
    pub registry_mirror: Vec<String>,
    /// Enable insecure registry communication (plain HTTP; repeatable)
    #[arg(long = "insecure-registry")]
    pub insecure_registry: Vec<String>,
    /// Directory of per-registry TLS certificates (<dir>/<host:port>/ca.crt, client.cert, client.key)
    #[arg(long = "registry-certs-dir", default_value = "/etc/berth/certs.d")]
    pub registry_certs_dir: std::path::PathBuf,
    /// Seconds a registry may send nothing mid-download before the pull retries (default 30)
    #[arg(long = "registry-stall-timeout", value_name = "SECONDS")]
    pub registry_stall_timeout: Option<f64>,
}

pub fn run(a: DaemonArgs) -> anyhow::Result<i32> {
    berth_daemon::run(berth_daemon::Config {
        data_root: a.data_root,
        exec_root: a.exec_root,
        host: a.host,
        runtime: a.runtime,
        shim: a.shim,
        log_level: a.log_level,
        pidfile: a.pidfile,
        bridge_name: a.bridge_name,
        bip: a.bip,
        default_address_pool: a.default_address_pool,
        registry_mirrors: a.registry_mirror,
        insecure_registries: a.insecure_registry,
        registry_certs_dir: a.registry_certs_dir,
        registry_stall_timeout: a
            .registry_stall_timeout
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64),
    })?;
    Ok(0)
}
