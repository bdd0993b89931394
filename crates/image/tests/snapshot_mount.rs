//! Overlay container snapshots: needs root (mounts overlayfs in a temp dir, then cleans up).

use std::fs;

use berth_image::digest::Digest;
use berth_image::Snapshotter;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn overlay_two_lowers_upper_and_whiteout() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(tmp.path()).unwrap();
    let base = Digest::from_bytes(b"base");
    let top = Digest::from_bytes(b"top");
    let (low, high) = (snaps.layer_dir(&base), snaps.layer_dir(&top));
    fs::create_dir_all(&low).unwrap();
    fs::create_dir_all(&high).unwrap();
    fs::write(low.join("a"), b"from base").unwrap();
    fs::write(low.join("hidden"), b"deleted by top").unwrap();
    fs::write(high.join("b"), b"from top").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        high.join("hidden"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    assert!(snaps.has_layer(&base));

    let snap = snaps
        .prepare_container("c1", &[high.clone(), low.clone()])
        .unwrap();
    snap.mount().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert!(snap.is_mounted());
        assert_eq!(fs::read(snap.merged.join("a")).unwrap(), b"from base");
        assert_eq!(fs::read(snap.merged.join("b")).unwrap(), b"from top");
        assert!(!snap.merged.join("hidden").exists());
        fs::write(snap.merged.join("new"), b"written").unwrap();
        assert_eq!(fs::read(snap.upper.join("new")).unwrap(), b"written");
        assert!(!low.join("new").exists() && !high.join("new").exists());
    });
    snap.unmount().unwrap();
    assert!(!snap.is_mounted());
    result.unwrap();

    // Zero layers still mounts (an empty lower).
    let empty = snaps.prepare_container("c2", &[]).unwrap();
    empty.mount().unwrap();
    let listed = fs::read_dir(&empty.merged).unwrap().count();
    empty.unmount().unwrap();
    assert_eq!(listed, 0);

    // remove_container unmounts first.
    snap.mount().unwrap();
    snaps.remove_container("c1").unwrap();
    snaps.remove_container("c2").unwrap();
    assert!(!snaps.container_dir("c1").exists());
    assert!(!snap.is_mounted());
}
