//! Pull: manifest (index resolved for a platform) → config and layers into the content
//! store, in parallel and verified while streaming → register and tag.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use berth_image::store::LayerBlob;
use berth_image::{Digest, ImageError, ImageStore, Reference};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::BodyDataStream;
use hyper::{Method, StatusCode};

use crate::error::{RegistryError, Result};
use crate::http::{distribution_error, read_body, Credentials, Endpoint, ReqBody};
use crate::manifest::{AnyManifest, Descriptor, Platform, ACCEPT};
use crate::partial::{self, PartialBlob};
use crate::{emit, scope, ProgressFn, RegistryConfig};

/// Layers downloaded at once (Docker's default `max-concurrent-downloads` is 3).
const PARALLEL: usize = 3;
/// Attempts per blob when the connection breaks.
const ATTEMPTS: u32 = 4;

#[derive(Clone, Debug)]
pub struct PullOutcome {
    pub id: Digest,
    /// The digest of what the reference named (the index for a multi-platform image).
    pub digest: Digest,
    pub up_to_date: bool,
}

fn short(d: &str) -> String {
    let hex = d.split_once(':').map(|(_, h)| h).unwrap_or(d);
    hex.chars().take(12).collect()
}

/// Pulls `r` (a tag, `latest` when none, or a digest) into `store`.
pub async fn pull(
    cfg: &RegistryConfig,
    store: Arc<ImageStore>,
    r: &Reference,
    platform: &Platform,
    creds: Option<Credentials>,
    progress: ProgressFn,
) -> Result<PullOutcome> {
    let mut r = r.clone();
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some(berth_image::reference::DEFAULT_TAG.to_string());
    }
    let want = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => berth_image::reference::DEFAULT_TAG.to_string(),
    };
    let path = r.path.trim_start_matches("library/").to_string();
    let shown = if r.domain == berth_image::reference::DEFAULT_DOMAIN {
        r.path.clone()
    } else {
        path.clone()
    };
    let endpoints = cfg.endpoints(&r.domain);
    let mut last_err = None;
    for (i, base) in endpoints.iter().enumerate() {
        let ep = cfg.endpoint_at(&r.domain, base, creds.clone());
        let is_last = i + 1 == endpoints.len();
        match pull_from(&ep, &store, &r, &want, &shown, platform, &progress).await {
            Ok(o) => return Ok(o),
            // A mirror that fails or lacks the image: fall back to the origin.
            Err(e) if !is_last && (e.is_transient() || e.is_not_found()) => {
                tracing::warn!("mirror {base} failed for {}: {e}", r.familiar());
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| RegistryError::Registry("no registry endpoint".into())))
}

/// Fetches a manifest by tag or digest; returns its bytes, content type and digest.
async fn fetch_manifest(
    ep: &Endpoint,
    r: &Reference,
    reference: &str,
) -> Result<(Bytes, String, Digest)> {
    let resp = ep
        .send(
            Method::GET,
            &format!("/v2/{}/manifests/{reference}", r.path),
            &[("Accept", ACCEPT.to_string())],
            ReqBody::Empty,
            &scope(r, "pull"),
        )
        .await?;
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = read_body(resp).await?;
    if status == StatusCode::NOT_FOUND {
        let named = if reference.starts_with("sha256:") {
            format!("{}@{reference}", r.repository())
        } else {
            format!("{}:{reference}", r.repository())
        };
        return Err(RegistryError::NotFound(format!(
            "manifest for {named} not found: {}",
            distribution_error(status, &body)
        )));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {}",
            r.repository(),
            distribution_error(status, &body)
        )));
    }
    if status.is_server_error() {
        return Err(RegistryError::Transport(format!(
            "{} answered {status}: {}",
            ep.base(),
            distribution_error(status, &body)
        )));
    }
    if !status.is_success() {
        return Err(RegistryError::Registry(distribution_error(status, &body)));
    }
    let digest = Digest::from_bytes(&body);
    if reference.starts_with("sha256:") && digest.as_str() != reference {
        return Err(RegistryError::Invalid(format!(
            "manifest verification failed for digest {reference}"
        )));
    }
    Ok((body, ctype, digest))
}

