//! The build executor: `berth_build::executor::Executor` over the daemon's lifecycle
//! (create a container from the previous image, run it, wait, commit its upper dir with
//! `ImageStore::commit`, remove it), snapshots mounted for COPY/ADD, registry pulls of
//! missing base images, and `ADD <url>` downloads. Runs on a blocking thread; async calls go
//! through the runtime handle. When the client goes away (`cancel` closes) the running
//! container is killed and every snapshot the build made is removed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};
use berth_build::executor::{Executor, ImageState, Rootfs, RunMount};
use berth_image::Digest;
use serde_json::{Map, Value};

use crate::lifecycle;

mod fetch;
use crate::state::Shared;

/// Closed when the client of the build has gone away.
pub type CancelSignal = tokio::sync::mpsc::Sender<axum::body::Bytes>;

pub struct DaemonExecutor {
    pub d: Shared,
    pub rt: tokio::runtime::Handle,
    /// Scratch space for layers, removed with the build.
    pub tmp: PathBuf,
    pub network_mode: Option<String>,
    /// `--pull`: fetch base images even when they are present.
    pub always_pull: bool,
    /// Images committed, written without syncs: the build makes them durable together.
    pub committed: Arc<Mutex<Vec<Digest>>>,
    cancel: Option<CancelSignal>,
    /// Snapshots opened and not yet closed (removed on drop).
    open: Vec<String>,
    n: usize,
}

impl DaemonExecutor {
    pub fn new(
        d: Shared,
        rt: tokio::runtime::Handle,
        tmp: PathBuf,
        network_mode: Option<String>,
        cancel: Option<CancelSignal>,
    ) -> Self {
        DaemonExecutor {
            d,
            rt,
            tmp,
            network_mode,
            always_pull: false,
            committed: Arc::default(),
            cancel,
            open: Vec::new(),
            n: 0,
        }
    }

    fn state(&self, id: &Digest) -> Result<ImageState, String> {
        let rec = self
            .d
            .images
            .resolve(&id.to_string())
            .map_err(|e| e.to_string())?;
        image_state(&rec)
    }

    fn pull(&mut self, name: &str, out: &mut dyn FnMut(&str)) -> Result<(), String> {
        let r = berth_image::Reference::parse_normalized(name).map_err(|e| e.to_string())?;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let progress: berth_registry::ProgressFn = Arc::new(move |p: berth_registry::Progress| {
            // Byte counters are for terminals; the build log keeps the status lines.
            if p.bytes.is_none() {
                let line = if p.id.is_empty() {
                    format!("{}\n", p.status)
                } else {
                    format!("{}: {}\n", p.id, p.status)
                };
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let cfg = crate::routes::registry::registry_config();
        let store = self.d.images.clone();
        let res = self.rt.block_on(berth_registry::pull(
            &cfg,
            store,
            &r,
            &berth_registry::Platform::default(),
            None,
            progress,
        ));
        if let Ok(l) = lines.lock() {
            for line in l.iter() {
                out(line);
            }
        }
        res.map(|_| ()).map_err(|e| e.to_string())
    }

    fn note_commit(&self, id: &Digest) {
        if let Ok(mut c) = self.committed.lock() {
            c.push(id.clone());
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_closed())
    }
}

impl Drop for DaemonExecutor {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.open) {
            let _ = self.d.images.snapshots().remove_container(&id);
        }
    }
}

fn image_state(rec: &berth_image::ImageRecord) -> Result<ImageState, String> {
    let config = match serde_json::to_value(&rec.config.config).map_err(|e| e.to_string())? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Ok(ImageState {
        id: Some(rec.id.to_string()),
        config,
    })
}

fn run_config(cfg: &Map<String, Value>) -> Result<berth_image::RunConfig, String> {
    let mut m = cfg.clone();
    m.retain(|_, v| !v.is_null());
    serde_json::from_value(Value::Object(m)).map_err(|e| format!("image config: {e}"))
}

fn strings(cfg: &Map<String, Value>, k: &str) -> Option<Vec<String>> {
    cfg.get(k).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

fn parent_digest(image: &ImageState) -> Result<Option<Digest>, String> {
    image
        .id
        .as_deref()
        .map(Digest::parse)
        .transpose()
        .map_err(|e| e.to_string())
}

/// Reads a container's JSON log file from where it left off, passing on complete lines.
#[derive(Default)]
struct LogFollower {
    offset: u64,
}

impl LogFollower {
    fn pump(&mut self, path: &Path, out: &mut dyn FnMut(&str)) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        // Only whole lines: the writer may be mid-line.
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in buf[..end].split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                if let Some(s) = v.get("log").and_then(Value::as_str) {
                    out(s);
                }
            }
        }
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}

