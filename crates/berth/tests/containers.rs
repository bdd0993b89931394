//! Issue #2's container workflow, through berth and through the docker CLI.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn run_detached_with_env_workdir_user_then_stop_restart_kill_rm() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let id = c(&[
            "run", "-d", "--name", "web", "-e", "A=1", "-w", "/tmp", "-u", "1000", "busybox",
            "sleep", "1000",
        ]);
        assert!(
            is_full_id(&id),
            "{client:?}: run -d prints the full id, got {id:?}"
        );

        let got = c(&["exec", "web", "sh", "-c", "echo $A $(pwd) $(id -u)"]);
        assert_eq!(got, "1 /tmp 1000", "{client:?}: env, workdir, user");

        let v = d.inspect("web");
        assert_eq!(v["State"]["Running"], true);
        assert_eq!(v["Id"], id.as_str());
        assert_eq!(v["Name"], "/web");
        assert!(v["Config"]["Env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x == "A=1")));

        assert_eq!(c(&["ps", "--format", "{{.Names}}"]), "web");
        assert_eq!(c(&["ps", "-q"]), &id[..12]);
        assert!(
            c(&["top", "web"]).contains("sleep 1000"),
            "{client:?}: top shows the process"
        );

        // sleep is PID 1 and ignores SIGTERM: stop waits -t, then SIGKILLs.
        let t0 = Instant::now();
        assert_eq!(c(&["stop", "-t", "1", "web"]), "web");
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{client:?}: stop waited for -t"
        );
        let v = d.inspect("web");
        assert_eq!(v["State"]["Status"], "exited");
        assert_eq!(v["State"]["ExitCode"], 137);
        assert_eq!(c(&["ps", "-q"]), "");
        assert_eq!(c(&["ps", "-a", "-q"]), &id[..12]);
        assert_eq!(
            c(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"]),
            "web"
        );

        assert_eq!(c(&["restart", "web"]), "web");
        assert_eq!(d.inspect("web")["State"]["Running"], true);
        assert_eq!(
            c(&["ps", "--filter", "status=running", "--format", "{{.Names}}"]),
            "web"
        );

        assert_eq!(c(&["kill", "-s", "KILL", "web"]), "web");
        d.wait_until("web to exit after kill", Duration::from_secs(10), || {
            d.inspect("web")["State"]["Running"] == false
        });
        assert_eq!(d.inspect("web")["State"]["ExitCode"], 137);

        c(&["start", "web"]);
        assert_eq!(c(&["rm", "-f", "web"]), "web");
        assert_eq!(c(&["ps", "-a", "-q"]), "");
        assert_eq!(d.api("GET", "/containers/web/json", None).status, 404);
    }
}

#[test]
fn stop_uses_the_stop_signal_when_the_process_handles_it() {
    let d = TestDaemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "trap",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(300)); // let sh install the trap
    let t0 = Instant::now();
    d.ok(&["stop", "-t", "10", "trap"]);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "SIGTERM was handled, no need to wait -t"
    );
    assert_eq!(d.inspect("trap")["State"]["ExitCode"], 3);
}

#[test]
fn run_exit_codes_and_rm_on_failure() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.cli(
            client,
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 7",
            ],
        );
        assert_exit("run --rm … exit 7", &out, 7);
        assert_eq!(stdout(&out), "out\n");
        assert!(
            stderr(&out).contains("err"),
            "{client:?}: stderr is passed through"
        );
        d.wait_until(
            "the --rm container to be removed",
            Duration::from_secs(10),
            || d.cli_ok(client, &["ps", "-a", "-q"]).is_empty(),
        );
    }
}

#[test]
fn logs_tail_and_follow() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &[
                "run",
                "--name",
                "seq",
                "busybox",
                "sh",
                "-c",
                "for i in $(seq 1 20); do echo line$i; done",
            ],
        );
        let tail = d.cli_ok(client, &["logs", "--tail", "10", "seq"]);
        let want: Vec<String> = (11..=20).map(|i| format!("line{i}")).collect();
        assert_eq!(
            tail.lines().collect::<Vec<_>>(),
            want,
            "{client:?}: logs --tail 10"
        );
        // -f on an exited container prints everything and returns.
        assert_eq!(d.cli_ok(client, &["logs", "-f", "seq"]).lines().count(), 20);

        d.cli_ok(
            client,
            &[
                "run",
                "-d",
                "--name",
                "slow",
                "busybox",
                "sh",
                "-c",
                "echo a; sleep 1; echo b",
            ],
        );
        let out = d.cli(client, &["logs", "-f", "slow"]);
        assert_success("logs -f on a running container", &out);
        assert_eq!(
            stdout(&out),
            "a\nb\n",
            "{client:?}: logs -f follows until the container exits"
        );
    }
}

