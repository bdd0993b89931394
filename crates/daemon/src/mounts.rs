//! A container's mount points: parsing and validating `HostConfig.Binds` (`-v`),
//! `HostConfig.Mounts` (`--mount`), `Config.Volumes` (anonymous volumes, the image's `VOLUME`s),
//! `HostConfig.Tmpfs` (`--tmpfs`) and `HostConfig.VolumesFrom`, with Docker's rules and error
//! messages (moby `volume/mounts/linux_parser.go`, `daemon/volumes.go`); turning them into OCI
//! mounts; and the copy-up of image content into a fresh volume.

use crate::error::{ApiError, ApiResult};
use crate::volumes::{VolumeStore, ANONYMOUS_LABEL};
use berth_api::models::{HostConfig, Mount as ApiMount, MountTypeEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

/// One mount of a container, as persisted in its record and reported in inspect's `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// "volume", "bind" or "tmpfs".
    pub typ: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// Host path: the bind source, or the volume's `_data` once resolved.
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub driver: String,
    /// The mode string as Docker reports it ("", "z", "ro", "ro,Z", …).
    #[serde(default)]
    pub mode: String,
    pub rw: bool,
    /// Bind propagation ("rprivate" by default for binds, "" for volumes).
    #[serde(default)]
    pub propagation: String,
    /// Copy the image's content into the volume when it is empty (volumes only; `nocopy` clears it).
    #[serde(default)]
    pub copy_data: bool,
    /// A volume made for this container alone (`-v /path`, `VOLUME`, `--mount` without source).
    #[serde(default)]
    pub anonymous: bool,
    /// `-v` creates a missing bind source; `--mount` refuses it.
    #[serde(default)]
    pub create_source: bool,
    /// tmpfs mount options (size=…, mode=…, …).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// `--tmpfs` mounts are not listed in inspect's `Mounts` (Docker lists only `--mount` ones).
    #[serde(default)]
    pub hidden: bool,
    /// Volume labels and driver options from `--mount` (applied when the volume is created).
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub volume_options: BTreeMap<String, String>,
}

fn invalid_spec(raw: &str) -> ApiError {
    ApiError::bad_request(format!("invalid volume specification: '{raw}'"))
}

fn mount_cfg_err(typ: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid mount config for type \"{typ}\": {msg}"))
}

fn not_absolute(p: &str) -> String {
    format!("invalid mount path: '{p}' mount path must be absolute")
}

const PROPAGATIONS: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// Docker's `ValidMountMode`: at most one of each kind, comma-separated.
fn parse_mode(mode: &str) -> Option<ModeParts> {
    let mut m = ModeParts::default();
    if mode.is_empty() {
        return Some(m);
    }
    let (mut rw, mut label, mut prop, mut copy) = (0, 0, 0, 0);
    for o in mode.split(',') {
        match o {
            "rw" | "ro" => {
                rw += 1;
                m.ro = o == "ro";
            }
            "z" | "Z" => label += 1,
            "nocopy" => {
                copy += 1;
                m.nocopy = true;
            }
            p if PROPAGATIONS.contains(&p) => {
                prop += 1;
                m.propagation = Some(p.to_string());
            }
            _ => return None,
        }
    }
    (rw <= 1 && label <= 1 && prop <= 1 && copy <= 1).then_some(m)
}

#[derive(Default)]
struct ModeParts {
    ro: bool,
    nocopy: bool,
    propagation: Option<String>,
}

