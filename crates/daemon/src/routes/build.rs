//! `POST /build`: the classic builder's protocol. The body is the context tar; the answer is
//! a JSON message stream (`{"stream": "Step 1/5 : FROM busybox\n"}` …, `{"aux": {"ID": …}}`,
//! `Successfully built`/`tagged`), errors as `{"errorDetail": …, "error": …}`.

use crate::builder::DaemonExecutor;
use crate::error::{ApiError, ApiResult};
use crate::query::parse_bool;
use crate::routes::images::query_pairs;
use crate::state::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use berth_build::context::{self, ContextError, ContextLock, ContextStore};
use berth_build::{executor, instructions, parser};
use serde_json::{json, Value};

fn first(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn json_map(raw: Option<String>) -> ApiResult<Vec<(String, String)>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(&raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

fn line(v: Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

pub async fn build(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    let tags: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "t")
        .map(|(_, v)| v.clone())
        .collect();
    let dockerfile = first(&pairs, "dockerfile")
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "Dockerfile".into());
    let quiet = parse_bool(first(&pairs, "q").as_deref());
    let mut opts = executor::Options {
        target: first(&pairs, "target").filter(|t| !t.is_empty()),
        build_args: json_map(first(&pairs, "buildargs"))?,
        labels: json_map(first(&pairs, "labels"))?,
        no_cache: parse_bool(first(&pairs, "nocache").as_deref()),
        context_digests: Default::default(),
    };
    let network = first(&pairs, "networkmode").filter(|n| !n.is_empty() && n != "default");
    let always_pull = parse_bool(first(&pairs, "pull").as_deref());
    for t in &tags {
        berth_image::Reference::parse_normalized(t)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    }
    let tmp = d
        .paths
        .data_root
        .join("tmp")
        .join(format!("build-{:016x}", rand::random::<u64>()));
    // berth's own CLI sends only what changed of a context the daemon keeps (`berthcontext`);
    // everyone else sends the whole context as a tar.
    let incremental = first(&pairs, "berthcontext").filter(|k| !k.is_empty());
    let received = match incremental {
        Some(key) => receive_incremental(&d, &key, req.into_body()).await?,
        None => receive_tar(&tmp, req.into_body()).await?,
    };
    let mut received = received;
    opts.context_digests = std::sync::Arc::new(std::mem::take(&mut received.digests));
    let ctx = received.dir.clone();
    let src = match received.dockerfile.clone() {
        Some(s) => Ok(s),
        None => {
            // The Dockerfile, inside the context only.
            let df_path = berth_build::dockerignore::clean(&format!("/{dockerfile}"));
            // Resolved inside the context: a Dockerfile symlink cannot point at a host file.
            let found = berth_build::copy::resolve_in_root(&ctx, &df_path)
                .ok()
                .flatten();
            match found.map(std::fs::read_to_string) {
                Some(Ok(s)) => Ok(s),
                _ => Err(ApiError::internal(format!(
                    "Cannot locate specified Dockerfile: {dockerfile}"
                ))),
            }
        }
    };
    let src = match src {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let parsed = parser::parse(&src).and_then(|df| instructions::parse(&df).map(|b| (df, b)));
    let (df, plan) = match parsed {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ApiError::bad_request(format!(
                "dockerfile parse error on line {}: {}",
                e.line, e.message
            )));
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let rt = tokio::runtime::Handle::current();
    let d2 = d.clone();
    tokio::task::spawn_blocking(move || {
        // Executors watch `tx`: it closes when the client disconnects. One per stage that
        // builds side by side, each with its own scratch dir.
        let made = std::sync::atomic::AtomicUsize::new(0);
        let committed: std::sync::Arc<std::sync::Mutex<Vec<berth_image::Digest>>> =
            Default::default();
        let cancel = tx.clone();
        let factory = || -> Box<dyn executor::Executor + Send> {
            let k = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut exec = DaemonExecutor::new(
                d2.clone(),
                rt.clone(),
                tmp.join(format!("layers-{k}")),
                network.clone(),
                Some(cancel.clone()),
            );
            exec.always_pull = always_pull;
            exec.committed = committed.clone();
            Box::new(exec)
        };
        let send = |v: Value| {
            let _ = tx.blocking_send(line(v));
        };
        let mut out = |s: &str| {
            if !quiet {
                send(json!({"stream": s}));
            }
        };
        // Executors (and their snapshots and containers) are gone when this returns.
        let r = executor::build_parallel(&plan, &opts, &ctx, df.escape, &factory, &mut out);
        // What the build wrote is made durable in one go before anyone is told its name.
        let made = committed.lock().map(|c| c.clone()).unwrap_or_default();
        // (A failed build's earlier steps too: the cache keeps them.)
        let synced = d2.images.sync_built(&made);
        let r = r.and_then(|id| match synced {
            Ok(()) => Ok(id),
            Err(e) => Err(executor::BuildError {
                message: format!("saving the build's images: {e}"),
                code: None,
            }),
        });
        match r {
            Ok(id) => {
                // As Docker's classic builder: the aux ID, then "Successfully built".
                send(json!({"aux": {"ID": id}}));
                if quiet {
                    send(json!({"stream": format!("{id}\n")}));
                } else {
                    let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
                    send(json!({"stream": format!("Successfully built {short}\n")}));
                }
                let digest = berth_image::Digest::parse(&id);
                for t in &tags {
                    let res = match &digest {
                        // A cached rebuild usually finds its tags in place: no write.
                        Ok(dg) if has_tag(&d2, dg, t) => Ok(()),
                        Ok(dg) => d2.images.tag(dg, t).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match res {
                        Ok(()) => {
                            if !quiet {
                                let shown = match berth_image::Reference::parse_normalized(t) {
                                    Ok(r) if r.tag.is_none() => format!("{t}:latest"),
                                    _ => t.clone(),
                                };
                                send(json!({"stream": format!("Successfully tagged {shown}\n")}));
                            }
                        }
                        Err(e) => send(json!({"errorDetail": {"message": e}, "error": e})),
                    }
                }
            }
            Err(e) => {
                let mut detail = json!({"message": e.message});
                if let Some(c) = e.code {
                    detail["code"] = json!(c);
                }
                send(json!({"errorDetail": detail, "error": e.message}));
            }
        }
        // The answer ends here; the context and scratch files go after it.
        drop(cancel);
        drop(tx);
        let _ = std::fs::remove_dir_all(&tmp);
        if let Some(held) = received.lock {
            drop(held);
            contexts(&d2).prune(context::KEEP_CONTEXTS);
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// Whether `tag` already names image `id`.
fn has_tag(d: &Shared, id: &berth_image::Digest, tag: &str) -> bool {
    let Ok(r) = berth_image::Reference::parse_normalized(tag) else {
        return false;
    };
    let r = berth_image::Reference {
        tag: r.tag.clone().or_else(|| Some("latest".into())),
        ..r
    };
    d.images
        .resolve(&id.to_string())
        .is_ok_and(|rec| rec.id == *id && rec.repo_tags.contains(&r.familiar()))
}

/// The context a build reads, once received.
struct Received {
    dir: std::path::PathBuf,
    /// The Dockerfile when the client sent it beside the context (it lives outside it).
    dockerfile: Option<String>,
    /// Content digests of its files, where known (a kept context's).
    digests: std::collections::HashMap<String, String>,
    /// A kept context is held until the build ends.
    lock: Option<ContextLock>,
}

fn body_reader(body: Body) -> impl std::io::Read {
    use futures_util::StreamExt;
    let chunks = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(chunks))
}

/// The classic body: the whole context as a tar, unpacked as it arrives (gzip/zstd as the
/// docker CLI's --compress sends it) into the build's scratch dir.
async fn receive_tar(tmp: &std::path::Path, body: Body) -> ApiResult<Received> {
    let body = body_reader(body);
    let ctx = tmp.join("context");
    let ctx2 = ctx.clone();
    let unpacked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&ctx2)?;
        let body = berth_image::layer::decompress(body).map_err(std::io::Error::other)?;
        let mut a = tar::Archive::new(body);
        a.set_preserve_permissions(true);
        a.unpack(&ctx2)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(tmp);
        return Err(ApiError::bad_request(format!(
            "failed to read the build context: {e}"
        )));
    }
    Ok(Received {
        dir: ctx,
        dockerfile: None,
        digests: Default::default(),
        lock: None,
    })
}

fn contexts(d: &Shared) -> ContextStore {
    ContextStore::new(d.paths.data_root.join("build-cache").join("contexts"))
}

fn context_error(e: ContextError) -> ApiError {
    match e {
        ContextError::Invalid(_) => ApiError::bad_request(e.to_string()),
        ContextError::Stale(_) => ApiError::conflict(e.to_string()),
        ContextError::Io(_) => ApiError::internal(e.to_string()),
    }
}

/// berth's incremental body: the manifest and the changed files, applied to the kept context.
async fn receive_incremental(d: &Shared, key: &str, body: Body) -> ApiResult<Received> {
    let body = body_reader(body);
    let store = contexts(d);
    let key = key.to_string();
    tokio::task::spawn_blocking(move || -> Result<Received, ContextError> {
        let lock = store.lock(&key)?;
        let applied = lock.apply(body)?;
        Ok(Received {
            dir: lock.tree(),
            dockerfile: applied.manifest.dockerfile,
            digests: applied.digests,
            lock: Some(lock),
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(context_error)
}

/// `POST /berth/build/context?key=K`: the body is a context manifest (JSON); the answer,
/// `{"want": [paths]}`, the files the kept context lacks or has from other metadata.
pub async fn context_want(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    let key = first(&pairs, "key").unwrap_or_default();
    let body = axum::body::to_bytes(req.into_body(), 256 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let manifest: context::Manifest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid build context manifest: {e}")))?;
    let store = contexts(&d);
    let want = tokio::task::spawn_blocking(move || store.want(&key, &manifest))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(context_error)?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(line(json!({ "want": want }))))
        .unwrap_or_default())
}

/// `POST /build/prune`: removes the kept contexts no build is using and the remembered
/// file digests (`all` also empties the `RUN --mount=type=cache` dirs). The layer cache is
/// images, as with Docker's classic builder: `image prune` removes those.
pub async fn prune(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    let all = parse_bool(first(&pairs, "all").as_deref());
    let root = d.paths.data_root.join("build-cache");
    let store = contexts(&d);
    let (deleted, freed) = tokio::task::spawn_blocking(move || {
        let (mut deleted, mut freed) = store.prune(0);
        let mut dirs = vec!["files"];
        if all {
            dirs.push("mounts");
        }
        for name in dirs {
            let dir = root.join(name);
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let size = dir_size(&e.path());
                let gone = if e.path().is_dir() {
                    std::fs::remove_dir_all(e.path())
                } else {
                    std::fs::remove_file(e.path())
                };
                if gone.is_ok() {
                    freed += size;
                    if name == "mounts" {
                        deleted.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        (deleted, freed)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(line(
            json!({"CachesDeleted": deleted, "SpaceReclaimed": freed}),
        )))
        .unwrap_or_default())
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| dir_size(&e.path()))
        .sum()
}
