//! A container sees only itself: its processes, its hostname, its own writable layer.

mod common;
use common::*;

#[test]
fn ps_inside_shows_only_the_containers_processes() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.cli_ok(client, &["run", "--rm", "busybox", "ps", "-o", "pid,comm"]);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![vec!["1", "ps"]],
            "{client:?}: ps inside a container:\n{out}"
        );
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
            "1"
        );
    }
}

#[test]
fn hostname_is_the_containers_own() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for client in CLIENTS {
        let d = TestDaemon::start();
        let id = d.cli_ok(client, &["run", "-d", "busybox", "sleep", "1000"]);
        let name = d.cli_ok(client, &["exec", &id, "hostname"]);
        assert_eq!(
            name,
            &id[..12],
            "{client:?}: the default hostname is the short id"
        );
        assert_ne!(name, host.trim());
        assert_eq!(
            d.cli_ok(
                client,
                &["run", "--rm", "-h", "myhost", "busybox", "hostname"]
            ),
            "myhost"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
            host,
            "the host's name is untouched"
        );
        d.cli_ok(client, &["rm", "-f", &id]);
    }
}

#[test]
fn writes_stay_in_the_container() {
    let d = TestDaemon::start();
    let marker = unique("inside-");
    let script = format!("echo x > /{marker} && echo y > /tmp/{marker} && rm /bin/vi && echo done");
    assert_eq!(
        d.ok(&["run", "--name", "wr", "busybox", "sh", "-c", &script]),
        "done"
    );
    // Not on the host …
    assert!(!std::path::Path::new("/").join(&marker).exists());
    assert!(!std::path::Path::new("/tmp").join(&marker).exists());
    // … not in the image: a fresh container does not see them, and still has /bin/vi.
    let out = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "ls",
        &format!("/{marker}"),
        &format!("/tmp/{marker}"),
    ]);
    assert_ne!(
        code(&out),
        0,
        "a new container sees another's files: {}",
        stdout(&out)
    );
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "ls", "/bin/vi"]),
        "/bin/vi"
    );
    // … but the container keeps its own changes.
    let diff = d.ok(&["diff", "wr"]);
    assert!(
        diff.lines().any(|l| l == format!("A /{marker}")),
        "diff: {diff}"
    );
    assert!(diff.lines().any(|l| l == "D /bin/vi"), "diff: {diff}");
    // Restarted, it runs on the same layer: /bin/vi is already gone, so the script fails.
    assert_exit("start -a wr", &d.berth(&["start", "-a", "wr"]), 1);
}

#[test]
fn the_container_has_its_own_proc_and_dev() {
    let d = TestDaemon::start();
    let out = d.ok(&["run", "--rm", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /dev/null /dev/zero /dev/pts >/dev/null && echo devs"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("sh -c cat /proc/1/cmdline")),
        "PID 1 is our sh: {out}"
    );
    assert_eq!(lines.last(), Some(&"devs"));
}
