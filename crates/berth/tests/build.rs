//! Issue #6's builder: `build --check`, and `build` through berth and the docker CLI.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::Path;

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (p, c) in files {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, c).expect("write");
    }
    dir
}

fn build(d: &TestDaemon, client: Client, args: &[&str]) -> std::process::Output {
    let mut cmd = d.cli_cmd(client, args);
    // The docker CLI uses the classic builder (berth's protocol) without buildx.
    cmd.env("DOCKER_BUILDKIT", "0");
    run_bounded(cmd, None, std::time::Duration::from_secs(120))
}

fn p(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 path")
}

#[test]
fn check_reports_warnings_and_parse_errors() {
    let d = TestDaemon::start_empty();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCMD echo hi\n"),
        ("bad/Dockerfile", "FROM busybox\nRUN ok\nFOO bar\n"),
    ]);
    let o = d.berth(&["build", "--check", p(ctx.path())]);
    assert_exit("check with warnings", &o, 0);
    let out = stdout(&o);
    assert!(out.contains("1 warning has been found"), "{out}");
    assert!(
        out.contains("Dockerfile:2: WARN: JSONArgsRecommended"),
        "{out}"
    );

    let bad = ctx.path().join("bad/Dockerfile");
    let o = d.berth(&["build", "--check", "-f", p(&bad), p(ctx.path())]);
    assert_exit("check with a parse error", &o, 1);
    assert!(
        stderr(&o).contains("bad/Dockerfile:3: unknown instruction: FOO"),
        "{}",
        stderr(&o)
    );

    let o = d.berth_stdin(
        &["build", "--check", "-f", "-", p(ctx.path())],
        b"FROM a\nRUN <<EOF\nx\n",
    );
    assert_exit("unterminated heredoc", &o, 1);
    assert!(
        stderr(&o).contains("Dockerfile:2: unterminated heredoc EOF"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn build_run_copy_env_cmd_then_run_the_image() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let ctx = context(&[
            (
                "Dockerfile",
                "FROM busybox\nARG GREETING=hello\nRUN echo \"$GREETING built\" > /built\nCOPY f.txt /dst/\nENV A=1\nWORKDIR /dst\nLABEL k=v\nCMD [\"cat\", \"f.txt\"]\n",
            ),
            ("f.txt", "from the context"),
            ("ignored.txt", "no"),
            (".dockerignore", "ignored.txt\n"),
        ]);
        let o = build(
            &d,
            client,
            &[
                "build",
                "-t",
                "app:1",
                "--build-arg",
                "GREETING=hi",
                p(ctx.path()),
            ],
        );
        assert_success(&format!("{client:?} build"), &o);
        let out = stdout(&o);
        assert!(out.contains("Step 1/8 : FROM busybox"), "{client:?}: {out}");
        assert!(out.contains("Successfully built "), "{client:?}: {out}");
        assert!(
            out.contains("Successfully tagged app:1"),
            "{client:?}: {out}"
        );

        assert_eq!(
            d.cli_ok(client, &["run", "--rm", "app:1"]),
            "from the context"
        );
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", "app:1", "cat", "/built"]),
            "hi built"
        );
        assert_eq!(
            d.cli_ok(
                client,
                &["run", "--rm", "app:1", "sh", "-c", "echo $A $(pwd)"]
            ),
            "1 /dst"
        );
        let v = d.api("GET", "/images/app:1/json", None).json();
        assert_eq!(v["Config"]["Labels"]["k"], "v", "{client:?}: {v}");

        // A failing RUN stops the build with its code; no tag is made.
        let ctx = context(&[(
            "Dockerfile",
            "FROM busybox\nRUN echo out; exit 3\nRUN echo never\n",
        )]);
        let o = build(&d, client, &["build", "-t", "broken", p(ctx.path())]);
        assert_ne!(code(&o), 0, "{client:?}: failing build");
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("returned a non-zero code: 3"),
            "{client:?}: {all}"
        );
        assert!(!all.contains("never"), "{client:?}: {all}");
        assert_ne!(code(&d.cli(client, &["image", "inspect", "broken"])), 0);

        // A COPY of a missing file is an error that names it.
        let ctx = context(&[("Dockerfile", "FROM busybox\nCOPY ignored.txt /x\n")]);
        let o = build(&d, client, &["build", p(ctx.path())]);
        assert_ne!(code(&o), 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("file not found in build context"),
            "{client:?}: {all}"
        );
    }
}

#[test]
fn quiet_iidfile_and_stdin_dockerfile() {
    let d = TestDaemon::start();
    let ctx = context(&[("f", "x")]);
    let iid = ctx.path().join("iid");
    let o = d.berth_stdin(
        &[
            "build",
            "-q",
            "--iidfile",
            p(&iid),
            "-f",
            "-",
            p(ctx.path()),
        ],
        b"FROM busybox\nCOPY f /f\n",
    );
    assert_success("build -q", &o);
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(std::fs::read_to_string(&iid).expect("iidfile"), id);
}

