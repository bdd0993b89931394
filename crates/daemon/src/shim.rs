//! Talking to a container's shim: spawning it, and its line-delimited JSON protocol
//! (crates/shim/PROTOCOL.md).

use crate::error::{ApiError, ApiResult};
use crate::state::{Daemon, RuntimeChoice};
pub use berth_runtime::shim_protocol::Request;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A connection to the shim after its one-line answer: the rest is a raw stream.
pub type ShimStream = BufReader<UnixStream>;

/// Send one request on a fresh connection and read the one-line answer.
pub async fn request(socket: &Path, req: &Request) -> ApiResult<(Value, ShimStream)> {
    let mut stream = UnixStream::connect(socket).await.map_err(|e| {
        ApiError::internal(format!(
            "cannot reach the container's shim at {}: {e}",
            socket.display()
        ))
    })?;
    let mut line = serde_json::to_vec(req).map_err(|e| ApiError::internal(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(ApiError::internal(
            "the container's shim closed the connection",
        ));
    }
    let v: Value = serde_json::from_str(answer.trim_end())
        .map_err(|e| ApiError::internal(format!("bad answer from the shim: {e}")))?;
    if v.get("ok").and_then(Value::as_bool) == Some(false) {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("shim error")
            .to_string();
        // 126/127: the command cannot be invoked or found — the client's fault, as Docker reports it.
        return Err(match v.get("exit_code").and_then(Value::as_i64) {
            Some(126) | Some(127) => ApiError::bad_request(msg),
            _ => ApiError::internal(msg),
        });
    }
    Ok((v, reader))
}

/// A request whose answer is all that matters.
pub async fn call(socket: &Path, req: Request) -> ApiResult<Value> {
    Ok(request(socket, &req).await?.0)
}

/// Why a shim could not create the container.
#[derive(Debug)]
pub struct CreateFailure {
    pub message: String,
    pub exit_code: i64,
}

/// Start the shim for a container whose bundle is written and rootfs mounted.
/// Returns the container init's pid once the shim has created it (gated before exec).
pub async fn spawn(d: &Daemon, id: &str, open_stdin: bool) -> Result<i64, CreateFailure> {
    let state_dir = d.paths.shim_state_dir(id);
    let socket = d.paths.shim_socket(id);
    let fail = |m: String| CreateFailure {
        message: m,
        exit_code: 125,
    };
    // A few quick metadata calls, made in place: through tokio::fs each would be a trip to
    // the blocking pool on `run`'s path.
    for dir in [&state_dir, socket.parent().unwrap_or(Path::new("/"))] {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let _ = std::fs::remove_file(state_dir.join("exit.json"));
    let _ = std::fs::remove_file(&socket);
    let stderr =
        std::fs::File::create(state_dir.join("shim.log")).map_err(|e| fail(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&d.shim);
    cmd.arg("--id")
        .arg(id)
        .arg("--bundle")
        .arg(d.paths.bundle_dir(id))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--log")
        .arg(d.paths.log_path(id));
    if open_stdin {
        cmd.arg("--stdin");
    }
    match &d.runtime {
        RuntimeChoice::Builtin => {
            cmd.arg("--runtime").arg("builtin");
        }
        RuntimeChoice::External(bin) => {
            cmd.arg("--runtime")
                .arg(bin)
                .arg("--runtime-root")
                .arg(d.paths.runc_root());
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start the shim {}: {e}", d.shim.display())))?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| fail("shim has no stdout".into()))?;
    // The shim exits only when its container has; reap it whenever that is.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let mut buf = Vec::with_capacity(128);
    let mut byte = [0u8; 256];
    loop {
        let n = out.read(&mut byte).await.map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
        if buf.contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        let log = std::fs::read_to_string(state_dir.join("shim.log")).unwrap_or_default();
        return Err(fail(format!(
            "the shim exited before creating the container: {}",
            log.trim()
        )));
    }
    let v: Value =
        serde_json::from_str(line).map_err(|e| fail(format!("bad shim answer {line:?}: {e}")))?;
    if let Some(pid) = v.get("pid").and_then(Value::as_i64) {
        return Ok(pid);
    }
    Err(CreateFailure {
        message: v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown shim error")
            .to_string(),
        exit_code: v.get("exit_code").and_then(Value::as_i64).unwrap_or(125),
    })
}

/// An exec request for an OCI process built as JSON (the container's process plus overrides).
pub fn exec_request(process: Value, stdin: bool, detach: bool) -> ApiResult<Request> {
    let process = serde_json::from_value(process)
        .map_err(|e| ApiError::internal(format!("exec process: {e}")))?;
    Ok(Request::Exec {
        process: Box::new(process),
        stdin,
        detach,
    })
}
