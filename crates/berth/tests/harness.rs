//! The harness's own pieces that need no daemon: the test image, HTTP chunk decoding,
//! mountinfo parsing and unmounting.

mod common;
use common::*;
use std::process::Command;

#[test]
fn busybox_image_is_a_docker_archive_and_an_oci_layout() {
    let tar = busybox_tar();
    let list = Command::new("tar")
        .arg("tf")
        .arg(&tar)
        .output()
        .expect("tar tf");
    let list = stdout(&list);
    for want in ["manifest.json", "repositories", "index.json", "oci-layout"] {
        assert!(
            list.lines().any(|l| l == want),
            "{want} missing from {list}"
        );
    }
    let manifest = Command::new("tar")
        .arg("xOf")
        .arg(&tar)
        .arg("manifest.json")
        .output()
        .expect("tar xOf");
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest.stdout).expect("manifest.json is JSON");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest"])
    );
    let config_path = manifest[0]["Config"].as_str().expect("Config");
    let config = Command::new("tar")
        .arg("xOf")
        .arg(&tar)
        .arg(config_path)
        .output()
        .expect("config");
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).expect("config is JSON");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    // The layer is named by its digest, which is the diff id (uncompressed).
    let layer = manifest[0]["Layers"][0].as_str().expect("Layers[0]");
    assert_eq!(
        format!("sha256:{}", layer.trim_start_matches("blobs/sha256/")),
        config["rootfs"]["diff_ids"][0].as_str().unwrap_or_default()
    );
}

#[test]
fn busybox_image_is_reproducible() {
    let dir = tempfile::Builder::new()
        .prefix("bt-img-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let out = dir.path().join("again.tar");
    let script = repo_root().join("scripts/make-busybox-image.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("run the script");
    assert_success("make-busybox-image.sh", &o);
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(busybox_tar()).expect("read"),
        "same bytes twice"
    );
    let o = Command::new("bash")
        .arg(&script)
        .arg(dir.path().join("t.tar"))
        .arg("localhost:5000/me/bb:1")
        .output()
        .expect("run");
    assert_success("make-busybox-image.sh with a tag", &o);
    let m = Command::new("tar")
        .arg("xOf")
        .arg(dir.path().join("t.tar"))
        .arg("manifest.json")
        .output()
        .expect("tar");
    assert!(
        stdout(&m).contains(r#""RepoTags":["localhost:5000/me/bb:1"]"#),
        "{}",
        stdout(&m)
    );
}

#[test]
fn chunked_bodies_decode() {
    assert_eq!(
        dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        b"hello world"
    );
    assert_eq!(dechunk(b"3;ext=1\r\nabc\r\n0\r\n\r\n"), b"abc");
    assert_eq!(dechunk(b"zz\r\n"), b"");
}

#[test]
fn mountinfo_escapes_are_undone() {
    assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
    assert_eq!(unescape_mountinfo(r"/tmp/tab\011x\134y"), "/tmp/tab\tx\\y");
    assert_eq!(unescape_mountinfo("/plain"), "/plain");
}

#[test]
fn unmount_under_removes_nested_mounts() {
    let dir = tempfile::Builder::new()
        .prefix("bt-mnt-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let inner = dir.path().join("a b/inner");
    std::fs::create_dir_all(&inner).expect("mkdir");
    let mount = |target: &std::path::Path| {
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(target)
            .output()
            .expect("mount");
        assert_success("mount tmpfs", &o);
    };
    mount(&dir.path().join("a b"));
    std::fs::create_dir_all(&inner).expect("mkdir inside the tmpfs");
    mount(&inner);
    assert_eq!(mounts_under(dir.path()).len(), 2);
    unmount_under(dir.path());
    assert!(mounts_under(dir.path()).is_empty());
}
