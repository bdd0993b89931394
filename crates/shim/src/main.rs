//! berth-shim: the small per-container process. It is the parent (or subreaper) of the
//! container's init, holds its stdio or pty master, writes the json-file log, serves
//! attach/exec/resize/kill/wait over a unix socket, records the exit status and exits after the
//! container has. Single-threaded, one poll loop, no async runtime. See PROTOCOL.md.

mod args;
mod backend;
mod clock;
mod exitfile;
mod jsonlog;
mod runtimes;
mod server;
mod stdio;

#[cfg(test)]
mod loop_tests;

use berth_runtime::shim_protocol;

use args::Args;
use backend::{ContainerRuntime, ShimError};
use shim_protocol::Ready;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            report_ready(&Ready::Failed {
                error: format!("berth-shim: {e}"),
                exit_code: 125,
            });
            return ExitCode::FAILURE;
        }
    };
    // Own session: the shim outlives the daemon that spawned it. Already being a session
    // leader (EPERM) is fine.
    let _ = rustix::process::setsid();
    // Processes of an external runtime (runc's init) are reparented to us when runc exits.
    if let Err(e) = rustix::process::set_child_subreaper(rustix::process::getpid().into()) {
        eprintln!("berth-shim: PR_SET_CHILD_SUBREAPER: {e}");
    }
    // SIGPIPE is already ignored: the Rust runtime does that before main.
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-shim {}: {e}", args.id);
            ExitCode::FAILURE
        }
    }
}

/// Create the container, announce it, serve until it has exited.
fn serve(args: &Args) -> Result<(), ShimError> {
    let created = match create(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&args.socket);
            report_ready(&Ready::Failed {
                error: e.to_string(),
                exit_code: e.exit_code(),
            });
            return Err(e);
        }
    };
    report_ready(&Ready::Created { pid: created.pid });
    let shim = server::Shim::new(
        created.runtime,
        created.listener,
        args.socket.clone(),
        args.state_dir.clone(),
        created.log,
        created.pid,
        created.io,
    )
    .map_err(ShimError::io("socket"))?;
    shim.run().map_err(ShimError::io("poll loop"))?;
    Ok(())
}

struct Created {
    pid: i32,
    runtime: runtimes::Selected,
    listener: UnixListener,
    log: jsonlog::JsonLog<std::fs::File>,
    io: stdio::ShimIo,
}

fn create(args: &Args) -> Result<Created, ShimError> {
    let spec = oci_spec::runtime::Spec::load(args.bundle.join("config.json")).map_err(|e| {
        ShimError::Runtime(format!(
            "loading {}/config.json: {e}",
            args.bundle.display()
        ))
    })?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let log = jsonlog::JsonLog::open(&args.log).map_err(ShimError::io("opening the log"))?;
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket).map_err(ShimError::io("binding the socket"))?;
    let mut runtime = runtimes::select(args, spec)?;
    let (shim_io, child_io) = if terminal && runtime.makes_own_pty() {
        (
            None,
            stdio::null_child(true).map_err(ShimError::io("stdio"))?,
        )
    } else if terminal {
        let (s, c) = stdio::pty(args.stdin).map_err(ShimError::io("pty"))?;
        (Some(s), c)
    } else {
        let (s, c) = stdio::pipes(args.stdin).map_err(ShimError::io("pipes"))?;
        (Some(s), c)
    };
    let spawned = match runtime.create(child_io) {
        Ok(s) => s,
        Err(e) => {
            // The failed init exits on its own; reap it so its cgroup can be removed.
            reap_children_for(std::time::Duration::from_secs(1));
            if let Err(c) = runtime.cleanup() {
                eprintln!("berth-shim: cleanup after a failed create: {c}");
            }
            return Err(e);
        }
    };
    let io = match (shim_io, spawned.master) {
        (_, Some(master)) => {
            stdio::ShimIo::from_master(master, args.stdin).map_err(ShimError::io("pty"))?
        }
        (Some(io), None) => io,
        (None, None) => {
            return Err(ShimError::Runtime(
                "the runtime returned no pty for a tty container".into(),
            ))
        }
    };
    Ok(Created {
        pid: spawned.pid,
        runtime,
        listener,
        log,
        io,
    })
}

/// Reap exited children until none is left or `limit` has passed.
fn reap_children_for(limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        match rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => continue,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(_) => return, // ECHILD: no children left
        }
    }
}

/// Write the one ready line on stdout, then point stdout at /dev/null so the daemon's pipe sees EOF.
fn report_ready(ready: &Ready) {
    let mut line = serde_json::to_vec(ready)
        .unwrap_or_else(|_| b"{\"error\":\"internal\",\"exit_code\":125}".to_vec());
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line);
    let _ = out.flush();
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}
