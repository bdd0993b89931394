//! The daemon <-> shim wire protocol (crates/shim/PROTOCOL.md), as serde types shared by both.
//!
//! Every connection to a shim's socket starts with one [`Request`] line (JSON + `\n`); the shim
//! answers with one [`Response`] line. `attach` and `exec` then turn the connection into a raw
//! stream. At start-up the shim prints one [`Ready`] line on its stdout, and when the container
//! has exited it leaves an [`ExitRecord`] in `<state-dir>/exit.json`.

use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};

/// Name of the exit record inside the shim's state dir.
pub const EXIT_FILE: &str = "exit.json";

/// One request, the first line of a connection. Tagged by `"op"`, e.g. `{"op":"exec-status","pid":7}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Let the gated container init exec its process.
    Start,
    /// Current status of the container init.
    State,
    /// Answered when the container init has exited (at once if it already has).
    Wait,
    /// Send a signal to the init (or, with `all`, to every process of the container).
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    Pause,
    Resume,
    /// Set the window size of the container's pty, or of an exec's pty when `exec_pid` is set.
    Resize {
        height: u16,
        width: u16,
        #[serde(default)]
        exec_pid: Option<i32>,
    },
    /// Turn the connection into the container's stdio stream.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
        #[serde(default)]
        close_stdin_on_eof: bool,
    },
    /// Run a process in the container; unless `detach`, the connection becomes its stdio stream.
    Exec {
        process: Box<Process>,
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        detach: bool,
    },
    /// Whether an exec'd process still runs, and its exit code once it has exited.
    ExecStatus {
        pid: i32,
    },
    /// Close the container's stdin now: the daemon sends this when an attached client
    /// half-closes (real EOF), as opposed to detaching (the connection simply goes away).
    CloseStdin,
}

/// Status of the container init as the shim sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Exited,
}

/// The one-line answer to a request. Fields that do not apply to the request are left out
/// (a missing `exit_code` means null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
}

impl Response {
    /// `{"ok":true}`
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Default::default()
        }
    }

    /// `{"ok":false,"error":msg}`
    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }

    /// `{"ok":false,"error":msg,"exit_code":code}` — an exec that could not start (127/126).
    pub fn exec_error(msg: impl Into<String>, exit_code: i32) -> Self {
        Response {
            exit_code: Some(exit_code),
            ..Response::error(msg)
        }
    }

    /// `{"ok":true,"pid":pid}`
    pub fn with_pid(pid: i32) -> Self {
        Response {
            pid: Some(pid),
            ..Response::ok()
        }
    }

    /// The answer to `state`.
    pub fn state(pid: i32, status: Status, exit_code: Option<i32>) -> Self {
        Response {
            pid: Some(pid),
            status: Some(status),
            exit_code,
            ..Response::ok()
        }
    }

    /// The answer to `wait`.
    pub fn exited(exit_code: i32, finished_at: impl Into<String>) -> Self {
        Response {
            exit_code: Some(exit_code),
            finished_at: Some(finished_at.into()),
            ..Response::ok()
        }
    }

    /// The answer to `exec-status`.
    pub fn exec_status(running: bool, exit_code: Option<i32>) -> Self {
        Response {
            running: Some(running),
            exit_code,
            ..Response::ok()
        }
    }
}

/// The one line the shim writes on its stdout once the container is created (or could not be).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ready {
    /// `{"pid":N}`: the init is created and waits for `start`.
    Created { pid: i32 },
    /// `{"error":"...","exit_code":127|126|125}`: the shim exits 1 after writing it.
    Failed { error: String, exit_code: i32 },
}

/// `<state-dir>/exit.json`, written atomically when the container init has exited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + signal when the init was killed by a signal.
    pub exit_code: i32,
    /// The signal that killed the init, if one did.
    pub signal: Option<i32>,
    /// RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
}

/// The Docker multiplexed-stream id of a stdio stream (first byte of each frame header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamId {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

