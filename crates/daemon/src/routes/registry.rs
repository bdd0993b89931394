//! Registry endpoints: pull (`POST /images/create?fromImage=`), push
//! (`POST /images/{name}/push`), `POST /auth` and `GET /images/search`, over berth-registry.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_image::Reference;
use berth_registry::{Credentials, Platform, Progress, ProgressFn, RegistryConfig, RegistryError};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::routes::images::query_pairs;
use crate::state::Shared;

static CONFIG: OnceLock<RegistryConfig> = OnceLock::new();

/// Sets the daemon-wide registry options (once, at start-up).
pub fn set_config(cfg: RegistryConfig) {
    let _ = CONFIG.set(cfg);
}

fn config() -> RegistryConfig {
    CONFIG.get().cloned().unwrap_or_default()
}

/// The daemon-wide registry options, for other services that pull (the builder).
pub fn registry_config() -> RegistryConfig {
    config()
}

fn first(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn creds(headers: &HeaderMap) -> Option<Credentials> {
    headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_header)
}

fn api_error(e: RegistryError) -> ApiError {
    let status = match &e {
        RegistryError::NotFound(_) | RegistryError::NoMatchingPlatform(_) => StatusCode::NOT_FOUND,
        // Docker answers a refused pull as "not found" (the CLI would otherwise prompt).
        RegistryError::Unauthorized(_) => StatusCode::NOT_FOUND,
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

fn line(v: Value) -> Bytes {
    let mut s = v.to_string();
    s.push_str("\r\n");
    Bytes::from(s)
}

fn error_line(msg: &str) -> Bytes {
    line(json!({"errorDetail": {"message": msg}, "error": msg}))
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

/// Docker's progress bar: `[=====>      ]  1.2MB/3.4MB`.
fn bar(cur: u64, total: u64) -> String {
    if total == 0 {
        return human(cur);
    }
    let width = 50u64;
    let filled = (cur.min(total) * width / total) as usize;
    let mut b = "=".repeat(filled);
    if filled < width as usize {
        b.push('>');
        b.push_str(&" ".repeat(width as usize - filled - 1));
    }
    format!("[{b}] {:>8}/{}", human(cur), human(total))
}

fn progress_line(p: &Progress) -> Bytes {
    let mut v = json!({"status": p.status});
    if !p.id.is_empty() {
        v["id"] = json!(p.id);
    }
    match p.bytes {
        Some((cur, total)) => {
            v["progressDetail"] = json!({"current": cur, "total": total});
            v["progress"] = json!(bar(cur, total));
        }
        None if !p.id.is_empty() => v["progressDetail"] = json!({}),
        None => {}
    }
    line(v)
}

enum Msg {
    Line(Bytes),
    Failed(RegistryError),
}

/// Runs a registry job, streaming its progress as Docker's JSON messages. An error before
/// the first line is the call's own error (status + `{"message"}`), as dockerd does.
async fn stream_job<F, Fut>(job: F) -> ApiResult<Response>
where
    F: FnOnce(ProgressFn) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, RegistryError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let ptx = tx.clone();
    let progress: ProgressFn = Arc::new(move |p: Progress| {
        let _ = ptx.send(Msg::Line(progress_line(&p)));
    });
    let fut = job(progress);
    tokio::spawn(async move {
        match fut.await {
            Ok(extra) => {
                for v in extra {
                    let _ = tx.send(Msg::Line(line(v)));
                }
            }
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
            }
        }
    });
    let first = match rx.recv().await {
        Some(Msg::Failed(e)) => return Err(api_error(e)),
        Some(Msg::Line(b)) => b,
        None => Bytes::new(),
    };
    let head = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]);
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Msg::Line(b) => Some((Ok::<_, std::io::Error>(b), rx)),
            Msg::Failed(e) => Some((Ok(error_line(&e.to_string())), rx)),
        }
    });
    use futures_util::StreamExt;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(head.chain(rest)))
        .unwrap_or_default())
}

