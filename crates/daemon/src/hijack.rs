//! HTTP upgrade ("hijack") for attach and exec: a 101 answer, then a raw duplex stream.

use crate::shim::ShimStream;
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// What happens when the client's input ends.
pub enum OnClientEof {
    /// Nothing: the shim stream's own half-close is enough (exec streams).
    HalfClose,
    /// Ask the shim to close the container's stdin, but only on a real EOF (the client
    /// half-closed); a client that went away entirely has detached.
    CloseStdin(std::path::PathBuf),
    /// Keep the container's stdin open.
    Keep,
}

/// A duplicate of the client connection's socket, taken at accept time, so a hijacked
/// stream can tell a half-close (EOF) from a client that went away (detach). The upgraded
/// connection itself is wrapped by hyper and cannot be asked.
#[derive(Clone, Default)]
pub struct PeerSocket(pub Option<std::sync::Arc<std::os::fd::OwnedFd>>);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for PeerSocket
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        use std::os::fd::AsFd;
        PeerSocket(
            stream
                .io()
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(std::sync::Arc::new),
        )
    }
}

/// Pump bytes between the hijacked client connection and the shim stream until the shim's
/// output ends; then run `finish` (e.g. record an exec's exit code) before closing, so a
/// client that inspects right after the stream ends sees the final state.
pub async fn bridge(
    on_upgrade: OnUpgrade,
    peer: PeerSocket,
    shim: ShimStream,
    stdin: bool,
    on_eof: OnClientEof,
    finish: impl Future<Output = ()>,
) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
    let hup = move |_: &_| peer.0.as_ref().is_some_and(|fd| peer_gone(fd));
    pump(r, w, Vec::new(), shim, stdin, on_eof, finish, hup).await
}

/// True when the peer closed both directions (POLLHUP), not just its write side (POLLRDHUP).
fn peer_gone(s: &std::os::fd::OwnedFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(s, PollFlags::RDHUP)];
    match poll(
        &mut fds,
        Some(&rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    ) {
        Ok(_) => fds[0].revents().contains(PollFlags::HUP),
        Err(_) => false,
    }
}

#[allow(clippy::too_many_arguments)]
async fn pump<R, W>(
    mut cr: R,
    mut cw: W,
    prefix: Vec<u8>,
    shim: ShimStream,
    stdin: bool,
    on_eof: OnClientEof,
    finish: impl Future<Output = ()>,
    hup: impl Fn(&R) -> bool + Send + 'static,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = tokio::io::split(shim);
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = prefix;
        loop {
            if !pending.is_empty() {
                if stdin && sw.write_all(&pending).await.is_err() {
                    break;
                }
                pending.clear();
            }
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let detached = hup(&cr);
        match on_eof {
            OnClientEof::HalfClose => {
                let _ = sw.shutdown().await;
            }
            OnClientEof::CloseStdin(socket) if stdin && !detached => {
                let _ = crate::shim::call(&socket, crate::shim::Request::CloseStdin).await;
            }
            _ => {}
        }
        if detached {
            let _ = gone_tx.send(());
        }
        // Keep our half of the shim stream open: dropping it would read as EOF there.
        std::future::pending::<()>().await;
        drop(sw);
    });
    tokio::select! {
        _ = tokio::io::copy(&mut sr, &mut cw) => {}
        // The client went away (detached): stop streaming, leave the container be.
        Ok(()) = gone_rx => {}
    }
    finish.await;
    let _ = cw.shutdown().await;
    input.abort();
}

/// For a client that did not ask to upgrade: the output as a plain streamed body.
pub fn streamed_body(shim: ShimStream) -> Body {
    Body::from_stream(tokio_util::io::ReaderStream::new(shim))
}