#[test]
fn create_start_attach_wait_rename() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let id = d.cli_ok(
            client,
            &[
                "create",
                "--name",
                "c1",
                "busybox",
                "sh",
                "-c",
                "echo out; exit 3",
            ],
        );
        assert!(is_full_id(&id));
        assert_eq!(d.inspect("c1")["State"]["Status"], "created");
        assert_eq!(
            d.cli_ok(
                client,
                &[
                    "ps",
                    "-a",
                    "--filter",
                    "status=created",
                    "--format",
                    "{{.Names}}"
                ]
            ),
            "c1"
        );

        let out = d.cli(client, &["start", "-a", "c1"]);
        assert_exit("start -a", &out, 3);
        assert_eq!(stdout(&out), "out\n");
        assert_eq!(d.cli_ok(client, &["wait", "c1"]), "3");

        d.cli_ok(client, &["rename", "c1", "c2"]);
        assert_eq!(d.inspect("c2")["Name"], "/c2");
        assert_eq!(d.api("GET", "/containers/c1/json", None).status, 404);
        assert_eq!(d.inspect(&id)["Name"], "/c2");
    }
}

#[test]
fn pause_and_unpause() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &["run", "-d", "--name", "pz", "busybox", "sleep", "1000"],
        );
        d.cli_ok(client, &["pause", "pz"]);
        let v = d.inspect("pz");
        assert_eq!(v["State"]["Status"], "paused");
        assert_eq!(v["State"]["Paused"], true);
        d.cli_ok(client, &["unpause", "pz"]);
        let v = d.inspect("pz");
        assert_eq!(v["State"]["Status"], "running");
        assert_eq!(v["State"]["Paused"], false);
        d.cli_ok(client, &["rm", "-f", "pz"]);
    }
}

#[test]
fn cp_diff_export() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let id = d.cli_ok(
            client,
            &["run", "-d", "--name", "web", "busybox", "sleep", "1000"],
        );
        d.cli_ok(client, &["exec", "web", "touch", "/tmp/new"]);

        let dest = d.dir.join(format!("out-{}", client.name()));
        std::fs::create_dir_all(&dest).expect("mkdir");
        d.cli_ok(
            client,
            &["cp", "web:/etc/hostname", dest.to_str().unwrap_or_default()],
        );
        let hostname =
            std::fs::read_to_string(dest.join("hostname")).expect("cp copied /etc/hostname");
        assert_eq!(
            hostname.trim(),
            &id[..12],
            "{client:?}: the hostname is the short id"
        );

        let file = d.dir.join("file");
        std::fs::write(&file, "from the host\n").expect("write file");
        d.cli_ok(
            client,
            &["cp", file.to_str().unwrap_or_default(), "web:/tmp/"],
        );
        assert_eq!(
            d.cli_ok(client, &["exec", "web", "cat", "/tmp/file"]),
            "from the host"
        );

        let diff = d.cli_ok(client, &["diff", "web"]);
        let lines: Vec<&str> = diff.lines().collect();
        assert!(lines.contains(&"C /tmp"), "{client:?}: diff: {diff}");
        assert!(lines.contains(&"A /tmp/new"), "{client:?}: diff: {diff}");
        assert!(lines.contains(&"A /tmp/file"), "{client:?}: diff: {diff}");

        let fs_tar = d.dir.join(format!("fs-{}.tar", client.name()));
        d.cli_ok(
            client,
            &["export", "web", "-o", fs_tar.to_str().unwrap_or_default()],
        );
        let list = std::process::Command::new("tar")
            .arg("tf")
            .arg(&fs_tar)
            .output()
            .expect("tar tf");
        let list = stdout(&list);
        for want in ["bin/busybox", "tmp/new", "tmp/file", "etc/passwd"] {
            assert!(
                list.lines().any(|l| l.trim_start_matches("./") == want),
                "{client:?}: export lacks {want}"
            );
        }
        d.cli_ok(client, &["rm", "-f", "web"]);
    }
}

#[test]
fn commit_history_save_load() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &[
                "run",
                "--name",
                "box",
                "busybox",
                "sh",
                "-c",
                "echo hi > /greeting",
            ],
        );
        let img = d.cli_ok(
            client,
            &[
                "commit",
                "-a",
                "me",
                "-m",
                "msg",
                "-c",
                r#"CMD ["cat","/greeting"]"#,
                "box",
                "box:first",
            ],
        );
        assert!(
            img.starts_with("sha256:"),
            "{client:?}: commit prints the image id: {img}"
        );
        let v = d.api("GET", "/images/box:first/json", None).json();
        assert_eq!(v["Author"], "me");
        assert_eq!(v["Comment"], "msg");
        assert_eq!(v["Config"]["Cmd"], serde_json::json!(["cat", "/greeting"]));
        assert_eq!(v["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
        assert_eq!(d.cli_ok(client, &["run", "--rm", "box:first"]), "hi");

        let history = d.cli_ok(
            client,
            &[
                "history",
                "--no-trunc",
                "--format",
                "{{.Comment}}",
                "box:first",
            ],
        );
        assert!(
            history.lines().next() == Some("msg"),
            "{client:?}: history: {history}"
        );
        assert_eq!(
            d.cli_ok(client, &["history", "-q", "box:first"])
                .lines()
                .next(),
            Some(&img[7..19])
        );

        let tar = d.dir.join(format!("box-{}.tar", client.name()));
        d.cli_ok(
            client,
            &["save", "-o", tar.to_str().unwrap_or_default(), "box:first"],
        );
        d.cli_ok(client, &["rm", "box"]);
        assert!(d
            .cli_ok(client, &["rmi", "box:first"])
            .contains("Untagged: box:first"));
        assert_eq!(d.api("GET", "/images/box:first/json", None).status, 404);
        let loaded = d.cli_ok(client, &["load", "-i", tar.to_str().unwrap_or_default()]);
        assert!(
            loaded.contains("Loaded image: box:first"),
            "{client:?}: load: {loaded}"
        );
        assert_eq!(
            d.api("GET", "/images/box:first/json", None).json()["Id"],
            img.as_str()
        );
        assert_eq!(d.cli_ok(client, &["run", "--rm", "box:first"]), "hi");
    }
}

