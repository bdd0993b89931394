//! The integration-test harness: one private `berth daemon` per test.
//!
//! `TestDaemon::start()` makes a short temp dir (/tmp/bt-XXXXXX: unix socket paths are
//! limited to 108 bytes), runs `berth daemon` on it, waits for `/_ping`, and loads the
//! offline busybox image. Drop kills what the test started (daemon, shims, container
//! processes), unmounts what is mounted under the dir, removes its cgroups and the dir,
//! and prints the daemon's log when the test failed.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// How long one CLI command may take before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(10);

/// `target/` (the parent of `target/debug/berth`).
pub fn target_dir() -> PathBuf {
    let bin = Path::new(BERTH);
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The busybox image tar, built once per machine by scripts/make-busybox-image.sh into
/// target/test-images/busybox.tar. A file lock keeps parallel test binaries from racing;
/// the tar is rebuilt when the script is newer than it.
pub fn busybox_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = target_dir().join("test-images");
        fs::create_dir_all(&dir).expect("create target/test-images");
        let tar = dir.join("busybox.tar");
        let lock = fs::File::create(dir.join(".lock")).expect("create the image lock file");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .expect("lock target/test-images");
        let script = repo_root().join("scripts/make-busybox-image.sh");
        let stale = match (
            fs::metadata(&tar).and_then(|m| m.modified()),
            fs::metadata(&script).and_then(|m| m.modified()),
        ) {
            (Ok(t), Ok(s)) => s > t,
            _ => true,
        };
        if stale {
            let out = Command::new("bash")
                .arg(&script)
                .arg(&tar)
                .output()
                .expect("run make-busybox-image.sh");
            assert!(
                out.status.success(),
                "make-busybox-image.sh failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        drop(lock); // closing the file releases the lock
        tar
    })
    .clone()
}

/// A short, fresh directory: /tmp/bt-XXXXXX.
fn short_temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("bt-")
        .rand_bytes(6)
        .tempdir_in("/tmp")
        .expect("create /tmp/bt-XXXXXX")
        .keep()
}

/// An HTTP answer from the daemon's API.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct TestDaemon {
    /// /tmp/bt-XXXXXX
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// `unix:///tmp/bt-XXXXXX/s.sock`
    pub host: String,
    child: Option<Child>,
    /// This daemon's network slot: its default bridge `bt<N>`, its subnets 10.49.N.0/24 and
    /// 10.(50+N).0.0/16 (a lock file under /tmp keeps parallel tests apart).
    pub net_slot: u32,
}

impl TestDaemon {
    /// A daemon with busybox:latest loaded.
    pub fn start() -> TestDaemon {
        let tar = busybox_tar();
        let d = TestDaemon::start_empty();
        d.load(&tar);
        d
    }

