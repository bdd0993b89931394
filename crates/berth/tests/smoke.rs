//! The first thing that must work: a daemon, the busybox image, `run --rm … echo hello`
//! through berth, the real docker CLI and the Python SDK.

mod common;
use common::*;

#[test]
fn ping_answers_ok() {
    let d = TestDaemon::start_empty();
    let r = d.api("GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    let v = d.api("GET", "/version", None).json();
    assert!(v["ApiVersion"].is_string(), "version: {v}");
}

#[test]
fn berth_run_rm_echo_hello() {
    let d = TestDaemon::start();
    let out = d.berth(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_success("berth run --rm busybox echo hello", &out);
    assert_eq!(stdout(&out), "hello\n");
    // --rm: nothing left behind.
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn docker_run_rm_echo_hello() {
    let d = TestDaemon::start();
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_success("docker run --rm busybox echo hello", &out);
    assert_eq!(stdout(&out), "hello\n");
    assert_eq!(d.docker_ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn berth_load_then_images_lists_busybox() {
    let d = TestDaemon::start_empty();
    let tar = busybox_tar();
    let out = d.berth(&["load", "-i", tar.to_str().unwrap_or_default()]);
    assert_success("berth load", &out);
    assert!(
        stdout(&out).contains("busybox:latest"),
        "load output: {}",
        stdout(&out)
    );
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images, "busybox:latest");
    // The image id is the sha256 of the config the script wrote: stable across loads.
    let id = d.ok(&["images", "-q", "--no-trunc"]);
    let docker_id = d.docker_ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(id, docker_id);
    assert!(id.starts_with("sha256:") && id.len() == 71, "id: {id}");
}

#[test]
fn docker_load_from_stdin() {
    let d = TestDaemon::start_empty();
    let bytes = std::fs::read(busybox_tar()).expect("read busybox.tar");
    let out = d.docker_stdin(&["load"], &bytes);
    assert_success("docker load", &out);
    assert!(
        stdout(&out).contains("Loaded image: busybox:latest"),
        "{}",
        stdout(&out)
    );
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_success("docker run after docker load", &out);
    assert_eq!(stdout(&out), "hello\n");
}

#[test]
fn python_sdk_smoke() {
    let d = TestDaemon::start();
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
assert c.ping()
tags = [t for i in c.images.list() for t in i.tags]
assert 'busybox:latest' in tags, tags
out = c.containers.run('busybox', ['echo', 'hello'], remove=True)
assert out == b'hello\n', out
ct = c.containers.run('busybox', ['sleep', '100'], detach=True, name='pysdk')
ct.reload()
assert ct.status == 'running', ct.status
assert c.containers.get('pysdk').id == ct.id
ct.kill()
ct.wait()
ct.remove()
assert not c.containers.list(all=True)
print('python-ok')
"#;
    let out = d.python(script);
    assert_success("python docker SDK", &out);
    assert!(stdout(&out).contains("python-ok"));
}
