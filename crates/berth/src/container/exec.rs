//! `exec`.

use berth_api::Client;
use clap::Args;
use serde_json::{json, Value};

use super::stdio::{self, RawTerminal};
use crate::errors::ExitStatus;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

pub async fn exec(client: &Client, a: ExecArgs) -> anyhow::Result<i32> {
    let (container, cmd) = match a.args.split_first() {
        Some((c, cmd)) if !cmd.is_empty() => (c.clone(), cmd.to_vec()),
        _ => anyhow::bail!("\"exec\" requires at least 2 arguments"),
    };
    // docker checks the container exists (and is running) first.
    let info = client.container_inspect(&container).await?;
    if !info.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
        let id = info.id.unwrap_or(container);
        return Err(ExitStatus {
            code: 1,
            message: Some(format!(
                "Error response from daemon: container {id} is not running"
            )),
        }
        .into());
    }
    if a.tty && a.interactive && !stdio::stdin_is_tty() {
        return Err(ExitStatus {
            code: 1,
            message: Some("the input device is not a TTY".into()),
        }
        .into());
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)?;
        env.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    env.extend(a.env.iter().cloned());
    let console = if a.tty && !a.detach {
        stdio::terminal_size()
    } else {
        None
    };
    let attach_out = !a.detach;
    let mut body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
    });
    if let Some((h, w)) = console {
        body["ConsoleSize"] = json!([h, w]);
    }
    for (k, v) in [
        ("AttachStdin", json!(a.interactive && !a.detach)),
        ("AttachStderr", json!(attach_out)),
        ("AttachStdout", json!(attach_out)),
        ("Detach", json!(a.detach)),
        (
            "DetachKeys",
            json!(a.detach_keys.clone().unwrap_or_default()),
        ),
        (
            "Env",
            if env.is_empty() {
                Value::Null
            } else {
                json!(env)
            },
        ),
        ("WorkingDir", json!(a.workdir.clone().unwrap_or_default())),
        ("Cmd", json!(cmd)),
    ] {
        body[k] = v;
    }
    let exec_id = client.exec_create(&container, &body).await?.id;

    if a.detach {
        client
            .exec_start_detached(&exec_id, &json!({"Detach": true, "Tty": a.tty}))
            .await?;
        return Ok(0);
    }
    let mut start = json!({"Detach": false, "Tty": a.tty});
    if let Some((h, w)) = console {
        start["ConsoleSize"] = json!([h, w]);
    }
    let conn = client.exec_start_attached(&exec_id, &start).await?;
    let raw = if a.tty && a.interactive {
        RawTerminal::enable()
    } else {
        None
    };
    let resize = if a.tty {
        super::run::resize_exec(client, &exec_id).await
    } else {
        None
    };
    let keys = stdio::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let end = stdio::pump(conn, a.tty, a.interactive, keys).await?;
    drop(raw);
    if let Some(t) = resize {
        t.abort();
    }
    if end == stdio::StreamEnd::Detached {
        return Ok(0);
    }
    let status = client.exec_inspect(&exec_id).await?;
    Ok(status.exit_code.unwrap_or(0) as i32)
}
