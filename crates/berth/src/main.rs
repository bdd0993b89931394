//! berth: the CLI (a Docker Engine API client), `berth daemon`, and `berth runtime`.
//!
//! The CLI knows the daemon only through the API (`berth-api`): whatever it does, the
//! docker CLI pointed at the same socket can do. It is on the hot path of
//! `berth run --rm busybox true`, so it starts a current-thread runtime and sends its first
//! request without preliminaries.

#![recursion_limit = "512"]

mod build;
mod cli;
mod compose;
mod container;
mod daemon_cmd;
mod errors;
mod filters;
mod format;
mod image;
mod inspect;
mod network;
mod pipe;
mod pretty;
mod reference;
mod runtime_cmd;
mod system;
mod volume;

use std::io::Write;

use berth_api::Client;
use clap::Parser;

use cli::{Cli, Command, ContainerCommand, ContainerManagement, ImageManagement, SystemManagement};
use errors::{describe, ExitStatus};

fn main() {
    pipe::exit_quietly_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                // docker exits 125 on bad flags.
                _ => 125,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Daemon(a) => {
            exec_berthd();
            finish(daemon_cmd::run(a), false)
        }
        Command::Runtime(a) => finish(runtime_cmd::run(a), false),
        Command::Compose(a) => finish(compose::run(&cli.host, a), false),
        command => run_client(&cli.host, command),
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// `berth daemon …` becomes `berthd …` when berthd sits next to this binary: the long-lived
/// daemon then maps only daemon code (about 3 MB less resident than this CLI's binary). Without
/// berthd the daemon runs in this process, the same code.
fn exec_berthd() {
    use std::os::unix::process::CommandExt;
    let Some(berthd) = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("berthd")))
        .filter(|p| p.is_file())
    else {
        return;
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .skip_while(|a| a != "daemon")
        .skip(1)
        .collect();
    let err = std::process::Command::new(&berthd)
        .arg0("berthd")
        .args(args)
        .exec();
    eprintln!(
        "berth: running {}: {err}; running the daemon in-process",
        berthd.display()
    );
}

/// Prints an error the way docker does and picks the exit code.
fn finish(result: anyhow::Result<i32>, is_run: bool) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            if pipe::is_broken_pipe(&e) {
                return pipe::broken_pipe_code();
            }
            if let Some(status) = e.downcast_ref::<ExitStatus>() {
                if let Some(m) = &status.message {
                    eprintln!("{m}");
                }
                return status.code;
            }
            if is_run {
                // docker: `docker: Error response from daemon: ...` + a hint, exit 125.
                eprintln!("berth: {}", describe(&e));
                eprintln!("\nRun 'berth run --help' for more information");
                125
            } else {
                eprintln!("{}", describe(&e));
                1
            }
        }
    }
}

fn run_client(host: &str, command: Command) -> i32 {
    let client = match Client::new(host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let is_run = matches!(
        command,
        Command::Container(ContainerCommand::Run(_) | ContainerCommand::Create(_))
            | Command::ContainerGroup(ContainerManagement::Common(
                ContainerCommand::Run(_) | ContainerCommand::Create(_)
            ))
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting the async runtime: {e}");
            return 1;
        }
    };
    finish(rt.block_on(dispatch(&client, command)), is_run)
}

