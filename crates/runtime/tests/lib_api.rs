//! The library API the shim uses: builtin::create with a pipe gate, exec, pty, pause/resume,
//! processes, kill, cleanup. A single #[test] in this binary, because the builtin runtime forks
//! and must not share the process with other busy test threads.

mod common;
use berth_runtime::builtin::{self, StartGate};
use berth_runtime::io::ProcessIo;
use berth_runtime::{spec, RuntimeError};
use common::{assert_no_cgroups_left, is_root, Bundle};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

fn null() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// stdio with stdout+stderr on one pipe; returns the read end.
fn piped_io() -> (ProcessIo, std::fs::File) {
    let (r, w) = pipe();
    let io = ProcessIo {
        stdin: null(),
        stdout: w.try_clone().unwrap(),
        stderr: w,
        terminal: false,
    };
    (io, r.into())
}

fn wait(pid: i32) -> (Option<i32>, Option<i32>) {
    let (_, st) = rustix::process::waitpid(
        Some(rustix::process::Pid::from_raw(pid).unwrap()),
        rustix::process::WaitOptions::empty(),
    )
    .unwrap()
    .unwrap();
    (st.exit_status(), st.terminating_signal())
}

fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

#[test]
fn builtin_api() {
    if !is_root() {
        return;
    }
    let b = Bundle::new("api", &["sh", "-c", "echo started; exec sleep 30"], |_| {});
    let spec = spec::load_bundle(b.path()).unwrap();
    let (gate_r, gate_w) = pipe();
    let (io, mut out) = piped_io();
    let created = builtin::create("api", b.path(), &spec, io, StartGate::Pipe(gate_r)).unwrap();
    assert_eq!(builtin::processes(&spec).unwrap(), vec![created.pid]);
    std::fs::File::from(gate_w).write_all(b"x").unwrap();
    let mut first = [0u8; 8];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"started\n");

    // exec joins the container: same hostname, and it shows up among the container's pids.
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(vec!["hostname".into()]));
    let (io, out2) = piped_io();
    let pid = builtin::exec(created.pid, &spec, &process, io).unwrap().pid;
    assert_eq!(wait(pid), (Some(0), None));
    assert_eq!(read_all(out2), "berthbox\n");

    process.set_args(Some(vec!["nosuch".into()]));
    let (io, _) = piped_io();
    match builtin::exec(created.pid, &spec, &process, io) {
        Err(RuntimeError::NotFound(c)) => assert_eq!(c, "nosuch"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // exec with a terminal: a pty of the container's own /dev/pts, the master comes back.
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "[ -t 0 ] && tty".into(),
    ]));
    process.set_terminal(Some(true));
    let execed =
        builtin::exec(created.pid, &spec, &process, ProcessIo::terminal().unwrap()).unwrap();
    let master = execed.pty_master.expect("pty master");
    assert_eq!(wait(execed.pid), (Some(0), None));
    let mut buf = [0u8; 64];
    let n = std::fs::File::from(master).read(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "/dev/pts/0");

    builtin::pause(&spec).unwrap();
    assert!(builtin::is_paused(&spec));
    builtin::resume(&spec).unwrap();
    assert!(!builtin::is_paused(&spec));

    builtin::kill(created.pid, libc::SIGKILL).unwrap();
    assert_eq!(wait(created.pid), (None, Some(libc::SIGKILL)));
    builtin::cleanup(&spec).unwrap();
    builtin::cleanup(&spec).unwrap();
    assert_no_cgroups_left("api");

    // An init on a pty: a slave of the container's devpts, its controlling terminal and
    // /dev/console.
    let b = Bundle::new(
        "api-tty",
        &[
            "sh",
            "-c",
            "[ -t 0 ] && [ -c /dev/console ] && [ /dev/console -ef /dev/pts/0 ] && : </dev/tty && tty",
        ],
        |o| o.terminal = true,
    );
    let spec = spec::load_bundle(b.path()).unwrap();
    let created = builtin::create(
        "api-tty",
        b.path(),
        &spec,
        ProcessIo::terminal().unwrap(),
        StartGate::Immediate,
    )
    .unwrap();
    let master = created.pty_master.expect("pty master");
    let mut buf = [0u8; 64];
    let n = std::fs::File::from(master).read(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "/dev/pts/0");
    assert_eq!(wait(created.pid), (Some(0), None));
    builtin::cleanup(&spec).unwrap();
    assert_no_cgroups_left("api-tty");
}
