//! berth-shim end to end with the builtin runtime: a busybox bundle, the real binary, its socket.
//! Needs root (namespaces, cgroups) and /bin/busybox.

use berth_runtime::shim_protocol::{ExitRecord, Ready, Response};
use berth_runtime::spec::{self, NetworkNamespace, SpecOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNC: &str = "/usr/sbin/runc";

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "stty", "read", "true", "ls", "grep",
];

/// A temp dir with a busybox rootfs and config.json; removed on drop.
struct Bundle {
    dir: PathBuf,
    name: String,
}

impl Bundle {
    fn new(name: &str, args: &[&str], terminal: bool) -> Bundle {
        let dir = PathBuf::from(format!("/tmp/bsh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).expect("symlink");
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
        let opts = SpecOptions {
            rootfs: rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "TERM=xterm".into()],
            cwd: "/".into(),
            user: String::new(),
            hostname: name.into(),
            domainname: String::new(),
            terminal,
            hosts_file: None,
            hostname_file: None,
            resolv_conf: None,
            extra_mounts: Vec::new(),
            privileged: false,
            read_only: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            network: NetworkNamespace::New,
            ipc_host: false,
            pid_host: false,
            cgroup_path: format!("/berth-shim-test-{name}-{}", std::process::id()),
            memory_limit: None,
            cpu_shares: None,
            pids_limit: None,
            cpu_quota: None,
            cpu_period: None,
            sysctls: Default::default(),
            shm_size: None,
            no_new_privileges: false,
            seccomp: true,
            oom_score_adj: None,
            rlimits: Vec::new(),
        };
        let spec = spec::build(&opts).expect("build spec");
        spec::write_bundle(&dir, &spec).expect("write bundle");
        std::fs::create_dir_all(dir.join("state")).expect("state dir");
        Bundle {
            dir,
            name: name.into(),
        }
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/tmp/bsh-{}-{}.sock",
            self.name,
            std::process::id()
        ))
    }

    /// Spawn berth-shim for this bundle and read its ready line.
    fn spawn_shim(&self, stdin: bool) -> (ShimProc, Ready) {
        self.spawn_shim_with(stdin, None)
    }

    /// With `runc_root`, the shim drives runc (state in that dir) instead of the builtin runtime.
    fn spawn_shim_with(&self, stdin: bool, runc_root: Option<&Path>) -> (ShimProc, Ready) {
        // BERTH_SHIM_BIN runs the tests against another build (e.g. target/release/berth-shim).
        let bin = std::env::var_os("BERTH_SHIM_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_berth-shim").into());
        let mut cmd = Command::new(bin);
        cmd.arg("--id")
            .arg(format!("{}-{}", self.name, std::process::id()))
            .arg("--bundle")
            .arg(&self.dir)
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--log")
            .arg(self.dir.join("log.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if stdin {
            cmd.arg("--stdin");
        }
        match runc_root {
            None => cmd.args(["--runtime", "builtin"]),
            Some(root) => cmd
                .args(["--runtime", RUNC])
                .arg("--runtime-root")
                .arg(root),
        };
        let mut child = cmd.spawn().expect("spawn berth-shim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let ready: Ready = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
        (
            ShimProc {
                child,
                socket: self.socket(),
            },
            ready,
        )
    }

    fn log_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("log.json"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json log line"))
            .collect()
    }

    fn exit_record(&self) -> ExitRecord {
        serde_json::from_slice(&std::fs::read(self.dir.join("state/exit.json")).expect("exit.json"))
            .expect("parse")
    }
}

/// A running berth-shim; if a test fails midway, its container is killed and the shim reaped.
struct ShimProc {
    child: Child,
    socket: PathBuf,
}

impl std::ops::Deref for ShimProc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for ShimProc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ShimProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(mut s) = UnixStream::connect(&self.socket) {
                let _ = s.write_all(b"{\"op\":\"kill\",\"signal\":9,\"all\":true}\n");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.socket());
    }
}

fn connect(sock: &Path, req: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).expect("connect to the shim");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(b"\n").expect("send");
    BufReader::new(s)
}

fn answer(r: &mut BufReader<UnixStream>) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("answer");
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("answer {line:?}: {e}"))
}

