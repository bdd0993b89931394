//! Layer unpack: whiteouts, metadata and, above all, path safety, with tar bytes built here.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::digest::Digest;
use berth_image::layer::{self, ChangeKind};
use berth_image::ImageError;
use tar::{EntryType, Header};

/// A tar built entry by entry; names are written raw so hostile names survive.
struct TarBuilder {
    out: Vec<u8>,
}

impl TarBuilder {
    fn new() -> Self {
        TarBuilder { out: Vec::new() }
    }

    fn raw(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_old();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, EntryType::Directory, 0o755, None, b"")
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, EntryType::Regular, 0o644, None, data)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Symlink, 0o777, Some(target), b"")
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Link, 0o644, Some(target), b"")
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    dest: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"keep").unwrap();
    Sandbox {
        dest,
        outside,
        _tmp: tmp,
    }
}

fn assert_outside_untouched(s: &Sandbox) {
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(fs::read(s.outside.join("secret")).unwrap(), b"keep");
}

#[test]
fn unpacks_files_links_and_whiteouts() {
    let s = sandbox();
    let tar = TarBuilder::new()
        .dir("etc/")
        .file("etc/hostname", b"box\n")
        .raw("bin/tool", EntryType::Regular, 0o4755, None, b"#!")
        .symlink("bin/sh", "/bin/tool")
        .hardlink("bin/tool2", "bin/tool")
        .file("var/.wh.gone", b"")
        .dir("opt/")
        .file("opt/.wh..wh..opq", b"")
        .finish();
    let stats = layer::unpack(&tar[..], &s.dest).unwrap();
    assert_eq!(stats.diff_id, Digest::from_bytes(&tar));
    assert_eq!(stats.size, 4 + 2);
    assert_eq!(fs::read(s.dest.join("etc/hostname")).unwrap(), b"box\n");
    let tool = fs::metadata(s.dest.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(tool.mtime(), 1_700_000_000);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        fs::read_link(s.dest.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    let wh = fs::symlink_metadata(s.dest.join("var/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!s.dest.join("var/.wh.gone").exists());
    assert!(!s.dest.join("opt/.wh..wh..opq").exists());
    assert_eq!(
        fs::metadata(s.dest.join("etc")).unwrap().mtime(),
        1_700_000_000
    );
}

#[test]
fn rejects_dot_dot() {
    let s = sandbox();
    let tar = TarBuilder::new()
        .file("a/../../outside/pwned", b"x")
        .finish();
    let err = layer::unpack(&tar[..], &s.dest).unwrap_err();
    assert!(matches!(err, ImageError::UnsafePath(_)), "{err}");
    assert_outside_untouched(&s);
}

#[test]
fn absolute_paths_stay_inside() {
    let s = sandbox();
    let abs = format!("{}/pwned", s.outside.display());
    let tar = TarBuilder::new().file(&abs, b"x").finish();
    layer::unpack(&tar[..], &s.dest).unwrap();
    assert_outside_untouched(&s);
    assert!(s.dest.join(abs.trim_start_matches('/')).is_file());
}

#[test]
fn symlink_then_write_through_it_is_refused() {
    for target in [
        s_abs_placeholder(),
        "../outside".to_string(),
        "../../../../../../outside".to_string(),
    ] {
        let s = sandbox();
        let target = if target == "ABS" {
            s.outside.display().to_string()
        } else {
            target
        };
        let tar = TarBuilder::new()
            .symlink("evil", &target)
            .file("evil/pwned", b"x")
            .finish();
        let err = layer::unpack(&tar[..], &s.dest).unwrap_err();
        assert!(matches!(err, ImageError::UnsafePath(_)), "{target}: {err}");
        assert_outside_untouched(&s);
        // And a file entry with the symlink's own name replaces the link, not its target.
        let tar = TarBuilder::new()
            .symlink("evil", &format!("{}/secret", s.outside.display()))
            .file("evil", b"x")
            .finish();
        layer::unpack(&tar[..], &s.dest).unwrap();
        assert_outside_untouched(&s);
        assert!(fs::symlink_metadata(s.dest.join("evil")).unwrap().is_file());
    }
}

fn s_abs_placeholder() -> String {
    "ABS".to_string()
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let s = sandbox();
    let tar = TarBuilder::new()
        .hardlink("hl", "../outside/secret")
        .finish();
    assert!(matches!(
        layer::unpack(&tar[..], &s.dest).unwrap_err(),
        ImageError::UnsafePath(_)
    ));
    // An absolute target is taken relative to dest: here it does not exist.
    let abs = format!("{}/secret", s.outside.display());
    let tar = TarBuilder::new().hardlink("hl", &abs).finish();
    assert!(layer::unpack(&tar[..], &s.dest).is_err());
    assert_eq!(fs::metadata(s.outside.join("secret")).unwrap().nlink(), 1);
    // A hardlink to a symlink pointing out links the symlink, and writing it replaces it.
    let tar = TarBuilder::new()
        .symlink("sl", &abs)
        .hardlink("hl", "sl")
        .file("hl", b"overwrite")
        .finish();
    layer::unpack(&tar[..], &s.dest).unwrap();
    assert_outside_untouched(&s);
    // Through a symlinked parent in the hardlink's target: refused.
    let tar = TarBuilder::new()
        .symlink("out", &s.outside.display().to_string())
        .hardlink("hl2", "out/secret")
        .finish();
    assert!(matches!(
        layer::unpack(&tar[..], &s.dest).unwrap_err(),
        ImageError::UnsafePath(_)
    ));
    assert_eq!(fs::metadata(s.outside.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn directory_swapped_for_symlink_is_refused() {
    let s = sandbox();
    let tar = TarBuilder::new()
        .dir("d/")
        .file("d/a", b"1")
        .symlink("d", &s.outside.display().to_string())
        .file("d/b", b"2")
        .finish();
    let err = layer::unpack(&tar[..], &s.dest).unwrap_err();
    assert!(matches!(err, ImageError::UnsafePath(_)), "{err}");
    assert_outside_untouched(&s);
}

#[test]
fn truncated_tar_is_an_error() {
    let s = sandbox();
    let tar = TarBuilder::new().file("big", &[7u8; 5000]).finish();
    let err = layer::unpack(&tar[..3000], &s.dest).unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive(_)), "{err}");
}

#[test]
fn decompress_sniffs_gzip_zstd_plain() {
    let plain = TarBuilder::new().file("f", b"hello").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for data in [plain.clone(), gz, zst] {
        let mut out = Vec::new();
        layer::decompress(std::io::Cursor::new(data))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
    }
}

#[test]
fn diff_roundtrip_with_whiteouts() {
    let s = sandbox();
    let tar = TarBuilder::new()
        .dir("etc/")
        .file("etc/new", b"n")
        .file("etc/.wh.old", b"")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/keep", b"k")
        .finish();
    layer::unpack(&tar[..], &s.dest).unwrap();
    let mut diff = Vec::new();
    layer::write_diff(&s.dest, &mut diff).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&diff[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "etc",
            "etc/.wh.old",
            "etc/new",
            "opq",
            "opq/.wh..wh..opq",
            "opq/keep"
        ]
    );
    // Deterministic.
    let mut again = Vec::new();
    layer::write_diff(&s.dest, &mut again).unwrap();
    assert_eq!(diff, again);

    let lower = s.dest.parent().unwrap().join("lower");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::write(lower.join("etc/old"), b"o").unwrap();
    let ch = layer::changes(&s.dest, &[lower]).unwrap();
    let got: Vec<(String, ChangeKind)> = ch.into_iter().map(|c| (c.path, c.kind)).collect();
    assert_eq!(
        got,
        vec![
            ("/etc".to_string(), ChangeKind::Modified),
            ("/etc/new".to_string(), ChangeKind::Added),
            ("/etc/old".to_string(), ChangeKind::Deleted),
            ("/opq".to_string(), ChangeKind::Added),
            ("/opq/keep".to_string(), ChangeKind::Added),
        ]
    );
}

#[test]
fn copy_into_rootfs_resolves_symlinks_inside_root() {
    let s = sandbox();
    // A container rootfs whose /etc is a symlink to the host's outside dir (absolute).
    fs::create_dir(s.dest.join("real")).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../real", s.dest.join("up")).unwrap();
    // /etc resolves inside the root, where its target does not exist: refused, nothing written.
    let tar = TarBuilder::new().file("etc/pwned", b"x").finish();
    assert!(layer::unpack_into_existing(&tar[..], &s.dest).is_err());
    assert_outside_untouched(&s);
    // Once the target exists inside the root, the write lands there.
    fs::create_dir_all(s.dest.join(s.outside.strip_prefix("/").unwrap())).unwrap();
    let tar = TarBuilder::new()
        .file("etc/pwned", b"x")
        .file("up/ok", b"y")
        .finish();
    layer::unpack_into_existing(&tar[..], &s.dest).unwrap();
    assert_outside_untouched(&s);
    assert_eq!(fs::read(s.dest.join("real/ok")).unwrap(), b"y");
    assert!(s
        .dest
        .join(s.outside.strip_prefix("/").unwrap())
        .join("pwned")
        .is_file());

    let tar = TarBuilder::new().file("f", b"z").finish();
    layer::unpack_into_root(&tar[..], &s.dest, "/up").unwrap();
    assert_eq!(fs::read(s.dest.join("real/f")).unwrap(), b"z");

    let st = layer::stat_path(&s.dest, "/up").unwrap();
    assert_eq!(st.link_target, "/real");
    assert_eq!(st.mode & (1 << 27), 1 << 27);
    let mut out = Vec::new();
    let st = layer::tar_path(&s.dest, "/real", &mut out).unwrap();
    assert_eq!(st.name, "real");
    assert_eq!(st.mode & (1 << 31), 1 << 31);
    let names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["real", "real/f", "real/ok"]);
    assert!(layer::stat_path(&s.dest, "/nope")
        .unwrap_err()
        .is_not_found());
}
