//! `docker cp` and `docker export`: tar streams in and out of a container's rootfs.

use crate::container::Container;
use crate::error::{ApiError, ApiResult};
use crate::routes::images::query_pairs;
use crate::state::Shared;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::TryStreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

/// Run `f` with the container's rootfs mounted, mounting it just for this if it is stopped.
fn with_rootfs<T>(
    d: &Shared,
    id: &str,
    f: impl FnOnce(&std::path::Path) -> ApiResult<T>,
) -> ApiResult<T> {
    let snap = d.images.snapshots().container(id)?;
    let was_mounted = snap.is_mounted();
    if !was_mounted {
        snap.mount()?;
    }
    let res = f(&snap.merged);
    if !was_mounted {
        let _ = snap.unmount();
    }
    res
}

/// Files the daemon bind-mounts into every container live in the container's own dir, not
/// in its rootfs; `docker cp` must see the container's view.
fn managed_file(d: &Shared, id: &str, path: &str) -> Option<(PathBuf, String)> {
    let name = match path.trim_end_matches('/') {
        "/etc/hostname" => "hostname",
        "/etc/hosts" => "hosts",
        "/etc/resolv.conf" => "resolv.conf",
        _ => return None,
    };
    Some((d.paths.container_dir(id), format!("/{name}")))
}

/// `with_rootfs`, or the container's own dir for the files it manages.
fn with_view<T>(
    d: &Shared,
    id: &str,
    path: &str,
    f: impl FnOnce(&std::path::Path, &str) -> ApiResult<T>,
) -> ApiResult<T> {
    match managed_file(d, id, path) {
        Some((root, p)) => f(&root, &p),
        None => with_rootfs(d, id, |root| f(root, path)),
    }
}

fn stat_header(stat: &berth_image::layer::PathStat) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(stat).unwrap_or_default())
}

fn not_found(path: &str, c: &Container) -> ApiError {
    ApiError::not_found(format!(
        "Could not find the file {path} in container {}",
        c.name()
    ))
}

pub async fn archive(
    State(d): State<Shared>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let pairs = query_pairs(req.uri().query());
    let path = pairs
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad_request("path is required"));
    }
    let method = req.method().clone();
    let _op = c.op_lock.lock().await;
    match method {
        Method::HEAD => {
            let d2 = d.clone();
            let (cid, p) = (c.id.clone(), path.clone());
            let stat = tokio::task::spawn_blocking(move || {
                with_view(&d2, &cid, &p, |root, p| {
                    Ok(berth_image::layer::stat_path(root, p)?)
                })
            })
            .await?
            .map_err(|e| {
                if e.status == StatusCode::INTERNAL_SERVER_ERROR
                    || e.status == StatusCode::NOT_FOUND
                {
                    not_found(&path, &c)
                } else {
                    e
                }
            })?;
            Ok(Response::builder()
                .header("X-Docker-Container-Path-Stat", stat_header(&stat))
                .body(Body::empty())
                .unwrap_or_default())
        }
        Method::GET => get_archive(d.clone(), c.clone(), path).await,
        Method::PUT => {
            let reader = SyncIoBridge::new(StreamReader::new(
                req.into_body()
                    .into_data_stream()
                    .map_err(std::io::Error::other),
            ));
            let d2 = d.clone();
            let cid = c.id.clone();
            tokio::task::spawn_blocking(move || {
                with_rootfs(&d2, &cid, |root| {
                    berth_image::layer::stat_path(root, &path).map_err(|_| {
                        ApiError::not_found(format!(
                            "Could not find the file {path} in container {cid}"
                        ))
                    })?;
                    berth_image::layer::unpack_into_root(reader, root, &path)?;
                    Ok(())
                })
            })
            .await??;
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(ApiError::bad_request("unsupported method")),
    }
}

async fn get_archive(d: Shared, c: Arc<Container>, path: String) -> ApiResult<Response> {
    // Stat first so a missing path is a 404 and not a broken stream.
    let d2 = d.clone();
    let (cid, p) = (c.id.clone(), path.clone());
    let stat = tokio::task::spawn_blocking(move || {
        with_view(&d2, &cid, &p, |root, p| {
            Ok(berth_image::layer::stat_path(root, p)?)
        })
    })
    .await?
    .map_err(|_| not_found(&path, &c))?;
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    let cid = c.id.clone();
    tokio::task::spawn_blocking(move || {
        let w = SyncIoBridge::new(writer);
        let _ = with_view(&d, &cid, &path, |root, p| {
            Ok(berth_image::layer::tar_path(root, p, w)?)
        });
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header("X-Docker-Container-Path-Stat", stat_header(&stat))
        .body(Body::from_stream(ReaderStream::new(reader)))
        .unwrap_or_default())
}

pub async fn export(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    let cid = c.id.clone();
    tokio::task::spawn_blocking(move || {
        let w = SyncIoBridge::new(writer);
        if let Err(e) = with_rootfs(&d, &cid, |root: &std::path::Path| {
            Ok(berth_image::layer::write_rootfs_tar(
                &PathBuf::from(root),
                w,
            )?)
        }) {
            tracing::warn!("export of {cid} failed: {e}");
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(ReaderStream::new(reader)))
        .unwrap_or_default())
}