/// The 8-byte header of one frame of Docker's multiplexed stream: `[id,0,0,0,len_be32]`.
pub fn frame_header(stream: StreamId, len: u32) -> [u8; 8] {
    let l = len.to_be_bytes();
    [stream as u8, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn roundtrip_request(v: Value) -> Request {
        let r: Request = serde_json::from_value(v.clone()).expect("parse");
        let back = serde_json::to_value(&r).expect("serialize");
        let again: Request = serde_json::from_value(back).expect("reparse");
        assert_eq!(r, again);
        r
    }

    #[test]
    fn simple_ops_parse() {
        assert_eq!(roundtrip_request(json!({"op":"start"})), Request::Start);
        assert_eq!(roundtrip_request(json!({"op":"state"})), Request::State);
        assert_eq!(roundtrip_request(json!({"op":"wait"})), Request::Wait);
        assert_eq!(roundtrip_request(json!({"op":"pause"})), Request::Pause);
        assert_eq!(roundtrip_request(json!({"op":"resume"})), Request::Resume);
    }

    #[test]
    fn kill_defaults_all_to_false() {
        assert_eq!(
            roundtrip_request(json!({"op":"kill","signal":15})),
            Request::Kill {
                signal: 15,
                all: false
            }
        );
        assert_eq!(
            roundtrip_request(json!({"op":"kill","signal":9,"all":true})),
            Request::Kill {
                signal: 9,
                all: true
            }
        );
    }

    #[test]
    fn resize_and_exec_status_use_snake_case_fields() {
        assert_eq!(
            roundtrip_request(json!({"op":"resize","height":24,"width":80,"exec_pid":null})),
            Request::Resize {
                height: 24,
                width: 80,
                exec_pid: None
            }
        );
        assert_eq!(
            roundtrip_request(json!({"op":"resize","height":1,"width":2,"exec_pid":42})),
            Request::Resize {
                height: 1,
                width: 2,
                exec_pid: Some(42)
            }
        );
        assert_eq!(
            roundtrip_request(json!({"op":"exec-status","pid":7})),
            Request::ExecStatus { pid: 7 }
        );
        let v = serde_json::to_value(Request::ExecStatus { pid: 7 }).expect("serialize");
        assert_eq!(v, json!({"op":"exec-status","pid":7}));
    }

    #[test]
    fn attach_parses_the_daemons_request() {
        let r = roundtrip_request(
            json!({"op":"attach","stdin":true,"stdout":true,"stderr":false,"close_stdin_on_eof":true}),
        );
        assert_eq!(
            r,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false,
                close_stdin_on_eof: true
            }
        );
    }

    #[test]
    fn exec_carries_an_oci_process() {
        let r = roundtrip_request(json!({
            "op":"exec","stdin":false,"detach":true,
            "process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh","-c","echo hi"],
                       "env":["PATH=/bin"],"cwd":"/"}
        }));
        match r {
            Request::Exec {
                process,
                stdin,
                detach,
            } => {
                assert!(!stdin && detach);
                assert_eq!(process.terminal(), Some(true));
                assert_eq!(
                    process.args().as_deref(),
                    Some(&["sh".to_string(), "-c".into(), "echo hi".into()][..])
                );
            }
            other => panic!("not an exec: {other:?}"),
        }
    }

    #[test]
    fn unknown_op_is_an_error() {
        assert!(serde_json::from_value::<Request>(json!({"op":"frobnicate"})).is_err());
        assert!(serde_json::from_value::<Request>(json!({"signal":9})).is_err());
    }

    #[test]
    fn responses_leave_out_what_does_not_apply() {
        assert_eq!(
            serde_json::to_value(Response::ok()).expect("ser"),
            json!({"ok":true})
        );
        assert_eq!(
            serde_json::to_value(Response::error("boom")).expect("ser"),
            json!({"ok":false,"error":"boom"})
        );
        assert_eq!(
            serde_json::to_value(Response::exec_error(
                "exec: \"x\": executable file not found in $PATH",
                127
            ))
            .expect("ser"),
            json!({"ok":false,"error":"exec: \"x\": executable file not found in $PATH","exit_code":127})
        );
        assert_eq!(
            serde_json::to_value(Response::state(5, Status::Running, None)).expect("ser"),
            json!({"ok":true,"pid":5,"status":"running"})
        );
        assert_eq!(
            serde_json::to_value(Response::exited(137, "2026-01-01T00:00:00.000000001Z"))
                .expect("ser"),
            json!({"ok":true,"exit_code":137,"finished_at":"2026-01-01T00:00:00.000000001Z"})
        );
        assert_eq!(
            serde_json::to_value(Response::exec_status(false, Some(3))).expect("ser"),
            json!({"ok":true,"running":false,"exit_code":3})
        );
        let parsed: Response =
            serde_json::from_value(json!({"ok":true,"pid":1,"status":"exited","exit_code":null}))
                .expect("parse");
        assert_eq!(parsed, Response::state(1, Status::Exited, None));
    }

    #[test]
    fn ready_line_is_either_pid_or_error() {
        assert_eq!(
            serde_json::to_string(&Ready::Created { pid: 9 }).expect("ser"),
            r#"{"pid":9}"#
        );
        let failed: Ready =
            serde_json::from_str(r#"{"error":"no","exit_code":127}"#).expect("parse");
        assert_eq!(
            failed,
            Ready::Failed {
                error: "no".into(),
                exit_code: 127
            }
        );
        let created: Ready = serde_json::from_str(r#"{"pid":3}"#).expect("parse");
        assert_eq!(created, Ready::Created { pid: 3 });
    }

    #[test]
    fn exit_record_shape() {
        let rec = ExitRecord {
            exit_code: 143,
            signal: Some(15),
            finished_at: "t".into(),
            oom_killed: false,
        };
        assert_eq!(
            serde_json::to_value(&rec).expect("ser"),
            json!({"exit_code":143,"signal":15,"finished_at":"t","oom_killed":false})
        );
        let none = ExitRecord {
            signal: None,
            ..rec
        };
        assert_eq!(
            serde_json::to_value(&none).expect("ser")["signal"],
            Value::Null
        );
    }

    #[test]
    fn frame_header_is_big_endian() {
        assert_eq!(
            frame_header(StreamId::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(frame_header(StreamId::Stdout, 5), [1, 0, 0, 0, 0, 0, 0, 5]);
    }
}