    /// A daemon with an empty store.
    pub fn start_empty() -> TestDaemon {
        let shim = Path::new(BERTH).with_file_name("berth-shim");
        assert!(
            shim.is_file(),
            "{} is missing: build it first (`cargo build -p berth -p berth-shim`)",
            shim.display()
        );
        let dir = short_temp_dir();
        let socket = dir.join("s.sock");
        let host = format!("unix://{}", socket.display());
        fs::create_dir_all(dir.join("docker-config")).expect("create docker-config");
        fs::write(dir.join("docker-config/config.json"), b"{}\n").expect("write docker config");
        let mut d = TestDaemon {
            dir,
            socket,
            host,
            child: None,
            net_slot: claim_net_slot(),
        };
        d.spawn_daemon();
        d
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn exec_root(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    /// The daemon's pid (while it runs).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the daemon is not running")
    }

    /// Start `berth daemon` on this dir (again, after `kill_daemon`) and wait for `/_ping`.
    pub fn spawn_daemon(&mut self) {
        assert!(self.child.is_none(), "the daemon already runs");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open daemon.log");
        let log2 = log.try_clone().expect("dup daemon.log");
        let child = Command::new(BERTH)
            .arg("daemon")
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("-H")
            .arg(&self.host)
            .arg("--log-level")
            .arg("debug")
            .arg("--bridge-name")
            .arg(self.bridge_name())
            .arg("--bip")
            .arg(format!("10.49.{}.1/24", self.net_slot))
            .arg("--default-address-pool")
            .arg(format!("base=10.{}.0.0/16,size=24", 50 + self.net_slot))
            .env_remove("BERTH_HOST")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn berth daemon");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DAEMON_START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "berth daemon exited at start-up ({status}); its log:\n{}",
                        self.log()
                    );
                }
            }
            if let Ok(r) = self.try_api("GET", "/_ping", None) {
                if r.status == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("berth daemon did not answer /_ping within {DAEMON_START_TIMEOUT:?}; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL the daemon (its shims and containers stay) and reap it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Load an image archive through the API (`POST /images/load`), asserting success.
    pub fn load(&self, tar: &Path) {
        let body = fs::read(tar).unwrap_or_else(|e| panic!("read {}: {e}", tar.display()));
        let r = self.api(
            "POST",
            "/images/load?quiet=1",
            Some(("application/x-tar", &body)),
        );
        assert_eq!(
            r.status,
            200,
            "loading {} failed: {}\n{}",
            tar.display(),
            r.text(),
            self.log()
        );
        assert!(
            !r.text().contains("errorDetail"),
            "loading {} failed: {}",
            tar.display(),
            r.text()
        );
    }

    // ---- the API, raw -------------------------------------------------------------

    /// One HTTP/1.1 request on a fresh connection (`Connection: close`); chunked bodies are decoded.
    pub fn api(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> ApiResponse {
        self.try_api(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\ndaemon log:\n{}", self.log()))
    }

    pub fn api_json(&self, method: &str, path: &str, body: &serde_json::Value) -> ApiResponse {
        let bytes = serde_json::to_vec(body).expect("serialize JSON");
        self.api(method, path, Some(("application/json", &bytes)))
    }

    pub fn try_api(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> std::io::Result<ApiResponse> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n");
        if let Some((ctype, b)) = body {
            head.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        } else if method == "POST" {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        if let Some((_, b)) = body {
            s.write_all(b)?;
        }
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_response(&raw)
    }

    /// A connection with a request head written and `len` body bytes announced: the test
    /// writes (part of) the body itself, e.g. to kill the daemon mid-upload.
    pub fn api_upload(&self, method: &str, path: &str, ctype: &str, len: usize) -> UnixStream {
        let mut s = UnixStream::connect(&self.socket).expect("connect to the daemon");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("write request head");
        s
    }

    // ---- clients --------------------------------------------------------------------

    /// `berth ARGS` against this daemon (BERTH_HOST).
    pub fn berth(&self, args: &[&str]) -> Output {
        run_bounded(self.berth_cmd(args), None, COMMAND_TIMEOUT)
    }
    pub fn berth_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_bounded(self.berth_cmd(args), Some(stdin), COMMAND_TIMEOUT)
    }
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.args(args)
            .env("BERTH_HOST", &self.host)
            .env("DOCKER_HOST", &self.host)
            .current_dir(&self.dir);
        c
    }

    /// `docker ARGS` (the real CLI) against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_bounded(self.docker_cmd(args), None, COMMAND_TIMEOUT)
    }
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_bounded(self.docker_cmd(args), Some(stdin), COMMAND_TIMEOUT)
    }
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .current_dir(&self.dir);
        c
    }

    /// `python3 -c SCRIPT` with DOCKER_HOST set; the script sees the socket URL in argv[1].
    pub fn python(&self, script: &str) -> Output {
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(script)
            .arg(&self.host)
            .env("DOCKER_HOST", &self.host)
            .current_dir(&self.dir);
        run_bounded(c, None, COMMAND_TIMEOUT)
    }

    /// `berth ARGS`, asserting exit 0; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert_success(&format!("berth {}", args.join(" ")), &out);
        stdout(&out).trim().to_string()
    }
    /// `docker ARGS`, asserting exit 0; returns trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert_success(&format!("docker {}", args.join(" ")), &out);
        stdout(&out).trim().to_string()
    }

    /// `GET /containers/NAME/json`.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let r = self.api("GET", &format!("/containers/{name}/json"), None);
        assert_eq!(r.status, 200, "inspect {name}: {}", r.text());
        r.json()
    }

    /// Poll `cond` every 50 ms until it holds or `timeout` passes.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\ndaemon log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // ---- clean-up ---------------------------------------------------------------------

    fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.data_root().join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.retain(|id| id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        ids
    }

    fn cleanup(&mut self) {
        self.kill_daemon();
        let mut ids = self.container_ids();
        // A removed (--rm) container has no dir left, but its shim may still be about to rmdir
        // its cgroups when it is killed below: its --id names them.
        let needle = self.dir.to_string_lossy().into_owned();
        ids.extend(
            processes_mentioning(&needle)
                .into_iter()
                .filter_map(shim_container_id),
        );
        ids.sort();
        ids.dedup();
        let cgroups = container_cgroups(&ids);
        // Frozen (paused) tasks do not die until thawed.
        for cg in &cgroups {
            let _ = fs::write(cg.join("freezer.state"), "THAWED");
            let _ = fs::write(cg.join("cgroup.freeze"), "0");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut victims = processes_mentioning(&needle);
            for cg in &cgroups {
                victims.extend(cgroup_pids(cg));
            }
            victims.sort_unstable();
            victims.dedup();
            victims.retain(|&p| p != std::process::id() as i32 && p > 1);
            if victims.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in victims {
                if let Some(pid) = rustix::process::Pid::from_raw(p) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unmount_under(&self.dir);
        self.remove_networks();
        for cg in cgroups.iter().rev() {
            remove_cgroup_tree(cg);
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("test harness: could not remove {}: {e}", self.dir.display());
        }
    }
}

const NET_SLOTS: u32 = 150;
const NET_SLOT_DIR: &str = "/tmp/berth-test-net-slots";

/// Claim a free network slot (a file created exclusively; released by Drop).
fn claim_net_slot() -> u32 {
    let _ = fs::create_dir_all(NET_SLOT_DIR);
    let start = std::process::id() % NET_SLOTS;
    for i in 0..NET_SLOTS {
        let k = (start + i) % NET_SLOTS;
        let path = Path::new(NET_SLOT_DIR).join(k.to_string());
        if fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .is_ok()
        {
            let _ = fs::write(&path, std::process::id().to_string());
            return k;
        }
        // A slot whose owner process is gone is free again.
        let owner = fs::read_to_string(&path).unwrap_or_default();
        if owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists())
        {
            let _ = fs::write(&path, std::process::id().to_string());
            return k;
        }
    }
    panic!("no free test network slot under {NET_SLOT_DIR}");
}