async fn pull_from(
    ep: &Endpoint,
    store: &Arc<ImageStore>,
    r: &Reference,
    want: &str,
    shown: &str,
    platform: &Platform,
    progress: &ProgressFn,
) -> Result<PullOutcome> {
    let (bytes, ctype, top_digest) = fetch_manifest(ep, r, want).await?;
    let mut manifest = AnyManifest::parse(&bytes, &ctype)?;
    let mut manifest_bytes = bytes;
    let mut manifest_digest = top_digest.clone();
    if manifest.is_index() {
        let entry = platform
            .select(&manifest.manifests)
            .ok_or_else(|| RegistryError::NoMatchingPlatform(platform.short()))?;
        let (b, ct, d) = fetch_manifest(ep, r, &entry.digest).await?;
        manifest = AnyManifest::parse(&b, &ct)?;
        if manifest.is_index() {
            return Err(RegistryError::Invalid("nested image index".into()));
        }
        manifest_bytes = b;
        manifest_digest = d;
    }
    // Docker says where it pulls from once the manifest is known (errors before this point
    // are the API call's own error, not a line in the stream).
    emit(progress, want, &format!("Pulling from {shown}"), None);
    let config = manifest
        .config
        .clone()
        .ok_or_else(|| RegistryError::Invalid("manifest has no config".into()))?;
    let config_digest = Digest::parse(&config.digest)?;
    let repo_digest = format!("{}@{}", r.repository(), top_digest);
    let tag = r.digest.is_none().then(|| r.familiar());

    // Already here under this name? Docker says "Image is up to date".
    let existing = store.resolve(&r.familiar()).ok();
    if existing.as_ref().is_some_and(|e| e.id == config_digest) {
        let s = store.clone();
        let rd = repo_digest.clone();
        let id = config_digest.clone();
        tokio::task::spawn_blocking(move || s.add_repo_digest(&id, &rd))
            .await
            .map_err(|e| RegistryError::Registry(e.to_string()))??;
        emit(progress, "", &format!("Digest: {top_digest}"), None);
        emit(
            progress,
            "",
            &format!("Status: Image is up to date for {}", r.familiar()),
            None,
        );
        return Ok(PullOutcome {
            id: config_digest,
            digest: top_digest,
            up_to_date: true,
        });
    }

    // Layers: announce, skip what the content store has, fetch the rest in parallel.
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for l in &manifest.layers {
        let id = short(&l.digest);
        emit(progress, &id, "Pulling fs layer", None);
    }
    let ep = Arc::new(Endpoint::clone_for_tasks(ep));
    for l in manifest.layers.clone() {
        let id = short(&l.digest);
        let d = Digest::parse(&l.digest)?;
        if store.content().has(&d) {
            emit(progress, &id, "Already exists", None);
            continue;
        }
        emit(progress, &id, "Waiting", None);
        let (ep, store, sem, progress, r) = (
            ep.clone(),
            store.clone(),
            sem.clone(),
            progress.clone(),
            r.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem
                .acquire()
                .await
                .map_err(|e| RegistryError::Registry(e.to_string()))?;
            fetch_blob_retrying(&ep, &store, &r, &l, &id, Some(&progress)).await?;
            emit(&progress, &id, "Download complete", None);
            Ok::<_, RegistryError>(())
        }));
    }
    if !store.content().has(&config_digest) {
        fetch_blob_retrying(ep.as_ref(), store, r, &config, "", None).await?;
    }
    let mut first_err = None;
    for t in tasks {
        let res = t
            .await
            .map_err(|e| RegistryError::Registry(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    // Keep the manifest (and index) bytes so push and save send the same digests.
    let layers: Vec<LayerBlob> = manifest
        .layers
        .iter()
        .map(|l| {
            Ok(LayerBlob {
                digest: Digest::parse(&l.digest)?,
                media_type: l.media_type.clone(),
            })
        })
        .collect::<Result<_>>()?;
    for l in &manifest.layers {
        emit(progress, &short(&l.digest), "Extracting", None);
    }
    let s = store.clone();
    let mb = manifest_bytes.clone();
    let md = manifest_digest.clone();
    let cd = config_digest.clone();
    let rd = repo_digest.clone();
    let id = tokio::task::spawn_blocking(move || {
        s.content().put_reader(&mb[..], Some(&md))?;
        let id = s.register(&cd, &layers, Some(md), Some(rd.clone()), tag.as_deref())?;
        s.add_repo_digest(&id, &rd)?;
        Ok::<_, ImageError>(id)
    })
    .await
    .map_err(|e| RegistryError::Registry(e.to_string()))??;
    for l in &manifest.layers {
        emit(progress, &short(&l.digest), "Pull complete", None);
    }
    emit(progress, "", &format!("Digest: {top_digest}"), None);
    emit(
        progress,
        "",
        &format!("Status: Downloaded newer image for {}", r.familiar()),
        None,
    );
    Ok(PullOutcome {
        id,
        digest: top_digest,
        up_to_date: false,
    })
}

async fn fetch_blob_retrying(
    ep: &Endpoint,
    store: &Arc<ImageStore>,
    r: &Reference,
    desc: &Descriptor,
    id: &str,
    progress: Option<&ProgressFn>,
) -> Result<()> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match fetch_blob(ep, store, r, desc, id, progress).await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                if let Some(p) = progress {
                    emit(
                        p,
                        id,
                        &format!("Retrying in {} ms", delay.as_millis()),
                        None,
                    );
                }
                tracing::warn!("blob {} attempt {attempt}: {e}", desc.digest);
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) if e.is_transient() => {
                return Err(RegistryError::Transport(format!(
                    "download of {} failed after {ATTEMPTS} attempts: {e}",
                    desc.digest
                )))
            }
            other => return other,
        }
    }
}

