//! Issue #7: restart policies applied by the daemon, through berth and through the docker CLI.

mod common;
use common::*;
use std::time::Duration;

fn restart_count(d: &TestDaemon, name: &str) -> i64 {
    d.inspect(name)["RestartCount"].as_i64().unwrap_or(-1)
}

#[test]
fn on_failure_2_stops_after_two_restarts() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &[
                "run",
                "-d",
                "--name",
                "flaky",
                "--restart",
                "on-failure:2",
                "busybox",
                "sh",
                "-c",
                "echo run; exit 3",
            ],
        );
        d.wait_until("two restarts, then exited", Duration::from_secs(20), || {
            let v = d.inspect("flaky");
            v["State"]["Status"] == "exited" && v["RestartCount"] == 2
        });
        // No third restart comes.
        std::thread::sleep(Duration::from_millis(1500));
        let v = d.inspect("flaky");
        assert_eq!(v["State"]["Status"], "exited", "{client:?}");
        assert_eq!(v["State"]["ExitCode"], 3, "{client:?}");
        assert_eq!(v["RestartCount"], 2, "{client:?}");
        assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
        let logs = d.cli_ok(client, &["logs", "flaky"]);
        assert_eq!(logs, "run\nrun\nrun", "{client:?}: three runs");

        // A clean exit under on-failure is not restarted.
        d.cli_ok(
            client,
            &[
                "run",
                "-d",
                "--name",
                "clean",
                "--restart",
                "on-failure",
                "busybox",
                "true",
            ],
        );
        d.wait_until("clean to exit", Duration::from_secs(10), || {
            d.inspect("clean")["State"]["Status"] == "exited"
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(restart_count(&d, "clean"), 0, "{client:?}");
        d.cli_ok(client, &["rm", "-f", "flaky", "clean"]);
    }
}

#[test]
fn always_restarts_and_a_manual_stop_ends_it() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &[
                "run",
                "-d",
                "--name",
                "loop",
                "--restart",
                "always",
                "busybox",
                "sh",
                "-c",
                "sleep 0.2",
            ],
        );
        d.wait_until("three restarts", Duration::from_secs(20), || {
            restart_count(&d, "loop") >= 3
        });
        // While restarting, ps says so.
        d.cli_ok(client, &["stop", "-t", "1", "loop"]);
        d.wait_until("loop to be exited", Duration::from_secs(10), || {
            d.inspect("loop")["State"]["Status"] == "exited"
        });
        let n = restart_count(&d, "loop");
        std::thread::sleep(Duration::from_millis(1500));
        let v = d.inspect("loop");
        assert_eq!(
            v["State"]["Status"], "exited",
            "{client:?}: stop ends restarting"
        );
        assert_eq!(v["RestartCount"], n, "{client:?}: no restart after stop");

        // A manual start resets the count.
        d.cli_ok(client, &["start", "loop"]);
        let n = restart_count(&d, "loop");
        assert!(n <= 1, "{client:?}: start resets RestartCount, got {n}");
        d.cli_ok(client, &["rm", "-f", "loop"]);
        assert_eq!(d.cli_ok(client, &["ps", "-aq"]), "");
    }
}

#[test]
fn update_restart_policy_applies_to_the_next_exit() {
    let d = TestDaemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "upd",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 5",
    ]);
    d.ok(&["update", "--restart", "on-failure:1", "upd"]);
    let v = d.inspect("upd");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 1);
    // The process exits by itself after the update: the new policy restarts it once.
    d.wait_until(
        "upd restarted once, then exited",
        Duration::from_secs(15),
        || {
            let v = d.inspect("upd");
            v["RestartCount"] == 1 && v["State"]["Status"] == "exited"
        },
    );
    d.ok(&["rm", "-f", "upd"]);
}

#[test]
fn daemon_restart_brings_always_back_and_not_stopped_unless_stopped() {
    let mut d = TestDaemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "uls",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "uls2",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&["run", "-d", "--name", "nop", "busybox", "sleep", "1000"]);
    // Stopped by hand: always comes back at daemon start, unless-stopped does not.
    d.ok(&["stop", "-t", "0", "alw", "uls", "nop"]);
    d.kill_daemon();
    // uls2 dies while the daemon is away.
    let pid = {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                d.data_root()
                    .join("containers")
                    .join(container_id_on_disk(&d, "uls2"))
                    .join("config.json"),
            )
            .expect("uls2 record"),
        )
        .expect("uls2 record json");
        v["state"]["pid"].as_i64().expect("pid")
    };
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    d.spawn_daemon();
    d.wait_until("alw and uls2 running", Duration::from_secs(15), || {
        d.inspect("alw")["State"]["Status"] == "running"
            && d.inspect("uls2")["State"]["Status"] == "running"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.inspect("uls")["State"]["Status"], "exited");
    assert_eq!(d.inspect("nop")["State"]["Status"], "exited");
    d.ok(&["rm", "-f", "alw", "uls", "uls2", "nop"]);
}

