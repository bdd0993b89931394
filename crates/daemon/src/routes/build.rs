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
    let opts = executor::Options {
        target: first(&pairs, "target").filter(|t| !t.is_empty()),
        build_args: json_map(first(&pairs, "buildargs"))?,
        labels: json_map(first(&pairs, "labels"))?,
        no_cache: parse_bool(first(&pairs, "nocache").as_deref()),
    };
    let network = first(&pairs, "networkmode").filter(|n| !n.is_empty() && n != "default");
    let always_pull = parse_bool(first(&pairs, "pull").as_deref());
    for t in &tags {
        berth_image::Reference::parse_normalized(t)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    }
    // The context is unpacked as it arrives (gzip/zstd as the CLI's --compress sends it).
    let body = {
        use futures_util::StreamExt;
        let chunks = req
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(chunks))
    };
    let tmp = d
        .paths
        .data_root
        .join("tmp")
        .join(format!("build-{:016x}", rand::random::<u64>()));
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
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ApiError::bad_request(format!(
            "failed to read the build context: {e}"
        )));
    }
    // The Dockerfile, inside the context only.
    let df_path = berth_build::dockerignore::clean(&format!("/{dockerfile}"));
    // Resolved inside the context: a Dockerfile symlink cannot point at a host file.
    let found = berth_build::copy::resolve_in_root(&ctx, &df_path)
        .ok()
        .flatten();
    let src = match found.map(std::fs::read_to_string) {
        Some(Ok(s)) => s,
        _ => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ApiError::internal(format!(
                "Cannot locate specified Dockerfile: {dockerfile}"
            )));
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
