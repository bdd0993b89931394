//! Shared helpers of the runtime's integration tests: a busybox bundle in a temp dir.

#![allow(dead_code)]

use berth_runtime::spec::{self, SpecOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ps", "hostname", "id", "ls", "sleep", "mount", "true", "false", "grep",
    "sort", "awk", "sed", "head",
];

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A bundle dir (config.json + rootfs) plus a runtime root; removed on drop.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl Bundle {
    /// A busybox rootfs and a Docker-default spec running `args`, cgroup "/berth-test-<name>".
    pub fn new(name: &str, args: &[&str], tweak: impl FnOnce(&mut SpecOptions)) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        let mut opts = SpecOptions {
            rootfs: rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            cwd: "/".into(),
            hostname: "berthbox".into(),
            cgroup_path: format!("/berth-test-{name}-{}", std::process::id()),
            seccomp: true,
            ..Default::default()
        };
        tweak(&mut opts);
        let spec = spec::build(&opts).unwrap();
        spec::write_bundle(dir.path(), &spec).unwrap();
        Bundle {
            dir,
            name: name.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `berth-oci run` of this bundle: (exit code, stdout, stderr).
    pub fn run_berth(&self) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_berth-oci"))
            .args(["--root"])
            .arg(self.root())
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(format!("bt-{}", self.name))
            .output()
            .unwrap();
        split(out)
    }

    /// `runc run` of this bundle with its own --root.
    pub fn run_runc(&self) -> (i32, String, String) {
        let out = Command::new("/usr/sbin/runc")
            .arg("--root")
            .arg(self.dir.path().join("runc-state"))
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(format!("rc-{}-{}", self.name, std::process::id()))
            .output()
            .unwrap();
        split(out)
    }
}

fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// No cgroup directory of this test's may remain.
pub fn assert_no_cgroups_left(name: &str) {
    let leaf = format!("berth-test-{name}-{}", std::process::id());
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = entry.path().join(&leaf);
        assert!(!p.exists(), "cgroup left behind: {}", p.display());
    }
}
