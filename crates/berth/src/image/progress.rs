//! Printing a JSON-message stream (pull, push, load, import) as docker's CLI does when its
//! output is not a terminal: one line per status change, progress bars left out.

use std::io::Write;

use berth_api::JsonMessages;

/// Prints messages to stdout (or stderr when `to_stderr`); returns the `aux` values seen
/// (push digests, build ids) and fails on the first error message.
pub async fn display(
    mut messages: JsonMessages,
    to_stderr: bool,
    quiet: bool,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut aux = Vec::new();
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
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
            // Byte-level progress is only drawn on a terminal.
            if m.progress_detail
                .as_ref()
                .is_some_and(|p| p.total.unwrap_or(0) > 0)
            {
                continue;
            }
            match m.id.as_deref().filter(|i| !i.is_empty()) {
                Some(id) => writeln!(out, "{id}: {status}")?,
                None => writeln!(out, "{status}")?,
            }
        }
        out.flush()?;
    }
    Ok(aux)
}
