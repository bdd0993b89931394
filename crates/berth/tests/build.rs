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
