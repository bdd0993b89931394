//! The runc driver (external::ExternalRuntime) with the same bundles as the builtin runtime.

mod common;
use berth_runtime::external::ExternalRuntime;
use berth_runtime::io::{open_pty, ProcessIo};
use berth_runtime::RuntimeError;
use common::{is_root, Bundle};
use std::io::Read;
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

fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

#[test]
fn runc_driver() {
    if !is_root() || !std::path::Path::new("/usr/sbin/runc").exists() {
        return;
    }
    let b = Bundle::new("runc-api", &["sh", "-c", "echo hi from runc"], |_| {});
    let rt = ExternalRuntime {
        binary: "/usr/sbin/runc".into(),
        root: b.path().join("runc-root"),
    };
    let id = format!("berth-test-runc-{}", std::process::id());
    let (io, out) = piped_io();
    let (pid, master) = rt.create(&id, b.path(), io).unwrap();
    assert!(pid > 0 && master.is_none());
    assert_eq!(rt.state(&id).unwrap()["status"], "created");
    rt.start(&id).unwrap();
    assert_eq!(read_all(out), "hi from runc\n");
    rt.delete(&id, true).unwrap();

    // A terminal: runc hands the pty master back over the console socket.
    let b = Bundle::new("runc-tty", &["sh", "-c", "[ -t 0 ] && echo tty"], |o| {
        o.terminal = true
    });
    let pty = open_pty().unwrap();
    let (_, master) = rt
        .create(
            &id,
            b.path(),
            ProcessIo::from_pty_slave(&pty.slave).unwrap(),
        )
        .unwrap();
    let master = master.expect("pty master");
    rt.start(&id).unwrap();
    let mut buf = [0u8; 64];
    let n = std::fs::File::from(master).read(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "tty");
    let _ = rt.delete(&id, true);

    let b = Bundle::new("runc-nosuch", &["nosuch"], |_| {});
    let (io, _) = piped_io();
    match rt.create(&id, b.path(), io) {
        Err(RuntimeError::NotFound(c)) => assert_eq!(c, "nosuch"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _ = rt.delete(&id, true);
}
