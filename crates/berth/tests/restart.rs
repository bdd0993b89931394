//! The daemon can die at any moment: running containers survive and are re-adopted, and the
//! image store stays consistent.

mod common;
use common::*;
use std::io::Write;
use std::time::Duration;

fn alive(pid: i64) -> bool {
    // A zombie (exited, not reaped) is not alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn sigkilled_daemon_readopts_running_containers() {
    let mut d = TestDaemon::start();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    d.wait_until("web to log", Duration::from_secs(10), || {
        d.ok(&["logs", "web"]).contains("started")
    });
    let pid = d.inspect("web")["State"]["Pid"].as_i64().unwrap_or(0);
    let short_pid = d.inspect("short")["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && alive(pid));

    d.kill_daemon();
    assert!(alive(pid), "the container must outlive the daemon");
    // `short` exits while no daemon watches.
    d.wait_until("short to exit", Duration::from_secs(10), || {
        !alive(short_pid)
    });
    d.spawn_daemon();

    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "web");
    let v = d.inspect("web");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Pid"].as_i64(), Some(pid));
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(d.ok(&["logs", "web"]), "started");
    assert_eq!(d.ok(&["exec", "web", "echo", "exec-ok"]), "exec-ok");
    assert_eq!(d.docker_ok(&["ps", "-q"]), &id[..12]);

    let v = d.inspect("short");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 5);

    d.ok(&["stop", "-t", "1", "web"]);
    assert!(!alive(pid), "stop after re-adoption kills the container");
    assert_eq!(d.inspect("web")["State"]["Status"], "exited");
    d.ok(&["rm", "web", "short"]);
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn sigkill_during_load_leaves_a_consistent_store() {
    let mut d = TestDaemon::start_empty();
    let bytes = std::fs::read(busybox_tar()).expect("read busybox.tar");
    let mut conn = d.api_upload(
        "POST",
        "/images/load?quiet=1",
        "application/x-tar",
        bytes.len(),
    );
    conn.write_all(&bytes[..bytes.len() / 2])
        .expect("send half the archive");
    conn.flush().ok();
    std::thread::sleep(Duration::from_millis(500));
    d.kill_daemon();
    drop(conn);
    d.spawn_daemon();

    // Whatever the store lists must be complete and usable.
    let listed = d.api("GET", "/images/json", None).json();
    for img in listed.as_array().cloned().unwrap_or_default() {
        let id = img["Id"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            d.api("GET", &format!("/images/{id}/json"), None).status,
            200,
            "listed but broken: {id}"
        );
        assert_eq!(d.ok(&["run", "--rm", &id, "echo", "whole"]), "whole");
    }
    // And loading again works.
    d.load(&busybox_tar());
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hello"]), "hello");
}

#[test]
fn graceful_restart_keeps_state() {
    let mut d = TestDaemon::start();
    d.ok(&[
        "create", "--name", "kept", "-e", "K=v", "busybox", "sh", "-c", "echo $K",
    ]);
    d.ok(&["tag", "busybox", "kept:1"]);
    let pid = d.pid();
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    d.wait_until(
        "the daemon to exit on SIGTERM",
        Duration::from_secs(10),
        || !alive(pid as i64),
    );
    d.kill_daemon(); // reaps it
    d.spawn_daemon();
    assert_eq!(d.ok(&["start", "-a", "kept"]), "v");
    assert_eq!(d.api("GET", "/images/kept:1/json", None).status, 200);
}
