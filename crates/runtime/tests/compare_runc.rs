//! The same bundle run by berth's builtin runtime and by runc behaves the same (needs root and
//! /usr/sbin/runc; skipped otherwise).

mod common;
use berth_runtime::builtin::{self, StartGate};
use berth_runtime::external::ExternalRuntime;
use berth_runtime::io::ProcessIo;
use berth_runtime::spec;
use common::{assert_no_cgroups_left, is_root, Bundle};
use std::io::Read;
use std::os::fd::OwnedFd;

// Mount options are compared too, except for the /sys/fs/cgroup tmpfs itself: Docker asks for
// it read-only, berth honours that, runc 1.1 leaves the tmpfs writable (its submounts are ro).
const PROBE: &str = "echo pid=$$; hostname; id; grep -E '^(Cap(Eff|Bnd|Prm)|NoNewPrivs|Seccomp):' /proc/self/status; \
    awk '{ if ($2 == \"/sys/fs/cgroup\") print $2, $3; else print $2, $3, $4 }' /proc/self/mounts | sort";

#[test]
fn berth_and_runc_agree() {
    if !is_root() || !std::path::Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipped: needs root and runc");
        return;
    }
    for (name, user) in [("cmp-root", ""), ("cmp-user", "1000")] {
        let b = Bundle::new(name, &["sh", "-c", PROBE], |o| o.user = user.into());
        let (bc, berth, berr) = b.run_berth();
        let (rc, runc, rerr) = b.run_runc();
        assert_eq!((bc, rc), (0, 0), "berth: {berr}\nrunc: {rerr}");
        assert_eq!(berth, runc, "berth and runc differ for user {user:?}");
        assert_no_cgroups_left(name);
    }
    // In the same #[test]: the builtin runtime forks, keep this binary to one test thread.
    terminals_agree();
}

/// What a process on a terminal sees of it: the pty is the container's own /dev/pts/0, its
/// controlling terminal, /dev/console, and owned by the process's user.
const TTY_PROBE: &str = "tty; [ /dev/console -ef /dev/pts/0 ] && echo console=pts0; \
    : </dev/tty && echo ctty; ls -ln /dev/pts/0 | awk '{print $1, $3, $4}'";

/// Everything the pty master gives until the slave side is gone.
fn read_master(master: OwnedFd) -> String {
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    // EIO once the last slave fd is closed.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn terminals_agree() {
    for (name, user) in [("cmp-tty", ""), ("cmp-tty-user", "1000")] {
        let b = Bundle::new(name, &["sh", "-c", TTY_PROBE], |o| {
            o.user = user.into();
            o.terminal = true;
        });
        std::os::unix::fs::symlink("busybox", b.path().join("rootfs/bin/tty")).unwrap();
        let spec = spec::load_bundle(b.path()).unwrap();

        let created = builtin::create(
            name,
            b.path(),
            &spec,
            ProcessIo::terminal().unwrap(),
            StartGate::Immediate,
        )
        .unwrap();
        let berth = read_master(created.pty_master.expect("builtin: pty master"));
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(created.pid),
            rustix::process::WaitOptions::empty(),
        );
        builtin::cleanup(&spec).unwrap();

        let rt = ExternalRuntime {
            binary: "/usr/sbin/runc".into(),
            root: b.path().join("runc-root"),
        };
        let id = format!("rc-{name}-{}", std::process::id());
        let (_, master) = rt
            .create(&id, b.path(), ProcessIo::terminal().unwrap())
            .unwrap();
        rt.start(&id).unwrap();
        let runc = read_master(master.expect("runc: pty master"));
        let _ = rt.delete(&id, true);

        eprintln!("{name}:\n{berth}");
        assert!(berth.starts_with("/dev/pts/0\n"), "berth: {berth}");
        assert_eq!(
            berth, runc,
            "berth and runc terminals differ for user {user:?}"
        );
        assert_no_cgroups_left(name);
    }
}
