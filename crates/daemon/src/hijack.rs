//! HTTP upgrade ("hijack") for attach and exec: a 101 answer, then a raw duplex stream.

use crate::shim::ShimStream;
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Take the upgrade handle out of a request, if the client asked for one.
pub fn take_upgrade(req: &mut Request<Body>) -> Option<OnUpgrade> {
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.to_str().unwrap_or("").eq_ignore_ascii_case("tcp"));
    if !wants {
        return None;
    }
    req.extensions_mut().remove::<OnUpgrade>()
}

/// The 101 answer moby writes for attach/exec.
pub fn switching(tty: bool) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type(tty))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Pump bytes between the hijacked client connection and the shim stream until the shim's
/// output ends. The client's half-close is passed on (it closes the container's stdin).
pub async fn bridge(on_upgrade: OnUpgrade, shim: ShimStream, stdin: bool) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let client = TokioIo::new(upgraded);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(shim);
    let input = tokio::spawn(async move {
        if stdin {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        } else {
            // Drain whatever the client sends so its half-close is seen, but pass nothing on.
            let mut sink = [0u8; 512];
            while let Ok(n) = cr.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        let _ = sw.shutdown().await;
    });
    let _ = tokio::io::copy(&mut sr, &mut cw).await;
    let _ = cw.shutdown().await;
    input.abort();
}

/// For a client that did not ask to upgrade: the output as a plain streamed body.
pub fn streamed_body(shim: ShimStream) -> Body {
    Body::from_stream(tokio_util::io::ReaderStream::new(shim))
}