fn clean(p: &str) -> String {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// One `-v` entry.
pub fn parse_bind(raw: &str) -> ApiResult<MountPoint> {
    if raw.is_empty() || raw.matches(':').count() > 2 {
        return Err(invalid_spec(raw));
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [_, m] if parse_mode(m).is_some() => return Err(invalid_spec(raw)),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec(raw)),
    };
    let Some(mp) = parse_mode(mode) else {
        return Err(ApiError::bad_request(format!("invalid mode: {mode}")));
    };
    let typ = if source.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    let wrap = |e: ApiError| ApiError::bad_request(format!("{}: {}", invalid_spec(raw), e.message));
    if target.is_empty() {
        return Err(wrap(mount_cfg_err(typ, "field Target must not be empty")));
    }
    if !target.starts_with('/') {
        return Err(wrap(mount_cfg_err(typ, not_absolute(target))));
    }
    if clean(target) == "/" {
        return Err(ApiError::bad_request(
            "invalid specification: destination can't be '/'",
        ));
    }
    let mut m = MountPoint {
        typ: typ.into(),
        destination: clean(target),
        mode: mode.to_string(),
        rw: !mp.ro,
        ..Default::default()
    };
    if typ == "bind" {
        m.source = clean(source);
        m.propagation = mp.propagation.unwrap_or_else(|| "rprivate".into());
        m.create_source = true;
    } else {
        if !source.is_empty() {
            crate::volumes::valid_name(source)?;
        }
        m.name = source.to_string();
        m.anonymous = source.is_empty();
        m.copy_data = !mp.nocopy;
        m.driver = "local".into();
        if m.mode.is_empty() && !m.anonymous {
            m.mode = "z".into();
        }
    }
    Ok(m)
}

/// One `HostConfig.Mounts` entry (`--mount`).
pub fn parse_mount(spec: &ApiMount) -> ApiResult<MountPoint> {
    let typ = match spec.typ {
        Some(MountTypeEnum::BIND) => "bind",
        Some(MountTypeEnum::VOLUME) => "volume",
        Some(MountTypeEnum::TMPFS) => "tmpfs",
        Some(other) => {
            let t = serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            return Err(mount_cfg_err(&t, "mount type unknown"));
        }
        None => return Err(mount_cfg_err("", "mount type unknown")),
    };
    let target = spec.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(mount_cfg_err(typ, "field Target must not be empty"));
    }
    if !target.starts_with('/') {
        return Err(mount_cfg_err(typ, not_absolute(&target)));
    }
    let source = spec.source.clone().unwrap_or_default();
    let ro = spec.read_only.unwrap_or(false);
    let mut m = MountPoint {
        typ: typ.into(),
        destination: clean(&target),
        rw: !ro,
        ..Default::default()
    };
    match typ {
        "bind" => {
            if spec.volume_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field VolumeOptions must not be specified",
                ));
            }
            if spec.tmpfs_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field TmpfsOptions must not be specified",
                ));
            }
            if source.is_empty() {
                return Err(mount_cfg_err(typ, "field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(mount_cfg_err(typ, not_absolute(&source)));
            }
            if std::fs::metadata(&source).is_err() {
                return Err(mount_cfg_err(
                    typ,
                    format!("bind source path does not exist: {source}"),
                ));
            }
            m.source = clean(&source);
            m.propagation = spec
                .bind_options
                .as_ref()
                .and_then(|b| b.propagation)
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
        }
        "volume" => {
            if spec.bind_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field BindOptions must not be specified",
                ));
            }
            if spec.tmpfs_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field TmpfsOptions must not be specified",
                ));
            }
            if !source.is_empty() {
                crate::volumes::valid_name(&source)?;
            }
            let vo = spec.volume_options.clone().unwrap_or_default();
            m.name = source.clone();
            m.anonymous = source.is_empty();
            m.copy_data = !vo.no_copy.unwrap_or(false);
            m.driver = "local".into();
            m.mode = "z".into();
            m.volume_labels = vo.labels.unwrap_or_default().into_iter().collect();
            if let Some(dc) = vo.driver_config {
                if let Some(name) = dc.name.filter(|n| !n.is_empty() && n != "local") {
                    return Err(ApiError::not_found(format!(
                        "error looking up volume plugin {name}: plugin \"{name}\" not found"
                    )));
                }
                m.volume_options = dc.options.unwrap_or_default().into_iter().collect();
            }
        }
        _ => {
            if !source.is_empty() {
                return Err(mount_cfg_err(typ, "field Source must not be specified"));
            }
            if spec.bind_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field BindOptions must not be specified",
                ));
            }
            if spec.volume_options.is_some() {
                return Err(mount_cfg_err(
                    typ,
                    "field VolumeOptions must not be specified",
                ));
            }
            let mut opts = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
            if let Some(t) = &spec.tmpfs_options {
                if let Some(sz) = t.size_bytes.filter(|s| *s > 0) {
                    opts.push(format!("size={sz}"));
                }
                if let Some(mode) = t.mode.filter(|m| *m > 0) {
                    opts.push(format!("mode={mode:o}"));
                }
            }
            if ro {
                opts.push("ro".into());
            }
            m.tmpfs_options = opts;
        }
    }
    Ok(m)
}

