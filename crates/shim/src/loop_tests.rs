//! The poll loop end to end against a stand-in runtime that runs plain host processes (no
//! namespaces), so the loop is tested without the builtin runtime.

use crate::backend::{ContainerRuntime, ShimError, Spawned};
use crate::jsonlog::JsonLog;
use crate::server::Shim;
use crate::shim_protocol::{ExitRecord, Response};
use crate::stdio::{self, ChildIo};
use oci_spec::runtime::Process;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The shim reaps with waitpid(-1): tests that run shims in this process take turns, or one
/// shim would reap another's children.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `args` on the host; gated on a fifo until start.
struct HostRuntime {
    args: Vec<String>,
    fifo: PathBuf,
}

fn spawn(args: &[String], io: ChildIo) -> Result<i32, ShimError> {
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::from(io.stdin))
        .stdout(Stdio::from(io.stdout))
        .stderr(Stdio::from(io.stderr))
        .spawn()
        .map_err(ShimError::io("spawn"))?;
    // The shim reaps it with waitpid; dropping a Child does not wait.
    Ok(child.id() as i32)
}

impl ContainerRuntime for HostRuntime {
    fn create(&mut self, io: ChildIo) -> Result<Spawned, ShimError> {
        let gate = format!("read _ < {}; exec \"$@\"", self.fifo.display());
        let mut args = vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            gate,
            "sh".into(),
        ];
        args.extend(self.args.iter().cloned());
        Ok(Spawned {
            pid: spawn(&args, io)?,
            master: None,
        })
    }
    fn start(&mut self) -> Result<(), ShimError> {
        std::fs::write(&self.fifo, b"go\n").map_err(ShimError::io("gate"))
    }
    fn exec(&mut self, _init: i32, process: &Process, io: ChildIo) -> Result<Spawned, ShimError> {
        let args = process.args().clone().unwrap_or_default();
        if args.first().is_none_or(|a| !Path::new(a).exists()) {
            return Err(ShimError::NotFound(
                args.first().cloned().unwrap_or_default(),
            ));
        }
        Ok(Spawned {
            pid: spawn(&args, io)?,
            master: None,
        })
    }
    fn kill(&mut self, pid: i32, signal: i32, _all: bool) -> Result<(), ShimError> {
        let pid = rustix::process::Pid::from_raw(pid).ok_or(ShimError::Runtime("pid".into()))?;
        let sig = rustix::process::Signal::from_named_raw(signal)
            .ok_or(ShimError::Runtime("sig".into()))?;
        rustix::process::kill_process(pid, sig).map_err(|e| ShimError::io("kill")(e.into()))
    }
    fn pause(&mut self) -> Result<(), ShimError> {
        Err(ShimError::Runtime("no pause on the host".into()))
    }
    fn resume(&mut self) -> Result<(), ShimError> {
        Err(ShimError::Runtime("no resume on the host".into()))
    }
    fn cleanup(&mut self) -> Result<(), ShimError> {
        Ok(())
    }
}

fn request(sock: &Path, line: &str) -> (Response, BufReader<UnixStream>) {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.write_all(line.as_bytes()).expect("send");
    s.write_all(b"\n").expect("send");
    let mut r = BufReader::new(s);
    let mut answer = String::new();
    r.read_line(&mut answer).expect("answer");
    (serde_json::from_str(&answer).expect("json answer"), r)
}

/// Split a multiplexed stream into (stream id, payload) frames.
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