impl TestDaemon {
    /// The default bridge of this daemon.
    pub fn bridge_name(&self) -> String {
        format!("bt{}", self.net_slot)
    }

    /// Remove this daemon's bridges and nftables table (the daemon was SIGKILLed).
    fn remove_networks(&mut self) {
        let mut bridges = vec![self.bridge_name()];
        if let Ok(entries) = fs::read_dir(self.data_root().join("networks")) {
            for e in entries.flatten() {
                let v: serde_json::Value = fs::read(e.path())
                    .ok()
                    .and_then(|d| serde_json::from_slice(&d).ok())
                    .unwrap_or_default();
                if let Some(b) = v["bridge"].as_str().filter(|b| !b.is_empty()) {
                    bridges.push(b.to_string());
                }
            }
        }
        bridges.sort();
        bridges.dedup();
        for b in bridges {
            if Path::new("/sys/class/net").join(&b).exists() {
                let _ = Command::new("ip").args(["link", "del", &b]).status();
            }
        }
        let table = format!("berth-{}", self.bridge_name());
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_file(Path::new(NET_SLOT_DIR).join(self.net_slot.to_string()));
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== berth daemon log ({}) =====\n{}\n===== end of daemon log =====",
                self.dir.display(),
                self.log()
            );
        }
        self.cleanup();
    }
}

