//! `ADD <url>`: a plain HTTP/1.1 GET into a file, following up to ten redirects. The
//! Last-Modified header becomes the file's mtime, as Docker does.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HOST, LAST_MODIFIED, LOCATION, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

const MAX_REDIRECTS: usize = 10;

/// Downloads `url` to `dest`; returns Last-Modified as Unix seconds.
pub async fn http_get(url: &str, dest: &Path) -> Result<Option<u64>, String> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "ADD {url}: only http:// URLs can be downloaded by berth's builder"
            ));
        }
        let host = uri.host().ok_or_else(|| format!("no host in {url}"))?;
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("failed to GET {url}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("failed to GET {url}: {e}"))?;
        tokio::spawn(conn);
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let req = Request::get(path)
            .header(HOST, authority)
            .header(USER_AGENT, "berth-builder")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("failed to GET {url}: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("failed to GET {url}: redirect without a Location"))?;
            url = absolute(&uri, loc);
            continue;
        }
        if !status.is_success() {
            return Err(format!("failed to GET {url} with status {status}"));
        }
        let mtime = resp
            .headers()
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
            .map(|t| t.timestamp().max(0) as u64);
        let mut body = resp.into_body();
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("failed to GET {url}: {e}"))?;
            if let Some(data) = frame.data_ref() {
                f.write_all(data).await.map_err(|e| e.to_string())?;
            }
        }
        f.flush().await.map_err(|e| e.to_string())?;
        return Ok(mtime);
    }
    Err(format!("failed to GET {url}: too many redirects"))
}

fn absolute(base: &Uri, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let auth = base.authority().map(|a| a.as_str()).unwrap_or("");
    if loc.starts_with('/') {
        format!("http://{auth}{loc}")
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("http://{auth}{dir}/{loc}")
    }
}