/// `POST /images/create?fromImage=NAME&tag=TAG|DIGEST&platform=`.
pub async fn pull(
    d: &Shared,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let image = first(pairs, "fromImage").unwrap_or_default();
    let tag = first(pairs, "tag").filter(|t| !t.is_empty());
    let name = match &tag {
        Some(t) if t.contains(':') => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    let r = Reference::parse_normalized(&name)?;
    let platform = Platform::parse(&first(pairs, "platform").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let creds = creds(headers);
    let store = d.images.clone();
    stream_job(move |progress| async move {
        let cfg = config();
        berth_registry::pull(&cfg, store, &r, &platform, creds, progress).await?;
        Ok(Vec::new())
    })
    .await
}

/// `POST /images/{name}/push?tag=`: one tag, or every tag of the repository when none.
pub async fn push(
    d: &Shared,
    name: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let tag = first(pairs, "tag").filter(|t| !t.is_empty());
    let base = Reference::parse(name)?;
    let refs: Vec<Reference> = match &tag {
        Some(t) => {
            let r = Reference::parse(&format!("{}:{t}", base.familiar()))?;
            if d.images.resolve(&r.familiar()).is_err() {
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    base.repository()
                )));
            }
            vec![r]
        }
        None => {
            let repo = base.repository();
            let mut v: Vec<Reference> = d
                .images
                .list()
                .into_iter()
                .flat_map(|i| i.repo_tags)
                .filter_map(|t| Reference::parse(&t).ok())
                .filter(|r| r.repository() == repo)
                .collect();
            v.sort_by_key(|r| r.familiar());
            if v.is_empty() {
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {repo}"
                )));
            }
            v
        }
    };
    let creds = creds(headers);
    let store = d.images.clone();
    stream_job(move |progress| async move {
        let cfg = config();
        let mut aux = Vec::new();
        for r in refs {
            let o = berth_registry::push(&cfg, store.clone(), &r, creds.clone(), progress.clone())
                .await?;
            aux.push(json!({"progressDetail": {}, "aux": {"Tag": o.tag, "Digest": o.digest.to_string(), "Size": o.size}}));
        }
        Ok(aux)
    })
    .await
}

/// `POST /auth`: checks credentials against the registry.
pub async fn auth(Json(body): Json<Value>) -> ApiResult<Response> {
    let server = body["serveraddress"].as_str().unwrap_or("").to_string();
    let creds = Credentials {
        username: body["username"].as_str().unwrap_or("").to_string(),
        password: body["password"].as_str().unwrap_or("").to_string(),
        identity_token: body["identitytoken"].as_str().unwrap_or("").to_string(),
        registry_token: body["registrytoken"].as_str().unwrap_or("").to_string(),
    };
    match berth_registry::login(&config(), &server, creds).await {
        Ok(()) => {
            Ok(Json(json!({"Status": "Login Succeeded", "IdentityToken": ""})).into_response())
        }
        Err(e @ RegistryError::Unauthorized(_)) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(State(_d): State<Shared>, req: Request) -> ApiResult<Response> {
    let pairs = query_pairs(req.uri().query());
    let term = first(&pairs, "term").unwrap_or_default();
    if term.is_empty() {
        return Err(ApiError::bad_request("term is required"));
    }
    let limit: usize = match first(&pairs, "limit").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be between 1 and 100"))?,
        None => 25,
    };
    let filters = crate::query::parse_filters(first(&pairs, "filters").as_deref())
        .map_err(ApiError::bad_request)?;
    let mut min_stars = 0u64;
    let mut official: Option<bool> = None;
    for (k, vals) in &filters {
        for v in vals {
            match k.as_str() {
                "stars" => {
                    min_stars = v
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?
                }
                "is-official" => official = Some(crate::query::parse_bool(Some(v))),
                "is-automated" => {}
                other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
            }
        }
    }
    let results = berth_registry::search(&config(), &term, limit, creds(req.headers()))
        .await
        .map_err(|e| match e {
            RegistryError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            other => ApiError::internal(other.to_string()),
        })?;
    let out: Vec<Value> = results
        .into_iter()
        .filter(|r| r.star_count >= min_stars)
        .filter(|r| official.is_none_or(|o| o == r.is_official))
        .map(|r| {
            json!({
                "name": r.name,
                "description": r.description,
                "star_count": r.star_count,
                "is_official": r.is_official,
                "is_automated": false,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_bar() {
        assert_eq!(super::human(1500), "1.5kB");
        let b = super::bar(50, 100);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("50B/100B"), "{b}");
    }
}
