//! Snapshots: unpacked layers (shared by chain id) and overlayfs container root filesystems.
//!
//! Layout under `<data-root>/snapshots`:
//! - `<chain-id-hex>/fs`            an unpacked layer, used read-only as an overlay lower dir
//! - `empty/fs`                     the lower of an image with zero layers
//! - `containers/<id>/{upper,work,merged}`  a container's writable layer and its mount point

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, mount, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

const CONTAINERS_DIR: &str = "containers";
const EMPTY_LAYER_DIR: &str = "empty";
const LOWERS_FILE: &str = "lowers";

pub struct Snapshotter {
    root: PathBuf,
}

/// A container's root filesystem: its lowers (top-most first), upper, work and mount point.
#[derive(Clone, Debug)]
pub struct ContainerSnapshot {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    pub lowers: Vec<PathBuf>,
}

impl Snapshotter {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join(CONTAINERS_DIR))?;
        fs::create_dir_all(root.join(EMPTY_LAYER_DIR).join("fs"))?;
        Ok(Snapshotter {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the snapshot for `chain_id` (the parent of `layer_dir`).
    pub fn layer_snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex())
    }

    /// The unpacked layer's root: `snapshots/<chain-id-hex>/fs`.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layer_snapshot_dir(chain_id).join("fs")
    }

    /// True once a layer is completely unpacked (the `fs` dir only appears after a rename).
    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// Chain ids of every unpacked layer on disk.
    pub fn list_layers(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)? {
            let name = e?.file_name();
            if let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes an unpacked layer (idempotent).
    pub fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        remove_dir_if_exists(&self.layer_snapshot_dir(chain_id))
    }

    /// An always-empty directory, the lower of images without layers.
    pub fn empty_layer_dir(&self) -> PathBuf {
        self.root.join(EMPTY_LAYER_DIR).join("fs")
    }

    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.root.join(CONTAINERS_DIR).join(container_id)
    }

    /// Creates (or re-opens, keeping its upper dir) a container snapshot. Does not mount.
    pub fn prepare_container(
        &self,
        container_id: &str,
        lowers: &[PathBuf],
    ) -> Result<ContainerSnapshot> {
        if container_id.is_empty() || container_id.contains('/') || container_id.starts_with('.') {
            return Err(ImageError::Other(format!(
                "invalid container id {container_id:?}"
            )));
        }
        let dir = self.container_dir(container_id);
        let snap = ContainerSnapshot {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            lowers: if lowers.is_empty() {
                vec![self.empty_layer_dir()]
            } else {
                lowers.to_vec()
            },
        };
        for d in [&snap.upper, &snap.work, &snap.merged] {
            fs::create_dir_all(d)?;
        }
        // Recorded so the snapshot can be found again from its id alone (cp, diff, unmount).
        let list: Vec<String> = snap
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let tmp = dir.join(".lowers.tmp");
        fs::write(&tmp, list.join("\n"))?;
        fs::rename(&tmp, dir.join(LOWERS_FILE))?;
        Ok(snap)
    }

    /// An existing container snapshot, by container id.
    pub fn container(&self, container_id: &str) -> Result<ContainerSnapshot> {
        let dir = self.container_dir(container_id);
        let list = match fs::read_to_string(dir.join(LOWERS_FILE)) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(format!(
                    "snapshot of container {container_id}"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ContainerSnapshot {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            lowers: list
                .lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect(),
        })
    }

    /// Unmounts (if mounted) and removes a container snapshot (idempotent).
    pub fn remove_container(&self, container_id: &str) -> Result<()> {
        let dir = self.container_dir(container_id);
        let merged = dir.join("merged");
        if is_mount_point(&merged) {
            unmount(&merged, UnmountFlags::DETACH)?;
        }
        remove_dir_if_exists(&dir)
    }
}

impl ContainerSnapshot {
    /// Mounts the overlay at `merged`. Uses the new mount API with one `lowerdir+` per
    /// layer (no page-size limit on the option string), falling back to mount(2).
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        match self.mount_with_fsopen() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!("overlay via fsopen failed ({e}), falling back to mount(2)");
                self.mount_legacy()
            }
        }
    }

    /// Like `mount`, with overlayfs' `volatile` option: no sync of the upper dir at unmount
    /// (which would write out everything the container wrote). For snapshots that are
    /// thrown away after use (a build step's, once its diff is committed); falls back to a
    /// plain mount where the kernel lacks the option.
    pub fn mount_volatile(&self) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        match self.mount_fsopen(true) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!("volatile overlay via fsopen failed ({e}), trying mount(2)");
                self.mount_legacy_opts(",volatile")
                    .or_else(|_| self.mount())
            }
        }
    }

    fn mount_with_fsopen(&self) -> Result<()> {
        self.mount_fsopen(false)
    }

    fn mount_fsopen(&self, volatile: bool) -> Result<()> {
        let fs_fd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        if volatile {
            rustix::mount::fsconfig_set_flag(&fs_fd, "volatile")?;
        }
        for lower in &self.lowers {
            fsconfig_set_string(&fs_fd, "lowerdir+", lower)?;
        }
        fsconfig_set_string(&fs_fd, "upperdir", &self.upper)?;
        fsconfig_set_string(&fs_fd, "workdir", &self.work)?;
        fsconfig_create(&fs_fd)?;
        let mnt = fsmount(
            &fs_fd,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        )?;
        move_mount(
            &mnt,
            "",
            CWD,
            &self.merged,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
        Ok(())
    }

    fn mount_legacy(&self) -> Result<()> {
        self.mount_legacy_opts("")
    }

    fn mount_legacy_opts(&self, extra: &str) -> Result<()> {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            lowers.join(":"),
            self.upper.display(),
            self.work.display()
        );
        let data = std::ffi::CString::new(data).map_err(|e| ImageError::Other(e.to_string()))?;
        mount(
            "overlay",
            &self.merged,
            "overlay",
            MountFlags::empty(),
            Some(data.as_c_str()),
        )?;
        Ok(())
    }

    /// Lazily detaches the overlay (idempotent).
    pub fn unmount(&self) -> Result<()> {
        if !self.is_mounted() {
            return Ok(());
        }
        unmount(&self.merged, UnmountFlags::DETACH)?;
        Ok(())
    }

    pub fn is_mounted(&self) -> bool {
        is_mount_point(&self.merged)
    }
}

/// True when `path` is listed as a mount point in /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
