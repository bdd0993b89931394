//! The builtin runtime runs busybox bundles (needs root; skipped otherwise).

mod common;
use common::{assert_no_cgroups_left, is_root, Bundle};

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

#[test]
fn echo_and_exit_zero() {
    need_root!();
    let b = Bundle::new("echo", &["echo", "hello"], |_| {});
    let (code, out, err) = b.run_berth();
    assert_eq!((code, out.as_str()), (0, "hello\n"), "stderr: {err}");
    assert_no_cgroups_left("echo");
}

fn sh(name: &str, script: &str) -> (i32, String, String) {
    let b = Bundle::new(name, &["sh", "-c", script], |_| {});
    let r = b.run_berth();
    assert_no_cgroups_left(name);
    r
}

#[test]
fn pid_one_and_own_hostname() {
    need_root!();
    let (code, out, err) = sh("pid1", "echo $$; hostname");
    assert_eq!((code, out.as_str()), (0, "1\nberthbox\n"), "stderr: {err}");
}

#[test]
fn only_own_processes() {
    need_root!();
    let (code, out, err) = sh("ps", "ps -o pid,comm");
    assert_eq!(code, 0, "stderr: {err}");
    let pids: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    // sh -c execs ps directly (one command): ps is PID 1 and alone.
    assert_eq!(pids, ["1"], "{out}");
}

#[test]
fn docker_mounts() {
    need_root!();
    let (code, out, err) = sh("mounts", "cat /proc/self/mounts");
    assert_eq!(code, 0, "stderr: {err}");
    let find = |dest: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(1) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} missing:\n{out}"))
            .to_string()
    };
    assert!(find("/proc").starts_with("proc /proc proc"));
    assert!(find("/dev").starts_with("tmpfs /dev tmpfs"));
    assert!(find("/dev/pts").starts_with("devpts /dev/pts devpts"));
    assert!(find("/dev/shm").contains("size=65536k"));
    assert!(find("/dev/mqueue").starts_with("mqueue"));
    assert!(find("/sys").contains(" ro,"));
    assert!(find("/proc/sys").contains(" ro,"));
    assert!(out.contains("/sys/fs/cgroup"));
}

#[test]
fn docker_capabilities() {
    need_root!();
    let (code, out, err) = sh("caps", "grep Cap /proc/self/status");
    assert_eq!(code, 0, "stderr: {err}");
    // Docker's 14 default capabilities.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
}

#[test]
fn runs_as_user() {
    need_root!();
    let b = Bundle::new("user", &["id"], |o| o.user = "user".into());
    let (code, out, err) = b.run_berth();
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.starts_with("uid=1000(user) gid=1000(user)"), "{out}");
    let (_, caps, _) = Bundle::new("usercaps", &["grep", "CapEff", "/proc/self/status"], |o| {
        o.user = "1000".into()
    })
    .run_berth();
    assert_eq!(caps.trim(), "CapEff:\t0000000000000000");
    assert_no_cgroups_left("user");
}

#[test]
fn exit_codes() {
    need_root!();
    assert_eq!(sh("exit3", "exit 3").0, 3);
    let b = Bundle::new("nosuch", &["nosuch"], |_| {});
    let (code, _, err) = b.run_berth();
    assert_eq!(code, 1, "the CLI fails to create");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    assert_no_cgroups_left("nosuch");
}

#[test]
fn seccomp_blocks_what_docker_blocks() {
    need_root!();
    // unshare needs CAP_SYS_ADMIN in Docker's profile: EPERM even for root.
    let (code, out, _) = sh("seccomp", "grep Seccomp: /proc/self/status");
    assert_eq!((code, out.trim()), (0, "Seccomp:\t2"));
}

#[test]
fn memory_and_pids_limits() {
    need_root!();
    let b = Bundle::new(
        "limits",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
        ],
        |o| {
            o.memory_limit = Some(64 << 20);
            o.pids_limit = Some(42);
        },
    );
    let (code, out, err) = b.run_berth();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, format!("{}\n42\n", 64u64 << 20));
    assert_no_cgroups_left("limits");
}

