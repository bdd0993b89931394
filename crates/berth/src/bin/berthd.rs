//! berthd: the daemon alone. `berth daemon` execs it: a process that is resident for as long
//! as the engine runs should not map the CLI (clap's command tree, compose, the formatter).

#[path = "../daemon_cmd.rs"]
mod daemon_cmd;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "berthd", version, about = "The berth daemon")]
struct Cli {
    #[command(flatten)]
    daemon: daemon_cmd::DaemonArgs,
}

fn main() {
    let cli = Cli::parse();
    let code = match daemon_cmd::run(cli.daemon) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
