//! Image endpoints. Image names in paths may contain '/' and ':', so `/images/{*rest}` is
//! dispatched here by its last segment.

use crate::error::{ApiError, ApiResult};
use crate::query::{parse_bool, parse_filters};
use crate::routes::containers::parse_json;
use crate::state::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_image::{Digest, ImageRecord};
use futures_util::TryStreamExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// All `k=v` pairs of a query string, repeated keys kept (`names=a&names=b`).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                urlencoding::decode(&s.replace('+', " "))
                    .map(|c| c.into_owned())
                    .unwrap_or_else(|_| s.to_string())
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn first(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn json_stream_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default()
}

fn created_unix(img: &ImageRecord) -> i64 {
    img.created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn config_json(img: &ImageRecord) -> Value {
    serde_json::to_value(&img.config).unwrap_or(Value::Null)
}

fn containers_using(d: &Shared, id: &Digest) -> Vec<String> {
    let idstr = id.to_string();
    d.all()
        .into_iter()
        .filter(|c| c.lock().image_id == idstr)
        .map(|c| c.id.clone())
        .collect()
}

pub async fn list(State(d): State<Shared>, req: Request) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(req.uri().query());
    let filters =
        parse_filters(first(&pairs, "filters").as_deref()).map_err(ApiError::bad_request)?;
    let show_all = parse_bool(first(&pairs, "all").as_deref());
    let mut imgs = d.images.list();
    imgs.sort_by_key(|i| std::cmp::Reverse(created_unix(i)));
    let mut out = Vec::new();
    for img in imgs {
        let dangling = img.repo_tags.is_empty();
        if !show_all && dangling && img.repo_digests.is_empty() && !filters.contains_key("dangling")
        {
            // Docker hides untagged intermediate images without -a; dangling top-level ones show.
        }
        if !image_matches(&d, &img, &filters) {
            continue;
        }
        let cfg = config_json(&img);
        out.push(json!({
            "Id": img.id.to_string(),
            "ParentId": img.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Created": created_unix(&img),
            "Size": img.size,
            "SharedSize": -1,
            "Labels": cfg.pointer("/config/Labels").cloned().filter(|v| !v.is_null()).unwrap_or(json!({})),
            "Containers": containers_using(&d, &img.id).len(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

fn image_matches(d: &Shared, img: &ImageRecord, f: &HashMap<String, Vec<String>>) -> bool {
    for (k, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match k.as_str() {
            "dangling" => {
                let want = parse_bool(Some(&vals[0]));
                img.repo_tags.is_empty() == want
            }
            "reference" => vals
                .iter()
                .any(|pat| img.repo_tags.iter().any(|t| ref_matches(pat, t))),
            "label" => {
                let cfg = config_json(img);
                let labels = cfg
                    .pointer("/config/Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                vals.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => labels.get(k).and_then(Value::as_str) == Some(val),
                    None => labels.contains_key(v),
                })
            }
            "before" | "since" => {
                let Ok(other) = d.images.resolve(&vals[0]) else {
                    return false;
                };
                let (a, b) = (created_unix(img), created_unix(&other));
                if k == "before" {
                    a < b
                } else {
                    a > b
                }
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// `reference` filter: "busybox" matches "busybox:latest"; glob '*' allowed.
fn ref_matches(pattern: &str, tag: &str) -> bool {
    let (repo, _) = tag.rsplit_once(':').unwrap_or((tag, ""));
    glob(pattern, tag) || glob(pattern, repo)
}

fn glob(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((pre, rest)) => {
            if !s.starts_with(pre) {
                return false;
            }
            let s = &s[pre.len()..];
            (0..=s.len()).any(|i| s.is_char_boundary(i) && glob(rest, &s[i..]))
        }
    }
}

/// `/images/{*rest}`: inspect, history, tag, push, get, delete.
pub async fn dispatch(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/images/").unwrap_or(&path).to_string();
    let pairs = query_pairs(req.uri().query());
    let method = req.method().clone();
    if method == Method::DELETE {
        return delete(&d, &rest, &pairs).await;
    }
    let (name, action) = rest.rsplit_once('/').unwrap_or((rest.as_str(), ""));
    match (method.as_str(), action) {
        ("GET", "json") => inspect(&d, name).await,
        ("GET", "history") => history(&d, name).await,
        ("GET", "get") => save(&d, vec![name.to_string()]).await,
        ("POST", "tag") => tag(&d, name, &pairs).await,
        ("POST", "push") => crate::routes::registry::push(&d, name, &pairs, req.headers()).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: {} {}",
            method, path
        ))),
    }
}

/// An image event: `id` is the image id (or the reference, for pull/push), `name` the reference.
pub fn image_event(d: &Shared, action: &str, id: &str, name: &str) {
    crate::events::object(
        d,
        berth_api::models::EventMessageTypeEnum::IMAGE,
        action,
        id,
        &[("name", name.to_string())],
    );
}

async fn resolve(d: &Shared, name: &str) -> ApiResult<ImageRecord> {
    let images = d.images.clone();
    let name = name.to_string();
    Ok(tokio::task::spawn_blocking(move || images.resolve(&name)).await??)
}

async fn inspect(d: &Shared, name: &str) -> ApiResult<Response> {
    let img = resolve(d, name).await?;
    let cfg = config_json(&img);
    let v = json!({
        "Id": img.id.to_string(),
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": img.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": cfg.get("comment").cloned().unwrap_or(json!("")),
        "Created": img.created.clone().unwrap_or_default(),
        "DockerVersion": cfg.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": cfg.get("author").cloned().unwrap_or(json!("")),
        "Config": cfg.get("config").cloned().unwrap_or(json!({})),
        "Architecture": cfg.get("architecture").cloned().unwrap_or(json!("amd64")),
        "Os": cfg.get("os").cloned().unwrap_or(json!("linux")),
        "Size": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "RootFS": {"Type": "layers", "Layers": cfg.pointer("/rootfs/diff_ids").cloned().unwrap_or(json!([]))},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    Ok(Json(v).into_response())
}

async fn history(d: &Shared, name: &str) -> ApiResult<Response> {
    let img = resolve(d, name).await?;
    let images = d.images.clone();
    let h = tokio::task::spawn_blocking(move || images.history(&img.id)).await??;
    Ok(
        Json(serde_json::to_value(h).map_err(|e| ApiError::internal(e.to_string()))?)
            .into_response(),
    )
}

async fn tag(d: &Shared, name: &str, pairs: &[(String, String)]) -> ApiResult<Response> {
    let img = resolve(d, name).await?;
    let repo = first(pairs, "repo").unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repository name must have at least one component",
        ));
    }
    let tag = first(pairs, "tag")
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "latest".into());
    let reference = format!("{repo}:{tag}");
    let images = d.images.clone();
    let (id, r) = (img.id.clone(), reference.clone());
    tokio::task::spawn_blocking(move || images.tag(&id, &r)).await??;
    image_event(d, "tag", &img.id.to_string(), &reference);
    Ok(StatusCode::CREATED.into_response())
}

async fn delete(d: &Shared, name: &str, pairs: &[(String, String)]) -> ApiResult<Response> {
    let force = parse_bool(first(pairs, "force").as_deref());
    let img = resolve(d, name).await?;
    let users = containers_using(d, &img.id);
    let by_tag = img.repo_tags.iter().any(|t| {
        berth_image::Reference::parse_normalized(name)
            .map(|r| r.familiar() == *t)
            .unwrap_or(false)
    });
    let images = d.images.clone();
    let mut out = Vec::new();
    // Removing one of several tags only untags.
    if by_tag && (img.repo_tags.len() > 1 || (!users.is_empty() && force)) {
        let n = name.to_string();
        let untagged = tokio::task::spawn_blocking(move || images.untag(&n)).await??;
        let _ = untagged;
        let r = berth_image::Reference::parse_normalized(name)?;
        image_event(d, "untag", &img.id.to_string(), &r.familiar());
        out.push(json!({"Untagged": r.familiar()}));
        return Ok(Json(Value::Array(out)).into_response());
    }
    if !users.is_empty() {
        let running = users
            .iter()
            .any(|id| d.find(id).map(|c| c.status().is_running()).unwrap_or(false));
        if !force || running {
            let what = if by_tag {
                format!("unable to remove repository reference \"{name}\" (must force)")
            } else {
                format!("unable to delete {} (must be forced)", img.id.short())
            };
            let state = if running { "running " } else { "stopped " };
            return Err(ApiError::conflict(
                format!(
                    "conflict: {what} - container {} is using its referenced image {}",
                    &users[0][..12],
                    img.id.short()
                )
                .replace("container ", &format!("{state}container ")),
            ));
        }
    }
    if !by_tag && img.repo_tags.len() > 1 && !force {
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            img.id.short()
        )));
    }
    let id = img.id.clone();
    let deleted = tokio::task::spawn_blocking(move || images.delete(&id)).await??;
    for t in &img.repo_tags {
        image_event(d, "untag", &img.id.to_string(), t);
    }
    image_event(
        d,
        "delete",
        &img.id.to_string(),
        img.repo_tags.first().map_or("", String::as_str),
    );
    Ok(
        Json(serde_json::to_value(deleted).map_err(|e| ApiError::internal(e.to_string()))?)
            .into_response(),
    )
}

