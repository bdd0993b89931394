//! Interactive containers: a real PTY, the detach keys, attach, exec -it.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn run_it_gives_a_real_terminal() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.in_pty(
            client,
            &["run", "-it", "--rm", "busybox", "sh"],
            &[("# ", "tty; echo $((6*7))\r"), ("42", "exit 3\r")],
        );
        let screen = stdout(&out);
        assert_exit(&format!("{client:?} run -it"), &out, 3);
        assert!(
            screen.contains("/dev/pts/"),
            "{client:?}: no pty inside:\n{screen}"
        );
    }
}

#[test]
fn ctrl_p_ctrl_q_detaches_and_attach_reconnects() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.in_pty(
            client,
            &["run", "-it", "--name", "box", "busybox", "sh"],
            &[("# ", "\x10\x11")],
        );
        assert_exit(&format!("{client:?} run -it, then ctrl-p ctrl-q"), &out, 0);
        assert_eq!(
            d.inspect("box")["State"]["Running"],
            true,
            "{client:?}: detaching keeps it running"
        );

        let out = d.in_pty(
            client,
            &["attach", "box"],
            &[("", "echo attached-$((1+1))\r"), ("attached-2", "exit 4\r")],
        );
        assert!(
            stdout(&out).contains("attached-2"),
            "{client:?}: {}",
            stdout(&out)
        );
        assert_exit(&format!("{client:?} attach"), &out, 4);
        d.wait_until("box to exit", Duration::from_secs(10), || {
            d.inspect("box")["State"]["Running"] == false
        });
        assert_eq!(d.inspect("box")["State"]["ExitCode"], 4);
    }
}

#[test]
fn exec_it_runs_a_shell_in_a_running_container() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let id = d.cli_ok(
            client,
            &["run", "-d", "--name", "web", "busybox", "sleep", "1000"],
        );
        let out = d.in_pty(
            client,
            &["exec", "-it", "web", "sh"],
            &[("# ", "hostname; tty\r"), ("/dev/pts/", "exit\r")],
        );
        assert_success(&format!("{client:?} exec -it"), &out);
        assert!(
            stdout(&out).contains(&id[..12]),
            "{client:?}: {}",
            stdout(&out)
        );
        assert_eq!(d.inspect("web")["State"]["Running"], true);
    }
}

#[test]
fn run_i_without_tty_pipes_stdin() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let out = d.cli_stdin(
            client,
            &[
                "run",
                "-i",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "tr a-z A-Z; exit 2",
            ],
            b"piped\n",
        );
        assert_exit("run -i", &out, 2);
        assert_eq!(stdout(&out), "PIPED\n");
    }
}
