//! Several containers' logs on one stdout, each line prefixed `name  | ` (coloured in a
//! terminal), as `compose logs` and attached `compose up` print them.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use berth_api::demux::StdStream;
use berth_api::{Client, Query};
use tokio::sync::mpsc;

/// One container to follow.
#[derive(Clone, Debug)]
pub struct Target {
    pub id: String,
    /// The prefix: `web-1`, or the `container_name`.
    pub name: String,
    pub tty: bool,
}

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    pub tail: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub no_prefix: bool,
    pub no_color: bool,
}

/// Compose's colour cycle for prefixes.
const COLORS: [&str; 12] = [
    "36", "33", "32", "35", "34", "96", "93", "92", "95", "94", "31", "91",
];

/// Writes prefixed lines; shared by every container's task.
pub struct Printer {
    width: usize,
    color: bool,
    prefix: bool,
}

impl Printer {
    pub fn new(names: &[String], o: &LogOptions) -> Arc<Self> {
        Arc::new(Self {
            width: names.iter().map(String::len).max().unwrap_or(0),
            color: !o.no_color && std::io::stdout().is_terminal(),
            prefix: !o.no_prefix,
        })
    }

    fn paint(&self, index: usize, s: &str) -> String {
        if self.color {
            format!("\x1b[{}m{s}\x1b[0m", COLORS[index % COLORS.len()])
        } else {
            s.to_string()
        }
    }

    pub fn line(&self, index: usize, name: &str, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = if self.prefix {
            let p = self.paint(index, &format!("{name:<w$} | ", w = self.width));
            writeln!(out, "{p}{line}")
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }

    /// A message about a container (`web-1 exited with code 0`), coloured like its prefix.
    pub fn notice(&self, index: usize, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.paint(index, text));
        let _ = out.flush();
    }
}

/// The short prefix of a container: `service-n` for compose's own names.
pub fn display_name(project: &str, service: &str, name: &str) -> String {
    name.strip_prefix(&format!("{project}-"))
        .filter(|rest| {
            rest.strip_prefix(&format!("{service}-"))
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(String::from)
        .unwrap_or_else(|| name.to_string())
}

/// Follow (or dump) one container's log; sends `index` on `done` when the stream ends.
pub fn spawn(
    client: &Client,
    index: usize,
    t: Target,
    o: &LogOptions,
    printer: Arc<Printer>,
    done: mpsc::UnboundedSender<usize>,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let o = o.clone();
    tokio::spawn(async move {
        if let Err(e) = stream(&client, index, &t, &o, &printer).await {
            printer.notice(index, &format!("{}: {e}", t.name));
        }
        let _ = done.send(index);
    })
}

async fn stream(
    client: &Client,
    index: usize,
    t: &Target,
    o: &LogOptions,
    printer: &Printer,
) -> anyhow::Result<()> {
    let q = Query::new()
        .set("stdout", "1")
        .set("stderr", "1")
        .flag("follow", o.follow)
        .flag("timestamps", o.timestamps)
        .opt("tail", o.tail.as_deref())
        .opt("since", o.since.as_deref())
        .opt("until", o.until.as_deref());
    let resp = client.container_logs(&t.id, q).await?;
    // Lines are split per stream so that stdout and stderr never mix inside one line.
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut emit = |which: usize, data: &[u8]| {
        let buf = &mut bufs[which];
        buf.extend_from_slice(data);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            printer.line(index, &t.name, text.trim_end_matches('\r'));
        }
    };
    if t.tty || resp.is_raw() {
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await? {
            emit(0, &chunk);
        }
    } else {
        let mut frames = resp.frames();
        while let Some((kind, data)) = frames.next().await? {
            emit(usize::from(kind == StdStream::Stderr), &data);
        }
    }
    for buf in bufs.iter().filter(|b| !b.is_empty()) {
        printer.line(index, &t.name, &String::from_utf8_lossy(buf));
    }
    Ok(())
}