pub async fn save_many(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let names = all(&query_pairs(req.uri().query()), "names");
    if names.is_empty() {
        return Err(ApiError::bad_request("no images named"));
    }
    save(&d, names).await
}

async fn save(d: &Shared, names: Vec<String>) -> ApiResult<Response> {
    for n in &names {
        resolve(d, n).await?;
    }
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    let images = d.images.clone();
    tokio::task::spawn_blocking(move || {
        let w = SyncIoBridge::new(writer);
        if let Err(e) = images.save(&names, w) {
            tracing::warn!("save failed: {e}");
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(reader)))
        .unwrap_or_default())
}

/// A request body as a blocking reader, for the image store.
fn body_reader(body: Body) -> SyncIoBridge<impl tokio::io::AsyncRead + Unpin> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    SyncIoBridge::new(StreamReader::new(stream))
}

fn message(v: Value) -> Bytes {
    let mut s = v.to_string();
    s.push_str("\r\n");
    Bytes::from(s)
}

pub async fn load(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let quiet = parse_bool(first(&query_pairs(req.uri().query()), "quiet").as_deref());
    let reader = body_reader(req.into_body());
    let images = d.images.clone();
    let d2 = d.clone();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let handle = tokio::task::spawn_blocking(move || {
        let ptx = tx.clone();
        let mut progress = move |msg: &str| {
            if !quiet {
                let _ = ptx.send(message(json!({"stream": format!("{msg}\n")})));
            }
        };
        let res = images.load(reader, &mut progress);
        match res {
            Ok(loaded) => {
                for img in loaded {
                    image_event(
                        &d2,
                        "load",
                        &img.id.to_string(),
                        img.tags.first().map_or("", String::as_str),
                    );
                    if img.tags.is_empty() {
                        let _ = tx.send(message(
                            json!({"stream": format!("Loaded image ID: {}\n", img.id)}),
                        ));
                    }
                    for t in img.tags {
                        let _ = tx.send(message(json!({"stream": format!("Loaded image: {t}\n")})));
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(message(
                    json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}),
                ));
            }
        }
    });
    drop(handle);
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok(json_stream_response(Body::from_stream(s)))
}

