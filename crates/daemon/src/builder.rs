//! The build executor: `berth_build::executor::Executor` over the daemon's lifecycle
//! (create a container from the previous image, run it, wait, commit its upper dir with
//! `ImageStore::commit`, remove it). Runs on a blocking thread; async lifecycle calls go
//! through the runtime handle.

use std::path::{Path, PathBuf};

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_build::executor::{Executor, ImageState};
use berth_image::Digest;
use serde_json::{Map, Value};

use crate::lifecycle;
use crate::state::Shared;

pub struct DaemonExecutor {
    pub d: Shared,
    pub rt: tokio::runtime::Handle,
    /// Scratch space for layers, removed with the build.
    pub tmp: PathBuf,
    pub network_mode: Option<String>,
    n: usize,
}

impl DaemonExecutor {
    pub fn new(
        d: Shared,
        rt: tokio::runtime::Handle,
        tmp: PathBuf,
        network_mode: Option<String>,
    ) -> Self {
        DaemonExecutor {
            d,
            rt,
            tmp,
            network_mode,
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

impl Executor for DaemonExecutor {
    fn resolve(&mut self, name: &str) -> Result<ImageState, String> {
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
        created_by: &str,
        out: &mut dyn FnMut(&str),
    ) -> Result<Result<ImageState, i64>, String> {
        let Some(parent) = image.id.clone() else {
            return Err("RUN needs a base image: the stage is FROM scratch with no shell".into());
        };
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
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = self.d.clone();
        let (cid, _) = self
            .rt
            .block_on(lifecycle::create(&d, None, body))
            .map_err(|e| e.to_string())?;
        let result = (|| -> Result<Result<ImageState, i64>, String> {
            let c = d.find(&cid).map_err(|e| e.to_string())?;
            out(&format!(" ---> Running in {}\n", &cid[..12.min(cid.len())]));
            self.rt
                .block_on(lifecycle::start(&d, &c))
                .map_err(|e| e.to_string())?;
            let code = self.rt.block_on(lifecycle::wait(c.clone(), "not-running"));
            if let Ok(log) = std::fs::read_to_string(d.paths.log_path(&cid)) {
                for line in log.lines() {
                    if let Ok(v) = serde_json::from_str::<Value>(line) {
                        if let Some(s) = v.get("log").and_then(Value::as_str) {
                            out(s);
                        }
                    }
                }
            }
            if code != 0 {
                return Ok(Err(code));
            }
            let upper = d
                .images
                .snapshots()
                .container(&cid)
                .map_err(|e| e.to_string())?
                .upper;
            let parent = Digest::parse(&parent).map_err(|e| e.to_string())?;
            let id = d
                .images
                .commit(
                    &upper,
                    Some(&parent),
                    run_config(config)?,
                    None,
                    None,
                    created_by.to_string(),
                    None,
                )
                .map_err(|e| e.to_string())?;
            Ok(Ok(self.state(&id)?))
        })();
        if let Ok(c) = d.find(&cid) {
            let _ = self.rt.block_on(lifecycle::remove(&d, &c, true, true));
        }
        result
    }

    fn commit(
        &mut self,
        image: &ImageState,
        layer: Option<&Path>,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<ImageState, String> {
        let empty;
        let dir = match layer {
            Some(l) => l,
            None => {
                empty = self.temp_dir()?;
                &empty
            }
        };
        let parent = image
            .id
            .as_deref()
            .map(Digest::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let r = self
            .d
            .images
            .commit(
                dir,
                parent.as_ref(),
                run_config(config)?,
                None,
                None,
                created_by.to_string(),
                None,
            )
            .map_err(|e| e.to_string());
        if layer.is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
        self.state(&r?)
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
}
