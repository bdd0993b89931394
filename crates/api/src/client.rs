//! The transport: HTTP/1.1 over the daemon's unix socket, one connection per request (as
//! docker's CLI effectively does), typed errors from the daemon's `{"message"}` bodies, and
//! the streaming shapes the API uses (chunked bodies, JSON-message streams, hijacked
//! connections for attach/exec).

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::UnixStream;

use crate::demux::{Demuxer, StdStream};
use crate::error::{ApiError, Result};
use crate::jsonstream::{JsonDecoder, JsonMessage};

/// The API version berth's client speaks (no negotiation: berth's daemon serves it).
pub const API_VERSION: &str = "1.50";
/// The default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// What a request carries.
pub enum Body {
    Empty,
    Json(Vec<u8>),
    /// Raw bytes with their content type (e.g. a tar archive read into memory).
    Bytes(Bytes, &'static str),
    /// A streamed upload, sent chunked, with its content type.
    Reader(Box<dyn AsyncRead + Send + Unpin + 'static>, &'static str),
}

impl Body {
    /// Serialises `value` as the JSON body.
    pub fn json(value: &impl Serialize) -> Result<Self> {
        Ok(Body::Json(serde_json::to_vec(value)?))
    }

    fn into_parts(self) -> (ReqBody, Option<&'static str>) {
        match self {
            Body::Empty => (Empty::new().map_err(never).boxed_unsync(), None),
            Body::Json(v) => (
                Full::new(Bytes::from(v)).map_err(never).boxed_unsync(),
                Some("application/json"),
            ),
            Body::Bytes(b, ct) => (Full::new(b).map_err(never).boxed_unsync(), Some(ct)),
            Body::Reader(reader, ct) => {
                let chunks = futures_util::stream::unfold(reader, |mut reader| async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    match reader.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(Frame::data(Bytes::from(buf))), reader))
                        }
                        Err(e) => Some((Err(e), reader)),
                    }
                });
                (BodyExt::boxed_unsync(StreamBody::new(chunks)), Some(ct))
            }
        }
    }
}

fn never(e: std::convert::Infallible) -> std::io::Error {
    match e {}
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// Parses `unix:///path/to.sock` (or a bare absolute path). Connects lazily.
    pub fn new(host: &str) -> Result<Self> {
        let path = match host.strip_prefix("unix://") {
            Some(p) => p,
            None if host.starts_with('/') => host,
            None => return Err(ApiError::InvalidHost(host.to_string())),
        };
        if path.is_empty() {
            return Err(ApiError::InvalidHost(host.to_string()));
        }
        Ok(Self {
            socket: PathBuf::from(path),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    async fn connect(&self) -> Result<http1::SendRequest<ReqBody>> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ApiError::Connect {
                    socket: self.socket.display().to_string(),
                    source,
                })?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends on its own when the response (or upgraded stream) is done.
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Request<ReqBody>> {
        let uri = if path.starts_with("/_ping") {
            path.to_string()
        } else {
            format!("/v{API_VERSION}{path}")
        };
        let (body, content_type) = body.into_parts();
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "api.moby.localhost")
            .header("User-Agent", USER_AGENT);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Ok(req.body(body)?)
    }

    /// Sends a request; a daemon error status becomes `ApiError::Status`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Response<Incoming>> {
        let req = self.build(method, path, body, headers)?;
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        check_status(resp).await
    }

    /// GET, decoding the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send(Method::GET, path, Body::Empty, &[]).await?;
        decode_json(resp).await
    }

    /// POST with a body, decoding the JSON answer.
    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, body: Body) -> Result<T> {
        let resp = self.send(Method::POST, path, body, &[]).await?;
        decode_json(resp).await
    }

    /// A request whose answer body does not matter (204s, empty 200s).
    pub async fn call(&self, method: Method, path: &str, body: Body) -> Result<()> {
        let resp = self.send(method, path, body, &[]).await?;
        resp.into_body().collect().await?;
        Ok(())
    }

    /// A request whose answer is streamed back.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<ResponseStream> {
        let resp = self.send(method, path, body, headers).await?;
        let tty = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("vnd.docker.raw-stream"));
        Ok(ResponseStream {
            body: resp.into_body(),
            raw_stream: tty,
        })
    }

    /// `HEAD /_ping` — is the daemon there?
    pub async fn ping(&self) -> Result<()> {
        self.call(Method::HEAD, "/_ping", Body::Empty).await
    }

    /// POSTs with `Connection: Upgrade` / `Upgrade: tcp` and takes over the connection
    /// once the daemon answers 101 (attach, exec start).
    pub async fn upgrade(&self, path: &str, body: Body) -> Result<Hijacked> {
        let plain = matches!(body, Body::Empty);
        let mut req = self.build(
            Method::POST,
            path,
            body,
            &[("Connection", "Upgrade"), ("Upgrade", "tcp")],
        )?;
        if plain {
            req.headers_mut().insert(
                "Content-Type",
                hyper::header::HeaderValue::from_static("text/plain"),
            );
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status().as_u16();
            check_status(resp).await?;
            return Err(ApiError::NoUpgrade(status));
        }
        let upgraded = hyper::upgrade::on(resp).await?;
        match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => Ok(Hijacked {
                stream: parts.io.into_inner(),
                buffered: parts.read_buf,
            }),
            Err(_) => Err(ApiError::NoUpgrade(101)),
        }
    }
}