/// The `repo` and `tag` query parameters as one reference; `repo` may carry the tag itself
/// (`docker import f.tar name:1` sends `repo=name:1`).
fn reference_of(pairs: &[(String, String)]) -> ApiResult<Option<String>> {
    let repo = first(pairs, "repo").unwrap_or_default();
    if repo.is_empty() {
        return Ok(None);
    }
    let tag = first(pairs, "tag").filter(|t| !t.is_empty());
    let full = match tag {
        Some(t) => format!("{repo}:{t}"),
        None => {
            let parsed = berth_image::Reference::parse(&repo)?;
            if parsed.tag.is_some() || parsed.digest.is_some() {
                repo
            } else {
                format!("{repo}:latest")
            }
        }
    };
    berth_image::Reference::parse(&full)?;
    Ok(Some(full))
}

/// `POST /images/create`: `fromSrc` imports a rootfs tar; `fromImage` pulls (registry issue).
pub async fn create(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    if let Some(src) = first(&pairs, "fromSrc") {
        if src != "-" {
            return Err(ApiError::bad_request(
                "importing from a URL is not supported; use fromSrc=-",
            ));
        }
        let reference = reference_of(&pairs)?;
        let mut cfg = Map::new();
        crate::changes::apply(&mut cfg, &all(&pairs, "changes")).map_err(ApiError::bad_request)?;
        let run_config = serde_json::from_value(Value::Object(cfg))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let msg = first(&pairs, "message").filter(|m| !m.is_empty());
        let reader = body_reader(req.into_body());
        let images = d.images.clone();
        let res = tokio::task::spawn_blocking(move || {
            images.import(reader, run_config, msg, reference.as_deref())
        })
        .await?;
        let body = match res {
            Ok(id) => message(json!({"status": id.to_string()})),
            Err(e) => {
                message(json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}))
            }
        };
        return Ok(json_stream_response(Body::from(body)));
    }
    if first(&pairs, "fromImage").is_none() {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    }
    crate::routes::registry::pull(&d, &pairs, req.headers()).await
}

