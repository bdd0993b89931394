//! Printing a JSON-message stream (pull, push, load, import) as docker's CLI does: on a
//! terminal one line per layer id, redrawn in place with its progress bar; otherwise one
//! line per status change, progress bars left out.

use std::io::{IsTerminal, Write};

use berth_api::JsonMessages;

/// Prints messages to stdout (or stderr when `to_stderr`); returns the `aux` values seen
/// (push digests, build ids) and fails on the first error message.
pub async fn display(
    mut messages: JsonMessages,
    to_stderr: bool,
    quiet: bool,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut aux = Vec::new();
    let tty = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    // Ids in the order their lines were first printed (terminal mode).
    let mut lines: Vec<String> = Vec::new();
    while let Some(m) = messages.next().await? {
        if let Some(err) = m.error_message() {
            anyhow::bail!("{err}");
        }
        if let Some(a) = m.aux.clone() {
            aux.push(a);
            continue;
        }
        if quiet {
            continue;
        }
        if let Some(s) = &m.stream {
            write!(out, "{s}")?;
        } else if let Some(status) = &m.status {
            let has_bar = m
                .progress_detail
                .as_ref()
                .is_some_and(|p| p.total.unwrap_or(0) > 0);
            let id = m.id.as_deref().filter(|i| !i.is_empty());
            if tty {
                let text = match (id, m.progress.as_deref().filter(|_| has_bar)) {
                    (Some(id), Some(bar)) => format!("{id}: {status} {bar}"),
                    (Some(id), None) => format!("{id}: {status}"),
                    (None, _) => status.clone(),
                };
                match id.and_then(|id| lines.iter().position(|l| l == id)) {
                    // Redraw the layer's own line in place.
                    Some(i) => {
                        let up = lines.len() - i;
                        write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
                    }
                    None => {
                        writeln!(out, "{text}")?;
                        // "latest: Pulling from …" keeps its own line; layer ids are redrawn.
                        if let Some(id) = id {
                            lines.push(id.to_string());
                        } else {
                            lines.clear();
                        }
                    }
                }
            } else {
                // Byte-level progress is only drawn on a terminal.
                if has_bar {
                    continue;
                }
                match id {
                    Some(id) => writeln!(out, "{id}: {status}")?,
                    None => writeln!(out, "{status}")?,
                }
            }
        }
        out.flush()?;
    }
    Ok(aux)
}
