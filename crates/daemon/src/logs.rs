//! `GET /containers/{id}/logs`: the shim's json-file log, filtered, tailed and followed.

use crate::container::Container;
use axum::body::Body;
use bytes::Bytes;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    #[serde(default, deserialize_with = "crate::query::bool_flag")]
    pub follow: bool,
    #[serde(default, deserialize_with = "crate::query::bool_flag")]
    pub stdout: bool,
    #[serde(default, deserialize_with = "crate::query::bool_flag")]
    pub stderr: bool,
    #[serde(default, deserialize_with = "crate::query::bool_flag")]
    pub timestamps: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    pub tail: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// Parse Docker's `since`/`until` (unix seconds, possibly fractional) into nanoseconds.
fn parse_ts(s: &str) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    if let Ok(f) = s.parse::<f64>() {
        return Some((f * 1e9) as i128);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(i128::from)
}

fn entry_nanos(e: &Entry) -> i128 {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(i128::from)
        .unwrap_or(0)
}

struct Filter {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    since: Option<i128>,
    until: Option<i128>,
    tty: bool,
}

impl Filter {
    /// Render one entry as the API sends it, or None if filtered out.
    fn render(&self, e: &Entry) -> Option<Bytes> {
        let is_err = e.stream == "stderr";
        if (is_err && !self.stderr) || (!is_err && !self.stdout) {
            return None;
        }
        if self.since.is_some() || self.until.is_some() {
            let t = entry_nanos(e);
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return None;
            }
        }
        let mut payload = Vec::with_capacity(e.log.len() + 40);
        if self.timestamps {
            payload.extend_from_slice(e.time.as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(e.log.as_bytes());
        if self.tty {
            return Some(Bytes::from(payload));
        }
        Some(Bytes::from(frame(if is_err { 2 } else { 1 }, &payload)))
    }
}

/// Docker's multiplexed-stream frame: [stream,0,0,0,len(be32)] + payload.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn stream(path: PathBuf, c: Arc<Container>, q: LogsQuery) -> Body {
    let filter = Filter {
        stdout: q.stdout,
        stderr: q.stderr,
        timestamps: q.timestamps,
        since: q.since.as_deref().and_then(parse_ts).filter(|s| *s > 0),
        until: q.until.as_deref().and_then(parse_ts).filter(|u| *u > 0),
        tty: c.tty(),
    };
    let tail: Option<usize> = q.tail.as_deref().and_then(|t| t.parse().ok());
    let follow = q.follow;
    crate::routes::produced_body(64, move |tx| async move {
        let lifecycle = c.lifecycle.subscribe();
        // Past entries, read in a blocking task (the file may be large).
        let path2 = path.clone();
        let past = tokio::task::spawn_blocking(move || read_past(&path2, tail)).await;
        let Ok((lines, mut offset)) = past else {
            return;
        };
        for e in &lines {
            if let Some(b) = filter.render(e) {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
        }
        if !follow {
            return;
        }
        let mut partial = Vec::new();
        loop {
            let running = lifecycle.borrow().running;
            let (entries, new_offset) = read_from(&path, offset, &mut partial);
            offset = new_offset;
            let got = !entries.is_empty();
            for e in &entries {
                if let Some(b) = filter.render(e) {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
            if !got && !running {
                return;
            }
            if !got {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if tx.is_closed() {
                return;
            }
        }
    })
}

fn read_past(path: &PathBuf, tail: Option<usize>) -> (Vec<Entry>, u64) {
    let Ok(f) = std::fs::File::open(path) else {
        return (Vec::new(), 0);
    };
    let mut lines = Vec::new();
    let mut offset = 0u64;
    let mut r = BufReader::new(f);
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !buf.ends_with('\n') {
                    break; // a line the shim is still writing
                }
                offset += n as u64;
                if let Ok(e) = serde_json::from_str::<Entry>(buf.trim_end()) {
                    lines.push(e);
                }
            }
        }
    }
    if let Some(t) = tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    (lines, offset)
}

fn read_from(path: &PathBuf, offset: u64, partial: &mut Vec<u8>) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return (out, offset);
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (out, offset);
    }
    let mut data = Vec::new();
    use std::io::Read;
    if f.read_to_end(&mut data).is_err() {
        return (out, offset);
    }
    let consumed = data.len() as u64;
    partial.extend_from_slice(&data);
    while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = partial.drain(..=pos).collect();
        if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
            out.push(e);
        }
    }
    (out, offset + consumed)
}