fn call(sock: &Path, req: &str) -> Response {
    answer(&mut connect(sock, req))
}

/// Split a multiplexed stream into (stream id, payload).
fn frames(mut raw: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        out.push((
            raw[0],
            String::from_utf8_lossy(&raw[8..8 + len]).into_owned(),
        ));
        raw = &raw[8 + len..];
    }
    out
}

/// Read from a stream until `needle` shows up (the raw tty stream has no frames).
fn read_until(r: &mut BufReader<UnixStream>, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&got).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {needle:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        let n = r.read(&mut buf).expect("read stream");
        assert!(
            n > 0,
            "stream closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth-shim did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn output_goes_to_attach_and_log_and_exit_is_recorded() {
    let b = Bundle::new(
        "out",
        &["sh", "-c", "echo out; echo err >&2; printf partial; exit 3"],
        false,
    );
    let (mut shim, ready) = b.spawn_shim(false);
    let Ready::Created { pid } = ready else {
        panic!("not created: {ready:?}")
    };
    assert!(pid > 0);
    let sock = b.socket();
    let st = call(&sock, r#"{"op":"state"}"#);
    assert_eq!(
        st.status,
        Some(berth_runtime::shim_protocol::Status::Created)
    );
    let mut attach = connect(
        &sock,
        r#"{"op":"attach","stdin":false,"stdout":true,"stderr":true,"close_stdin_on_eof":false}"#,
    );
    assert!(answer(&mut attach).ok);
    let mut wait = connect(&sock, r#"{"op":"wait"}"#);
    assert!(call(&sock, r#"{"op":"start"}"#).ok);
    let mut raw = Vec::new();
    attach.read_to_end(&mut raw).expect("attach stream");
    // Chunks are framed as they come: join each stream's payloads.
    let joined = |id: u8| {
        frames(&raw)
            .into_iter()
            .filter(|f| f.0 == id)
            .map(|f| f.1)
            .collect::<String>()
    };
    assert_eq!(
        (joined(1).as_str(), joined(2).as_str()),
        ("out\npartial", "err\n")
    );
    let waited = answer(&mut wait);
    assert_eq!(waited.exit_code, Some(3));
    assert!(waited.finished_at.is_some());
    assert!(wait_exit(&mut shim).success());
    let rec = b.exit_record();
    assert_eq!((rec.exit_code, rec.signal), (3, None));
    let log = b.log_entries();
    let lines: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap_or(""),
                e["log"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        lines.contains(&("stdout", "out\n")) && lines.contains(&("stderr", "err\n")),
        "{lines:?}"
    );
    assert!(lines.contains(&("stdout", "partial")), "{lines:?}");
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn stdin_exec_kill_and_small_memory() {
    let b = Bundle::new(
        "exec",
        &["sh", "-c", "read x; echo got:$x; exec sleep 1000"],
        false,
    );
    let (mut shim, ready) = b.spawn_shim(true);
    assert!(matches!(ready, Ready::Created { .. }), "{ready:?}");
    let sock = b.socket();
    let mut attach = connect(
        &sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    assert!(answer(&mut attach).ok);
    assert!(call(&sock, r#"{"op":"start"}"#).ok);
    attach.get_mut().write_all(b"hello\n").expect("stdin");
    let out = read_until(&mut attach, "got:hello");
    assert!(out.contains("got:hello"));

    let missing = call(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["nope"],"env":["PATH=/bin"],"cwd":"/"},"stdin":false,"detach":false}"#,
    );
    assert!(!missing.ok);
    assert_eq!(missing.exit_code, Some(127));
    assert_eq!(
        missing.error.as_deref(),
        Some("exec: \"nope\": executable file not found in $PATH")
    );

    let mut exec = connect(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["sh","-c","echo in-exec; exit 4"],"env":["PATH=/bin"],"cwd":"/"},"stdin":false,"detach":false}"#,
    );
    let started = answer(&mut exec);
    let exec_pid = started.pid.unwrap_or_else(|| panic!("exec: {started:?}"));
    let mut raw = Vec::new();
    exec.read_to_end(&mut raw).expect("exec stream");
    assert_eq!(frames(&raw), vec![(1, "in-exec\n".to_string())]);
    let st = call(
        &sock,
        &format!(r#"{{"op":"exec-status","pid":{exec_pid}}}"#),
    );
    assert_eq!((st.running, st.exit_code), (Some(false), Some(4)));

    // The shim ignores SIGPIPE; the container's processes must not inherit that.
    let mut sig = connect(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["grep","SigIgn","/proc/1/status"],"env":["PATH=/bin"],"cwd":"/"},"stdin":false,"detach":false}"#,
    );
    assert!(answer(&mut sig).ok);
    let mut raw = Vec::new();
    sig.read_to_end(&mut raw).expect("exec stream");
    let line = frames(&raw).into_iter().map(|f| f.1).collect::<String>();
    let ignored = line
        .trim()
        .strip_prefix("SigIgn:")
        .map(str::trim)
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let sigpipe_bit = 1u64 << (13 - 1);
    assert_eq!(ignored.map(|m| m & sigpipe_bit), Some(0), "{line:?}");

    let shim_pid = shim.id();
    // Its own session and process group: stopping the daemon (or its terminal) leaves it alone.
    let stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        (fields[2], fields[3]),
        (shim_pid.to_string().as_str(), shim_pid.to_string().as_str()),
        "pgrp, session"
    );
    // What each shim costs on its own is its anonymous memory: the binary's and the libraries'
    // file pages are shared by all shims through the page cache.
    let anon = status_kb(shim_pid, "RssAnon:");
    eprintln!(
        "berth-shim memory: VmRSS {} kB, RssAnon {anon} kB",
        status_kb(shim_pid, "VmRSS:")
    );
    assert!(anon < 1024, "shim anonymous memory {anon} kB");

    let paused = call(&sock, r#"{"op":"pause"}"#);
    assert!(paused.ok, "{paused:?}");
    assert_eq!(
        call(&sock, r#"{"op":"state"}"#).status,
        Some(berth_runtime::shim_protocol::Status::Paused)
    );
    assert!(call(&sock, r#"{"op":"resume"}"#).ok);
    assert_eq!(
        call(&sock, r#"{"op":"state"}"#).status,
        Some(berth_runtime::shim_protocol::Status::Running)
    );

    let mut wait = connect(&sock, r#"{"op":"wait"}"#);
    assert!(call(&sock, r#"{"op":"kill","signal":9,"all":false}"#).ok);
    assert_eq!(answer(&mut wait).exit_code, Some(137));
    assert!(wait_exit(&mut shim).success());
    let rec = b.exit_record();
    assert_eq!((rec.exit_code, rec.signal), (137, Some(9)));
    // The attach stream ends with the container.
    let mut rest = Vec::new();
    let _ = attach.read_to_end(&mut rest);
    // The exec's output is not in the container's log.
    assert!(b.log_entries().iter().all(|e| e["log"] != "in-exec\n"));
}

#[test]
fn tty_output_is_raw_and_resize_reaches_the_terminal() {
    let b = Bundle::new(
        "tty",
        &["sh", "-c", "stty size; read x; stty size; echo bye"],
        true,
    );
    let (mut shim, ready) = b.spawn_shim(true);
    assert!(matches!(ready, Ready::Created { .. }), "{ready:?}");
    let sock = b.socket();
    assert!(
        call(
            &sock,
            r#"{"op":"resize","height":30,"width":100,"exec_pid":null}"#
        )
        .ok
    );
    let mut attach = connect(
        &sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    assert!(answer(&mut attach).ok);
    assert!(call(&sock, r#"{"op":"start"}"#).ok);
    read_until(&mut attach, "30 100");
    assert!(
        call(
            &sock,
            r#"{"op":"resize","height":40,"width":120,"exec_pid":null}"#
        )
        .ok
    );
    attach.get_mut().write_all(b"\n").expect("stdin");
    let out = read_until(&mut attach, "bye");
    assert!(out.contains("40 120"), "{out:?}");
    assert!(wait_exit(&mut shim).success());
    assert_eq!(b.exit_record().exit_code, 0);
    // A tty has one stream: the log says stdout, with the terminal's \r\n.
    assert!(b
        .log_entries()
        .iter()
        .any(|e| e["stream"] == "stdout" && e["log"] == "bye\r\n"));
}

#[test]
fn missing_command_fails_with_127_on_the_ready_line() {
    let b = Bundle::new("nf", &["does-not-exist"], false);
    let (mut shim, ready) = b.spawn_shim(false);
    assert_eq!(
        ready,
        Ready::Failed {
            error: "exec: \"does-not-exist\": executable file not found in $PATH".into(),
            exit_code: 127
        }
    );
    assert_eq!(wait_exit(&mut shim).code(), Some(1));
    assert!(!b.socket().exists());
}

#[test]
fn runc_output_exec_and_tty() {
    if !Path::new(RUNC).exists() {
        eprintln!("skipped: no {RUNC}");
        return;
    }
    let root = PathBuf::from(format!("/tmp/bsh-runc-root-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("runc root");

    // Pipes: output, exec, exit code.
    let b = Bundle::new(
        "rc",
        &["sh", "-c", "echo out; echo err >&2; read x; exit 5"],
        false,
    );
    let (mut shim, ready) = b.spawn_shim_with(true, Some(&root));
    assert!(
        matches!(ready, Ready::Created { pid } if pid > 0),
        "{ready:?}"
    );
    let sock = b.socket();
    let mut attach = connect(
        &sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    assert!(answer(&mut attach).ok);
    let mut wait = connect(&sock, r#"{"op":"wait"}"#);
    let started = call(&sock, r#"{"op":"start"}"#);
    assert!(started.ok, "{started:?}");
    let mut exec = connect(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["sh","-c","echo in-exec; exit 4"],"env":["PATH=/bin"],"cwd":"/"},"stdin":false,"detach":false}"#,
    );
    let ex = answer(&mut exec);
    let exec_pid = ex.pid.unwrap_or_else(|| panic!("exec: {ex:?}"));
    let mut raw = Vec::new();
    exec.read_to_end(&mut raw).expect("exec stream");
    assert_eq!(frames(&raw), vec![(1, "in-exec\n".to_string())]);
    let st = call(
        &sock,
        &format!(r#"{{"op":"exec-status","pid":{exec_pid}}}"#),
    );
    assert_eq!((st.running, st.exit_code), (Some(false), Some(4)));
    attach
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .expect("close stdin");
    let mut raw = Vec::new();
    attach.read_to_end(&mut raw).expect("attach stream");
    let joined = |id: u8| {
        frames(&raw)
            .into_iter()
            .filter(|f| f.0 == id)
            .map(|f| f.1)
            .collect::<String>()
    };
    assert_eq!((joined(1).as_str(), joined(2).as_str()), ("out\n", "err\n"));
    assert_eq!(answer(&mut wait).exit_code, Some(5));
    assert!(wait_exit(&mut shim).success());
    assert_eq!(b.exit_record().exit_code, 5);
    drop(shim);

    // A tty: runc makes the pty and hands the master to the shim.
    let t = Bundle::new("rt", &["sh", "-c", "stty size; read x; echo bye"], true);
    let (mut shim, ready) = t.spawn_shim_with(true, Some(&root));
    assert!(matches!(ready, Ready::Created { .. }), "{ready:?}");
    let sock = t.socket();
    assert!(
        call(
            &sock,
            r#"{"op":"resize","height":33,"width":99,"exec_pid":null}"#
        )
        .ok
    );
    let mut attach = connect(
        &sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    assert!(answer(&mut attach).ok);
    assert!(call(&sock, r#"{"op":"start"}"#).ok);
    read_until(&mut attach, "33 99");
    attach.get_mut().write_all(b"\n").expect("stdin");
    read_until(&mut attach, "bye");
    assert!(wait_exit(&mut shim).success());
    assert_eq!(t.exit_record().exit_code, 0);
    drop(shim);

    // runc reports a missing command at create; Docker's exit code is 127.
    let nf = Bundle::new("rn", &["does-not-exist"], false);
    let (mut shim, ready) = nf.spawn_shim_with(false, Some(&root));
    match ready {
        Ready::Failed { error, exit_code } => {
            assert_eq!(exit_code, 127, "{error}");
            assert!(error.contains("executable file not found"), "{error}");
        }
        other => panic!("created: {other:?}"),
    }
    assert_eq!(wait_exit(&mut shim).code(), Some(1));
    let _ = std::fs::remove_dir_all(&root);
}