#[test]
fn killed_from_outside_is_128_plus_signal() {
    need_root!();
    let b = Bundle::new("killed", &["sleep", "30"], |_| {});
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-oci"))
        .arg("--root")
        .arg(b.root())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("bt-killed")
        .spawn()
        .unwrap();
    let mut pid = 0;
    for _ in 0..200 {
        if let Ok(st) = berth_runtime::cli::state(&b.root(), "bt-killed") {
            if st["status"] == "running" {
                pid = st["pid"].as_i64().unwrap();
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(pid > 0, "container never ran");
    berth_runtime::cli::kill(&b.root(), "bt-killed", "KILL").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert_no_cgroups_left("killed");
}

#[test]
fn run_forwards_signals_and_resets_the_mask() {
    need_root!();
    // The shell traps TERM: it only sees it if run forwards it and the mask was reset.
    let b = Bundle::new(
        "forward",
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        ],
        |_| {},
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-oci"))
        .arg("--root")
        .arg(b.root())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("bt-forward")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    berth_runtime::builtin::kill(child.id() as i32, libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "got TERM\n");
    assert_no_cgroups_left("forward");
}

#[test]
fn not_executable_is_126() {
    need_root!();
    let b = Bundle::new("noexec", &["/etc/passwd"], |_| {});
    let (code, _, err) = b.run_berth();
    assert_eq!(code, 1, "the CLI fails to create");
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    assert_no_cgroups_left("noexec");
}

#[test]
fn read_only_rootfs_and_sysctl() {
    need_root!();
    let b = Bundle::new(
        "rofs",
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward; touch /x 2>/dev/null || echo ro",
        ],
        |o| {
            o.read_only = true;
            o.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        },
    );
    let (code, out, err) = b.run_berth();
    assert_eq!((code, out.as_str()), (0, "1\nro\n"), "stderr: {err}");
    assert_no_cgroups_left("rofs");
}

#[test]
fn privileged_gets_all_caps_and_host_devices() {
    need_root!();
    let b = Bundle::new("priv", &["sh", "-c", "grep CapEff /proc/self/status; [ -c /dev/kmsg ] && echo kmsg; grep -c ' /sys sysfs rw' /proc/self/mounts"], |o| o.privileged = true);
    let (code, out, err) = b.run_berth();
    assert_eq!(code, 0, "stderr: {err}");
    // Every capability the host lets us hold.
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_eff = host.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert_eq!(out, format!("{host_eff}\nkmsg\n1\n"));
    assert_no_cgroups_left("priv");
}

#[test]
fn create_start_state_kill_delete() {
    need_root!();
    let b = Bundle::new(
        "lifecycle",
        &["sh", "-c", "echo started > /tmp/started; exec sleep 30"],
        |_| {},
    );
    // The container inherits berth-oci's stdio: give it files, not pipes we would wait on.
    let oci = |args: &[&str]| {
        let err_path = b.path().join("oci.stderr");
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_berth-oci"))
            .arg("--root")
            .arg(b.root())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "{args:?}: {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
    };
    let status = || berth_runtime::cli::state(&b.root(), "bt-lifecycle").unwrap()["status"].clone();
    let started = b.path().join("rootfs/tmp/started");
    oci(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "bt-lifecycle",
    ]);
    assert_eq!(status(), "created");
    assert!(!started.exists(), "the process ran before start");
    oci(&["start", "bt-lifecycle"]);
    assert_eq!(status(), "running");
    for _ in 0..200 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(started.exists());
    assert!(
        berth_runtime::cli::delete(&b.root(), "bt-lifecycle", false).is_err(),
        "deleting a running container"
    );
    oci(&["kill", "bt-lifecycle", "KILL"]);
    for _ in 0..200 {
        if status() == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(status(), "stopped");
    oci(&["delete", "bt-lifecycle"]);
    assert!(matches!(
        berth_runtime::cli::state(&b.root(), "bt-lifecycle"),
        Err(berth_runtime::RuntimeError::NoSuchContainer(_))
    ));
    assert_no_cgroups_left("lifecycle");
}
