//! Bad input: the daemon answers with Docker's status codes and messages, the CLIs with
//! Docker's exit codes, and nothing is written where it must not be.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

#[test]
fn unknown_image_is_404_no_such_image() {
    let d = TestDaemon::start();
    let r = d.api_json(
        "POST",
        "/containers/create",
        &json!({"Image": "nosuchimage:1", "Cmd": ["true"]}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("No such image: nosuchimage:1"),
        "message: {msg}"
    );
    assert_eq!(d.api("GET", "/images/nosuchimage/json", None).status, 404);
    for client in CLIENTS {
        let out = d.cli(client, &["image", "inspect", "nosuchimage"]);
        assert_exit("image inspect nosuchimage", &out, 1);
        assert!(
            stderr(&out).contains("No such image"),
            "{client:?}: {}",
            stderr(&out)
        );
        // run: create fails, the pull (there is no registry) fails: 125.
        let out = d.cli(client, &["run", "--rm", "nosuchimage:1", "true"]);
        assert_exit("run nosuchimage", &out, 125);
    }
}

#[test]
fn name_in_use_is_409_naming_the_holder() {
    let d = TestDaemon::start();
    let holder = d.ok(&["create", "--name", "dup", "busybox"]);
    let r = d.api_json(
        "POST",
        "/containers/create?name=dup",
        &json!({"Image": "busybox"}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("is already in use by container"), "{msg}");
    assert!(
        msg.contains(&holder),
        "the message names the holder {holder}: {msg}"
    );
    for client in CLIENTS {
        let out = d.cli(client, &["run", "--name", "dup", "busybox", "true"]);
        assert_exit("run --name dup", &out, 125);
        assert!(
            stderr(&out).contains(&holder),
            "{client:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_command_is_127_and_not_executable_is_126() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.cli(client, &["run", "--rm", "busybox", "nosuchcommand"]);
        assert_exit("run busybox nosuchcommand", &out, 127);
        let out = d.cli(client, &["run", "--rm", "busybox", "/etc/passwd"]);
        assert_exit("run busybox /etc/passwd", &out, 126);
        d.wait_until(
            "--rm to remove the failed containers",
            std::time::Duration::from_secs(10),
            || d.cli_ok(client, &["ps", "-a", "-q"]).is_empty(),
        );
    }
}

#[test]
fn bad_run_flags_are_125() {
    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["run", "--no-such-flag", "busybox", "true"]);
        assert_exit("run --no-such-flag", &out, 125);
        let out = d.cli(client, &["run", "--memory", "lots", "busybox", "true"]);
        assert_exit("run --memory lots", &out, 125);
    }
}

#[test]
fn rm_running_without_force_is_409() {
    let d = TestDaemon::start();
    let id = d.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    let r = d.api("DELETE", "/containers/busy", None);
    assert_eq!(r.status, 409, "{}", r.text());
    // Docker's wording changed across versions ("You cannot remove a running container …",
    // "cannot remove container …: container is running …"): both say remove and running.
    let msg = r.text().to_lowercase();
    assert!(msg.contains("remove") && msg.contains("running"), "{msg}");
    for client in CLIENTS {
        let out = d.cli(client, &["rm", "busy"]);
        assert_exit("rm busy", &out, 1);
        assert!(
            stderr(&out).to_lowercase().contains("running"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(d.inspect(&id)["State"]["Running"], true);
    assert_eq!(
        d.api("DELETE", "/containers/busy?force=1", None).status,
        204
    );
}

#[test]
fn unknown_container_is_404() {
    let d = TestDaemon::start_empty();
    for path in ["/containers/nope/json", "/containers/nope/logs?stdout=1"] {
        let r = d.api("GET", path, None);
        assert_eq!(r.status, 404);
        assert!(r.text().contains("No such container: nope"), "{}", r.text());
    }
    for client in CLIENTS {
        let out = d.cli(client, &["stop", "nope"]);
        assert_exit("stop nope", &out, 1);
        assert!(
            stderr(&out).contains("No such container"),
            "{}",
            stderr(&out)
        );
    }
}

/// The store is unchanged after a failed load: the same image list, and it still works.
fn assert_still_healthy(d: &TestDaemon) {
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "fine"]), "fine");
}

#[test]
fn malformed_and_truncated_archives_are_refused() {
    let d = TestDaemon::start();
    let good = std::fs::read(busybox_tar()).expect("read busybox.tar");
    let garbage = b"this is not a tar archive at all\n".repeat(100);
    let truncated = &good[..good.len() / 2];
    for (what, bytes) in [("garbage", &garbage[..]), ("truncated", truncated)] {
        let r = d.api(
            "POST",
            "/images/load?quiet=1",
            Some(("application/x-tar", bytes)),
        );
        let failed = r.status >= 400 || r.text().contains("error");
        assert!(
            failed,
            "load of a {what} archive must fail: {} {}",
            r.status,
            r.text()
        );
        let f = d.dir.join(format!("{what}.tar"));
        std::fs::write(&f, bytes).expect("write");
        let out = d.berth(&["load", "-i", f.to_str().unwrap_or_default()]);
        assert!(
            !out.status.success(),
            "berth load of a {what} archive must fail"
        );
        let out = d.docker(&["load", "-i", f.to_str().unwrap_or_default()]);
        assert!(
            !out.status.success(),
            "docker load of a {what} archive must fail"
        );
        let out = d.berth(&[
            "import",
            f.to_str().unwrap_or_default(),
            &format!("{what}:1"),
        ]);
        assert!(
            !out.status.success(),
            "import of a {what} archive must fail"
        );
        assert_eq!(
            d.api("GET", &format!("/images/{what}:1/json"), None).status,
            404
        );
        assert_still_healthy(&d);
    }
}

/// A layer with `..`, absolute paths, and writes through symlinks and hard links that point
/// outside. Built with python3's tarfile; `victim` is a host dir that must stay empty.
fn write_evil_layer(out: &Path, victim: &Path, escape_name: &str) {
    let script = r#"
import io, sys, tarfile
out, victim, name = sys.argv[1], sys.argv[2], sys.argv[3]
t = tarfile.open(out, 'w', format=tarfile.GNU_FORMAT)
def add(info, data=b''):
    info.mtime = 0
    info.size = len(data) if info.type == tarfile.REGTYPE else 0
    t.addfile(info, io.BytesIO(data) if data else None)
d = tarfile.TarInfo('bin'); d.type = tarfile.DIRTYPE; d.mode = 0o755; add(d)
f = tarfile.TarInfo('bin/busybox'); f.mode = 0o755; add(f, open('/bin/busybox', 'rb').read())
add(tarfile.TarInfo('../' * 12 + victim.lstrip('/') + '/dotdot-' + name), b'escaped\n')
add(tarfile.TarInfo(victim + '/absolute-' + name), b'escaped\n')
l = tarfile.TarInfo('abs-link'); l.type = tarfile.SYMTYPE; l.linkname = victim; add(l)
add(tarfile.TarInfo('abs-link/through-abs-link-' + name), b'escaped\n')
l = tarfile.TarInfo('rel-link'); l.type = tarfile.SYMTYPE; l.linkname = '../' * 12 + victim.lstrip('/'); add(l)
add(tarfile.TarInfo('rel-link/through-rel-link-' + name), b'escaped\n')
h = tarfile.TarInfo('hard-link'); h.type = tarfile.LNKTYPE; h.linkname = '../' * 12 + victim.lstrip('/') + '/canary'; add(h)
add(tarfile.TarInfo('hard-link'), b'overwritten through a hard link\n')
t.close()
"#;
    let out_ = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .arg(victim)
        .arg(escape_name)
        .output()
        .expect("python3");
    assert_success("build the evil tar", &out_);
}

/// Wrap one layer tar into a docker-archive image (manifest.json + config).
fn write_image_archive(out: &Path, layer: &Path, tag: &str) {
    let script = r#"
import hashlib, io, json, sys, tarfile
out, layer, tag = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(layer, 'rb').read()
diff = hashlib.sha256(data).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/busybox", "true"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
man = json.dumps([{"Config": cid + ".json", "RepoTags": [tag], "Layers": [diff + "/layer.tar"]}]).encode()
t = tarfile.open(out, 'w')
for name, b in [(cid + ".json", cfg), (diff + "/layer.tar", data), ("manifest.json", man)]:
    i = tarfile.TarInfo(name); i.size = len(b); t.addfile(i, io.BytesIO(b))
t.close()
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .arg(layer)
        .arg(tag)
        .output()
        .expect("python3");
    assert_success("build the evil image archive", &o);
}

fn assert_victim_untouched(victim: &Path, d: &TestDaemon) {
    let entries: Vec<String> = std::fs::read_dir(victim)
        .expect("victim dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["canary"],
        "files were written outside the layer: {entries:?}\n{}",
        d.log()
    );
    let canary = std::fs::read_to_string(victim.join("canary")).expect("canary");
    assert_eq!(
        canary, "original\n",
        "a hard link wrote through to the host"
    );
}

#[test]
fn evil_layer_paths_never_escape() {
    let d = TestDaemon::start();
    // The victim lives outside the daemon's dir: escaping the data-root must not reach it.
    let victim_holder = tempfile::Builder::new()
        .prefix("bt-victim-")
        .tempdir_in("/tmp")
        .expect("victim dir");
    let victim = victim_holder.path();
    std::fs::write(victim.join("canary"), "original\n").expect("canary");
    let layer = d.dir.join("evil-layer.tar");
    write_evil_layer(&layer, victim, "x");

    // Through import (the tar is the layer) …
    let out = d.berth(&["import", layer.to_str().unwrap_or_default(), "evil:import"]);
    assert_victim_untouched(victim, &d);
    if out.status.success() {
        // Accepted (with the bad entries dropped): the image must not see the host either.
        let seen = d.berth(&[
            "run",
            "--rm",
            "evil:import",
            "/bin/busybox",
            "cat",
            "/hard-link",
        ]);
        assert!(
            !stdout(&seen).contains("original"),
            "the hard link reached the host canary"
        );
    }
    // … and through load (the tar is a layer inside an image archive).
    let archive = d.dir.join("evil-image.tar");
    write_image_archive(&archive, &layer, "evil:load");
    let _ = d.berth(&["load", "-i", archive.to_str().unwrap_or_default()]);
    assert_victim_untouched(victim, &d);
    let _ = d.docker(&["run", "--rm", "evil:load"]);
    assert_victim_untouched(victim, &d);
    // Nothing landed beside the daemon's dir either.
    for name in [
        "dotdot-x",
        "absolute-x",
        "through-abs-link-x",
        "through-rel-link-x",
    ] {
        assert!(!Path::new("/").join(name).exists(), "/{name} was written");
        assert!(
            !Path::new("/tmp").join(name).exists(),
            "/tmp/{name} was written"
        );
    }
    assert_still_healthy(&d);
}