impl Executor for DaemonExecutor {
    fn resolve(&mut self, name: &str, out: &mut dyn FnMut(&str)) -> Result<ImageState, String> {
        if self.always_pull || self.d.images.resolve(name).is_err() {
            if let Err(e) = self.pull(name, out) {
                // `--pull` on an image that exists only here keeps the local one, as Docker.
                if self.d.images.resolve(name).is_err() {
                    return Err(format!("pull access denied for {name}, repository does not exist or may require 'docker login': {e}"));
                }
            }
        }
        let rec = self
            .d
            .images
            .resolve(name)
            .map_err(|_| format!("pull access denied for {name}, repository does not exist or may require 'docker login'"))?;
        image_state(&rec)
    }

    fn run(
        &mut self,
        image: &ImageState,
        config: &Map<String, Value>,
        argv: Vec<String>,
        mounts: &[RunMount],
        created_by: &str,
        out: &mut dyn FnMut(&str),
    ) -> Result<Result<ImageState, i64>, String> {
        let Some(parent) = image.id.clone() else {
            return Err("RUN needs a base image: the stage is FROM scratch with no shell".into());
        };
        let mut binds = Vec::new();
        let mut tmpfs = std::collections::HashMap::new();
        for m in mounts {
            match m {
                RunMount::Bind {
                    source,
                    target,
                    readonly,
                } => binds.push(Mount {
                    typ: Some(MountTypeEnum::BIND),
                    source: Some(source.display().to_string()),
                    target: Some(target.clone()),
                    read_only: Some(*readonly),
                    ..Default::default()
                }),
                RunMount::Tmpfs { target } => {
                    tmpfs.insert(target.clone(), String::new());
                }
            }
        }
        let body = ContainerCreateBody {
            image: Some(parent.clone()),
            cmd: Some(argv),
            entrypoint: Some(Vec::new()),
            env: strings(config, "Env"),
            working_dir: config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .map(str::to_string),
            user: config
                .get("User")
                .and_then(Value::as_str)
                .map(str::to_string),
            host_config: Some(HostConfig {
                network_mode: self.network_mode.clone(),
                mounts: (!binds.is_empty()).then_some(binds),
                tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = self.d.clone();
        // A name of our own: stages build side by side, and generated names could collide.
        let name = format!("berth-build-{:016x}", rand::random::<u64>());
        let (cid, _) = self
            .rt
            .block_on(lifecycle::create(&d, Some(name), body))
            .map_err(|e| e.to_string())?;
        let result = (|| -> Result<Result<ImageState, i64>, String> {
            let c = d.find(&cid).map_err(|e| e.to_string())?;
            out(&format!(" ---> Running in {}\n", &cid[..12.min(cid.len())]));
            // Mounted ahead of start, volatile: the snapshot is thrown away once its diff is
            // committed, so its unmount need not write out what the command wrote.
            let pd = Digest::parse(&parent).map_err(|e| e.to_string())?;
            let lowers = d.images.lowers(&pd).map_err(|e| e.to_string())?;
            let snap = d
                .images
                .snapshots()
                .prepare_container(&cid, &lowers)
                .map_err(|e| e.to_string())?;
            snap.mount_volatile().map_err(|e| e.to_string())?;
            self.rt
                .block_on(lifecycle::start(&d, &c))
                .map_err(|e| e.to_string())?;
            // Output streams while the command runs: the log file is followed from an offset.
            let cancel = self.cancel.clone();
            let log_path = d.paths.log_path(&cid);
            let mut follower = LogFollower::default();
            // Short waits, with the log pumped between them (outside the runtime: `out`
            // may block on the response channel).
            let code = loop {
                let r = self.rt.block_on(async {
                    let gone = async {
                        match &cancel {
                            Some(c) => c.closed().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        code = lifecycle::wait(c.clone(), "not-running") => Some(Some(code)),
                        _ = gone => Some(None),
                        _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => None,
                    }
                });
                match r {
                    Some(done) => break done,
                    None => follower.pump(&log_path, out),
                }
            };
            let Some(code) = code else {
                return Err("build cancelled: the client went away".into());
            };
            follower.pump(&log_path, out);
            if code != 0 {
                return Ok(Err(code));
            }
            // The upper dir becomes the layer's snapshot: off the overlay first.
            let snap = d
                .images
                .snapshots()
                .container(&cid)
                .map_err(|e| e.to_string())?;
            snap.unmount().map_err(|e| e.to_string())?;
            let upper = snap.upper;
            let parent = Digest::parse(&parent).map_err(|e| e.to_string())?;
            let id = d
                .images
                .commit_build_layer(
                    &upper,
                    Some(&parent),
                    run_config(config)?,
                    created_by.to_string(),
                )
                .map_err(|e| e.to_string())?;
            self.note_commit(&id);
            Ok(Ok(self.state(&id)?))
        })();
        // Force removal kills the container if it still runs (a cancelled build).
        if let Ok(c) = d.find(&cid) {
            let _ = self.rt.block_on(lifecycle::remove(&d, &c, true, true));
        }
        result
    }

    fn open_rootfs(&mut self, image: &ImageState) -> Result<Rootfs, String> {
        let lowers = match parent_digest(image)? {
            Some(id) => self.d.images.lowers(&id).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let id = format!("build-{:016x}", rand::random::<u64>());
        let snaps = self.d.images.snapshots();
        let snap = snaps
            .prepare_container(&id, &lowers)
            .map_err(|e| e.to_string())?;
        self.open.push(id.clone());
        snap.mount_volatile().map_err(|e| {
            let _ = snaps.remove_container(&id);
            format!("mounting the build snapshot: {e}")
        })?;
        Ok(Rootfs {
            id,
            path: snap.merged,
        })
    }

    fn commit_rootfs(
        &mut self,
        rootfs: &Rootfs,
        image: &ImageState,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<Option<ImageState>, String> {
        let snap = self
            .d
            .images
            .snapshots()
            .container(&rootfs.id)
            .map_err(|e| e.to_string())?;
        if dir_is_empty(&snap.upper) {
            return Ok(None);
        }
        // The upper dir becomes the layer's snapshot: off the overlay first.
        snap.unmount().map_err(|e| e.to_string())?;
        let id = self
            .d
            .images
            .commit_build_layer(
                &snap.upper,
                parent_digest(image)?.as_ref(),
                run_config(config)?,
                created_by.to_string(),
            )
            .map_err(|e| e.to_string())?;
        self.note_commit(&id);
        Ok(Some(self.state(&id)?))
    }

    fn close_rootfs(&mut self, rootfs: &Rootfs) {
        let _ = self.d.images.snapshots().remove_container(&rootfs.id);
        self.open.retain(|i| i != &rootfs.id);
    }

    fn commit_config(
        &mut self,
        image: &ImageState,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<ImageState, String> {
        let id = self
            .d
            .images
            .commit_config(
                parent_digest(image)?.as_ref(),
                run_config(config)?,
                created_by.to_string(),
            )
            .map_err(|e| e.to_string())?;
        self.note_commit(&id);
        self.state(&id)
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> Result<Option<u64>, String> {
        self.rt.block_on(fetch::http_get(url, dest))
    }

    fn cache_mount(&mut self, id: &str) -> Result<PathBuf, String> {
        use sha2::Digest as _;
        let key = hex::encode(sha2::Sha256::digest(id.as_bytes()));
        let p = self
            .d
            .paths
            .data_root
            .join("build-cache")
            .join("mounts")
            .join(key);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    }

    fn cached(&mut self, key: &str) -> Option<ImageState> {
        let id =
            std::fs::read_to_string(self.d.paths.data_root.join("build-cache").join(key)).ok()?;
        let rec = self.d.images.resolve(id.trim()).ok()?;
        image_state(&rec).ok()
    }

    fn remember(&mut self, key: &str, image: &ImageState) {
        if let Some(id) = &image.id {
            let dir = self.d.paths.data_root.join("build-cache");
            if std::fs::create_dir_all(&dir).is_ok() {
                let _ = crate::paths::write_atomic(&dir.join(key), id.as_bytes(), false);
            }
        }
    }

    fn temp_dir(&mut self) -> Result<PathBuf, String> {
        self.n += 1;
        let p = self.tmp.join(format!("layer-{}", self.n));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    }

    fn cancelled(&mut self) -> bool {
        self.is_cancelled()
    }

    fn digest_cache_dir(&mut self) -> Option<PathBuf> {
        Some(self.d.paths.data_root.join("build-cache").join("files"))
    }
}