/// `docker run --rm IMAGE sh -c SCRIPT`'s trimmed output.
fn sh(d: &TestDaemon, client: Client, image: &str, script: &str) -> String {
    d.cli_ok(client, &["run", "--rm", image, "sh", "-c", script])
}

#[test]
fn multi_stage_copy_from_stage_index_and_image() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let ctx = context(&[(
            "Dockerfile",
            "FROM busybox AS builder\n\
             RUN mkdir -p /out/sub && echo built > /out/artifact && echo deep > /out/sub/x\n\
             FROM scratch AS other\n\
             COPY --from=builder /out/artifact /a\n\
             FROM busybox\n\
             COPY --from=builder /out /final/\n\
             COPY --from=busybox /etc/group /from-image\n\
             COPY --from=1 /a /from-index\n\
             RUN cat /final/artifact /final/sub/x /from-index\n",
        )]);
        let o = build(&d, client, &["build", "-t", "multi", p(ctx.path())]);
        assert_success(&format!("{client:?} multi-stage build"), &o);
        let out = stdout(&o);
        assert!(out.contains("built\ndeep\nbuilt\n"), "{client:?}: {out}");
        assert_eq!(
            sh(
                &d,
                client,
                "multi",
                "cat /final/artifact /final/sub/x /from-index; grep -c staff /from-image"
            ),
            "built\ndeep\nbuilt\n1"
        );
        // --target builds only the stages it needs.
        let o = build(
            &d,
            client,
            &[
                "build",
                "--target",
                "builder",
                "-t",
                "only-builder",
                p(ctx.path()),
            ],
        );
        assert_success("--target", &o);
        let out = stdout(&o);
        assert!(out.contains("Step 1/2 : FROM busybox AS builder"), "{out}");
        assert!(!out.contains("FROM scratch"), "{out}");
        // An unknown stage or image in --from is an error.
        let bad = context(&[(
            "Dockerfile",
            "FROM busybox\nCOPY --from=nosuchstage /x /x\n",
        )]);
        let o = build(&d, client, &["build", p(bad.path())]);
        assert_ne!(code(&o), 0);
        assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("nosuchstage"));
    }
}

