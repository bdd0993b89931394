//! `docker save` / `docker load` archives: docker-archive (manifest.json, legacy
//! `<id>/layer.tar` dirs) and OCI image layout (oci-layout, index.json, blobs/), which
//! docker 25+ writes together in one tar. We read either and always write both.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::layer::{self, open_file_in_root, Compression};
use crate::reference::Reference;
use crate::store::layers::Txn;
use crate::store::{
    ImageMeta, ImageStore, LayerBlob, LoadedImage, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
};

const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of docker-archive's manifest.json.
#[derive(Debug, Serialize, Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// An image found in an archive, before it is verified and registered.
struct Found {
    config: Vec<u8>,
    layers: Vec<LayerBlob>,
    manifest: Option<Digest>,
    tags: Vec<Reference>,
}

pub(crate) fn load(
    store: &ImageStore,
    r: impl Read,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LoadedImage>> {
    let dir = store.content().ingest_dir()?;
    let _ops = store.lock_ops();
    let mut txn = Txn::default();
    let res = (|| {
        layer::unpack_into_existing(layer::decompress_ref(r)?, &dir).map_err(|e| match e {
            ImageError::Io(e) => ImageError::InvalidArchive(e.to_string()),
            e => e,
        })?;
        let found = read_archive(store, &dir, &mut txn)?;
        let mut metas: Vec<ImageMeta> = Vec::new();
        let mut tags = Vec::new();
        let mut loaded = Vec::new();
        for f in found {
            let meta =
                store.build_meta(&f.config, &f.layers, f.manifest, None, Vec::new(), &mut txn)?;
            let id = meta.id.clone();
            for t in &f.tags {
                tags.push((t.full(), id.clone()));
            }
            loaded.push(LoadedImage {
                id,
                tags: f.tags.iter().map(|t| t.familiar()).collect(),
            });
            metas.push(meta);
        }
        store.commit_images(metas, tags)?;
        Ok(loaded)
    })();
    let _ = fs::remove_dir_all(&dir);
    match res {
        Ok(loaded) => {
            for l in &loaded {
                if l.tags.is_empty() {
                    progress(&format!("Loaded image ID: {}", l.id));
                }
                for t in &l.tags {
                    progress(&format!("Loaded image: {t}"));
                }
            }
            Ok(loaded)
        }
        Err(e) => {
            store.rollback_txn(&txn);
            Err(e)
        }
    }
}

fn read_file(dir: &Path, rel: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    open_file_in_root(dir, rel)?.read_to_end(&mut buf)?;
    Ok(buf)
}

fn exists(dir: &Path, rel: &str) -> bool {
    open_file_in_root(dir, rel).is_ok()
}

/// The digest a `blobs/sha256/<hex>` path promises, if it is one.
fn blob_path_digest(rel: &str) -> Option<Digest> {
    rel.trim_start_matches("./")
        .strip_prefix("blobs/sha256/")
        .and_then(|h| Digest::from_hex(h).ok())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

fn read_archive(store: &ImageStore, dir: &Path, txn: &mut Txn) -> Result<Vec<Found>> {
    let oci = if exists(dir, "index.json") {
        read_oci_index(dir)?
    } else {
        Vec::new()
    };
    if exists(dir, "manifest.json") {
        let manifests: Vec<ArchiveManifest> =
            serde_json::from_slice(&read_file(dir, "manifest.json")?)
                .map_err(|e| ImageError::InvalidArchive(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for m in manifests {
            let config = read_file(dir, &m.config)?;
            let config_digest = Digest::from_bytes(&config);
            if let Some(expected) = blob_path_digest(&m.config) {
                if expected != config_digest {
                    return Err(ImageError::DigestMismatch {
                        expected: expected.to_string(),
                        actual: config_digest.to_string(),
                    });
                }
            }
            let mut layers = Vec::new();
            for l in &m.layers {
                layers.push(ingest_layer_file(store, dir, l, None, txn)?);
            }
            let manifest = oci
                .iter()
                .find(|o| o.config == config_digest)
                .map(|o| o.manifest.clone());
            if let Some(md) = &manifest {
                store.put_blob_txn(open_file_in_root(dir, &blob_path(md))?, Some(md), txn)?;
            }
            let tags = m
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse_normalized(t))
                .collect::<Result<Vec<_>>>()?;
            out.push(Found {
                config,
                layers,
                manifest,
                tags,
            });
        }
        return Ok(out);
    }
    if oci.is_empty() {
        return Err(ImageError::InvalidArchive(
            "no manifest.json or index.json in archive".into(),
        ));
    }
    // Pure OCI layout: group tags by manifest.
    let mut out: Vec<Found> = Vec::new();
    for o in oci {
        if let Some(f) = out
            .iter_mut()
            .find(|f| f.manifest.as_ref() == Some(&o.manifest))
        {
            f.tags.extend(o.tag);
            continue;
        }
        let config = read_file(dir, &blob_path(&o.config))?;
        if Digest::from_bytes(&config) != o.config {
            return Err(ImageError::DigestMismatch {
                expected: o.config.to_string(),
                actual: Digest::from_bytes(&config).to_string(),
            });
        }
        let mut layers = Vec::new();
        for (d, mt) in &o.layers {
            layers.push(ingest_layer_file(
                store,
                dir,
                &blob_path(d),
                Some(mt.clone()),
                txn,
            )?);
        }
        store.put_blob_txn(
            open_file_in_root(dir, &blob_path(&o.manifest))?,
            Some(&o.manifest),
            txn,
        )?;
        out.push(Found {
            config,
            layers,
            manifest: Some(o.manifest),
            tags: o.tag.into_iter().collect(),
        });
    }
    Ok(out)
}

fn ingest_layer_file(
    store: &ImageStore,
    dir: &Path,
    rel: &str,
    media_type: Option<String>,
    txn: &mut Txn,
) -> Result<LayerBlob> {
    let mut file = BufReader::new(open_file_in_root(dir, rel)?);
    let media_type = media_type.unwrap_or_else(|| {
        match layer::sniff(file.fill_buf().unwrap_or(&[])) {
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
            Compression::None => MEDIA_TYPE_LAYER_TAR,
        }
        .to_string()
    });
    let expected = blob_path_digest(rel);
    let digest = store.put_blob_txn(file, expected.as_ref(), txn)?;
    Ok(LayerBlob { digest, media_type })
}

/// One image manifest reachable from index.json.
struct OciImage {
    manifest: Digest,
    config: Digest,
    layers: Vec<(Digest, String)>,
    tag: Option<Reference>,
}

fn read_oci_index(dir: &Path) -> Result<Vec<OciImage>> {
    let index: Value = serde_json::from_slice(&read_file(dir, "index.json")?)
        .map_err(|e| ImageError::InvalidArchive(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    walk_index(dir, &index, None, &mut out, 0)?;
    Ok(out)
}

fn walk_index(
    dir: &Path,
    index: &Value,
    inherited: Option<Reference>,
    out: &mut Vec<OciImage>,
    depth: u32,
) -> Result<()> {
    if depth > 4 {
        return Err(ImageError::InvalidArchive(
            "index.json nests too deeply".into(),
        ));
    }
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut picked_platform = false;
    for desc in manifests {
        let digest = desc
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| ImageError::InvalidArchive("index entry without digest".into()))?;
        let digest = Digest::parse(digest)
            .map_err(|_| ImageError::InvalidArchive(format!("bad digest {digest}")))?;
        let tag = tag_from_annotations(&desc).or_else(|| inherited.clone());
        let media_type = desc
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bytes = read_file(dir, &blob_path(&digest))?;
        if Digest::from_bytes(&bytes) != digest {
            return Err(ImageError::DigestMismatch {
                expected: digest.to_string(),
                actual: Digest::from_bytes(&bytes).to_string(),
            });
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::InvalidArchive(format!("manifest {digest}: {e}")))?;
        let doc_type = doc
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(media_type);
        if doc_type == MEDIA_TYPE_OCI_INDEX
            || doc_type == MEDIA_TYPE_DOCKER_LIST
            || doc.get("manifests").is_some()
        {
            walk_index(dir, &doc, tag, out, depth + 1)?;
            continue;
        }
        // A multi-platform index in an archive: take this machine's platform only.
        if let Some(p) = desc.get("platform") {
            let arch = p
                .get("architecture")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if picked_platform || (arch != crate::store::go_arch() && arch != "unknown") {
                continue;
            }
            picked_platform = true;
        }
        let config = doc
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| {
                ImageError::InvalidArchive(format!("manifest {digest} has no config"))
            })?;
        let mut layers = Vec::new();
        for l in doc
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let d = l
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| {
                    ImageError::InvalidArchive(format!("manifest {digest}: layer without digest"))
                })?;
            let mt = l
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or(MEDIA_TYPE_LAYER_TAR)
                .to_string();
            layers.push((d, mt));
        }
        out.push(OciImage {
            manifest: digest,
            config,
            layers,
            tag,
        });
    }
    Ok(())
}

fn tag_from_annotations(desc: &Value) -> Option<Reference> {
    let ann = desc.get("annotations")?;
    if let Some(name) = ann.get(ANNOTATION_IMAGE_NAME).and_then(Value::as_str) {
        if let Ok(r) = Reference::parse_normalized(name) {
            return Some(r);
        }
    }
    // ref.name may be a full reference or just a tag (then there is no repository).
    let rn = ann.get(ANNOTATION_REF_NAME).and_then(Value::as_str)?;
    if rn.contains('/') || rn.contains(':') {
        Reference::parse_normalized(rn).ok()
    } else {
        None
    }
}

pub(crate) fn save(store: &ImageStore, names: &[String], w: impl Write) -> Result<()> {
    // Resolve everything first: a bad name fails before any byte is written.
    let mut images: Vec<(Digest, Vec<Reference>)> = Vec::new();
    for n in names {
        let rec = store.resolve(n)?;
        let tag = if n.starts_with("sha256:") || rec.id.hex().starts_with(n.as_str()) {
            None
        } else {
            Reference::parse_normalized(n)
                .ok()
                .filter(|r| r.digest.is_none())
        };
        match images.iter_mut().find(|(id, _)| *id == rec.id) {
            Some((_, tags)) => tags.extend(tag),
            None => images.push((rec.id.clone(), tag.into_iter().collect())),
        }
    }
    let mut b = tar::Builder::new(w);
    let mut written: HashSet<Digest> = HashSet::new();
    let mut index_entries = Vec::new();
    let mut archive_manifest = Vec::new();
    append_dir(&mut b, "blobs/")?;
    append_dir(&mut b, "blobs/sha256/")?;
    for (id, tags) in &images {
        let layers = store.image_layers(id)?;
        append_blob(&mut b, store, id, &mut written)?;
        for l in &layers {
            append_blob(&mut b, store, &l.blob, &mut written)?;
        }
        let manifest_bytes = manifest_for(store, id, &layers)?;
        let manifest_digest = Digest::from_bytes(&manifest_bytes);
        if written.insert(manifest_digest.clone()) {
            append_bytes(&mut b, &blob_path(&manifest_digest), &manifest_bytes)?;
        }
        let desc = |ann: Option<Value>| {
            let mut d = json!({"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": manifest_digest, "size": manifest_bytes.len()});
            if let Some(a) = ann {
                d["annotations"] = a;
            }
            d
        };
        if tags.is_empty() {
            index_entries.push(desc(None));
        }
        for t in tags {
            index_entries.push(desc(Some(json!({
                ANNOTATION_IMAGE_NAME: t.full(),
                ANNOTATION_REF_NAME: t.tag.clone().unwrap_or_default(),
            }))));
        }
        archive_manifest.push(ArchiveManifest {
            config: blob_path(id),
            repo_tags: Some(tags.iter().map(|t| t.familiar()).collect()),
            layers: layers.iter().map(|l| blob_path(&l.blob)).collect(),
        });
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": index_entries});
    append_bytes(&mut b, "index.json", &serde_json::to_vec(&index)?)?;
    append_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&archive_manifest)?,
    )?;
    append_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ((_, tags), m) in images.iter().zip(&archive_manifest) {
        for t in tags {
            let top = m
                .layers
                .last()
                .map(|l| l.trim_start_matches("blobs/sha256/").to_string())
                .unwrap_or_default();
            repos
                .entry(t.repository())
                .or_default()
                .insert(t.tag.clone().unwrap_or_default(), top);
        }
    }
    if !repos.is_empty() {
        append_bytes(&mut b, "repositories", &serde_json::to_vec(&repos)?)?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

/// The image's manifest as pulled if we have it, else a fresh OCI manifest.
fn manifest_for(
    store: &ImageStore,
    id: &Digest,
    layers: &[crate::store::LayerMeta],
) -> Result<Vec<u8>> {
    if let Ok(rec) = store.resolve(id.as_str()) {
        if let Some(m) = rec.manifest.filter(|m| store.content().has(m)) {
            return store.content().read(&m);
        }
    }
    let config_size = store.content().size(id)?;
    let mut ls = Vec::new();
    for l in layers {
        ls.push(json!({"mediaType": l.media_type, "digest": l.blob, "size": store.content().size(&l.blob)?}));
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_OCI_CONFIG, "digest": id, "size": config_size},
        "layers": ls,
    });
    Ok(serde_json::to_vec(&m)?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn append_dir<W: Write>(b: &mut tar::Builder<W>, path: &str) -> Result<()> {
    b.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0),
        path,
        io::empty(),
    )?;
    Ok(())
}

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, data.len() as u64),
        path,
        data,
    )?;
    Ok(())
}

fn append_blob<W: Write>(
    b: &mut tar::Builder<W>,
    store: &ImageStore,
    d: &Digest,
    written: &mut HashSet<Digest>,
) -> Result<()> {
    if !written.insert(d.clone()) {
        return Ok(());
    }
    let f = store.content().open_blob(d)?;
    let size = f.metadata()?.len();
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, size),
        blob_path(d),
        f,
    )?;
    Ok(())
}
