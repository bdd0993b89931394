//! Docker's multiplexed stdio stream (attach, logs, exec without a TTY): frames of an 8-byte
//! header — stream type (0 stdin, 1 stdout, 2 stderr, 3 systemerr), three zero bytes, a
//! big-endian u32 length — followed by that many payload bytes.

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdin,
    Stdout,
    Stderr,
    /// An error from the daemon itself, sent in-band.
    SystemErr,
}

impl StdStream {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => StdStream::Stdin,
            1 => StdStream::Stdout,
            2 => StdStream::Stderr,
            3 => StdStream::SystemErr,
            _ => return None,
        })
    }
}

/// A frame header named a stream type that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("bad stream type {0} in a multiplexed stream")]
pub struct BadStreamType(pub u8);

const HEADER_LEN: usize = 8;

/// Splits a byte stream into frames, however the bytes happen to be chunked.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: Vec<u8>,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the frames they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<(StdStream, Vec<u8>)>, BadStreamType> {
        self.buf.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= HEADER_LEN {
            let head = &self.buf[at..at + HEADER_LEN];
            let kind = StdStream::from_byte(head[0]).ok_or(BadStreamType(head[0]))?;
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if self.buf.len() - at - HEADER_LEN < len {
                break;
            }
            let start = at + HEADER_LEN;
            frames.push((kind, self.buf[start..start + len].to_vec()));
            at = start + len;
        }
        self.buf.drain(..at);
        Ok(frames)
    }
}

/// Encodes one frame (used by tests and by anything that must speak the format).
pub fn encode_frame(kind: StdStream, payload: &[u8]) -> Vec<u8> {
    let code = match kind {
        StdStream::Stdin => 0,
        StdStream::Stdout => 1,
        StdStream::Stderr => 2,
        StdStream::SystemErr => 3,
    };
    let mut out = vec![code, 0, 0, 0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_chunks() {
        let mut bytes = encode_frame(StdStream::Stdout, b"hello\n");
        bytes.extend(encode_frame(StdStream::Stderr, b"err\n"));
        let mut d = Demuxer::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(3) {
            got.extend(d.push(piece).unwrap());
        }
        assert_eq!(
            got,
            vec![
                (StdStream::Stdout, b"hello\n".to_vec()),
                (StdStream::Stderr, b"err\n".to_vec())
            ]
        );
    }

    #[test]
    fn empty_frames_and_bad_types() {
        let mut d = Demuxer::new();
        assert_eq!(
            d.push(&encode_frame(StdStream::Stdout, b"")).unwrap(),
            vec![(StdStream::Stdout, vec![])]
        );
        assert!(d.push(&[9, 0, 0, 0, 0, 0, 0, 1, b'x']).is_err());
    }
}
