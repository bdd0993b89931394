//! `berth runtime …`: the builtin runtime behind runc's command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Root directory for storage of container state
    #[arg(long, default_value = "/run/berth/runtime")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    pub id: String,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RuntimeCommand {
    /// Create a container
    Create(BundleArgs),
    /// Execute the user-defined process in a created container
    Start { id: String },
    /// Output the state of a container
    State { id: String },
    /// Send a signal to the container's init process (default SIGTERM)
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete any resources held by the container
    Delete {
        /// Forcibly delete the container if it is still running (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and run a container, exiting with its status
    Run(BundleArgs),
}

pub fn run(a: RuntimeArgs) -> anyhow::Result<i32> {
    use berth_runtime::cli;
    let root = a.root.as_path();
    match a.command {
        RuntimeCommand::Create(b) => cli::create(root, &b.id, &b.bundle, b.pid_file.as_deref())?,
        RuntimeCommand::Start { id } => cli::start(root, &id)?,
        RuntimeCommand::State { id } => {
            println!("{}", serde_json::to_string_pretty(&cli::state(root, &id)?)?)
        }
        RuntimeCommand::Kill { id, signal } => cli::kill(root, &id, &signal)?,
        RuntimeCommand::Delete { force, id } => cli::delete(root, &id, force)?,
        RuntimeCommand::Run(b) => {
            return Ok(cli::run(root, &b.id, &b.bundle, b.pid_file.as_deref())?)
        }
    }
    Ok(0)
}
