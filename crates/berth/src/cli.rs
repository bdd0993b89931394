//! The command line: docker's commands, flags and short forms, plus `daemon` and `runtime`.

use clap::{Parser, Subcommand};

use crate::container::exec::ExecArgs;
use crate::container::files::{CommitArgs, CpArgs, DiffArgs, ExportArgs};
use crate::container::lifecycle::{
    ContainersArgs, KillArgs, PortArgs, RenameArgs, RmArgs, StopArgs, TopArgs, UpdateArgs,
};
use crate::container::logs::LogsArgs;
use crate::container::ps::PsArgs;
use crate::container::run::{AttachArgs, CreateArgs, RunArgs, StartArgs};
use crate::image::archive::{ImportArgs, LoadArgs, SaveArgs};
use crate::image::pull::{LoginArgs, LogoutArgs, PullArgs, PushArgs, SearchArgs};
use crate::image::{HistoryArgs, ImageInspectArgs, ImagesArgs, PruneArgs, RmiArgs, TagArgs};
use crate::inspect::InspectArgs;
use crate::system::FormatArgs;

/// berth: a Docker-compatible container engine
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, max_term_width = 100)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long, env = "BERTH_HOST", default_value = berth_api::DEFAULT_HOST)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Commands about containers, reachable both at the top level and under `container`.
// Parsed once per process; the size of the run flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(crate::container::stats::StatsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
}

// Parsed once per process; the size of the run flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerManagement {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Display detailed information on one or more containers
    Inspect(ImageInspectArgs),
    #[command(flatten)]
    Common(ContainerCommand),
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageManagement {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemManagement {
    /// Display system-wide information
    Info(FormatArgs),
    /// Get real time events from the server
    Events(crate::system::EventsArgs),
}

// Parsed once per process; the size of the run flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    #[command(flatten)]
    Container(ContainerCommand),
    /// List containers
    Ps(PsArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// List images
    Images(ImagesArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Build an image from a Dockerfile
    Build(crate::build::BuildArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Authenticate to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Search Docker Hub for images
    Search(SearchArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Get real time events from the server
    Events(crate::system::EventsArgs),
    /// Show the berth version information
    Version(FormatArgs),
    /// Manage containers
    #[command(name = "container", subcommand)]
    ContainerGroup(ContainerManagement),
    /// Manage images
    #[command(name = "image", subcommand)]
    ImageGroup(ImageManagement),
    /// Manage volumes
    #[command(name = "volume", subcommand)]
    VolumeGroup(crate::volume::VolumeManagement),
    /// Manage networks
    #[command(name = "network", subcommand)]
    NetworkGroup(crate::network::NetworkManagement),
    /// Manage berth
    #[command(name = "system", subcommand)]
    SystemGroup(SystemManagement),
    /// Docker Compose: multi-container applications
    Compose(crate::compose::ComposeArgs),
    /// Run the berth daemon
    Daemon(crate::daemon_cmd::DaemonArgs),
    /// The builtin OCI runtime, with runc's command line
    Runtime(crate::runtime_cmd::RuntimeArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_stops_parsing_at_the_image() {
        let cli = Cli::try_parse_from([
            "berth", "run", "--rm", "-h", "box", "busybox", "ls", "-l", "-h",
        ])
        .unwrap();
        let Command::Container(ContainerCommand::Run(r)) = cli.command else {
            panic!("not run")
        };
        assert!(r.opts.rm);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(r.args, ["busybox", "ls", "-l", "-h"]);
    }

    #[test]
    fn management_aliases() {
        assert!(Cli::try_parse_from(["berth", "container", "ls", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["berth", "container", "rm", "-f", "x"]).is_ok());
        assert!(Cli::try_parse_from(["berth", "image", "ls", "-q"]).is_ok());
        assert!(Cli::try_parse_from(["berth", "exec", "-it", "x", "sh", "-c", "true"]).is_ok());
        assert!(
            Cli::try_parse_from(["berth", "runtime", "--root", "/r", "kill", "id", "KILL"]).is_ok()
        );
        let e = Cli::try_parse_from(["berth", "run", "--no-such-flag", "busybox"]);
        assert!(e.is_err(), "{e:?}");
    }
}
