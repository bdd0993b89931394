//! The daemon's JSON-message streams (pull, push, load, import, build progress): a sequence
//! of JSON objects, usually one per line, split across HTTP chunks at arbitrary points.

use serde::{Deserialize, Serialize};

/// One progress message, as docker's `jsonmessage.JSONMessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

impl JsonMessage {
    /// The error this message carries, if any (`errorDetail.message` wins, as in docker).
    pub fn error_message(&self) -> Option<&str> {
        self.error_detail
            .as_ref()
            .and_then(|d| d.message.as_deref())
            .or(self.error.as_deref())
    }
}

/// Buffers bytes and yields each complete JSON value as soon as it has arrived: progress
/// messages, events, stats documents.
#[derive(Debug)]
pub struct JsonDecoder<T> {
    buf: Vec<u8>,
    _values: std::marker::PhantomData<fn() -> T>,
}

/// The decoder of docker's progress streams.
pub type JsonMessageDecoder = JsonDecoder<JsonMessage>;

impl<T> Default for JsonDecoder<T> {
    fn default() -> Self {
        JsonDecoder {
            buf: Vec::new(),
            _values: std::marker::PhantomData,
        }
    }
}

impl<T: serde::de::DeserializeOwned> JsonDecoder<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns every value completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<T>, serde_json::Error> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<T>();
            loop {
                match iter.next() {
                    Some(Ok(msg)) => {
                        out.push(msg);
                        consumed = iter.byte_offset();
                    }
                    // A value cut off mid-chunk: wait for the rest.
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(e),
                    None => {
                        consumed = iter.byte_offset();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }

    /// True when bytes of an unfinished value are still buffered (ignoring whitespace).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_chunk_boundaries() {
        let mut d = JsonMessageDecoder::new();
        let a = d
            .push(br#"{"status":"Pulling fs layer","id":"9ad6"}"#)
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id.as_deref(), Some("9ad6"));
        assert!(d.push(b"\r\n{\"stream\":\"hel").unwrap().is_empty());
        assert!(d.has_partial());
        let b = d
            .push(b"lo\\n\"}\n{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\n")
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].stream.as_deref(), Some("hello\n"));
        assert_eq!(b[1].error_message(), Some("boom"));
        assert!(!d.has_partial());
    }

    #[test]
    fn rejects_garbage() {
        let mut d = JsonMessageDecoder::new();
        assert!(d.push(b"not json").is_err());
    }
}
