//! A closed stdout (`berth ps | head -1`) ends berth quietly, as SIGPIPE ends docker,
//! instead of a panic from `println!` or an error message about a pipe nobody reads.

const SIGPIPE_EXIT: i32 = 128 + 13;

/// Installs a panic hook that turns "failed printing to stdout: Broken pipe" into a quiet exit.
pub fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(SIGPIPE_EXIT);
        }
        default(info);
    }));
}

/// True when `err` is, somewhere in its chain, a broken pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn broken_pipe_code() -> i32 {
    SIGPIPE_EXIT
}