/// The id of a container by name, from the records on disk (the daemon may be down).
fn container_id_on_disk(d: &TestDaemon, name: &str) -> String {
    let dir = d.data_root().join("containers");
    for e in std::fs::read_dir(&dir).expect("containers dir").flatten() {
        let cfg = e.path().join("config.json");
        if let Ok(data) = std::fs::read(&cfg) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) {
                if v["name"] == name {
                    return e.file_name().to_string_lossy().into_owned();
                }
            }
        }
    }
    panic!("no container {name} under {}", dir.display());
}

#[test]
fn restart_and_rm_conflict() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.cli(
            client,
            &["run", "--rm", "--restart", "always", "busybox", "true"],
        );
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("conflicting options: cannot specify both --restart and --rm"),
            "{client:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn health_checks_in_inspect_and_ps() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &[
                "run",
                "-d",
                "--name",
                "hc",
                "--health-cmd",
                "test -f /tmp/ok && echo fine",
                "--health-interval",
                "300ms",
                "--health-retries",
                "2",
                "busybox",
                "sleep",
                "1000",
            ],
        );
        assert_eq!(d.inspect("hc")["State"]["Health"]["Status"], "starting");
        d.wait_until("hc unhealthy", Duration::from_secs(15), || {
            d.inspect("hc")["State"]["Health"]["Status"] == "unhealthy"
        });
        let st = d.cli_ok(client, &["ps", "--format", "{{.Status}}"]);
        assert!(st.ends_with("(unhealthy)"), "{client:?}: {st}");
        d.cli_ok(client, &["exec", "hc", "touch", "/tmp/ok"]);
        d.wait_until("hc healthy", Duration::from_secs(15), || {
            d.inspect("hc")["State"]["Health"]["Status"] == "healthy"
        });
        let v = d.inspect("hc");
        assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
        let log = v["State"]["Health"]["Log"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let last = log.last().expect("a probe in the log");
        assert_eq!(last["ExitCode"], 0);
        assert_eq!(last["Output"], "fine\n");
        let st = d.cli_ok(client, &["ps", "--format", "{{.Status}}"]);
        assert!(st.ends_with("(healthy)"), "{client:?}: {st}");
        // No check at all: no Health in inspect.
        d.cli_ok(
            client,
            &["run", "-d", "--name", "nohc", "busybox", "sleep", "1000"],
        );
        assert!(d.inspect("nohc")["State"].get("Health").is_none());
        d.cli_ok(client, &["rm", "-f", "hc", "nohc"]);
    }
}

#[test]
fn health_and_backoff_survive_a_daemon_restart_and_kill_in_backoff_is_409() {
    let mut d = TestDaemon::start();
    // Healthy after the first probe; the next one would come only after an hour.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "3600s",
        "--health-start-period",
        "10s",
        "--health-start-interval",
        "200ms",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.wait_until("hc healthy", Duration::from_secs(15), || {
        d.inspect("hc")["State"]["Health"]["Status"] == "healthy"
    });
    // A crash loop: the back-off grows to seconds after a few restarts.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    d.wait_until("a few restarts", Duration::from_secs(20), || {
        restart_count(&d, "loop") >= 4
    });
    // In the back-off wait, kill has no process to signal: 409, not 500.
    d.wait_until("loop restarting", Duration::from_secs(10), || {
        d.inspect("loop")["State"]["Restarting"] == true
    });
    let r = d.api("POST", "/containers/loop/kill", None);
    assert_eq!(r.status, 409, "{}", r.text());

    d.kill_daemon();
    d.spawn_daemon();
    // The health status of the same run is kept (no new probe could have run yet).
    let v = d.inspect("hc");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Health"]["Status"], "healthy", "{v}");
    assert!(v["State"]["Health"]["Log"]
        .as_array()
        .is_some_and(|l| !l.is_empty()));
    // The crash loop goes on from where it was: the count is not reset.
    let before = restart_count(&d, "loop");
    assert!(
        before >= 4,
        "RestartCount after the daemon restart: {before}"
    );
    d.wait_until("one more restart", Duration::from_secs(30), || {
        restart_count(&d, "loop") > before
    });
    d.ok(&["rm", "-f", "loop", "hc"]);
}