/// One `--tmpfs /path[:opts]` entry.
fn parse_tmpfs(dest: &str, opts: &str) -> ApiResult<MountPoint> {
    if !dest.starts_with('/') {
        return Err(mount_cfg_err("tmpfs", not_absolute(dest)));
    }
    let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
    let mut rw = true;
    for x in opts.split(',').filter(|x| !x.is_empty()) {
        if x == "ro" {
            rw = false;
        }
        o.push(x.to_string());
    }
    Ok(MountPoint {
        typ: "tmpfs".into(),
        destination: clean(dest),
        rw,
        tmpfs_options: o,
        hidden: true,
        ..Default::default()
    })
}

fn duplicate(dest: &str) -> ApiError {
    ApiError::bad_request(format!("Duplicate mount point: {dest}"))
}

/// All of a container's mount points, in Docker's order: `--volumes-from`, `-v`, `--mount`,
/// `--tmpfs`, then the anonymous volumes of `Config.Volumes` not already covered.
/// `volumes_from(name)` answers another container's mount points.
pub fn parse_all(
    hc: &HostConfig,
    config_volumes: Option<&HashMap<String, HashMap<(), ()>>>,
    volumes_from: &dyn Fn(&str) -> ApiResult<Vec<MountPoint>>,
) -> ApiResult<Vec<MountPoint>> {
    let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
    for vf in hc.volumes_from.clone().unwrap_or_default() {
        let (name, mode) = match vf.split_once(':') {
            Some((n, m)) => (n, m),
            None => (vf.as_str(), ""),
        };
        let rw = match mode {
            "" => None,
            "rw" => Some(true),
            "ro" => Some(false),
            m => return Err(ApiError::bad_request(format!("invalid mode: {m}"))),
        };
        for mut mp in volumes_from(name)? {
            if mp.hidden {
                continue;
            }
            if let Some(rw) = rw {
                mp.rw = rw;
                mp.mode = if rw { "rw".into() } else { "ro".into() };
            }
            // Shared, not owned: `rm -v` of this container never removes them.
            mp.anonymous = false;
            mp.copy_data = false;
            mp.create_source = false;
            by_dest.insert(mp.destination.clone(), mp);
        }
    }
    let mut explicit: Vec<String> = Vec::new();
    for raw in hc.binds.clone().unwrap_or_default() {
        let mp = parse_bind(&raw)?;
        if explicit.contains(&mp.destination) {
            return Err(duplicate(&mp.destination));
        }
        explicit.push(mp.destination.clone());
        by_dest.insert(mp.destination.clone(), mp);
    }
    for spec in hc.mounts.clone().unwrap_or_default() {
        let mp = parse_mount(&spec)?;
        if explicit.contains(&mp.destination) {
            return Err(duplicate(&mp.destination));
        }
        explicit.push(mp.destination.clone());
        by_dest.insert(mp.destination.clone(), mp);
    }
    for (dest, opts) in hc.tmpfs.clone().unwrap_or_default() {
        let mp = parse_tmpfs(&dest, &opts)?;
        if explicit.contains(&mp.destination) {
            return Err(duplicate(&mp.destination));
        }
        explicit.push(mp.destination.clone());
        by_dest.insert(mp.destination.clone(), mp);
    }
    for dest in config_volumes
        .map(|v| v.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !dest.starts_with('/') {
            return Err(mount_cfg_err("volume", not_absolute(&dest)));
        }
        let d = clean(&dest);
        if by_dest.contains_key(&d) {
            continue;
        }
        by_dest.insert(
            d.clone(),
            MountPoint {
                typ: "volume".into(),
                destination: d,
                driver: "local".into(),
                rw: true,
                copy_data: true,
                anonymous: true,
                ..Default::default()
            },
        );
    }
    Ok(by_dest.into_values().collect())
}