#[test]
fn copy_globs_chown_chmod_workdir_and_user() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let ctx = context(&[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN echo 'app:x:1500:2000::/home/app:/bin/sh' >> /etc/passwd && echo 'grp:x:2000:' >> /etc/group && echo 'app:x:2001:' >> /etc/group\n\
                 COPY src/*.txt /globbed/\n\
                 COPY sr?/[ab].txt src/c.* /class/\n\
                 COPY --chown=app:grp src/a.txt /owned/\n\
                 COPY --chown=app --chmod=640 src/dir /mode/\n\
                 COPY src/dir/ rel/\n\
                 WORKDIR /created/deep\n\
                 COPY src/a.txt .\n\
                 USER app\n\
                 RUN id -un && id -u && pwd\n",
            ),
            ("src/a.txt", "a"),
            ("src/b.txt", "b"),
            ("src/c.md", "c"),
            ("src/dir/inner", "inner"),
        ]);
        let o = build(&d, client, &["build", "-t", "globs", p(ctx.path())]);
        assert_success(&format!("{client:?} build"), &o);
        let out = stdout(&o);
        assert!(
            out.contains("app\n1500\n/created/deep\n"),
            "{client:?}: {out}"
        );
        let check = sh(
            &d,
            client,
            "globs",
            "ls /globbed | tr '\\n' ' '; echo; ls /class | tr '\\n' ' '; echo; \
             stat -c '%u:%g %a' /owned/a.txt /mode/inner /globbed/a.txt; cat /rel/inner /created/deep/a.txt; echo; pwd; id -un",
        );
        assert_eq!(
            check,
            "a.txt b.txt \na.txt b.txt c.md \n1500:2000 644\n1500:2001 640\n0:0 644\ninnera\n/created/deep\napp",
            "{client:?}"
        );
        // --chown=user alone names the group too, as Docker's classic builder reads it.
        // A glob that matches nothing, and several sources onto a file, are errors.
        for (df, want) in [
            (
                "FROM busybox\nCOPY src/*.none /x/\n",
                "no source files were specified",
            ),
            (
                "FROM busybox\nCOPY src/*.txt /file\n",
                "must be a directory and end with a /",
            ),
            (
                "FROM busybox\nCOPY --chown=nobody-here src/a.txt /x\n",
                "no such user: nobody-here",
            ),
        ] {
            let bad = context(&[("Dockerfile", df), ("src/a.txt", "a"), ("src/b.txt", "b")]);
            let o = build(&d, client, &["build", p(bad.path())]);
            assert_ne!(code(&o), 0, "{df}");
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(all.contains(want), "{client:?} {df}: {all}");
        }
    }
}

/// `python3 -m http.server` on 127.0.0.1:<free port> serving `dir`, killed by PID on drop.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python3 http.server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "http.server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh_host(script: &str, dir: &Path) {
    let o = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(o.status.success(), "{script}: {}", stderr(&o));
}

#[test]
fn add_extracts_local_archives_and_downloads_urls() {
    let served = tempfile::tempdir().expect("tempdir");
    std::fs::write(served.path().join("remote.txt"), "from the web").expect("write");
    let server = HttpServer::start(served.path());
    for client in CLIENTS {
        let d = TestDaemon::start();
        let ctx = context(&[
            ("payload/p/f", "packed"),
            ("notarchive.gz.txt", "just text"),
            (
                "Dockerfile",
                &format!(
                    "FROM busybox\n\
                     ADD plain.tar /plain/\n\
                     ADD gz.tar.gz bz.tar.bz2 xz.tar.xz /many/\n\
                     ADD notarchive.gz.txt /raw/\n\
                     ADD http://127.0.0.1:{port}/remote.txt /dl/\n\
                     ADD http://127.0.0.1:{port}/remote.txt /dl-named\n\
                     RUN cat /plain/p/f /many/p/f /raw/notarchive.gz.txt /dl/remote.txt /dl-named && stat -c '%a' /dl/remote.txt\n",
                    port = server.port
                ),
            ),
        ]);
        sh_host(
            "tar -cf plain.tar -C payload p && tar -czf gz.tar.gz -C payload p && \
             tar -cjf bz.tar.bz2 -C payload p && tar -cJf xz.tar.xz -C payload p",
            ctx.path(),
        );
        let o = build(&d, client, &["build", "-t", "added", p(ctx.path())]);
        assert_success(&format!("{client:?} ADD build"), &o);
        let out = stdout(&o);
        assert!(
            out.contains("packedpackedjust textfrom the webfrom the web600\n"),
            "{client:?}: {out}"
        );
        // A missing URL is an error that names it.
        let bad = context(&[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD http://127.0.0.1:{}/nope.txt /x\n",
                server.port
            ),
        )]);
        let o = build(&d, client, &["build", p(bad.path())]);
        assert_ne!(code(&o), 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("404"), "{client:?}: {all}");
    }
}

#[test]
fn hostile_contexts_and_archives_stay_inside_the_rootfs() {
    let d = TestDaemon::start();
    let tag = unique("berth-escape-");
    let host_target = std::path::PathBuf::from(format!("/tmp/{tag}-dir"));
    std::fs::create_dir_all(&host_target).expect("mkdir host target");
    let ctx = context(&[("b/x/pwned", "through a symlink"), ("Dockerfile", "")]);
    // Archives: one climbing out with `..`, one writing through a symlink to `/`.
    let py = format!(
        r#"
import io, tarfile
def add(t, name, data=b"x", link=None):
    i = tarfile.TarInfo(name)
    if link is not None:
        i.type = tarfile.SYMTYPE; i.linkname = link
        t.addfile(i)
    else:
        i.size = len(data); t.addfile(i, io.BytesIO(data))
with tarfile.open("climb.tar", "w") as t:
    add(t, "../../../../../../../../tmp/{tag}-climb")
with tarfile.open("swap.tar", "w") as t:
    add(t, "root", link="/")
    add(t, "root/tmp/{tag}-swap", b"inside")
"#
    );
    sh_host(
        &format!("python3 -c '{}'", py.replace('\'', "\"")),
        ctx.path(),
    );
    std::os::unix::fs::symlink("/etc", ctx.path().join("hostetc")).expect("symlink");
    std::os::unix::fs::symlink("../../../../..", ctx.path().join("up")).expect("symlink");
    std::fs::create_dir_all(ctx.path().join("a")).expect("mkdir");
    std::os::unix::fs::symlink(&host_target, ctx.path().join("a/x")).expect("symlink");

    let try_build = |df: &str| {
        std::fs::write(ctx.path().join("Dockerfile"), df).expect("write Dockerfile");
        let o = build(
            &d,
            Client::Berth,
            &["build", "-t", "hostile", p(ctx.path())],
        );
        (code(&o), format!("{}{}", stdout(&o), stderr(&o)))
    };
    // Symlinks in the context resolve inside the context: the host's /etc is not there.
    for src in ["hostetc/hostname", "up/etc/hostname", "hostetc"] {
        let (c, out) = try_build(&format!("FROM busybox\nCOPY {src} /x\n"));
        assert_ne!(c, 0, "COPY {src}: {out}");
        assert!(
            out.contains("file not found in build context"),
            "{src}: {out}"
        );
    }
    // A symlink copied in first, then a directory merged through it: stays in the rootfs.
    let (c, out) = try_build("FROM busybox\nCOPY a b /dst/\nRUN cat /dst/x/pwned\n");
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("through a symlink"), "{out}");
    assert!(
        !host_target.join("pwned").exists(),
        "wrote through a symlink to the host"
    );
    // An archive entry with `..` is refused; one through a symlink to / lands in the rootfs.
    let (c, out) = try_build("FROM busybox\nADD climb.tar /x/\n");
    assert_ne!(c, 0, "{out}");
    assert!(out.contains("outside the destination"), "{out}");
    assert!(!Path::new(&format!("/tmp/{tag}-climb")).exists());
    let (c, out) = try_build(&format!(
        "FROM busybox\nADD swap.tar /x/\nRUN cat /tmp/{tag}-swap\n"
    ));
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("inside"), "{out}");
    assert!(
        !Path::new(&format!("/tmp/{tag}-swap")).exists(),
        "archive wrote to the host"
    );
    let _ = std::fs::remove_dir_all(&host_target);
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let parent = context(&[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo triggered > /trig\nONBUILD COPY child.txt /child.txt\n",
        )]);
        assert_success(
            "parent",
            &build(&d, client, &["build", "-t", "parent", p(parent.path())]),
        );
        let v = d.api("GET", "/images/parent/json", None).json();
        assert_eq!(
            v["Config"]["OnBuild"].as_array().map(Vec::len),
            Some(2),
            "{v}"
        );
        let child = context(&[
            ("Dockerfile", "FROM parent\nRUN cat /trig /child.txt\n"),
            ("child.txt", "from the child's context"),
        ]);
        let o = build(&d, client, &["build", "-t", "child", p(child.path())]);
        assert_success("child", &o);
        let out = stdout(&o);
        assert!(
            out.contains("# Executing 2 build triggers"),
            "{client:?}: {out}"
        );
        assert!(
            out.contains("triggered\nfrom the child's context"),
            "{client:?}: {out}"
        );
        // Triggers are not inherited by the child.
        let v = d.api("GET", "/images/child/json", None).json();
        assert!(
            v["Config"]["OnBuild"].as_array().is_none_or(Vec::is_empty),
            "{v}"
        );
    }
}

#[test]
fn run_mounts_cache_bind_and_tmpfs() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let ctx = context(&[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN --mount=type=cache,target=/cache echo x >> /cache/log && echo runs=$(wc -l < /cache/log)\n\
                 RUN --mount=type=bind,source=data,target=/data cat /data/f > /copied\n\
                 RUN --mount=type=tmpfs,target=/scratch grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs-ok\n\
                 RUN --mount=type=secret,id=x true\n",
            ),
            ("data/f", "bound"),
        ]);
        // The secret mount is refused with a clear message.
        let o = build(&d, client, &["build", p(ctx.path())]);
        assert_ne!(code(&o), 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("type=secret"), "{client:?}: {all}");
        assert!(all.contains("runs=1"), "{client:?}: {all}");
        assert!(all.contains("tmpfs-ok"), "{client:?}: {all}");

        let df = std::fs::read_to_string(ctx.path().join("Dockerfile")).expect("read");
        let df = df.replace("RUN --mount=type=secret,id=x true\n", "");
        std::fs::write(ctx.path().join("Dockerfile"), df).expect("write");
        let o = build(
            &d,
            client,
            &["build", "--no-cache", "-t", "mounts", p(ctx.path())],
        );
        assert_success("mounts", &o);
        // The cache mount kept its content between builds.
        assert!(stdout(&o).contains("runs=2"), "{client:?}: {}", stdout(&o));
        assert_eq!(
            sh(
                &d,
                client,
                "mounts",
                "cat /copied; find /cache /data /scratch -type f 2>/dev/null | wc -l"
            ),
            "bound0"
        );
    }
}

/// A context tar holding one Dockerfile.
fn context_tar(dockerfile: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .expect("tar");
    b.into_inner().expect("tar")
}

/// Entries under `<data-root>/**/snapshots/containers`, and build temp dirs.
fn leftovers(d: &TestDaemon) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(p: &Path, depth: usize, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if (name == "containers" && p.ends_with("snapshots")) || name == "tmp" {
                for c in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    out.push(c.path().display().to_string());
                }
            } else if depth < 3 && path.is_dir() && !path.is_symlink() {
                walk(&path, depth + 1, out);
            }
        }
    }
    walk(&d.data_root(), 0, &mut out);
    out
}

#[test]
fn a_cancelled_build_stops_its_container_and_leaves_nothing() {
    let d = TestDaemon::start();
    let body = context_tar("FROM busybox\nRUN echo started && sleep 60\n");
    let mut s = d.api_upload(
        "POST",
        "/build?t=cancelled",
        "application/x-tar",
        body.len(),
    );
    s.write_all(&body).expect("send the context");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The command's own output ("started\n" in a stream message) shows it runs.
    while !String::from_utf8_lossy(&seen).contains("started\\n") {
        let n = s.read(&mut buf).expect("read the build stream");
        assert!(n > 0, "stream ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // While the RUN sleeps: its container is there.
    let running = d.api("GET", "/containers/json?all=1", None).json();
    assert_eq!(running.as_array().map(Vec::len), Some(1), "{running}");
    drop(s);
    d.wait_until(
        "the build's container and snapshots are gone",
        std::time::Duration::from_secs(20),
        || {
            d.api("GET", "/containers/json?all=1", None).json() == serde_json::json!([])
                && leftovers(&d).is_empty()
        },
    );
    assert_ne!(
        code(&d.berth(&["image", "inspect", "cancelled"])),
        0,
        "a cancelled build must not tag"
    );
}

#[test]
fn build_arg_warning_aux_order_and_no_empty_layers() {
    let d = TestDaemon::start();
    let body = context_tar("FROM busybox\nARG USED\nRUN echo used=$USED\nENV E=1\nCMD [\"sh\"]\n");
    let args = "%7B%22USED%22%3A%22yes%22%2C%22UNUSED%22%3A%221%22%2C%22HTTP_PROXY%22%3A%22x%22%7D";
    let r = d.api(
        "POST",
        &format!("/build?t=warn&buildargs={args}"),
        Some(("application/x-tar", &body)),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    let msgs: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pos = |f: &dyn Fn(&serde_json::Value) -> bool| {
        msgs.iter()
            .position(f)
            .unwrap_or_else(|| panic!("missing message in {text}"))
    };
    let warn = pos(&|m| {
        m["stream"].as_str()
            == Some("[Warning] One or more build-args [UNUSED] were not consumed\n")
    });
    let aux = pos(&|m| m["aux"]["ID"].is_string());
    let built = pos(&|m| {
        m["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with("Successfully built "))
    });
    assert!(warn < aux && aux < built, "{text}");
    assert!(text.contains("used=yes"), "{text}");
    // ENV and CMD after the last RUN: history entries, not layers.
    let base = d.api("GET", "/images/busybox/json", None).json();
    let img = d.api("GET", "/images/warn/json", None).json();
    let layers = |v: &serde_json::Value| v["RootFS"]["Layers"].as_array().map(Vec::len);
    assert_eq!(layers(&img), layers(&base).map(|n| n + 1), "{img}");
    let hist = d.api("GET", "/images/warn/history", None).json();
    assert_eq!(hist[0]["Size"], 0, "{hist}");
    // The docker CLI shows the warning too.
    let ctx = context(&[("Dockerfile", "FROM busybox\nCMD [\"true\"]\n")]);
    let o = build(
        &d,
        Client::Docker,
        &["build", "--build-arg", "NOPE=1", p(ctx.path())],
    );
    assert_success("docker build", &o);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("[Warning] One or more build-args [NOPE] were not consumed"),
        "{all}"
    );
}

/// Debian's `docker-registry` on 127.0.0.1:<free port>, killed by PID on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-test\n",
                dir.path().join("store").display()
            ),
        )
        .expect("write registry config");
        let child = std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_missing_base_image_is_pulled_from_its_registry() {
    let reg = Registry::start();
    for client in CLIENTS {
        let d = TestDaemon::start();
        let name = format!("127.0.0.1:{}/base-{}:1", reg.port, client.name());
        d.cli_ok(client, &["tag", "busybox", &name]);
        assert_success("push", &d.cli(client, &["push", &name]));
        d.cli_ok(client, &["rmi", &name]);
        let ctx = context(&[(
            "Dockerfile",
            &format!("FROM {name}\nRUN echo on the pulled base\n"),
        )]);
        let o = build(&d, client, &["build", "-t", "onpulled", p(ctx.path())]);
        assert_success(&format!("{client:?} build on a pulled base"), &o);
        let out = stdout(&o);
        assert!(out.contains("on the pulled base"), "{client:?}: {out}");
        assert!(out.contains("Pulling from"), "{client:?}: {out}");
        d.cli_ok(client, &["image", "inspect", &name]);
        // --pull refreshes a base that is present; a base nowhere to be found is an error.
        let o = build(
            &d,
            client,
            &["build", "--pull", "-t", "onpulled", p(ctx.path())],
        );
        assert_success("--pull", &o);
        let missing = context(&[(
            "Dockerfile",
            &format!("FROM 127.0.0.1:{}/nothing-here:1\n", reg.port),
        )]);
        let o = build(&d, client, &["build", p(missing.path())]);
        assert_ne!(code(&o), 0);
        assert!(
            format!("{}{}", stdout(&o), stderr(&o)).contains("nothing-here"),
            "{client:?}"
        );
    }
}

#[test]
fn independent_stages_build_side_by_side() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        // Each stage waits (bounded) for the other's marker in a shared cache mount: a
        // build that ran them one after the other would fail.
        let wait_for = |me: &str, other: &str| {
            format!(
                "RUN --mount=type=cache,target=/sync,id=sync touch /sync/{me} && \
                 for i in $(seq 150); do [ -e /sync/{other} ] && exit 0; sleep 0.1; done; exit 7\n"
            )
        };
        let df = format!(
            "FROM busybox AS a\n{}RUN echo a > /a\nFROM busybox AS b\n{}RUN echo b > /b\n\
             FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
            wait_for("a", "b"),
            wait_for("b", "a")
        );
        let ctx = context(&[("Dockerfile", &df)]);
        let o = build(&d, client, &["build", "-t", "side", p(ctx.path())]);
        assert_success(&format!("{client:?} parallel stages"), &o);
        let out = stdout(&o);
        // Logs keep stage order and step numbers.
        let a = out.find("Step 1/9 : FROM busybox AS a").expect("stage a");
        let b = out.find("Step 4/9 : FROM busybox AS b").expect("stage b");
        assert!(a < b, "{out}");
        assert_eq!(sh(&d, client, "side", "cat /a /b"), "a\nb");
    }
}

#[test]
fn built_images_save_and_load_into_another_daemon() {
    let d = TestDaemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN echo ran > /ran\nCOPY f /f\nCMD [\"cat\", \"/ran\", \"/f\"]\n",
        ),
        ("f", "copied"),
    ]);
    assert_success(
        "build",
        &build(
            &d,
            Client::Berth,
            &["build", "-t", "saved:1", p(ctx.path())],
        ),
    );
    let tar = ctx.path().join("saved.tar");
    d.ok(&["save", "-o", p(&tar), "saved:1"]);
    let other = TestDaemon::start_empty();
    other.ok(&["load", "-i", p(&tar)]);
    assert_eq!(other.ok(&["run", "--rm", "saved:1"]), "ran\ncopied");
    let a = d.api("GET", "/images/saved:1/json", None).json();
    let b = other.api("GET", "/images/saved:1/json", None).json();
    assert_eq!(a["Id"], b["Id"]);
    assert_eq!(a["Config"], b["Config"]);
}

#[test]
fn the_layer_cache_follows_content_and_survives_a_restart() {
    let mut d = TestDaemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN echo run > /run.txt\nCOPY app.txt /app.txt\nRUN cat /app.txt\n",
        ),
        ("app.txt", "version-1"),
    ]);
    // An old file: its digest is remembered by metadata.
    let app = ctx.path().join("app.txt");
    let age = |f: &Path| {
        std::fs::File::options()
            .write(true)
            .open(f)
            .expect("open")
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .expect("set mtime")
    };
    age(&app);
    let first = build(&d, Client::Berth, &["build", "-t", "cached", p(ctx.path())]);
    assert_success("first build", &first);
    assert!(
        !stdout(&first).contains("Using cache"),
        "{}",
        stdout(&first)
    );
    let id1 = d.api("GET", "/images/cached/json", None).json()["Id"].clone();

    // Unchanged, after a daemon restart: every step from the cache, the same image.
    d.kill_daemon();
    d.spawn_daemon();
    let again = build(
        &d,
        Client::Docker,
        &["build", "-t", "cached", p(ctx.path())],
    );
    assert_success("cached build", &again);
    assert_eq!(
        stdout(&again).matches("Using cache").count(),
        3,
        "{}",
        stdout(&again)
    );
    assert_eq!(d.api("GET", "/images/cached/json", None).json()["Id"], id1);

    // Same size, new content: the COPY and what follows run again, the RUN before it not.
    std::fs::write(&app, "version-2").expect("write");
    let changed = build(&d, Client::Berth, &["build", "-t", "cached", p(ctx.path())]);
    assert_success("changed build", &changed);
    let out = stdout(&changed);
    assert_eq!(out.matches("Using cache").count(), 1, "{out}");
    assert!(out.contains("version-2"), "{out}");
    // --no-cache runs everything.
    let o = build(&d, Client::Berth, &["build", "--no-cache", p(ctx.path())]);
    assert!(!stdout(&o).contains("Using cache"), "{}", stdout(&o));
}

/// The image's layer diff ids.
fn layers(d: &TestDaemon, image: &str) -> serde_json::Value {
    d.api("GET", &format!("/images/{image}/json"), None).json()["RootFS"]["Layers"].clone()
}

/// The kept contexts' trees under the daemon's data root.
fn kept_trees(d: &TestDaemon) -> Vec<std::path::PathBuf> {
    let root = d.data_root().join("build-cache/contexts");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("tree"))
        .filter(|t| t.is_dir())
        .collect()
}

/// Relative paths of every entry under `root`, sorted.
fn tree_listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn incremental_context_gives_what_a_fresh_classic_build_gives() {
    let d = TestDaemon::start();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        (".dockerignore", "ignored.txt\n"),
        ("a.txt", "alpha"),
        ("dir/b.txt", "bravo"),
        ("dir/deep/c.txt", "charlie"),
        ("ignored.txt", "not sent"),
    ]);
    std::fs::write(ctx.path().join("big.bin"), vec![7u8; 300_000]).expect("write");
    let compare = |round: &str| {
        // berth's CLI sends only what changed; the docker CLI sends a fresh classic tar.
        let tag_inc = format!("inc:{round}");
        let tag_classic = format!("classic:{round}");
        let o = build(
            &d,
            Client::Berth,
            &["build", "-q", "-t", &tag_inc, p(ctx.path())],
        );
        assert_success(&format!("incremental build {round}"), &o);
        let o = build(
            &d,
            Client::Docker,
            &["build", "-q", "-t", &tag_classic, p(ctx.path())],
        );
        assert_success(&format!("classic build {round}"), &o);
        assert_eq!(
            layers(&d, &tag_inc),
            layers(&d, &tag_classic),
            "round {round}: the COPY layer differs between the incremental and the classic context"
        );
        sh(&d, Client::Berth, &tag_inc, "cd /ctx && find . | sort")
    };
    let first = compare("1");
    assert!(first.contains("./dir/deep/c.txt"), "{first}");
    assert!(!first.contains("ignored.txt"), "{first}");
    // The daemon keeps exactly the context's files (and nothing ignored).
    let trees = kept_trees(&d);
    assert_eq!(trees.len(), 1, "{trees:?}");
    let listing = tree_listing(&trees[0]);
    assert!(listing.contains(&"big.bin".to_string()), "{listing:?}");
    assert!(!listing.contains(&"ignored.txt".to_string()), "{listing:?}");

    // One file changed (same size), one deleted, one added under a new dir, and a
    // .dockerignore change that brings a file in and leaves another out.
    std::fs::write(ctx.path().join("dir/deep/c.txt"), "CHARLIE").expect("write");
    std::fs::remove_file(ctx.path().join("dir/b.txt")).expect("rm");
    std::fs::create_dir_all(ctx.path().join("new/sub")).expect("mkdir");
    std::fs::write(ctx.path().join("new/sub/n.txt"), "november").expect("write");
    std::fs::write(ctx.path().join(".dockerignore"), "a.txt\n").expect("write");
    let second = compare("2");
    assert!(second.contains("./new/sub/n.txt"), "{second}");
    assert!(second.contains("./ignored.txt"), "{second}");
    assert!(!second.contains("./dir/b.txt"), "{second}");
    assert!(!second.contains("./a.txt"), "{second}");
    let listing = tree_listing(&kept_trees(&d)[0]);
    assert!(!listing.contains(&"dir/b.txt".to_string()), "{listing:?}");
    assert!(!listing.contains(&"a.txt".to_string()), "{listing:?}");
    let c = std::fs::read_to_string(kept_trees(&d)[0].join("dir/deep/c.txt")).expect("read");
    assert_eq!(c, "CHARLIE");

    // A file let back in under an excluded directory comes with its directories (their
    // times differ from a classic unpack's, which makes them up: compare the files only).
    std::fs::write(ctx.path().join(".dockerignore"), "dir\n!dir/deep/c.txt\n").expect("write");
    let o = build(
        &d,
        Client::Berth,
        &["build", "-q", "-t", "inc:3", p(ctx.path())],
    );
    assert_success("build with an exception under an excluded dir", &o);
    let third = sh(
        &d,
        Client::Berth,
        "inc:3",
        "cd /ctx && find . -type f | sort && cat dir/deep/c.txt",
    );
    assert!(third.contains("./dir/deep/c.txt"), "{third}");
    assert!(third.contains("CHARLIE"), "{third}");
    assert!(third.contains("./a.txt"), "{third}");

    // A Dockerfile outside the context travels beside it, not in it.
    let outside = tempfile::tempdir().expect("tempdir");
    let df = outside.path().join("Other.Dockerfile");
    // `COPY dir /new` fills /new with the directory's contents.
    std::fs::write(&df, "FROM busybox\nCOPY new /new\nRUN cat /new/sub/n.txt\n").expect("write");
    let o = build(&d, Client::Berth, &["build", "-f", p(&df), p(ctx.path())]);
    assert_success("outside Dockerfile", &o);
    assert!(stdout(&o).contains("november"), "{}", stdout(&o));
    let listing = tree_listing(&kept_trees(&d)[0]);
    assert!(
        !listing.iter().any(|l| l.contains("dockerfile")),
        "{listing:?}"
    );

    // `builder prune` (POST /build/prune) drops the kept contexts.
    let o = d.cli(Client::Docker, &["builder", "prune", "-f"]);
    assert_success("builder prune", &o);
    assert!(
        stdout(&o).contains("Total reclaimed space"),
        "{}",
        stdout(&o)
    );
    assert!(kept_trees(&d).is_empty(), "{:?}", kept_trees(&d));
}

/// A raw tar entry: the name and link bytes are written as given (no checks), so tests can
/// send what a hostile client would.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(0o644);
    h.set_mtime(1000);
    h.set_entry_type(kind);
    if kind == tar::EntryType::Symlink {
        h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("tar");
    } else {
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("tar");
    }
}

/// An upload to the incremental endpoint: the manifest first, then `entries`.
fn upload(manifest: &serde_json::Value, entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let json = serde_json::to_vec(manifest).expect("json");
    raw_entry(
        &mut b,
        ".berth-context-manifest.json",
        tar::EntryType::Regular,
        &json,
    );
    for (n, k, data) in entries {
        raw_entry(&mut b, n, *k, data);
    }
    b.into_inner().expect("tar")
}

#[test]
fn incremental_context_refuses_paths_that_leave_it() {
    let d = TestDaemon::start();
    let key = "ab".repeat(32);
    let host = tempfile::tempdir().expect("tempdir");
    let hp = p(host.path());
    let file = |path: &str, size: usize| serde_json::json!({"path": path, "type": "file", "mode": 0o644, "size": size, "mtime": 1000});
    let dir =
        |path: &str| serde_json::json!({"path": path, "type": "dir", "mode": 0o755, "mtime": 1000});
    let df = "FROM busybox\n";
    let post = |manifest: serde_json::Value, entries: &[(&str, tar::EntryType, &[u8])]| {
        d.api(
            "POST",
            &format!("/build?berthcontext={key}"),
            Some(("application/x-tar", &upload(&manifest, entries))),
        )
    };
    let refused = |what: &str, r: ApiResponse, msg: &str| {
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains(msg), "{what}: {}", r.text());
    };

    // Manifests: `..`, absolute paths, a path under a symlink.
    for bad in ["../escape", "/etc/escape", "a/../../escape"] {
        let r = d.api_json(
            "POST",
            &format!("/berth/build/context?key={key}"),
            &serde_json::json!({"entries": [file(bad, 1)]}),
        );
        refused(bad, r, "not a clean path inside the context");
    }
    let through_link = serde_json::json!({"entries": [
        {"path": "lnk", "type": "symlink", "mode": 0o777, "mtime": 1000, "link": hp},
        file("lnk/x", 1),
    ]});
    let r = post(through_link, &[("lnk/x", tar::EntryType::Regular, b"x")]);
    refused(
        "a file under a symlink",
        r,
        "is not a directory of the context",
    );

    // Tar entries: `..`, a symlink (only regular files are sent), one not in the manifest.
    let m = serde_json::json!({"entries": [file("Dockerfile", df.len()), file("ok", 1)]});
    let r = post(
        m.clone(),
        &[
            ("Dockerfile", tar::EntryType::Regular, df.as_bytes()),
            ("../escape", tar::EntryType::Regular, b"x"),
        ],
    );
    refused(
        "a tar entry with ..",
        r,
        "not a clean path inside the context",
    );
    let r = post(
        m.clone(),
        &[
            ("Dockerfile", tar::EntryType::Regular, df.as_bytes()),
            ("ok", tar::EntryType::Symlink, hp.as_bytes()),
        ],
    );
    refused("a symlink entry", r, "only regular files may be sent");
    let r = post(
        m.clone(),
        &[
            ("Dockerfile", tar::EntryType::Regular, df.as_bytes()),
            ("other", tar::EntryType::Regular, b"x"),
        ],
    );
    refused(
        "an entry not in the manifest",
        r,
        "is not a file of the manifest",
    );

    // A symlink swapped in for a kept directory is never written through.
    let m = serde_json::json!({"entries": [file("Dockerfile", df.len()), dir("sub"), file("sub/f", 3)]});
    let r = post(
        m,
        &[
            ("Dockerfile", tar::EntryType::Regular, df.as_bytes()),
            ("sub/f", tar::EntryType::Regular, b"one"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Successfully built"), "{}", r.text());
    let tree = d
        .data_root()
        .join("build-cache/contexts")
        .join(&key)
        .join("tree");
    assert_eq!(
        std::fs::read_to_string(tree.join("sub/f")).expect("kept"),
        "one"
    );
    std::fs::remove_dir_all(tree.join("sub")).expect("rm");
    std::os::unix::fs::symlink(host.path(), tree.join("sub")).expect("symlink");
    let mut changed = file("sub/f", 3);
    changed["mtime"] = 2000.into();
    let m = serde_json::json!({"entries": [file("Dockerfile", df.len()), dir("sub"), changed]});
    let r = post(m, &[("sub/f", tar::EntryType::Regular, b"two")]);
    refused("a swapped symlink", r, "is not a directory of the context");

    // Nothing landed outside the kept tree.
    assert_eq!(
        std::fs::read_dir(host.path()).expect("read").count(),
        0,
        "wrote into the host dir"
    );
    let contexts = d.data_root().join("build-cache/contexts");
    assert!(!contexts.join("escape").exists());
    assert!(!contexts.join(&key).join("escape").exists());
    assert!(!d.data_root().join("build-cache/escape").exists());
}