async fn dispatch(client: &Client, command: Command) -> anyhow::Result<i32> {
    use container::{exec, files, lifecycle, logs, ps, run};
    match command {
        Command::Container(c) | Command::ContainerGroup(ContainerManagement::Common(c)) => {
            match c {
                ContainerCommand::Run(a) => run::run(client, a).await,
                ContainerCommand::Create(a) => run::create(client, a).await,
                ContainerCommand::Start(a) => run::start(client, a).await,
                ContainerCommand::Stop(a) => lifecycle::stop(client, a).await,
                ContainerCommand::Restart(a) => lifecycle::restart(client, a).await,
                ContainerCommand::Kill(a) => lifecycle::kill(client, a).await,
                ContainerCommand::Rm(a) => lifecycle::rm(client, a).await,
                ContainerCommand::Logs(a) => logs::logs(client, a).await,
                ContainerCommand::Exec(a) => exec::exec(client, a).await,
                ContainerCommand::Attach(a) => run::attach(client, a).await,
                ContainerCommand::Top(a) => lifecycle::top(client, a).await,
                ContainerCommand::Stats(a) => container::stats::stats(client, a).await,
                ContainerCommand::Wait(a) => lifecycle::wait(client, a).await,
                ContainerCommand::Rename(a) => lifecycle::rename(client, a).await,
                ContainerCommand::Pause(a) => lifecycle::pause(client, a).await,
                ContainerCommand::Unpause(a) => lifecycle::unpause(client, a).await,
                ContainerCommand::Cp(a) => files::cp(client, a).await,
                ContainerCommand::Diff(a) => files::diff(client, a).await,
                ContainerCommand::Export(a) => files::export(client, a).await,
                ContainerCommand::Commit(a) => files::commit(client, a).await,
                ContainerCommand::Port(a) => lifecycle::port(client, a).await,
                ContainerCommand::Update(a) => lifecycle::update(client, a).await,
            }
        }
        Command::Ps(a) | Command::ContainerGroup(ContainerManagement::Ls(a)) => {
            ps::ps(client, a).await
        }
        Command::ContainerGroup(ContainerManagement::Inspect(a)) => {
            inspect::inspect_kinds(
                client,
                &[inspect::Kind::Container],
                &a.images,
                a.format.as_deref(),
                false,
            )
            .await
        }
        Command::Inspect(a) => inspect::inspect(client, a).await,
        Command::Images(a) | Command::ImageGroup(ImageManagement::Ls(a)) => {
            image::images(client, a).await
        }
        Command::ImageGroup(ImageManagement::Inspect(a)) => image::inspect(client, a).await,
        Command::Rmi(a) | Command::ImageGroup(ImageManagement::Rm(a)) => {
            image::rmi(client, a).await
        }
        Command::Tag(a) | Command::ImageGroup(ImageManagement::Tag(a)) => {
            image::tag(client, a).await
        }
        Command::Load(a) | Command::ImageGroup(ImageManagement::Load(a)) => {
            image::archive::load(client, a).await
        }
        Command::Save(a) | Command::ImageGroup(ImageManagement::Save(a)) => {
            image::archive::save(client, a).await
        }
        Command::Import(a) | Command::ImageGroup(ImageManagement::Import(a)) => {
            image::archive::import(client, a).await
        }
        Command::History(a) | Command::ImageGroup(ImageManagement::History(a)) => {
            image::history(client, a).await
        }
        Command::ImageGroup(ImageManagement::Prune(a)) => image::prune(client, a).await,
        Command::Pull(a) | Command::ImageGroup(ImageManagement::Pull(a)) => {
            image::pull::pull_cmd(client, a).await
        }
        Command::Push(a) | Command::ImageGroup(ImageManagement::Push(a)) => {
            image::pull::push(client, a).await
        }
        Command::Build(a) => build::build(client, a).await,
        Command::Login(a) => image::pull::login(client, a).await,
        Command::Logout(a) => image::pull::logout(a).await,
        Command::Search(a) => image::pull::search(client, a).await,
        Command::Info(a) | Command::SystemGroup(SystemManagement::Info(a)) => {
            system::info(client, a).await
        }
        Command::Events(a) | Command::SystemGroup(SystemManagement::Events(a)) => {
            system::events(client, a).await
        }
        Command::Version(a) => system::version(client, a).await,
        Command::VolumeGroup(c) => volume::run(client, c).await,
        Command::NetworkGroup(c) => network::run(client, c).await,
        Command::Daemon(_) | Command::Runtime(_) | Command::Compose(_) => unreachable_entry(),
    }
}

/// `daemon` and `runtime` never reach the client dispatcher (main handles them first).
fn unreachable_entry() -> anyhow::Result<i32> {
    anyhow::bail!("internal error: daemon/runtime commands are not client commands")
}