#[test]
fn images_tag_rmi_inspect_prune() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let id = d.cli_ok(client, &["images", "-q", "--no-trunc"]);
        assert!(id.starts_with("sha256:"));
        assert_eq!(d.cli_ok(client, &["images", "-q"]), &id[7..19]);
        let table = d.cli_ok(client, &["images"]);
        let header = table.lines().next().unwrap_or("");
        for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
            assert!(header.contains(col), "{client:?}: images header {header:?}");
        }

        d.cli_ok(client, &["tag", "busybox", "mybox:1"]);
        let names = d.cli_ok(client, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        let mut names: Vec<&str> = names.lines().collect();
        names.sort_unstable();
        assert_eq!(names, ["busybox:latest", "mybox:1"]);
        let inspected = d.cli_ok(client, &["image", "inspect", "-f", "{{.Id}}", "mybox:1"]);
        assert_eq!(inspected, id);

        assert!(d
            .cli_ok(client, &["rmi", "mybox:1"])
            .contains("Untagged: mybox:1"));
        assert_eq!(
            d.cli_ok(client, &["images", "-q"]).lines().count(),
            1,
            "the image itself stays"
        );
        d.cli_ok(client, &["image", "prune", "-f"]);
        assert_eq!(
            d.cli_ok(client, &["images", "-q"]).lines().count(),
            1,
            "a tagged image is not pruned"
        );

        d.cli_ok(client, &["create", "--name", "box", "busybox"]);
        assert_eq!(
            d.cli_ok(client, &["inspect", "-f", "{{.Name}}", "box"]),
            "/box"
        );
        assert_eq!(
            d.cli_ok(client, &["inspect", "-f", "{{.Id}}", "busybox"]),
            id
        );
    }
}

#[test]
fn import_an_exported_rootfs() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(client, &["create", "--name", "src", "busybox"]);
        let fs_tar = d.dir.join("rootfs.tar");
        d.cli_ok(
            client,
            &["export", "-o", fs_tar.to_str().unwrap_or_default(), "src"],
        );
        let id = d.cli_ok(
            client,
            &["import", fs_tar.to_str().unwrap_or_default(), "imp:1"],
        );
        assert!(
            id.starts_with("sha256:"),
            "{client:?}: import prints the id: {id}"
        );
        assert_eq!(
            d.cli_ok(
                client,
                &["run", "--rm", "imp:1", "/bin/busybox", "echo", "ok"]
            ),
            "ok"
        );
        // Import from stdin too.
        let bytes = std::fs::read(&fs_tar).expect("read rootfs.tar");
        let out = match client {
            Client::Berth => d.berth_stdin(&["import", "-", "imp:2"], &bytes),
            Client::Docker => d.docker_stdin(&["import", "-", "imp:2"], &bytes),
        };
        assert_success("import -", &out);
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", "imp:2", "/bin/echo", "ok2"]),
            "ok2"
        );
    }
}

#[test]
fn rm_every_container() {
    let d = TestDaemon::start();
    for name in ["ca", "cb", "cc"] {
        d.ok(&["create", "--name", name, "busybox", "true"]);
    }
    d.ok(&["run", "--name", "cd", "busybox", "true"]);
    let ids = d.ok(&["ps", "-a", "-q"]);
    assert_eq!(ids.lines().count(), 4);
    let mut args = vec!["rm"];
    args.extend(ids.lines());
    d.ok(&args);
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn exec_sees_the_container_and_reports_exit_codes() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        d.cli_ok(
            client,
            &["run", "-d", "--name", "web", "busybox", "sleep", "1000"],
        );
        let out = d.cli(client, &["exec", "web", "sh", "-c", "exit 4"]);
        assert_exit("exec … exit 4", &out, 4);
        assert_eq!(
            d.cli_ok(
                client,
                &[
                    "exec",
                    "-e",
                    "X=y",
                    "-w",
                    "/etc",
                    "web",
                    "sh",
                    "-c",
                    "echo $X $PWD"
                ]
            ),
            "y /etc"
        );
        let out = d.cli_stdin(client, &["exec", "-i", "web", "cat"], b"through stdin\n");
        assert_success("exec -i cat", &out);
        assert_eq!(stdout(&out), "through stdin\n");
    }
}