// ---- helpers ----------------------------------------------------------------------------

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn assert_success(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "`{what}` failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

pub fn assert_exit(what: &str, o: &Output, expected: i32) {
    assert_eq!(
        code(o),
        expected,
        "`{what}`: wrong exit code\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Run a command with piped output, optional stdin, and a deadline (killed and reported past it).
pub fn run_bounded(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let (Some(data), Some(mut sin)) = (input, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = sin.write_all(&data);
        });
    }
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {timeout:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

fn parse_response(raw: &[u8]) -> std::io::Result<ApiResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok(ApiResponse {
        status,
        headers,
        body,
    })
}

/// Decode a chunked body (tolerant: stops at the first malformed chunk).
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = match usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
        {
            Ok(n) => n,
            Err(_) => break,
        };
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            out.extend_from_slice(&b[..size.min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Pids of processes whose command line mentions `needle` (our shims, runc, …).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The container id a berth-shim process serves (`--id ID` on its command line).
fn shim_container_id(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.first()?.ends_with("berth-shim") {
        return None;
    }
    let i = args.iter().position(|a| a == "--id")?;
    args.get(i + 1)
        .filter(|id| id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .cloned()
}

/// Every `/sys/fs/cgroup/<hierarchy>/berth/<id>` that exists for these containers.
fn container_cgroups(ids: &[String]) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let hierarchies: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    let mut out = Vec::new();
    for h in &hierarchies {
        let berth = h.join("berth");
        for id in ids {
            let cg = berth.join(id);
            if cg.is_dir() {
                out.push(cg);
            }
        }
    }
    out
}

fn cgroup_pids(cg: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for file in ["cgroup.procs", "tasks"] {
        if let Ok(s) = fs::read_to_string(cg.join(file)) {
            pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    // Nested cgroups (exec'd processes may live in a child).
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids.extend(cgroup_pids(&e.path()));
            }
        }
    }
    pids
}

/// rmdir a cgroup and its children, deepest first (a cgroup dir holds only control files).
fn remove_cgroup_tree(cg: &Path) {
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while fs::remove_dir(cg).is_err() && cg.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points at or below `dir`, from /proc/self/mountinfo (octal escapes undone).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect()
}

pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmount everything under `dir`, deepest first, until nothing is left.
pub fn unmount_under(dir: &Path) {
    for _ in 0..10 {
        let mut mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// A unique container/image name for a test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which command-line client drives the daemon: the same test runs through both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Berth,
    Docker,
}
pub const CLIENTS: [Client; 2] = [Client::Berth, Client::Docker];

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Berth => "berth",
            Client::Docker => "docker",
        }
    }
}

/// Drives a command in a pseudo-terminal: waits for each `expect` text, then types `send`.
/// Prints everything the terminal showed and exits with the command's exit code.
const PTY_DRIVER: &str = r#"
import json, os, pty, select, sys, time
steps = json.loads(os.environ['PTY_STEPS'])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
buf = b''
status = None
def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    if not data:
        return False
    buf += data
    return True
for expect, send in steps:
    if expect:
        end = time.time() + 20
        while expect.encode() not in buf:
            if time.time() > end or not pump(max(0.0, end - time.time())):
                sys.stdout.write(buf.decode('utf-8', 'replace'))
                sys.stderr.write('pty driver: no %r on the terminal\n' % expect)
                os.kill(pid, 9)
                sys.exit(99)
    if send:
        time.sleep(0.1)
        os.write(fd, send.encode())
end = time.time() + 20
while time.time() < end:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
        break
    if not pump(0.1):
        _, status = os.waitpid(pid, 0)
        break
while pump(0.05):
    if not select.select([fd], [], [], 0)[0]:
        break
sys.stdout.write(buf.decode('utf-8', 'replace'))
if status is None:
    os.kill(pid, 9)
    sys.stderr.write('pty driver: the command did not exit\n')
    sys.exit(98)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

impl TestDaemon {
    /// `CLIENT ARGS`, asserting exit 0; returns trimmed stdout.
    pub fn cli_ok(&self, client: Client, args: &[&str]) -> String {
        let out = self.cli(client, args);
        assert_success(&format!("{} {}", client.name(), args.join(" ")), &out);
        stdout(&out).trim().to_string()
    }

    pub fn cli(&self, client: Client, args: &[&str]) -> Output {
        match client {
            Client::Berth => self.berth(args),
            Client::Docker => self.docker(args),
        }
    }

    pub fn cli_stdin(&self, client: Client, args: &[&str], input: &[u8]) -> Output {
        match client {
            Client::Berth => self.berth_stdin(args, input),
            Client::Docker => self.docker_stdin(args, input),
        }
    }

    pub fn cli_cmd(&self, client: Client, args: &[&str]) -> Command {
        match client {
            Client::Berth => self.berth_cmd(args),
            Client::Docker => self.docker_cmd(args),
        }
    }

    /// Run `CLIENT ARGS` in a pty, typing `send` after seeing `expect` for each step.
    pub fn in_pty(&self, client: Client, args: &[&str], steps: &[(&str, &str)]) -> Output {
        let cmd = self.cli_cmd(client, args);
        let mut py = Command::new("python3");
        py.arg("-c")
            .arg(PTY_DRIVER)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => py.env(k, v),
                None => py.env_remove(k),
            };
        }
        let steps =
            serde_json::to_string(&steps.iter().map(|(e, s)| vec![*e, *s]).collect::<Vec<_>>())
                .expect("serialize pty steps");
        py.env("PTY_STEPS", steps).current_dir(&self.dir);
        run_bounded(py, None, COMMAND_TIMEOUT)
    }
}
