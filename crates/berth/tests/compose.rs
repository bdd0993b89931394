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
