//! The HTTP side of a registry: one endpoint (scheme + host), its credentials, and the
//! auth handshake (anonymous, HTTP basic, bearer tokens cached per scope until expiry).
//!
//! Transport is hyper's HTTP/1 client over a fresh TCP connection per request, with TLS
//! (see `tls`) for https. Insecure registries (loopback, `--insecure-registry`) are tried
//! over https without verification first and over plain HTTP when that fails, as Docker does;
//! what worked is remembered per host for the life of the process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::error::{RegistryError, Result};
use crate::tls;

/// Registry credentials as the `X-Registry-Auth` header carries them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// A refresh token (`identitytoken`) used against the token server.
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl Credentials {
    /// Decodes an `X-Registry-Auth` header (base64url JSON; "e30=" or empty = anonymous).
    pub fn from_header(h: &str) -> Option<Credentials> {
        let h = h.trim();
        if h.is_empty() {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(h)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
            .ok()?;
        let c: Credentials = serde_json::from_slice(&raw).ok()?;
        c.is_set().then_some(c)
    }

    fn is_set(&self) -> bool {
        !self.username.is_empty()
            || !self.password.is_empty()
            || !self.identity_token.is_empty()
            || !self.registry_token.is_empty()
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// A request body that can be sent again (auth retries, redirects).
#[derive(Clone, Debug)]
pub enum ReqBody {
    Empty,
    Bytes(Bytes),
    /// A file streamed from disk (blob uploads), reporting bytes sent.
    File(PathBuf, u64, Option<SentFn>),
}

/// Told the bytes of a streamed body sent so far (every 512 KiB and at the end).
#[derive(Clone)]
pub struct SentFn(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for SentFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentFn")
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

impl ReqBody {
    async fn into_body(self) -> Result<(Body, Option<u64>)> {
        Ok(match self {
            ReqBody::Empty => (Empty::<Bytes>::new().map_err(|e| match e {}).boxed(), None),
            ReqBody::Bytes(b) => {
                let n = b.len() as u64;
                (Full::new(b).map_err(|e| match e {}).boxed(), Some(n))
            }
            ReqBody::File(p, n, sent) => {
                let f = tokio::fs::File::open(&p).await?;
                let (mut done, mut told) = (0u64, 0u64);
                let s = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).map_ok(
                    move |chunk| {
                        done += chunk.len() as u64;
                        if let Some(cb) = &sent {
                            if done - told >= 512 * 1024 || done == n {
                                told = done;
                                (cb.0)(done);
                            }
                        }
                        Frame::data(chunk)
                    },
                );
                (BodyExt::boxed(StreamBody::new(s)), Some(n))
            }
        })
    }
}

/// How an endpoint speaks TLS: where its CAs live, and whether it is insecure (certificates
/// not verified, plain HTTP as the fallback).
#[derive(Clone, Debug, Default)]
pub struct TlsPolicy {
    /// `certs.d`: `<dir>/<host[:port]>/{ca.crt,client.cert,client.key}`.
    pub certs_dir: Option<PathBuf>,
    /// Loopback or `--insecure-registry`: no verification, plain HTTP when https fails.
    pub insecure: bool,
}

/// Hosts ("host:port") found to answer https (true) or only plain HTTP (false).
fn scheme_hints() -> &'static Mutex<HashMap<String, bool>> {
    static HINTS: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    HINTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The "host:port" of a URL ("https://a:5000/v2/" → "a:5000"; "https://a/x" → "a").
fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// One registry endpoint and the state of its auth handshake.
pub struct Endpoint {
    /// "localhost:5000", "docker.io".
    pub domain: String,
    /// "https://localhost:5000" ("http://…" once an insecure registry proved plain HTTP).
    base: Mutex<String>,
    tls: Arc<TlsPolicy>,
    /// The TLS configuration for the endpoint's own host (built once).
    own_tls: OnceLock<Arc<rustls::ClientConfig>>,
    /// An insecure endpoint's scheme has been settled.
    scheme_settled: tokio::sync::OnceCell<()>,
    creds: Option<Credentials>,
    /// Bearer tokens by scope, with their expiry.
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// The registry asked for HTTP basic auth.
    basic: Arc<Mutex<bool>>,
}

#[derive(Debug)]
struct Challenge {
    scheme: String,
    params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (and `Basic realm="…"`).
fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(v) = v.strip_prefix('"') {
            match v.find('"') {
                Some(i) => (&v[..i], &v[i + 1..]),
                None => (v, ""),
            }
        } else {
            match v.find(',') {
                Some(i) => (&v[..i], &v[i..]),
                None => (v, ""),
            }
        };
        params.insert(k, val.to_string());
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The distribution error body (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}`)
/// as Docker prints it: "manifest unknown: manifest unknown".
pub fn distribution_error(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Es {
        #[serde(default)]
        errors: Vec<E>,
    }
    if let Ok(es) = serde_json::from_slice::<Es>(body) {
        if !es.errors.is_empty() {
            return es
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.code.to_ascii_lowercase().replace('_', " "),
                        e.message
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() || text.len() > 200 {
        format!(
            "unexpected status from registry: {}",
            status.canonical_reason().unwrap_or(status.as_str())
        )
    } else {
        text
    }
}

impl Endpoint {
    pub fn new(domain: &str, base: &str, creds: Option<Credentials>, tls: TlsPolicy) -> Endpoint {
        Endpoint {
            domain: domain.to_string(),
            base: Mutex::new(base.trim_end_matches('/').to_string()),
            tls: Arc::new(tls),
            own_tls: OnceLock::new(),
            scheme_settled: tokio::sync::OnceCell::new(),
            creds,
            tokens: Arc::new(Mutex::new(HashMap::new())),
            basic: Arc::new(Mutex::new(false)),
        }
    }

    /// "https://host:port" (or "http://…"), without a trailing slash.
    pub fn base(&self) -> String {
        self.base.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A copy for spawned tasks, sharing the credentials and the token cache.
    pub fn clone_for_tasks(&self) -> Endpoint {
        let settled = tokio::sync::OnceCell::new();
        if self.scheme_settled.initialized() {
            let _ = settled.set(());
        }
        Endpoint {
            domain: self.domain.clone(),
            base: Mutex::new(self.base()),
            tls: self.tls.clone(),
            own_tls: self.own_tls.clone(),
            scheme_settled: settled,
            creds: self.creds.clone(),
            tokens: self.tokens.clone(),
            basic: self.basic.clone(),
        }
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(scope)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        if let Some(c) = &self.creds {
            if !c.registry_token.is_empty() {
                return Some(format!("Bearer {}", c.registry_token));
            }
        }
        if let Some(t) = self.cached_token(scope) {
            return Some(format!("Bearer {t}"));
        }
        let basic = *self.basic.lock().unwrap_or_else(|p| p.into_inner());
        match (&self.creds, basic) {
            (Some(c), true) => Some(c.basic()),
            _ => None,
        }
    }

    /// Sends a request to `path` (relative to the endpoint, or an absolute URL), handling
    /// the auth challenge once and following redirects.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: ReqBody,
        scope: &str,
    ) -> Result<Response<Incoming>> {
        self.settle_scheme().await;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base(), path)
        };
        let mut tried_auth = false;
        loop {
            let auth = self.auth_header(scope);
            let resp = self
                .send_following(method.clone(), &url, headers, body.clone(), auth)
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED || tried_auth {
                return Ok(resp);
            }
            tried_auth = true;
            let challenge = resp
                .headers()
                .get(hyper::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            match challenge {
                Some(c) if c.scheme == "bearer" => {
                    self.fetch_token(&c, scope).await?;
                }
                Some(c) if c.scheme == "basic" && self.creds.is_some() => {
                    *self.basic.lock().unwrap_or_else(|p| p.into_inner()) = true;
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Follows up to 5 redirects; the auth header only goes to the registry's own host.
    async fn send_following(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: ReqBody,
        auth: Option<String>,
    ) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let base = self.base();
        for _ in 0..6 {
            let same_host = url.starts_with(&base);
            let a = if same_host { auth.clone() } else { None };
            let tls = self.tls_for(&url)?;
            let resp = raw_request(method.clone(), &url, headers, body.clone(), a, tls).await?;
            let redirect = matches!(
                resp.status(),
                StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
                    | StatusCode::FOUND
                    | StatusCode::MOVED_PERMANENTLY
                    | StatusCode::SEE_OTHER
            );
            if !redirect || !(method == Method::GET || method == Method::HEAD) {
                return Ok(resp);
            }
            let Some(loc) = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(resp);
            };
            url = self.absolute(loc, &url);
        }
        Err(RegistryError::Registry(format!(
            "too many redirects fetching {url}"
        )))
    }

    /// Resolves a `Location` header against the URL it came from.
    pub fn absolute(&self, loc: &str, from: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            return loc.to_string();
        }
        let origin = match from.find("://").map(|i| i + 3) {
            Some(i) => match from[i..].find('/') {
                Some(j) => &from[..i + j],
                None => from,
            },
            None => return format!("{}{loc}", self.base()),
        };
        format!("{origin}{loc}")
    }

    /// The TLS configuration for a URL: the endpoint's own (unverified when insecure) for its
    /// host, a verifying one (system roots + that host's certs.d) for any other (token
    /// servers, blob redirects). None for plain HTTP.
    fn tls_for(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>> {
        if !url.starts_with("https://") {
            return Ok(None);
        }
        let authority = authority_of(url);
        let certs_dir = self.tls.certs_dir.as_deref();
        if authority == authority_of(&self.base()) {
            if let Some(c) = self.own_tls.get() {
                return Ok(Some(c.clone()));
            }
            let c = tls::client_config(certs_dir, authority, !self.tls.insecure)?;
            return Ok(Some(self.own_tls.get_or_init(|| c).clone()));
        }
        tls::client_config(certs_dir, authority, true).map(Some)
    }

    /// An insecure registry: https (unverified) when it answers a TLS handshake, else plain
    /// HTTP. Settled once per endpoint, and remembered per host for the process.
    async fn settle_scheme(&self) {
        if !self.tls.insecure || !self.base().starts_with("https://") {
            return;
        }
        self.scheme_settled
            .get_or_init(|| async {
                let base = self.base();
                let authority = authority_of(&base).to_string();
                let hint = scheme_hints()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&authority)
                    .copied();
                let https = match hint {
                    Some(h) => h,
                    None => match self.probe_tls(&base).await {
                        Some(h) => {
                            scheme_hints()
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(authority.clone(), h);
                            h
                        }
                        // Not reachable at all: plain HTTP, whose error is then reported.
                        None => false,
                    },
                };
                if !https {
                    let http = format!("http://{}", base.trim_start_matches("https://"));
                    tracing::debug!("{authority}: no TLS, using {http}");
                    *self.base.lock().unwrap_or_else(|p| p.into_inner()) = http;
                }
            })
            .await;
    }

    /// Whether `base` completes a TLS handshake (None: the TCP connection failed).
    async fn probe_tls(&self, base: &str) -> Option<bool> {
        let url = format!("{base}/v2/");
        let cfg = self.tls_for(&url).ok().flatten()?;
        let uri: Uri = url.parse().ok()?;
        let (host, port) = host_port(&uri).ok()?;
        let tcp = dial(&host, port).await.ok()?;
        match tls::handshake(cfg, &host, tcp).await {
            Ok(_) => Some(true),
            Err(e) => {
                tracing::debug!("{base}: TLS handshake failed ({e}); trying plain HTTP");
                Some(false)
            }
        }
    }

    /// The bearer-token flow: GET realm?service=…&scope=… (with basic credentials if any).
    async fn fetch_token(&self, c: &Challenge, scope: &str) -> Result<()> {
        let realm = c
            .params
            .get("realm")
            .ok_or_else(|| RegistryError::Registry("bearer challenge without realm".into()))?;
        let mut q = Vec::new();
        if let Some(s) = c.params.get("service") {
            q.push(format!("service={}", urlencoding::encode(s)));
        }
        let wanted = if scope.is_empty() {
            c.params.get("scope").cloned().unwrap_or_default()
        } else {
            scope.to_string()
        };
        // One `scope=` per scope, as Docker sends them.
        for s in wanted.split_whitespace() {
            q.push(format!("scope={}", urlencoding::encode(s)));
        }
        if let Some(cr) = &self.creds {
            if !cr.username.is_empty() {
                q.push(format!("account={}", urlencoding::encode(&cr.username)));
            }
        }
        let url = if q.is_empty() {
            realm.clone()
        } else {
            format!(
                "{realm}{}{}",
                if realm.contains('?') { '&' } else { '?' },
                q.join("&")
            )
        };
        let auth = self
            .creds
            .as_ref()
            .filter(|c| !c.username.is_empty())
            .map(Credentials::basic);
        let tls = self.tls_for(&url)?;
        let resp = raw_request(Method::GET, &url, &[], ReqBody::Empty, auth, tls).await?;
        let status = resp.status();
        let body = read_body(resp).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized(format!(
                "unauthorized: {}",
                distribution_error(status, &body).trim_start_matches("unauthorized: ")
            )));
        }
        if !status.is_success() {
            return Err(RegistryError::Registry(format!(
                "getting a token from {realm}: {}",
                distribution_error(status, &body)
            )));
        }
        #[derive(Deserialize)]
        struct Tok {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: Tok = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Registry(format!("bad token response: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(RegistryError::Registry(
                "empty token from token server".into(),
            ));
        }
        // Docker treats a missing expiry as 60 s; renew a little early.
        let ttl = t.expires_in.unwrap_or(60).max(10) - 5;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                scope.to_string(),
                (token, Instant::now() + Duration::from_secs(ttl)),
            );
        Ok(())
    }
}

/// Reads a whole (small) response body.
pub async fn read_body(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| RegistryError::Transport(format!("reading the registry's answer: {e}")))?
        .to_bytes())
}

/// The host (without IPv6 brackets) and port of a URI (443 for https, 80 for http).
fn host_port(uri: &Uri) -> Result<(String, u16)> {
    let host = uri
        .host()
        .ok_or_else(|| RegistryError::Invalid(format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Ok((host, uri.port_u16().unwrap_or(default)))
}

/// Docker's dial timeout: a host that never answers fails after this, not the OS's minutes.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

async fn dial(host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "i/o timeout"))?
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

/// The HTTP/1 handshake over `io`, its connection driven by a spawned task.
async fn http1<T>(io: T, method: &Method, url: &str) -> Result<Sender>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| RegistryError::Transport(format!("{method} \"{url}\": {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a fresh connection (TLS with `tls` for https URLs).
async fn raw_request(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: ReqBody,
    auth: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Response<Incoming>> {
    let uri: Uri = url
        .parse()
        .map_err(|e| RegistryError::Invalid(format!("invalid registry URL {url}: {e}")))?;
    let https = match uri.scheme_str().unwrap_or("http") {
        "http" => false,
        "https" => true,
        other => {
            return Err(RegistryError::Invalid(format!(
                "unsupported scheme {other} in {url}"
            )))
        }
    };
    let (host, port) = host_port(&uri)?;
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let pq = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let stream = dial(&host, port).await.map_err(|e| {
        RegistryError::Transport(format!("{method} \"{url}\": dial tcp {authority}: {e}"))
    })?;
    let _ = stream.set_nodelay(true);
    let mut sender = match (https, tls) {
        (false, _) => http1(stream, &method, url).await?,
        (true, Some(cfg)) => {
            let s = tls::handshake(cfg, &host, stream)
                .await
                .map_err(|e| RegistryError::Transport(format!("{method} \"{url}\": {e}")))?;
            http1(s, &method, url).await?
        }
        (true, None) => {
            return Err(RegistryError::Invalid(format!(
                "{url}: no TLS configuration"
            )))
        }
    };
    let (body, len) = body.into_body().await?;
    let mut b = Request::builder()
        .method(method.clone())
        .uri(pq)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("berth/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(n) = len {
        if method != Method::GET && method != Method::HEAD {
            b = b.header(hyper::header::CONTENT_LENGTH, n);
        }
    }
    if let Some(a) = auth {
        b = b.header(hyper::header::AUTHORIZATION, a);
    }
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    let req = b
        .body(body)
        .map_err(|e| RegistryError::Invalid(format!("building a request: {e}")))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| RegistryError::Transport(format!("{method} \"{url}\": {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:1/token");
        assert_eq!(c.params["service"], "reg");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn formats_distribution_errors() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            distribution_error(StatusCode::NOT_FOUND, b),
            "manifest unknown: manifest unknown"
        );
    }

    #[test]
    fn decodes_registry_auth_header() {
        assert!(Credentials::from_header("e30=").is_none());
        let h = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"me","password":"pw","serveraddress":"x"}"#);
        let c = Credentials::from_header(&h).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "pw"));
    }
}