async fn check_status(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        return Ok(resp);
    }
    let bytes = resp.into_body().collect().await?.to_bytes();
    Err(ApiError::Status {
        status: status.as_u16(),
        message: error_message(status, &bytes),
    })
}

/// The daemon's `{"message": "..."}`, or the body text, or the status's reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    }
}

pub(crate) async fn decode_json<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let bytes = resp.into_body().collect().await?.to_bytes();
    // An empty body decodes as JSON null so `()`/Option targets work.
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"null"
    } else {
        &bytes
    };
    Ok(serde_json::from_slice(bytes)?)
}

/// A streamed response body.
pub struct ResponseStream {
    body: Incoming,
    raw_stream: bool,
}

impl ResponseStream {
    /// True when the daemon said the body is a raw (TTY) stream rather than multiplexed.
    pub fn is_raw(&self) -> bool {
        self.raw_stream
    }

    /// The next chunk of data, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
        Ok(None)
    }

    /// Reads the whole remaining body.
    pub async fn collect(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Reads the body as JSON progress messages.
    pub fn json_messages(self) -> JsonMessages {
        self.json_values()
    }

    /// Reads the body as a sequence of JSON values (events, stats documents, …).
    pub fn json_values<T: DeserializeOwned>(self) -> JsonValues<T> {
        JsonValues {
            stream: self,
            decoder: JsonDecoder::new(),
            pending: Default::default(),
        }
    }

    /// Reads the body as multiplexed stdio frames.
    pub fn frames(self) -> Frames {
        Frames {
            stream: self,
            demux: Demuxer::new(),
            pending: Default::default(),
        }
    }
}

/// A reader of a stream of JSON values.
pub struct JsonValues<T> {
    stream: ResponseStream,
    decoder: JsonDecoder<T>,
    pending: std::collections::VecDeque<T>,
}

/// A JSON progress-message stream reader.
pub type JsonMessages = JsonValues<JsonMessage>;

impl<T: DeserializeOwned> JsonValues<T> {
    pub async fn next(&mut self) -> Result<Option<T>> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(Some(m));
            }
            match self.stream.chunk().await? {
                Some(c) => self.pending.extend(self.decoder.push(&c)?),
                None => return Ok(None),
            }
        }
    }
}

/// A multiplexed-stream reader.
pub struct Frames {
    stream: ResponseStream,
    demux: Demuxer,
    pending: std::collections::VecDeque<(StdStream, Vec<u8>)>,
}

impl Frames {
    pub async fn next(&mut self) -> Result<Option<(StdStream, Vec<u8>)>> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Ok(Some(f));
            }
            match self.stream.chunk().await? {
                Some(c) => {
                    let frames = self.demux.push(&c).map_err(|e| {
                        ApiError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                    })?;
                    self.pending.extend(frames);
                }
                None => return Ok(None),
            }
        }
    }
}

/// A hijacked connection: after the 101 the socket is a raw bidirectional byte stream.
pub struct Hijacked {
    pub stream: UnixStream,
    /// Bytes the HTTP layer had already read past the response head.
    pub buffered: Bytes,
}

impl Hijacked {
    /// Splits into a reader (buffered bytes first) and a writer; shutting the writer
    /// down half-closes the socket, which tells the daemon stdin is finished.
    pub fn into_split(self) -> (HijackReader, tokio::net::unix::OwnedWriteHalf) {
        let (r, w) = self.stream.into_split();
        (
            HijackReader {
                buffered: self.buffered,
                inner: r,
            },
            w,
        )
    }
}

/// The read side of a hijacked connection.
pub struct HijackReader {
    buffered: Bytes,
    inner: tokio::net::unix::OwnedReadHalf,
}

impl AsyncRead for HijackReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            let head = self.buffered.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            Client::new("unix:///run/berth/berth.sock")
                .unwrap()
                .socket(),
            std::path::Path::new("/run/berth/berth.sock")
        );
        assert_eq!(
            Client::new("/tmp/x.sock").unwrap().socket(),
            std::path::Path::new("/tmp/x.sock")
        );
        assert!(matches!(
            Client::new("tcp://1.2.3.4:2375"),
            Err(ApiError::InvalidHost(_))
        ));
        assert!(matches!(
            Client::new("unix://"),
            Err(ApiError::InvalidHost(_))
        ));
    }

    #[test]
    fn connect_error_reads_like_docker() {
        let e = ApiError::Connect {
            socket: "/run/berth/berth.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            e.to_string(),
            "Cannot connect to the berth daemon at unix:///run/berth/berth.sock. Is the daemon running?"
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(
                StatusCode::NOT_FOUND,
                br#"{"message":"No such container: x"}"#
            ),
            "No such container: x"
        );
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, b"plain text\n"),
            "plain text"
        );
        assert_eq!(error_message(StatusCode::NOT_FOUND, b""), "Not Found");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_fails_with_typed_error() {
        let dir = std::env::temp_dir().join(format!("berth-api-test-{}", std::process::id()));
        let c = Client::new(&format!("unix://{}/none.sock", dir.display())).unwrap();
        assert!(matches!(c.ping().await, Err(ApiError::Connect { .. })));
    }
}