#[test]
fn attach_start_stdin_exec_wait_and_exit_record() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("bshl{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fifo = dir.join("gate");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let sock = dir.join("s.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let log = JsonLog::open(&dir.join("log.json")).expect("log");
    let script = "echo hello; echo err >&2; read line; echo got:$line; exit 3";
    let mut rt = HostRuntime {
        args: vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ],
        fifo,
    };
    let (shim_io, child_io) = stdio::pipes(true).expect("pipes");
    let pid = rt.create(child_io).expect("create").pid;
    let shim = Shim::new(rt, listener, sock.clone(), dir.clone(), log, pid, shim_io).expect("shim");
    let server = std::thread::spawn(move || shim.run());

    let (state, _) = request(&sock, r#"{"op":"state"}"#);
    assert_eq!(state.status, Some(crate::shim_protocol::Status::Created));
    let (ok, mut attach) = request(
        &sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    assert!(ok.ok);
    let (_, mut wait) = request_nowait(&sock, r#"{"op":"wait"}"#);
    let (started, _) = request(&sock, r#"{"op":"start"}"#);
    assert!(started.ok, "{started:?}");
    let (again, _) = request(&sock, r#"{"op":"start"}"#);
    assert!(!again.ok);

    let (missing, _) = request(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["/nope"],"cwd":"/"}}"#,
    );
    assert_eq!(missing.exit_code, Some(127));
    assert!(missing
        .error
        .as_deref()
        .is_some_and(|e| e.contains("executable file not found")));
    let (exec, mut exec_stream) = request(
        &sock,
        r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["/bin/busybox","echo","from-exec"],"cwd":"/"}}"#,
    );
    let exec_pid = exec.pid.expect("exec pid");
    let mut exec_out = Vec::new();
    exec_stream.read_to_end(&mut exec_out).expect("exec stream");
    assert_eq!(frames(&exec_out), vec![(1, "from-exec\n".to_string())]);
    let (status, _) = request(
        &sock,
        &format!(r#"{{"op":"exec-status","pid":{exec_pid}}}"#),
    );
    assert_eq!((status.running, status.exit_code), (Some(false), Some(0)));

    attach.get_mut().write_all(b"abc\n").expect("stdin");
    attach
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut out = Vec::new();
    attach.read_to_end(&mut out).expect("attach stream");
    // How the output splits into frames depends on when the shim reads it: compare streams.
    let stream = |id: u8| -> String {
        frames(&out)
            .into_iter()
            .filter(|(s, _)| *s == id)
            .map(|(_, text)| text)
            .collect()
    };
    assert_eq!(stream(1), "hello\ngot:abc\n");
    assert_eq!(stream(2), "err\n");

    let mut line = String::new();
    wait.read_line(&mut line).expect("wait answer");
    let waited: Response = serde_json::from_str(&line).expect("json");
    assert_eq!(waited.exit_code, Some(3));

    let record = server
        .join()
        .expect("thread")
        .expect("run")
        .expect("exit record");
    assert_eq!(record.exit_code, 3);
    let on_disk: ExitRecord =
        serde_json::from_slice(&std::fs::read(dir.join("exit.json")).expect("exit.json"))
            .expect("parse");
    assert_eq!(on_disk, record);
    let log = std::fs::read_to_string(dir.join("log.json")).expect("log");
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(
        log.contains(r#""log":"got:abc\n","stream":"stdout""#),
        "{log}"
    );
    assert!(!sock.exists());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Send a request whose answer comes later.
fn request_nowait(sock: &Path, line: &str) -> ((), BufReader<UnixStream>) {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.write_all(line.as_bytes()).expect("send");
    s.write_all(b"\n").expect("send");
    ((), BufReader::new(s))
}

struct Fixture {
    dir: PathBuf,
    sock: PathBuf,
    server: std::thread::JoinHandle<std::io::Result<Option<ExitRecord>>>,
}

/// Create `script` under a host runtime, gated, with the shim serving in a thread.
fn fixture(tag: &str, script: &str, tty: bool, with_stdin: bool) -> Fixture {
    let dir = std::env::temp_dir().join(format!("bsh{tag}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fifo = dir.join("gate");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let sock = dir.join("s.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let log = JsonLog::open(&dir.join("log.json")).expect("log");
    let mut rt = HostRuntime {
        args: vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ],
        fifo,
    };
    let (shim_io, child_io) = if tty {
        stdio::pty(with_stdin)
    } else {
        stdio::pipes(with_stdin)
    }
    .expect("stdio");
    let pid = rt.create(child_io).expect("create").pid;
    let shim = Shim::new(rt, listener, sock.clone(), dir.clone(), log, pid, shim_io).expect("shim");
    Fixture {
        dir,
        sock,
        server: std::thread::spawn(move || shim.run()),
    }
}

impl Fixture {
    fn finish(self) -> ExitRecord {
        let rec = self
            .server
            .join()
            .expect("thread")
            .expect("run")
            .expect("exit record");
        std::fs::remove_dir_all(&self.dir).expect("cleanup");
        rec
    }
}

#[test]
fn kill_records_the_signal_and_state_follows() {
    let _turn = serial();
    let f = fixture("k", "exec /bin/busybox sleep 1000", false, false);
    let (r, _) = request(&f.sock, r#"{"op":"start"}"#);
    assert!(r.ok);
    let (st, _) = request(&f.sock, r#"{"op":"state"}"#);
    assert_eq!(st.status, Some(crate::shim_protocol::Status::Running));
    let (_, mut wait) = request_nowait(&f.sock, r#"{"op":"wait"}"#);
    let (k, _) = request(&f.sock, r#"{"op":"kill","signal":15}"#);
    assert!(k.ok, "{k:?}");
    let mut line = String::new();
    wait.read_line(&mut line).expect("wait");
    let waited: Response = serde_json::from_str(&line).expect("json");
    assert_eq!(waited.exit_code, Some(143));
    let rec = f.finish();
    assert_eq!((rec.exit_code, rec.signal), (143, Some(15)));
}

#[test]
fn tty_is_raw_and_resizable() {
    let _turn = serial();
    let f = fixture(
        "t",
        "/bin/busybox stty size; read x; /bin/busybox stty size",
        true,
        true,
    );
    let (r, _) = request(
        &f.sock,
        r#"{"op":"resize","height":30,"width":100,"exec_pid":null}"#,
    );
    assert!(r.ok, "{r:?}");
    let (_, mut attach) = request(
        &f.sock,
        r#"{"op":"attach","stdin":true,"stdout":true,"stderr":true,"close_stdin_on_eof":true}"#,
    );
    let (r, _) = request(&f.sock, r#"{"op":"start"}"#);
    assert!(r.ok);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("30 100") {
        let n = attach.read(&mut buf).expect("read");
        assert!(n > 0, "{:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let (r, _) = request(&f.sock, r#"{"op":"resize","height":40,"width":120}"#);
    assert!(r.ok);
    attach.get_mut().write_all(b"\n").expect("stdin");
    attach.read_to_end(&mut got).expect("rest");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("30 100\r\n") && text.contains("40 120\r\n"),
        "{text:?}"
    );
    assert_eq!(f.finish().exit_code, 0);
}
