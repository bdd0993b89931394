//! Where the daemon keeps each thing, under `--data-root` and `--exec-root`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
}

impl Paths {
    pub fn containers(&self) -> PathBuf {
        self.data_root.join("containers")
    }
    /// Persistent per-container dir: config, log, hostname, hosts, resolv.conf.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
    /// The OCI bundle (config.json) lives beside the container's other files.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("bundle")
    }
    /// Runtime state of the shim (exit.json). Under exec-root: gone on reboot, kept across daemon restarts.
    pub fn shim_state_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }
    /// Unix socket paths are limited to 108 bytes, so the shim's socket gets a short name.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        self.exec_root
            .join("s")
            .join(format!("{}.sock", &id[..id.len().min(16)]))
    }
    pub fn runc_root(&self) -> PathBuf {
        self.exec_root.join("runc")
    }
}

/// Write a file atomically: temp file, optional fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)
}