/// Create the volumes the mount points name (anonymous ones get a fresh 64-hex name) and the
/// missing `-v` bind sources. Returns the names of the volumes created here, so a failed create
/// can remove them again.
pub fn resolve(mps: &mut [MountPoint], store: &VolumeStore) -> ApiResult<Vec<String>> {
    let mut created = Vec::new();
    let res = resolve_inner(mps, store, &mut created);
    if res.is_err() {
        for name in &created {
            let _ = store.remove(name);
        }
    }
    res.map(|_| created)
}

fn resolve_inner(
    mps: &mut [MountPoint],
    store: &VolumeStore,
    created: &mut Vec<String>,
) -> ApiResult<()> {
    for mp in mps.iter_mut() {
        match mp.typ.as_str() {
            "volume" if mp.source.is_empty() => {
                let existed = !mp.name.is_empty() && store.get(&mp.name).is_some();
                let mut labels = std::mem::take(&mut mp.volume_labels);
                if mp.anonymous {
                    labels.insert(ANONYMOUS_LABEL.into(), String::new());
                }
                let opts = std::mem::take(&mut mp.volume_options);
                let name = (!mp.name.is_empty()).then_some(mp.name.as_str());
                let vol = store.create(name, Some("local"), labels, opts)?;
                if !existed {
                    created.push(vol.name.clone());
                }
                mp.name = vol.name.clone();
                mp.driver = vol.driver.clone();
                mp.source = store.mountpoint(&vol.name).to_string_lossy().into_owned();
            }
            "bind" if mp.create_source && std::fs::symlink_metadata(&mp.source).is_err() => {
                std::fs::create_dir_all(&mp.source).map_err(|e| {
                    ApiError::internal(format!(
                        "error while creating mount source path '{}': {e}",
                        mp.source
                    ))
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// inspect's `Mounts` entry, exactly as Docker prints it.
pub fn inspect_json(mp: &MountPoint) -> Value {
    match mp.typ.as_str() {
        "volume" => json!({
            "Type": "volume",
            "Name": mp.name,
            "Source": mp.source,
            "Destination": mp.destination,
            "Driver": mp.driver,
            "Mode": mp.mode,
            "RW": mp.rw,
            "Propagation": mp.propagation,
        }),
        typ => json!({
            "Type": typ,
            "Source": mp.source,
            "Destination": mp.destination,
            "Mode": mp.mode,
            "RW": mp.rw,
            "Propagation": mp.propagation,
        }),
    }
}

/// inspect's `Mounts` array.
pub fn inspect_list(mps: &[MountPoint]) -> Value {
    Value::Array(mps.iter().filter(|m| !m.hidden).map(inspect_json).collect())
}

/// The OCI mounts, parents before children.
pub fn oci_mounts(mps: &[MountPoint]) -> Vec<oci_spec::runtime::Mount> {
    let mut sorted: Vec<&MountPoint> = mps.iter().collect();
    sorted.sort_by_key(|m| Path::new(&m.destination).components().count());
    sorted
        .into_iter()
        .filter_map(|m| {
            let v = match m.typ.as_str() {
                "tmpfs" => json!({
                    "destination": m.destination,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": m.tmpfs_options,
                }),
                _ => {
                    let mut opts = vec!["rbind".to_string()];
                    opts.push(if m.propagation.is_empty() {
                        "rprivate".into()
                    } else {
                        m.propagation.clone()
                    });
                    if !m.rw {
                        opts.push("ro".into());
                    }
                    json!({
                        "destination": m.destination,
                        "type": "bind",
                        "source": m.source,
                        "options": opts,
                    })
                }
            };
            serde_json::from_value(v).ok()
        })
        .collect()
}

/// Whether one of the mounts is at `dest` (`Some(true)`) or at a directory above it (`Some(false)`).
pub fn covered(mps: &[MountPoint], dest: &str) -> Option<bool> {
    let d = Path::new(dest);
    if mps.iter().any(|m| Path::new(&m.destination) == d) {
        return Some(true);
    }
    mps.iter()
        .any(|m| d.starts_with(&m.destination))
        .then_some(false)
}

/// A read-write bind of one daemon-managed file (hosts, hostname, resolv.conf).
pub fn file_bind(dest: &str, src: &Path) -> Option<oci_spec::runtime::Mount> {
    serde_json::from_value(json!({
        "destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"],
    }))
    .ok()
}

/// `dest` inside `rootfs`, symlinks resolved as if `rootfs` were `/` (the runtime's own
/// resolution, so copy-up reads exactly where the mount will land).
pub use berth_runtime::builtin::in_root;

/// Copy the image's content at each volume's destination into the volume, if the volume is
/// empty (Docker's copy-up). Owners, modes, links and times are kept (`cp -a`).
pub fn copy_up(rootfs: &Path, mps: &[MountPoint]) -> ApiResult<()> {
    for mp in mps.iter().filter(|m| m.typ == "volume" && m.copy_data) {
        let vol = Path::new(&mp.source);
        let empty = std::fs::read_dir(vol)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            continue;
        }
        let src = in_root(rootfs, Path::new(&mp.destination));
        let Ok(md) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        let has_content = std::fs::read_dir(&src)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_content {
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg("--no-dereference")
                .arg(format!("{}/.", src.display()))
                .arg(vol)
                .output()
                .map_err(|e| ApiError::internal(format!("copying image content: {e}")))?;
            if !out.status.success() {
                return Err(ApiError::internal(format!(
                    "copying image content to volume {}: {}",
                    mp.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        // The volume's root takes the image directory's owner and mode.
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let _ = std::os::unix::fs::chown(vol, Some(md.uid()), Some(md.gid()));
        let _ = std::fs::set_permissions(vol, std::fs::Permissions::from_mode(md.mode() & 0o7777));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        let m = parse_bind("data:/app/data").unwrap();
        assert_eq!(
            (m.typ.as_str(), m.name.as_str(), m.mode.as_str(), m.rw),
            ("volume", "data", "z", true)
        );
        let m = parse_bind("/src:/app/src:ro").unwrap();
        assert_eq!(
            (
                m.typ.as_str(),
                m.source.as_str(),
                m.rw,
                m.propagation.as_str()
            ),
            ("bind", "/src", false, "rprivate")
        );
        let m = parse_bind("/src:/x:ro,Z,rshared").unwrap();
        assert_eq!(m.propagation, "rshared");
        let m = parse_bind("/x").unwrap();
        assert!(m.anonymous);
        assert_eq!(
            parse_bind("a:b:c:d").unwrap_err().message,
            "invalid volume specification: 'a:b:c:d'"
        );
        assert_eq!(
            parse_bind("/x:rw").unwrap_err().message,
            "invalid volume specification: '/x:rw'"
        );
        assert_eq!(
            parse_bind("/a:/b:bogus").unwrap_err().message,
            "invalid mode: bogus"
        );
        assert_eq!(
            parse_bind("/a:/b:ro,rw").unwrap_err().message,
            "invalid mode: ro,rw"
        );
        assert!(parse_bind("/a:rel")
            .unwrap_err()
            .message
            .contains("mount path must be absolute"));
        assert!(parse_bind("rel/x:/b")
            .unwrap_err()
            .message
            .contains("includes invalid characters"));
    }

    #[test]
    fn duplicates_and_anonymous() {
        let hc = HostConfig {
            binds: Some(vec!["v1:/d".into()]),
            mounts: Some(vec![ApiMount {
                typ: Some(MountTypeEnum::TMPFS),
                target: Some("/d".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let none = |_: &str| -> ApiResult<Vec<MountPoint>> { Ok(vec![]) };
        assert_eq!(
            parse_all(&hc, None, &none).unwrap_err().message,
            "Duplicate mount point: /d"
        );
        let hc = HostConfig {
            binds: Some(vec!["/tmp:/d".into()]),
            ..Default::default()
        };
        let mut vols = HashMap::new();
        vols.insert("/d".to_string(), HashMap::new());
        vols.insert("/e".to_string(), HashMap::new());
        let all = parse_all(&hc, Some(&vols), &none).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].typ, "bind");
        assert!(all[1].anonymous);
    }

    #[test]
    fn in_root_never_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../../..", tmp.path().join("up")).unwrap();
        assert_eq!(
            in_root(tmp.path(), Path::new("/link/x")),
            tmp.path().join("etc/x")
        );
        assert_eq!(
            in_root(tmp.path(), Path::new("/up/etc")),
            tmp.path().join("etc")
        );
    }
}
