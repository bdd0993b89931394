//! `GET /events` / `berth events` / `docker events`: what happened, in order, filtered.

mod common;
use common::*;
use std::time::Duration;

fn unix_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// The actions of one container's events, in order, from `--format` output lines.
fn actions_of(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == name)
        .map(|(_, a)| a.to_string())
        .collect()
}

#[test]
fn history_with_since_and_until_through_berth_and_docker() {
    let d = TestDaemon::start();
    let t0 = unix_now();
    d.ok(&["run", "--rm", "--name", "once", "busybox", "true"]);
    d.ok(&[
        "run", "-d", "--name", "svc", "--label", "tier=web", "busybox", "sleep", "100",
    ]);
    d.ok(&["stop", "-t", "1", "svc"]);
    d.ok(&["rename", "svc", "svc2"]);
    d.ok(&["rm", "svc2"]);
    d.ok(&["volume", "create", "evvol"]);
    d.ok(&["volume", "rm", "evvol"]);
    let t1 = unix_now();

    let fmt = "{{.Actor.Attributes.name}} {{.Action}}";
    for (who, out) in [
        (
            "berth",
            d.ok(&["events", "--since", &t0, "--until", &t1, "--format", fmt]),
        ),
        (
            "docker",
            d.docker_ok(&["events", "--since", &t0, "--until", &t1, "--format", fmt]),
        ),
    ] {
        assert_eq!(
            actions_of(&out, "once"),
            ["create", "attach", "start", "die", "destroy"],
            "{who}: {out}"
        );
        assert_eq!(
            actions_of(&out, "svc"),
            ["create", "start", "kill", "die", "stop"],
            "{who}: {out}"
        );
        assert_eq!(
            actions_of(&out, "svc2"),
            ["rename", "destroy"],
            "{who}: {out}"
        );
    }

    // Filters: AND across keys, OR within one; labels; the type; an unknown key is refused.
    let only = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "label=tier=web",
        "--filter",
        "event=die",
        "--filter",
        "event=start",
        "--format",
        fmt,
    ]);
    assert_eq!(
        only.lines().collect::<Vec<_>>(),
        ["svc start", "svc die"],
        "{only}"
    );
    let vols = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "type=volume",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]);
    assert_eq!(
        vols.lines().collect::<Vec<_>>(),
        ["volume create evvol", "volume destroy evvol"],
        "{vols}"
    );
    let bad = d.berth(&["events", "--until", &t1, "--filter", "colour=red"]);
    assert_ne!(code(&bad), 0);
    assert!(
        stderr(&bad).contains("invalid filter 'colour'"),
        "{}",
        stderr(&bad)
    );

    // The exit code travels in the die event, as Compose reads it.
    let json = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=svc",
        "--filter",
        "event=die",
        "--format",
        "json",
    ]);
    let ev: serde_json::Value = serde_json::from_str(json.trim()).expect(&json);
    assert_eq!(ev["Actor"]["Attributes"]["exitCode"], "137", "{json}");
    assert_eq!(ev["status"], "die");
    assert_eq!(ev["Type"], "container");
}

#[test]
fn live_stream_follows_new_events_until_the_client_stops() {
    let d = TestDaemon::start();
    let mut follower = d.docker_cmd(&[
        "events",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    follower
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = follower.spawn().expect("docker events");
    // The stream is open before anything happens: only live events can reach it.
    std::thread::sleep(Duration::from_millis(500));
    d.ok(&["run", "--rm", "--name", "live", "busybox", "true"]);
    let mut seen = String::new();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("destroy");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    if reader.is_finished() {
        seen = reader.join().unwrap().join("\n");
    }
    assert_eq!(
        seen, "create live\nattach live\nstart live\ndie live\ndestroy live",
        "docker events saw: {seen}"
    );
}
