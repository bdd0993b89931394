//! Pull: manifest (index resolved for a platform) → config and layers into the content
//! store, in parallel and verified while streaming → register and tag.

use std::sync::Arc;
use std::time::Duration;

use berth_image::store::{LayerBlob, Registration, UnpackedLayer};
use berth_image::{Digest, ImageError, ImageStore, Reference};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use tokio::sync::mpsc;

use crate::error::{RegistryError, Result};
use crate::http::{distribution_error, read_body, Credentials, Endpoint, ReqBody};
use crate::manifest::{AnyManifest, Descriptor, Platform, ACCEPT};
use crate::partial::{self, BlobFeed, Chunk, PartialBlob};
use crate::{emit, scope, ProgressFn, RegistryConfig};

/// Layers downloaded at once (Docker's default `max-concurrent-downloads` is 3).
const PARALLEL: usize = 3;
/// Attempts per blob when the connection breaks.
const ATTEMPTS: u32 = 4;
/// Frames in flight between a download and its unpacker.
const CHANNEL_CHUNKS: usize = 64;

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
        let target = Target {
            r: &r,
            want: &want,
            shown: &shown,
            platform,
        };
        match pull_from(&ep, &store, target, cfg.stall_timeout(), &progress).await {
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

/// What a pull is after: the reference, the tag or digest asked for, the name shown in
/// "Pulling from", the platform.
struct Target<'a> {
    r: &'a Reference,
    want: &'a str,
    shown: &'a str,
    platform: &'a Platform,
}

