//! Issue #6's builder: `build --check`, and `build` through berth and the docker CLI.

mod common;
use common::*;
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
        assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("file not found in build context"));
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
