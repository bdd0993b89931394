//! The json-file log writer: one `{"log","stream","time"}` object per line, as Docker's
//! json-file driver writes them, so `logs --since/--tail/-f` read it the same way.

use crate::clock::now_rfc3339_nano;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A trailing piece without a newline is written on its own once it grows past this.
pub const PARTIAL_LIMIT: usize = 16 * 1024;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// Splits output into lines and appends them to the log; keeps a partial line per stream.
pub struct JsonLog<W: Write> {
    out: W,
    partial: [Vec<u8>; 2],
}

impl JsonLog<File> {
    /// Open (create, append) the log file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLog::new(file))
    }
}

impl<W: Write> JsonLog<W> {
    pub fn new(out: W) -> Self {
        JsonLog {
            out,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Add a chunk of output; writes every complete line, and a long partial one.
    pub fn write(&mut self, stream: LogStream, mut data: &[u8]) -> io::Result<()> {
        let idx = stream as usize;
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = data.split_at(nl + 1);
            data = rest;
            if self.partial[idx].is_empty() {
                self.emit(stream, line)?;
            } else {
                let mut joined = std::mem::take(&mut self.partial[idx]);
                joined.extend_from_slice(line);
                self.emit(stream, &joined)?;
            }
        }
        self.partial[idx].extend_from_slice(data);
        if self.partial[idx].len() > PARTIAL_LIMIT {
            let piece = std::mem::take(&mut self.partial[idx]);
            self.emit(stream, &piece)?;
        }
        Ok(())
    }

    /// Write the partial lines of both streams (at exit).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let piece = std::mem::take(&mut self.partial[stream as usize]);
            if !piece.is_empty() {
                self.emit(stream, &piece)?;
            }
        }
        self.out.flush()
    }

    /// One JSON line, written with a single write so concurrent readers never see half of it.
    fn emit(&mut self, stream: LogStream, piece: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(piece);
        let time = now_rfc3339_nano();
        let mut line = serde_json::to_vec(&Entry {
            log: &text,
            stream: stream.name(),
            time: &time,
        })
        .map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)
    }

    #[cfg(test)]
    pub fn inner(&self) -> &W {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entries(log: &JsonLog<Vec<u8>>) -> Vec<(String, String)> {
        String::from_utf8_lossy(log.inner())
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("json line");
                assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
                (
                    v["stream"].as_str().unwrap_or("").into(),
                    v["log"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    #[test]
    fn one_entry_per_line_and_partials_join() {
        let mut log = JsonLog::new(Vec::new());
        log.write(LogStream::Stdout, b"a\nb").expect("write");
        log.write(LogStream::Stderr, b"err\n").expect("write");
        log.write(LogStream::Stdout, b"c\nd\n").expect("write");
        log.write(LogStream::Stdout, b"tail").expect("write");
        assert_eq!(
            entries(&log),
            vec![
                ("stdout".into(), "a\n".into()),
                ("stderr".into(), "err\n".into()),
                ("stdout".into(), "bc\n".into()),
                ("stdout".into(), "d\n".into()),
            ]
        );
        log.flush_partial().expect("flush");
        assert_eq!(
            entries(&log).last(),
            Some(&("stdout".to_string(), "tail".to_string()))
        );
    }

    #[test]
    fn long_partial_is_flushed() {
        let mut log = JsonLog::new(Vec::new());
        let big = vec![b'x'; PARTIAL_LIMIT + 1];
        log.write(LogStream::Stdout, &big).expect("write");
        let e = entries(&log);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].1.len(), PARTIAL_LIMIT + 1);
        log.write(LogStream::Stdout, b"y\n").expect("write");
        assert_eq!(entries(&log)[1].1, "y\n");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_escapes_are_json() {
        let mut log = JsonLog::new(Vec::new());
        log.write(LogStream::Stdout, b"\xff\"q\"\t\n")
            .expect("write");
        assert_eq!(entries(&log)[0].1, "\u{fffd}\"q\"\t\n");
    }
}
