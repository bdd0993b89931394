//! `stats`: resource usage from the container's cgroup, through berth and docker.

mod common;
use common::*;

fn field(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in {out}"))
        .split(' ')
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn stats_show_cpu_memory_limit_and_pids_of_running_containers() {
    let d = TestDaemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "idle",
        "busybox",
        "sh",
        "-c",
        "sleep 100 & sleep 100; true",
    ]);
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let fmt = "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}";
    for (who, out) in [
        ("berth", d.ok(&["stats", "--no-stream", "--format", fmt])),
        (
            "docker",
            d.docker_ok(&["stats", "--no-stream", "--format", fmt]),
        ),
    ] {
        let busy = field(&out, "busy");
        let cpu: f64 = busy[0].trim_end_matches('%').parse().expect(&out);
        // A busy loop over the one-second window; generous for a loaded CI machine.
        assert!(cpu > 5.0, "{who}: busy loop at {cpu}% in {out}");
        assert_eq!(busy[3], "64MiB", "{who}: the memory limit in {out}");
        assert_eq!(busy[4], "1", "{who}: {out}");
        let idle = field(&out, "idle");
        assert_eq!(idle[4], "3", "{who}: sh and two sleeps in {out}");
        assert!(
            !out.contains("stopped"),
            "{who}: only running containers without -a: {out}"
        );
    }
    let all = d.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.PIDs}}",
    ]);
    assert_eq!(field(&all, "stopped"), ["0.00%", "0"], "{all}");

    // The API document itself: Docker's shape, with the limits.
    let doc = d
        .api(
            "GET",
            "/containers/busy/stats?stream=false&one-shot=true",
            None,
        )
        .json();
    assert_eq!(doc["name"], "/busy");
    assert_eq!(doc["memory_stats"]["limit"], 64u64 << 20);
    assert_eq!(doc["pids_stats"]["limit"], 20);
    assert!(
        doc["cpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .unwrap()
            > 0,
        "{doc}"
    );
    assert!(doc["networks"]["eth0"]["rx_bytes"].is_u64(), "{doc}");

    let missing = d.berth(&["stats", "--no-stream", "nosuch"]);
    assert_ne!(code(&missing), 0);
    assert!(
        stderr(&missing).contains("No such container: nosuch"),
        "{}",
        stderr(&missing)
    );
    d.ok(&["rm", "-f", "busy", "idle", "stopped"]);
}
