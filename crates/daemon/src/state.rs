//! The daemon's shared state: paths, the image store, and the container index.

use crate::container::{Container, ContainerRecord};
use crate::error::{ApiError, ApiResult};
use crate::exec::ExecRegistry;
use crate::paths::{write_atomic, Paths};
use berth_image::ImageStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Which OCI runtime the shims drive.
#[derive(Debug, Clone)]
pub enum RuntimeChoice {
    Builtin,
    External(PathBuf),
}

pub struct Daemon {
    pub paths: Paths,
    pub images: Arc<ImageStore>,
    pub runtime: RuntimeChoice,
    pub shim: PathBuf,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    pub execs: ExecRegistry,
    pub volumes: Arc<crate::volumes::VolumeStore>,
    /// The network service (None only where a Daemon is built without one).
    pub networks: Option<Arc<crate::networking::Networks>>,
    /// What `GET /events` streams.
    pub events: crate::events::Events,
}

pub type Shared = Arc<Daemon>;

impl Daemon {
    pub fn new(
        paths: Paths,
        images: Arc<ImageStore>,
        runtime: RuntimeChoice,
        shim: PathBuf,
    ) -> Self {
        let volumes = Arc::new(crate::volumes::VolumeStore::new_unopened(
            paths.data_root.join("volumes"),
        ));
        Daemon {
            volumes,
            paths,
            images,
            runtime,
            shim,
            containers: RwLock::new(HashMap::new()),
            execs: ExecRegistry::default(),
            networks: None,
            events: crate::events::Events::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Container>>> {
        self.containers.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Container>>> {
        self.containers.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.read().values().cloned().collect()
    }

    /// Find a container by full id, name (with or without '/'), or unique id prefix — Docker's order.
    pub fn find(&self, name_or_id: &str) -> ApiResult<Arc<Container>> {
        let map = self.read();
        if let Some(c) = map.get(name_or_id) {
            return Ok(c.clone());
        }
        let name = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if let Some(c) = map.values().find(|c| c.lock().name == name) {
            return Ok(c.clone());
        }
        if !name_or_id.is_empty() && name_or_id.chars().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<_> = map
                .iter()
                .filter(|(id, _)| id.starts_with(name_or_id))
                .map(|(_, c)| c.clone())
                .collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                n if n > 1 => {
                    return Err(ApiError::bad_request(format!(
                        "multiple IDs found with provided prefix: {name_or_id}"
                    )))
                }
                _ => {}
            }
        }
        Err(ApiError::no_such_container(name_or_id))
    }

    /// The container holding `name`, if any.
    pub fn name_holder(&self, name: &str) -> Option<Arc<Container>> {
        self.read()
            .values()
            .find(|c| c.lock().name == name)
            .cloned()
    }

    /// Register a new container; fails with 409 if the name is taken (checked under the write lock).
    pub fn insert(&self, record: ContainerRecord) -> ApiResult<Arc<Container>> {
        let mut map = self.write();
        if let Some(holder) = map.values().find(|c| c.lock().name == record.name) {
            return Err(name_conflict(&record.name, &holder.id));
        }
        let c = Arc::new(Container::new(record));
        map.insert(c.id.clone(), c.clone());
        Ok(c)
    }

    pub fn remove_from_index(&self, id: &str) {
        self.write().remove(id);
    }

    /// Rename under the write lock so two renames cannot take the same name.
    pub fn rename(&self, c: &Container, new_name: &str) -> ApiResult<()> {
        let map = self.write();
        if let Some(holder) = map.values().find(|h| h.lock().name == new_name) {
            if holder.id != c.id {
                return Err(name_conflict(new_name, &holder.id));
            }
        }
        c.lock().name = new_name.to_string();
        Ok(())
    }

    /// Persist a container's record (atomic; fsync only where a crash must not lose it).
    pub fn save(&self, c: &Container, sync: bool) -> ApiResult<()> {
        let rec = c.get();
        let dir = self.paths.container_dir(&rec.id);
        let data = serde_json::to_vec(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
        write_atomic(&dir.join("config.json"), &data, sync)?;
        Ok(())
    }

    /// Load every container record from disk (at start-up).
    pub fn load_all(&self) -> Vec<Arc<Container>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.paths.containers()) else {
            return out;
        };
        for e in entries.flatten() {
            let path = e.path().join("config.json");
            let Ok(data) = std::fs::read(&path) else {
                // A container dir without a record is what a crash in create leaves: finish removing it.
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            };
            match serde_json::from_slice::<ContainerRecord>(&data) {
                Ok(rec) => {
                    let c = Arc::new(Container::new(rec));
                    self.write().insert(c.id.clone(), c.clone());
                    out.push(c);
                }
                Err(err) => tracing::warn!(
                    "skipping unreadable container record {}: {err}",
                    path.display()
                ),
            }
        }
        out
    }
}

pub fn name_conflict(name: &str, holder: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}
