//! Image store end to end: the busybox archive from scripts/ (docker 25+ format), load →
//! resolve → lowers → overlay mount → commit → history → save → reload → delete; and
//! all-or-nothing loads of truncated archives.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::{ImageStore, RunConfig};

fn busybox_archive(dir: &Path) -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    if !Path::new("/bin/busybox").exists() {
        return None;
    }
    let out = dir.join("busybox.tar");
    let ok = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg("busybox:latest")
        .status()
        .ok()?
        .success();
    ok.then_some(out)
}

fn no_leftovers(root: &Path) {
    let ingest: Vec<_> = fs::read_dir(root.join("content/ingest")).unwrap().collect();
    assert!(ingest.is_empty(), "ingest leftovers: {ingest:?}");
    let tmp: Vec<_> = fs::read_dir(root.join("snapshots"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(tmp.is_empty());
}

#[test]
fn busybox_load_mount_commit_save_reload_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(archive) = busybox_archive(tmp.path()) else {
        eprintln!("skipping: no busybox");
        return;
    };
    let root = tmp.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let mut lines = Vec::new();
    let loaded = store
        .load(fs::File::open(&archive).unwrap(), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags, ["busybox:latest"]);
    assert_eq!(lines, ["Loaded image: busybox:latest"]);
    let id = loaded[0].id.clone();
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        id.as_str(),
        id.short(),
        &id.hex()[..5],
    ] {
        assert_eq!(store.resolve(name).unwrap().id, id, "{name}");
    }
    let e = store.resolve("nothere").unwrap_err();
    assert_eq!(e.to_string(), "No such image: nothere:latest");
    let rec = store.resolve("busybox").unwrap();
    assert_eq!(rec.repo_tags, ["busybox:latest"]);
    assert!(rec.size > 100_000);
    assert!(rec.manifest.is_some());

    let lowers = store.lowers(&id).unwrap();
    assert!(lowers[0].join("bin/busybox").is_file());
    let snap = store.snapshots().prepare_container("c1", &lowers).unwrap();
    snap.mount().unwrap();
    let seen = snap.merged.join("bin/busybox").is_file();
    fs::write(snap.merged.join("committed.txt"), b"hi").unwrap();
    fs::remove_file(snap.merged.join("etc/passwd")).unwrap();
    snap.unmount().unwrap();
    assert!(seen);

    let child = store
        .commit(
            &snap.upper,
            Some(&id),
            RunConfig {
                cmd: Some(vec!["sh".into()]),
                ..Default::default()
            },
            Some("me".into()),
            Some("msg".into()),
            "sh".into(),
            Some("mine:1"),
        )
        .unwrap();
    store.snapshots().remove_container("c1").unwrap();
    let crec = store.resolve("mine:1").unwrap();
    assert_eq!(crec.id, child);
    assert_eq!(crec.parent.as_ref(), Some(&id));
    assert_eq!(crec.chain_ids.len(), rec.chain_ids.len() + 1);
    let hist = store.history(&child).unwrap();
    assert_eq!(hist[0].id, child.to_string());
    assert_eq!(hist[0].created_by, "sh");
    assert_eq!(hist[0].comment, "msg");
    assert_eq!(hist[1].id, "<missing>");
    let cl = store.lowers(&child).unwrap();
    assert!(cl[0].join("committed.txt").is_file());

    // Parent cannot go while the child exists.
    assert!(store.delete(&id).unwrap_err().is_conflict());

    let mut saved = Vec::new();
    store
        .save(&["mine:1".to_string(), "busybox".to_string()], &mut saved)
        .unwrap();
    let root2 = tmp.path().join("root2");
    let store2 = ImageStore::open(&root2).unwrap();
    let loaded2 = store2.load(&saved[..], &mut |_| {}).unwrap();
    let ids: Vec<_> = loaded2.iter().map(|l| l.id.clone()).collect();
    assert!(ids.contains(&child) && ids.contains(&id));
    assert_eq!(store2.resolve("mine:1").unwrap().id, child);
    assert!(store2.lowers(&child).unwrap()[0]
        .join("committed.txt")
        .is_file());

    // Truncated / malformed: nothing tagged, nothing left behind.
    let root3 = tmp.path().join("root3");
    let store3 = ImageStore::open(&root3).unwrap();
    for cut in [saved.len() / 2, saved.len() - 2000, 700] {
        assert!(
            store3.load(&saved[..cut], &mut |_| {}).is_err(),
            "cut at {cut}"
        );
        assert!(store3.list().is_empty());
        no_leftovers(&root3);
        assert!(store3.content().list().unwrap().is_empty(), "cut at {cut}");
    }
    assert!(store3.load(&b"not a tar at all"[..], &mut |_| {}).is_err());

    // Delete: untag + delete, layers shared with the parent survive.
    let deleted = store.delete(&child).unwrap();
    assert_eq!(deleted[0].untagged.as_deref(), Some("mine:1"));
    assert!(deleted
        .iter()
        .any(|d| d.deleted.as_deref() == Some(child.as_str())));
    assert!(store.lowers(&id).unwrap()[0].join("bin/busybox").is_file());
    drop(store);
    // Reopen: the index comes back from disk.
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list().len(), 1);
    assert!(store.resolve("mine:1").is_err());
    let (pruned, _) = store.prune(false, &|_| false).unwrap();
    assert!(!pruned.is_empty());
    assert!(store.list().is_empty());
    assert!(store.content().list().unwrap().is_empty());
    no_leftovers(&root);
}

#[test]
fn import_tag_untag_and_crash_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "hello.txt", &b"hi\n"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let id = store
        .import(&tar[..], RunConfig::default(), None, Some("imp"))
        .unwrap();
    assert_eq!(store.resolve("imp:latest").unwrap().id, id);
    let hist = store.history(&id).unwrap();
    assert_eq!(hist[0].comment, "Imported from -");
    store.tag(&id, "other/name:v2").unwrap();
    assert_eq!(store.resolve("other/name:v2").unwrap().repo_tags.len(), 2);
    assert_eq!(store.untag("imp").unwrap(), id);
    assert!(store.untag("imp").unwrap_err().is_not_found());
    // Empty import (scratch) still gives a mountable image.
    let mut empty = tar::Builder::new(Vec::new());
    empty.finish().unwrap();
    let eid = store
        .import(
            &empty.into_inner().unwrap()[..],
            RunConfig::default(),
            Some("m".into()),
            None,
        )
        .unwrap();
    assert_eq!(store.lowers(&eid).unwrap().len(), 1);

    // Simulated crash: a tag to a vanished image, a temp blob, a temp snapshot.
    let tags_file = root.join("image/repositories.json");
    let mut tags: serde_json::Value =
        serde_json::from_slice(&fs::read(&tags_file).unwrap()).unwrap();
    tags["docker.io/library/ghost:latest"] =
        serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
    fs::write(&tags_file, serde_json::to_vec(&tags).unwrap()).unwrap();
    fs::write(root.join("content/ingest/tmp-0000"), b"half").unwrap();
    fs::create_dir_all(root.join("snapshots/tmp-0000/fs")).unwrap();
    // A lost unpacked layer is re-created from its blob.
    let chain = store.resolve("other/name:v2").unwrap().chain_ids[0].clone();
    drop(store);
    fs::remove_dir_all(root.join("snapshots").join(chain.hex())).unwrap();
    let store = ImageStore::open(&root).unwrap();
    assert!(store.resolve("ghost").unwrap_err().is_not_found());
    no_leftovers(&root);
    assert!(store.lowers(&id).unwrap()[0].join("hello.txt").is_file());
}
