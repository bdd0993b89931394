//! The volume store: named and anonymous volumes of the `local` driver, as Docker keeps them.
//!
//! Each volume is a directory `<data-root>/volumes/<name>/` holding `_data` (what containers
//! see) and `volume.json` (its metadata, written atomically). The in-memory index is rebuilt
//! from disk at start-up, so a daemon restart keeps every volume.
//!
//! A `local` volume created with `-o type=… -o device=… -o o=…` is mounted onto its `_data`
//! with mount(8) when a container first uses it, and unmounted when the volume is removed.

use crate::error::{ApiError, ApiResult};
use crate::paths::write_atomic;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The label Docker (23+) puts on anonymous volumes; `volume prune` without `--all` removes
/// only volumes carrying it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

pub struct VolumeStore {
    root: PathBuf,
    index: RwLock<HashMap<String, Volume>>,
}

/// Docker's rule for local volume names.
pub fn valid_name(name: &str) -> ApiResult<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(ApiError::bad_request(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if name.len() < 2 {
        return Err(ApiError::bad_request(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    Ok(())
}

pub fn no_such_volume(name: &str) -> ApiError {
    ApiError::not_found(format!("get {name}: no such volume"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl VolumeStore {
    /// Open `<data-root>/volumes`, loading every volume's metadata.
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        let mut index = HashMap::new();
        for e in std::fs::read_dir(&root)?.flatten() {
            let dir = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if dir.join(".removing").exists() {
                // A crash in the middle of a remove: finish it.
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            let vol = match std::fs::read(dir.join("volume.json")) {
                Ok(data) => match serde_json::from_slice::<Volume>(&data) {
                    Ok(v) => v,
                    Err(err) => {
                        tracing::warn!("skipping unreadable volume {name}: {err}");
                        continue;
                    }
                },
                // A data dir without metadata (e.g. copied in by hand) is still a volume.
                Err(_) if dir.join("_data").is_dir() => Volume {
                    name: name.clone(),
                    driver: "local".into(),
                    created_at: now(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                },
                Err(_) => continue,
            };
            index.insert(name, vol);
        }
        Ok(VolumeStore {
            root,
            index: RwLock::new(index),
        })
    }

    /// An empty store rooted at `root`, without touching the disk (replaced by [`Self::open`]'s
    /// store when the daemon starts).
    pub fn new_unopened(root: PathBuf) -> Self {
        VolumeStore {
            root,
            index: RwLock::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Volume>> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Volume>> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Option<Volume> {
        self.read().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Volume> {
        let mut v: Vec<Volume> = self.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Create a volume; an existing one with that name is returned unchanged (as Docker does).
    /// `name` None makes an anonymous volume with a 64-hex name.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> ApiResult<Volume> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(ApiError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let mut labels = labels;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                valid_name(n)?;
                n.to_string()
            }
            None => {
                // As moby's volume service: a volume created without a name is anonymous.
                labels.entry(ANONYMOUS_LABEL.into()).or_default();
                hex::encode(rand::random::<[u8; 32]>())
            }
        };
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
                return Err(ApiError::bad_request(format!(
                    "create {name}: invalid option key: \"{k}\""
                )));
            }
        }
        let mut index = self.write();
        if let Some(v) = index.get(&name) {
            return Ok(v.clone());
        }
        let vol = Volume {
            name: name.clone(),
            driver: driver.to_string(),
            created_at: now(),
            labels,
            options,
        };
        let dir = self.dir(&name);
        std::fs::create_dir_all(dir.join("_data"))?;
        let data =
            serde_json::to_vec_pretty(&vol).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Err(e) = write_atomic(&dir.join("volume.json"), &data, true) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        index.insert(name, vol.clone());
        Ok(vol)
    }

    /// Remove a volume (the caller has checked it is unused): out of the index, then off disk.
    pub fn remove(&self, name: &str) -> ApiResult<()> {
        let dir = self.dir(name);
        {
            let mut index = self.write();
            if index.remove(name).is_none() {
                return Err(no_such_volume(name));
            }
            let _ = std::fs::write(dir.join(".removing"), b"");
        }
        let data = dir.join("_data");
        if is_mountpoint(&data) {
            let _ = std::process::Command::new("umount").arg(&data).status();
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// For a `local` volume with mount options: mount the device on `_data` if not mounted yet.
    pub fn ensure_mounted(&self, name: &str) -> ApiResult<()> {
        let Some(vol) = self.get(name) else {
            return Err(no_such_volume(name));
        };
        let Some(typ) = vol.options.get("type") else {
            return Ok(());
        };
        let data = self.mountpoint(name);
        if is_mountpoint(&data) {
            return Ok(());
        }
        let mut cmd = std::process::Command::new("mount");
        cmd.arg("-t").arg(typ);
        if let Some(o) = vol.options.get("o").filter(|o| !o.is_empty()) {
            cmd.arg("-o").arg(o);
        }
        let device = vol.options.get("device").cloned().unwrap_or_default();
        let out = cmd
            .arg(&device)
            .arg(&data)
            .output()
            .map_err(|e| ApiError::internal(format!("running mount: {e}")))?;
        if !out.status.success() {
            return Err(ApiError::internal(format!(
                "error while mounting volume '{}': failed to mount local volume: mount {device}:{} , flags: 0x0, data: {}: {}",
                data.display(),
                data.display(),
                vol.options.get("o").cloned().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The volume as the API shows it.
    pub fn to_json(&self, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": v.labels,
            "Mountpoint": self.mountpoint(&v.name),
            "Name": v.name,
            "Options": v.options,
            "Scope": "local",
        })
    }

    /// Bytes used under `_data` (for prune's SpaceReclaimed).
    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.mountpoint(name))
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Whether `p` is a mount point (its device differs from its parent's).
pub fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(Ok(b))) = (std::fs::metadata(p), p.parent().map(std::fs::metadata)) else {
        return false;
    };
    a.dev() != b.dev()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("data").is_ok());
        assert!(valid_name("a.b-c_d").is_ok());
        assert!(valid_name("a").is_err());
        assert!(valid_name("a/b")
            .unwrap_err()
            .message
            .contains("includes invalid characters"));
        assert!(valid_name(".x").is_err());
    }

    #[test]
    fn create_reload_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("volumes");
        let s = VolumeStore::open(root.clone()).unwrap();
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "b".to_string());
        let v = s
            .create(Some("data"), None, labels, BTreeMap::new())
            .unwrap();
        assert_eq!(v.driver, "local");
        std::fs::write(s.mountpoint("data").join("f"), b"x").unwrap();
        // Same name again: unchanged.
        let again = s
            .create(Some("data"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(again.labels.get("a").map(String::as_str), Some("b"));
        let anon = s
            .create(None, None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        drop(s);
        let s = VolumeStore::open(root).unwrap();
        assert_eq!(s.all().len(), 2);
        assert_eq!(std::fs::read(s.mountpoint("data").join("f")).unwrap(), b"x");
        s.remove("data").unwrap();
        assert!(s.get("data").is_none());
        assert!(!s.dir("data").exists());
        assert_eq!(s.remove("data").unwrap_err().status, 404);
        assert!(s
            .create(Some("x1"), Some("nfs"), BTreeMap::new(), BTreeMap::new())
            .is_err());
    }
}