pub async fn prune(State(d): State<Shared>, req: Request) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(req.uri().query());
    let filters =
        parse_filters(first(&pairs, "filters").as_deref()).map_err(ApiError::bad_request)?;
    let dangling_only = filters
        .get("dangling")
        .map(|v| v.iter().all(|x| parse_bool(Some(x))))
        .unwrap_or(true);
    let used: std::collections::HashSet<String> =
        d.all().iter().map(|c| c.lock().image_id.clone()).collect();
    let images = d.images.clone();
    let (deleted, space) = tokio::task::spawn_blocking(move || {
        images.prune(dangling_only, &|id: &Digest| used.contains(&id.to_string()))
    })
    .await??;
    Ok(Json(json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { serde_json::to_value(deleted).unwrap_or(Value::Null) },
        "SpaceReclaimed": space,
    })))
}

/// `POST /commit?container=&repo=&tag=&author=&comment=&changes=`.
pub async fn commit(State(d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    let cname = first(&pairs, "container").unwrap_or_default();
    let c = d.find(&cname)?;
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rec = c.get();
    let mut cfg =
        match serde_json::to_value(&rec.config).map_err(|e| ApiError::internal(e.to_string()))? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
    if !body.is_empty() && body.as_ref() != b"null" {
        let extra: Value = parse_json(&body)?;
        if let Value::Object(m) = extra {
            for (k, v) in m {
                if !v.is_null() {
                    cfg.insert(k, v);
                }
            }
        }
    }
    for k in [
        "Image",
        "Hostname",
        "Domainname",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "OpenStdin",
        "StdinOnce",
        "Tty",
    ] {
        cfg.remove(k);
    }
    crate::changes::apply(&mut cfg, &all(&pairs, "changes")).map_err(ApiError::bad_request)?;
    let run_config = serde_json::from_value(Value::Object(cfg))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let reference = reference_of(&pairs)?;
    let author = first(&pairs, "author").filter(|a| !a.is_empty());
    let comment = first(&pairs, "comment").filter(|a| !a.is_empty());
    let mut created_by = vec![rec.path.clone()];
    created_by.extend(rec.args.clone());
    let created_by = created_by.join(" ");
    let images = d.images.clone();
    let parent = Digest::parse(&rec.image_id)?;
    let cid = rec.id.clone();
    let id = tokio::task::spawn_blocking(move || -> ApiResult<Digest> {
        let upper = images.snapshots().container(&cid)?.upper;
        Ok(images.commit(
            &upper,
            Some(&parent),
            run_config,
            author,
            comment,
            created_by,
            reference.as_deref(),
        )?)
    })
    .await??;
    Ok((StatusCode::CREATED, Json(json!({"Id": id.to_string()}))).into_response())
}