/// Streams one blob into its partial file (asking only for the rest when part of it is
/// already there), verified against its digest at the end; nothing is kept on a mismatch.
async fn fetch_blob(
    ep: &Endpoint,
    store: &Arc<ImageStore>,
    r: &Reference,
    desc: &Descriptor,
    id: &str,
    progress: Option<&ProgressFn>,
) -> Result<()> {
    let digest = Digest::parse(&desc.digest)?;
    let _lock = partial::lock_blob(store, &digest).await;
    if store.content().has(&digest) {
        return Ok(());
    }
    let partial_path = partial::partial_path(store, &digest);
    let mut have = tokio::fs::metadata(&partial_path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if desc.size > 0 && have > desc.size {
        // Longer than the blob: not a prefix of it, start over.
        let _ = tokio::fs::remove_file(&partial_path).await;
        have = 0;
    }
    let complete = desc.size > 0 && have == desc.size;
    let mut headers = Vec::new();
    if have > 0 && !complete {
        headers.push(("Range", format!("bytes={have}-")));
    }
    let body = if complete {
        None
    } else {
        let resp = ep
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{digest}", r.path),
                &headers,
                ReqBody::Empty,
                &scope(r, "pull"),
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_body(resp).await?;
            let msg = distribution_error(status, &body);
            return Err(match status {
                StatusCode::NOT_FOUND => RegistryError::NotFound(msg),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    RegistryError::Unauthorized(msg)
                }
                s if s.is_server_error() => RegistryError::Transport(msg),
                _ => RegistryError::Registry(msg),
            });
        }
        // 206 with the range asked for: append; a 200 is the whole blob again.
        let resumed = status == StatusCode::PARTIAL_CONTENT
            && resp
                .headers()
                .get(hyper::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
        if resumed {
            tracing::debug!("{digest}: resuming at byte {have}");
        }
        let stream = BodyDataStream::new(resp.into_body()).map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        Some((reader, resumed))
    };
    let store = store.clone();
    let total = desc.size;
    let p = progress.cloned();
    let idc = id.to_string();
    let d = digest.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut blob = PartialBlob::open(store, &d)?;
        if let Some((mut reader, resumed)) = body {
            if !resumed || blob.len() != have {
                blob.restart()?;
            }
            let mut buf = vec![0u8; 256 * 1024];
            let mut last = 0u64;
            loop {
                let n = reader.read(&mut buf).map_err(|e| {
                    RegistryError::Transport(format!("reading blob {d}: {e}"))
                })?;
                if n == 0 {
                    break;
                }
                blob.append(&buf[..n])?;
                if total > 0 && blob.len() > total {
                    blob.discard();
                    return Err(RegistryError::Invalid(format!(
                        "filesystem layer verification failed for digest {d}: more than {total} bytes"
                    )));
                }
                if let Some(p) = &p {
                    if blob.len() - last >= 512 * 1024 || last == 0 {
                        last = blob.len().max(1);
                        emit(p, &idc, "Downloading", Some((blob.len(), total)));
                    }
                }
            }
        }
        if total > 0 && blob.len() < total {
            // The stream ended early without an error: keep what came, ask for the rest.
            return Err(RegistryError::Transport(format!(
                "reading blob {d}: the registry sent {} of {total} bytes",
                blob.len()
            )));
        }
        if let Some(p) = &p {
            emit(p, &idc, "Downloading", Some((blob.len(), total)));
        }
        match blob.finish() {
            Ok(()) => {
                if let Some(p) = &p {
                    emit(p, &idc, "Verifying Checksum", None);
                }
                Ok(())
            }
            Err(ImageError::DigestMismatch { .. }) => Err(RegistryError::Invalid(format!(
                "filesystem layer verification failed for digest {d}"
            ))),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .map_err(|e| RegistryError::Registry(e.to_string()))?;
    res
}
