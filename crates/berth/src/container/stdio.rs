//! Pumping a hijacked attach/exec connection: container output to our stdout/stderr
//! (demultiplexed unless it is a TTY), our stdin to the container (with docker's detach
//! keys), raw terminal mode, and resizes on SIGWINCH.

use std::io::{Read, Write};

use anyhow::bail;
use berth_api::demux::{Demuxer, StdStream};
use berth_api::Hijacked;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How the stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The container closed its output.
    Finished,
    /// The user typed the detach keys.
    Detached,
}

/// Puts the terminal in raw mode while alive.
pub struct RawTerminal;

impl RawTerminal {
    pub fn enable() -> Option<Self> {
        crossterm::terminal::enable_raw_mode()
            .ok()
            .map(|_| RawTerminal)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// (rows, cols) of our terminal, if stdout is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    if !stdout_is_tty() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(cols, rows)| (rows, cols))
}

pub fn stdin_is_tty() -> bool {
    rustix::termios::isatty(std::io::stdin())
}

pub fn stdout_is_tty() -> bool {
    rustix::termios::isatty(std::io::stdout())
}

/// docker's `--detach-keys` syntax: "ctrl-p,ctrl-q", "a,ctrl-@".
pub fn parse_detach_keys(spec: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in spec.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_alphabetic() => b.to_ascii_lowercase() - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => bail!("invalid detach keys ({spec}) provided"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            bail!("invalid detach keys ({spec}) provided");
        }
    }
    Ok(out)
}

/// Watches stdin bytes for the detach sequence, holding back a partial match.
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Returns the bytes to forward, and whether the full sequence was seen.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// Reads our stdin on a plain thread (never blocks the runtime or its shutdown).
fn stdin_channel() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Runs the stream until the container's output ends or the user detaches.
pub async fn pump(
    conn: Hijacked,
    tty: bool,
    send_stdin: bool,
    detach_keys: Vec<u8>,
) -> anyhow::Result<StreamEnd> {
    let (mut reader, mut writer) = conn.into_split();

    let input = async move {
        if !send_stdin {
            let _ = writer.shutdown().await;
            return std::future::pending::<StreamEnd>().await;
        }
        let mut rx = stdin_channel();
        let mut matcher = DetachMatcher::new(if tty { detach_keys } else { Vec::new() });
        while let Some(chunk) = rx.recv().await {
            let (forward, detach) = matcher.feed(&chunk);
            if !forward.is_empty() && writer.write_all(&forward).await.is_err() {
                break;
            }
            if detach {
                // Leave the write side open: a half-close reads as EOF at the daemon, which
                // closes an `-i` container's stdin (a shell exits). Closing the whole
                // connection, as the process does on exit, is a detach.
                writer.forget();
                return StreamEnd::Detached;
            }
        }
        // stdin finished: half-close so the container sees EOF, keep reading its output.
        let _ = writer.shutdown().await;
        std::future::pending::<StreamEnd>().await
    };

    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut demux = Demuxer::new();
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if tty {
                stdout.write_all(&buf[..n])?;
                stdout.flush()?;
                continue;
            }
            for (kind, data) in demux.push(&buf[..n])? {
                match kind {
                    StdStream::Stderr | StdStream::SystemErr => {
                        stderr.write_all(&data)?;
                        stderr.flush()?;
                    }
                    _ => {
                        stdout.write_all(&data)?;
                        stdout.flush()?;
                    }
                }
            }
        }
        anyhow::Ok(StreamEnd::Finished)
    };

    tokio::select! {
        end = input => Ok(end),
        end = output => end,
    }
}

/// Forwards SIGWINCH as resize calls until the returned task is aborted.
pub fn watch_resize<F, Fut>(resize: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn(u16, u16) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut sig =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()?;
    Some(tokio::spawn(async move {
        while sig.recv().await.is_some() {
            if let Some((h, w)) = terminal_size() {
                resize(h, w).await;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1x").is_err());
    }

    #[test]
    fn detach_matcher_holds_partial_sequences() {
        let mut m = DetachMatcher::new(vec![16, 17]);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x11rest"), (Vec::new(), true));
        let mut none = DetachMatcher::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