async fn pull_from(
    ep: &Endpoint,
    store: &Arc<ImageStore>,
    target: Target<'_>,
    stall: Duration,
    progress: &ProgressFn,
) -> Result<PullOutcome> {
    let Target {
        r,
        want,
        shown,
        platform,
    } = target;
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

    // Layers: announce, skip what the content store has, fetch the rest in parallel, each
    // unpacked as it arrives.
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for l in &manifest.layers {
        let id = short(&l.digest);
        emit(progress, &id, "Pulling fs layer", None);
    }
    let fetcher = Arc::new(Fetcher {
        ep: Endpoint::clone_for_tasks(ep),
        store: store.clone(),
        r: r.clone(),
        stall,
    });
    for (i, l) in manifest.layers.clone().into_iter().enumerate() {
        let id = short(&l.digest);
        let d = Digest::parse(&l.digest)?;
        if store.content().has(&d) {
            emit(progress, &id, "Already exists", None);
            continue;
        }
        emit(progress, &id, "Waiting", None);
        let (fetcher, sem, progress) = (fetcher.clone(), sem.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem
                .acquire()
                .await
                .map_err(|e| RegistryError::Registry(e.to_string()))?;
            let unpacked = fetcher
                .fetch_retrying(&l, &id, Some(&progress), true)
                .await?;
            emit(&progress, &id, "Download complete", None);
            Ok::<_, RegistryError>((i, unpacked))
        }));
    }
    if !store.content().has(&config_digest) {
        fetcher.fetch_retrying(&config, "", None, false).await?;
    }
    let mut first_err = None;
    let mut unpacked: Vec<Option<UnpackedLayer>> =
        (0..manifest.layers.len()).map(|_| None).collect();
    for t in tasks {
        let res = t
            .await
            .map_err(|e| RegistryError::Registry(e.to_string()))
            .and_then(|r| r);
        match res {
            Ok((i, u)) => unpacked[i] = u,
            Err(e) => {
                first_err.get_or_insert(e);
            }
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
        let reg = Registration {
            config: &cd,
            layers: &layers,
            manifest: Some(md),
            repo_digest: Some(rd.clone()),
            tag: tag.as_deref(),
        };
        let id = s.register_unpacked(reg, unpacked)?;
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

/// Downloads blobs of one repository into the store.
struct Fetcher {
    ep: Endpoint,
    store: Arc<ImageStore>,
    r: Reference,
    /// A download that receives nothing for this long is cut and resumed.
    stall: Duration,
}

impl Fetcher {
    /// `fetch` with retries (back-off doubling from 250 ms) while the errors are transient;
    /// each retry resumes from what is on disk.
    async fn fetch_retrying(
        &self,
        desc: &Descriptor,
        id: &str,
        progress: Option<&ProgressFn>,
        unpack: bool,
    ) -> Result<Option<UnpackedLayer>> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match self.fetch(desc, id, progress, unpack).await {
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
    /// there already), verified against its digest at the end; nothing is kept on a
    /// mismatch. With `unpack`, the layer is unpacked from the same bytes as they arrive
    /// (the part on disk first), and returned once the blob proved to be what was asked.
    async fn fetch(
        &self,
        desc: &Descriptor,
        id: &str,
        progress: Option<&ProgressFn>,
        unpack: bool,
    ) -> Result<Option<UnpackedLayer>> {
        let digest = Digest::parse(&desc.digest)?;
        let store = &self.store;
        let _lock = partial::lock_blob(store, &digest).await;
        if store.content().has(&digest) {
            return Ok(None);
        }
        let partial_path = partial::partial_path(store, &digest);
        let mut have = tokio::fs::metadata(&partial_path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let total = desc.size;
        if total > 0 && have > total {
            // Longer than the blob: not a prefix of it, start over.
            have = 0;
        }
        let complete = total > 0 && have == total;
        let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let mut body = None;
        let mut restart = have == 0;
        if !complete {
            let resp = self.request(&digest, have).await?;
            // 206 with the range asked for: the rest; a 200 is the whole blob again.
            let resumed = resp.status() == StatusCode::PARTIAL_CONTENT
                && resp
                    .headers()
                    .get(hyper::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
            if resumed {
                tracing::debug!("{digest}: resuming at byte {have}");
            } else {
                restart = true;
                have = 0;
            }
            body = Some(resp.into_body());
        }

        // The blocking side: file, hash and unpack; this task only moves the bytes.
        let (s, d, p, idc) = (
            store.clone(),
            digest.clone(),
            progress.cloned(),
            id.to_string(),
        );
        let worker = tokio::task::spawn_blocking(move || -> Result<Option<UnpackedLayer>> {
            let blob = PartialBlob::open(s.clone(), &d, restart)?;
            let mut last = 0u64;
            let on_data: Box<dyn FnMut(u64) + Send> = match p.clone() {
                Some(p) => {
                    let idc = idc.clone();
                    Box::new(move |n| {
                        if n - last >= 512 * 1024 || last == 0 {
                            last = n.max(1);
                            emit(&p, &idc, "Downloading", Some((n, total)));
                        }
                    })
                }
                None => Box::new(|_| {}),
            };
            let mut feed = BlobFeed::new(blob, have, rx, on_data);
            let unpacked = unpack.then(|| s.unpack_layer_stream(&mut feed));
            // The rest of the blob, whatever the unpack thought of it: the digest covers all.
            feed.drain();
            let BlobFeed {
                blob,
                transport_error,
                ..
            } = feed;
            if let Some(e) = transport_error {
                return Err(RegistryError::Transport(format!("reading blob {d}: {e}")));
            }
            if total > 0 && blob.len() > total {
                blob.discard();
                return Err(RegistryError::Invalid(format!(
                    "filesystem layer verification failed for digest {d}: more than {total} bytes"
                )));
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
            let unpacked = match unpacked {
                // Not a layer we can unpack, though it is the blob asked for: keep nothing.
                Some(Err(e)) => {
                    blob.discard();
                    return Err(e.into());
                }
                Some(Ok(u)) => Some(u),
                None => None,
            };
            match blob.finish() {
                Ok(()) => Ok(unpacked),
                Err(ImageError::DigestMismatch { .. }) => Err(RegistryError::Invalid(format!(
                    "filesystem layer verification failed for digest {d}"
                ))),
                Err(e) => Err(e.into()),
            }
        });
        if let Some(body) = body {
            pump(body, &tx, self.stall).await;
        }
        drop(tx);
        let res = worker
            .await
            .map_err(|e| RegistryError::Registry(e.to_string()))?;
        if res.is_ok() {
            if let Some(p) = progress {
                emit(p, id, "Verifying Checksum", None);
            }
        }
        res
    }

    /// GET the blob (from byte `from` on when it is not 0).
    async fn request(&self, digest: &Digest, from: u64) -> Result<Response<Incoming>> {
        let mut headers = Vec::new();
        if from > 0 {
            headers.push(("Range", format!("bytes={from}-")));
        }
        let (path, scope) = (
            format!("/v2/{}/blobs/{digest}", self.r.path),
            scope(&self.r, "pull"),
        );
        let send = self
            .ep
            .send(Method::GET, &path, &headers, ReqBody::Empty, &scope);
        let resp = tokio::time::timeout(self.stall, send).await.map_err(|_| {
            RegistryError::Transport(format!(
                "no answer from {} for {:?}",
                self.ep.base(),
                self.stall
            ))
        })??;
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
        Ok(resp)
    }
}

/// Moves a response body's frames to the blob's worker; a registry that sends nothing for
/// `stall` (the connection open, no data) ends the download with an error the worker sees.
async fn pump(mut body: Incoming, tx: &mpsc::Sender<Chunk>, stall: Duration) {
    loop {
        let err = match tokio::time::timeout(stall, body.frame()).await {
            Ok(None) => return,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if tx.send(Ok(data)).await.is_err() {
                        return; // the worker stopped (its error says why)
                    }
                }
                continue;
            }
            Ok(Some(Err(e))) => e.to_string(),
            Err(_) => format!("the registry sent nothing for {stall:?}"),
        };
        let _ = tx.send(Err(err)).await;
        return;
    }
}
