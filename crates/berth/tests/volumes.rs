//! Issue #4: volumes (named, anonymous, bind, tmpfs), through berth and through the docker CLI.

mod common;
use common::*;
use std::time::Duration;

fn names(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn named_volume_outlives_its_container_and_is_shared() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        assert_eq!(c(&["volume", "create", "--label", "k=v", "data"]), "data");
        c(&[
            "run",
            "--name",
            "w1",
            "-v",
            "data:/app/data",
            "busybox",
            "sh",
            "-c",
            "echo x > /app/data/f",
        ]);
        let v = d.inspect("w1");
        let m = &v["Mounts"][0];
        assert_eq!(m["Type"], "volume", "{client:?}: {m}");
        assert_eq!(m["Name"], "data");
        assert_eq!(m["Destination"], "/app/data");
        assert_eq!(m["Driver"], "local");
        assert_eq!(m["RW"], true);
        assert_eq!(m["Mode"], "z");
        let source = m["Source"].as_str().unwrap().to_string();
        assert_eq!(
            source,
            d.data_root().join("volumes/data/_data").to_string_lossy()
        );

        // In use: 409 naming the container; rm -v of the container keeps a named volume.
        let out = d.cli(client, &["volume", "rm", "data"]);
        assert_exit("volume rm while in use", &out, 1);
        let id = v["Id"].as_str().unwrap();
        assert!(
            stderr(&out).contains(&format!("remove data: volume is in use - [{id}]")),
            "{client:?}: {}",
            stderr(&out)
        );
        assert_eq!(d.api("DELETE", "/volumes/data", None).status, 409);
        c(&["rm", "-v", "w1"]);
        assert_eq!(
            c(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"]),
            "x"
        );
        assert_eq!(c(&["volume", "ls", "-q"]), "data");

        // Two running containers see each other's writes.
        c(&[
            "run", "-d", "--name", "a1", "-v", "data:/d", "busybox", "sleep", "1000",
        ]);
        c(&[
            "run",
            "-d",
            "--name",
            "b1",
            "-v",
            "data:/d:ro",
            "busybox",
            "sleep",
            "1000",
        ]);
        c(&["exec", "a1", "sh", "-c", "echo from-a > /d/shared"]);
        assert_eq!(c(&["exec", "b1", "cat", "/d/shared"]), "from-a");
        let out = d.cli(client, &["exec", "b1", "sh", "-c", "echo no > /d/ro"]);
        assert_ne!(code(&out), 0, "{client:?}: a :ro volume is read-only");
        assert_eq!(d.inspect("b1")["Mounts"][0]["RW"], false);
        assert_eq!(d.inspect("b1")["Mounts"][0]["Mode"], "ro");
        let users = d.api("DELETE", "/volumes/data?force=1", None);
        assert_eq!(users.status, 409, "force does not remove a volume in use");
        c(&["rm", "-f", "a1", "b1"]);

        let ins = d.api("GET", "/volumes/data", None).json();
        assert_eq!(ins["Labels"]["k"], "v");
        assert_eq!(ins["Scope"], "local");
        assert_eq!(
            c(&[
                "volume",
                "ls",
                "--format",
                "{{.Driver}} {{.Name}} {{.Labels}}"
            ]),
            "local data k=v"
        );
        assert_eq!(
            c(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "data"]),
            "data local"
        );
        assert_eq!(c(&["volume", "rm", "data"]), "data");
        assert!(!d.data_root().join("volumes/data").exists());
        let out = d.cli(client, &["volume", "inspect", "data"]);
        assert_exit("inspect of a removed volume", &out, 1);
    }
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm_never_named_ones() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&[
            "run",
            "--name",
            "an",
            "-v",
            "/x",
            "-v",
            "keep:/k",
            "busybox",
            "sh",
            "-c",
            "echo a > /x/f",
        ]);
        let v = d.inspect("an");
        let anon = v["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/x")
            .cloned()
            .unwrap();
        let anon_name = anon["Name"].as_str().unwrap().to_string();
        assert_eq!(anon_name.len(), 64, "{client:?}: {anon}");
        assert_eq!(anon["Mode"], "");
        assert_eq!(
            names(&c(&["volume", "ls", "-q"])),
            names(&format!("{anon_name}\nkeep"))
        );
        // Not dangling while the container exists.
        assert_eq!(c(&["volume", "ls", "-q", "-f", "dangling=true"]), "");
        c(&["rm", "-v", "an"]);
        assert_eq!(
            c(&["volume", "ls", "-q"]),
            "keep",
            "{client:?}: rm -v removes only the anonymous one"
        );

        // run --rm: the same.
        c(&[
            "run", "--rm", "-v", "/y", "-v", "keep:/k", "busybox", "true",
        ]);
        d.wait_until("the --rm container to go", Duration::from_secs(10), || {
            d.api("GET", "/containers/json?all=1", None)
                .json()
                .as_array()
                .is_some_and(|a| a.is_empty())
        });
        assert_eq!(c(&["volume", "ls", "-q"]), "keep");

        // rm without -v keeps the anonymous volume; it is then dangling and prune takes it.
        c(&["run", "--name", "an2", "-v", "/z", "busybox", "true"]);
        let anon2 = d.inspect("an2")["Mounts"][0]["Name"]
            .as_str()
            .unwrap()
            .to_string();
        c(&["rm", "an2"]);
        assert_eq!(
            names(&c(&["volume", "ls", "-q", "-f", "dangling=true"])),
            names(&format!("{anon2}\nkeep"))
        );
        let out = c(&["volume", "prune", "-f"]);
        assert!(
            out.contains(&anon2) && !out.contains("keep"),
            "{client:?}: prune removes anonymous only: {out}"
        );
        assert_eq!(c(&["volume", "ls", "-q"]), "keep");
        let out = c(&["volume", "prune", "-f", "-a"]);
        assert!(out.contains("keep"), "{client:?}: prune -a: {out}");
        assert_eq!(c(&["volume", "ls", "-q"]), "");
    }
}

#[test]
fn bind_mounts_share_edits_both_ways() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let host = d.data_root().join("hostdir");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("in"), "from-host\n").unwrap();
        let spec = format!("{}:/app/src", host.display());
        c(&[
            "run", "-d", "--name", "bm", "-v", &spec, "busybox", "sleep", "1000",
        ]);
        assert_eq!(c(&["exec", "bm", "cat", "/app/src/in"]), "from-host");
        std::fs::write(host.join("in"), "edited\n").unwrap();
        assert_eq!(c(&["exec", "bm", "cat", "/app/src/in"]), "edited");
        c(&[
            "exec",
            "bm",
            "sh",
            "-c",
            "echo from-container > /app/src/out",
        ]);
        assert_eq!(
            std::fs::read_to_string(host.join("out")).unwrap(),
            "from-container\n"
        );
        let m = &d.inspect("bm")["Mounts"][0];
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["Source"], host.to_string_lossy().as_ref());
        assert_eq!(m["Propagation"], "rprivate");
        assert_eq!(m["Mode"], "");
        assert!(
            m.get("Name").is_none(),
            "{client:?}: binds have no Name: {m}"
        );
        c(&["rm", "-f", "-v", "bm"]);
        assert!(
            host.join("out").exists(),
            "rm -v never touches a bind source"
        );

        // A missing -v source is created; --mount refuses it.
        let missing = d.data_root().join("made-by-v");
        let spec = format!("{}:/m", missing.display());
        c(&["run", "--rm", "-v", &spec, "busybox", "true"]);
        assert!(missing.is_dir());
        let gone = d.data_root().join("nope");
        let mnt = format!("type=bind,src={},dst=/m", gone.display());
        let out = d.cli(client, &["run", "--rm", "--mount", &mnt, "busybox", "true"]);
        assert_ne!(code(&out), 0);
        assert!(
            stderr(&out).contains("bind source path does not exist"),
            "{client:?}: {}",
            stderr(&out)
        );

        // --mount bind, readonly; tmpfs.
        let mnt = format!("type=bind,src={},dst=/ro,readonly", host.display());
        let out = d.cli(
            client,
            &["run", "--rm", "--mount", &mnt, "busybox", "touch", "/ro/x"],
        );
        assert_ne!(code(&out), 0, "{client:?}: readonly bind");
        let out = c(&[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "--tmpfs",
            "/u:size=2m",
            "busybox",
            "sh",
            "-c",
            "grep -E ' /(t|u) ' /proc/mounts | cut -d' ' -f1,3 | sort",
        ]);
        assert_eq!(out, "tmpfs tmpfs\ntmpfs tmpfs", "{client:?}");
    }
}

#[test]
fn image_content_is_copied_into_a_fresh_volume() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&["run", "--name", "src", "busybox", "sh", "-c", "mkdir -p /data/sub && echo seed > /data/sub/f && chown -R 1000:1000 /data && chmod 0750 /data && ln -s sub/f /data/link"]);
        c(&["commit", "src", "withdata:1"]);
        c(&["rm", "src"]);
        let out = c(&[
            "run",
            "--rm",
            "-v",
            "cv:/data",
            "withdata:1",
            "sh",
            "-c",
            "cat /data/link; stat -c '%u:%g %a' /data /data/sub/f; readlink /data/link",
        ]);
        assert_eq!(
            out, "seed\n1000:1000 750\n1000:1000 644\nsub/f",
            "{client:?}"
        );
        // Not again once the volume has content; nocopy leaves a new one empty.
        c(&[
            "run",
            "--rm",
            "-v",
            "cv:/data",
            "withdata:1",
            "rm",
            "/data/sub/f",
        ]);
        assert_eq!(
            c(&[
                "run",
                "--rm",
                "-v",
                "cv:/data",
                "withdata:1",
                "ls",
                "/data/sub"
            ]),
            ""
        );
        assert_eq!(
            c(&[
                "run",
                "--rm",
                "-v",
                "nc:/data:nocopy",
                "withdata:1",
                "ls",
                "-A",
                "/data"
            ]),
            ""
        );
        // Anonymous volumes copy up too; binds never do.
        assert_eq!(
            c(&[
                "run",
                "--rm",
                "-v",
                "/data",
                "withdata:1",
                "cat",
                "/data/sub/f"
            ]),
            "seed"
        );
        let host = d.data_root().join("emptyhost");
        std::fs::create_dir_all(&host).unwrap();
        let spec = format!("{}:/data", host.display());
        assert_eq!(
            c(&[
                "run",
                "--rm",
                "-v",
                &spec,
                "withdata:1",
                "ls",
                "-A",
                "/data"
            ]),
            ""
        );
    }
}

#[test]
fn volumes_from_and_bad_input() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&[
            "run",
            "--name",
            "holder",
            "-v",
            "shared:/s",
            "-v",
            "/anon",
            "busybox",
            "sh",
            "-c",
            "echo h > /s/f; echo a > /anon/f",
        ]);
        assert_eq!(
            c(&[
                "run",
                "--rm",
                "--volumes-from",
                "holder",
                "busybox",
                "cat",
                "/s/f",
                "/anon/f"
            ]),
            "h\na"
        );
        let out = d.cli(
            client,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "holder:ro",
                "busybox",
                "touch",
                "/s/g",
            ],
        );
        assert_ne!(code(&out), 0, "{client:?}: --volumes-from c:ro");

        let bad = |args: &[&str], want: &str| {
            let out = d.cli(client, args);
            assert_ne!(code(&out), 0, "{client:?}: {args:?} must fail");
            assert!(
                stderr(&out).contains(want),
                "{client:?}: {args:?}: want {want:?}, got {}",
                stderr(&out)
            );
        };
        bad(
            &["run", "--rm", "-v", "a:b:c:d", "busybox", "true"],
            "invalid volume specification: 'a:b:c:d'",
        );
        bad(
            &["run", "--rm", "-v", "/a:/b:bogus", "busybox", "true"],
            "invalid mode: bogus",
        );
        bad(
            &["run", "--rm", "-v", "/tmp:rel", "busybox", "true"],
            "mount path must be absolute",
        );
        bad(
            &["run", "--rm", "-v", "x/y:/d", "busybox", "true"],
            "includes invalid characters for a local volume name",
        );
        bad(
            &[
                "run",
                "--rm",
                "-v",
                "v1:/d",
                "--mount",
                "type=volume,src=v2,dst=/d",
                "busybox",
                "true",
            ],
            "Duplicate mount point: /d",
        );
        bad(
            &["volume", "create", "bad/name"],
            "includes invalid characters for a local volume name",
        );
        bad(&["volume", "rm", "nosuch"], "no such volume");
        // Nothing was left behind by the failed creates.
        assert_eq!(
            names(&c(&["volume", "ls", "-q"]))
                .iter()
                .filter(|n| n.len() != 64)
                .cloned()
                .collect::<Vec<_>>(),
            vec!["shared".to_string()]
        );
        assert_eq!(c(&["ps", "-a", "-q"]).lines().count(), 1);
    }
}

#[test]
fn a_symlink_in_the_image_cannot_send_a_mount_to_the_host() {
    let d = TestDaemon::start();
    let c = |args: &[&str]| d.cli_ok(Client::Berth, args);
    c(&[
        "run",
        "--name",
        "ln",
        "busybox",
        "sh",
        "-c",
        "ln -s /etc/berth-escape /evil && mkdir -p /data",
    ]);
    c(&["commit", "ln", "evil:1"]);
    let host = d.data_root().join("payload");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("marker"), "m").unwrap();
    let spec = format!("{}:/evil", host.display());
    c(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "evil:1",
        "cat",
        "/etc/berth-escape/marker",
    ]);
    assert!(
        !std::path::Path::new("/etc/berth-escape").exists(),
        "the mount target was created on the host"
    );
}

#[test]
fn api_create_list_filters_prune_and_restart_keeps_volumes() {
    let mut d = TestDaemon::start();
    let r = d.api_json(
        "POST",
        "/volumes/create",
        &serde_json::json!({"Name": "apiv", "Labels": {"team": "a"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["Mountpoint"],
        d.data_root()
            .join("volumes/apiv/_data")
            .to_string_lossy()
            .as_ref()
    );
    let r = d.api_json(
        "POST",
        "/volumes/create",
        &serde_json::json!({"Driver": "local"}),
    );
    assert_eq!(r.status, 201);
    let anon = r.json()["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64);
    let r = d.api_json(
        "POST",
        "/volumes/create",
        &serde_json::json!({"Name": "x", "Driver": "nfs"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // A container through the raw API with Binds, Mounts and Config.Volumes.
    let r = d.api_json(
        "POST",
        "/containers/create?name=apic",
        &serde_json::json!({
            "Image": "busybox", "Cmd": ["true"], "Volumes": {"/anon": {}},
            "HostConfig": {"Binds": ["apiv:/a"], "Mounts": [{"Type": "volume", "Source": "mv", "Target": "/m"}]}
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let list = |f: &str| -> Vec<String> {
        let q = urlencode(f);
        let v = d.api("GET", &format!("/volumes?filters={q}"), None).json();
        let mut n: Vec<String> = v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(list(r#"{"label":{"team=a":true}}"#), vec!["apiv"]);
    assert_eq!(list(r#"{"name":{"mv":true}}"#), vec!["mv"]);
    assert_eq!(list(r#"{"dangling":{"true":true}}"#), vec![anon.clone()]);
    assert_eq!(list(r#"{"driver":{"local":true}}"#).len(), 4);
    assert_eq!(
        d.api(
            "GET",
            "/volumes?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
            None
        )
        .status,
        400
    );
    let mounts = d.inspect("apic")["Mounts"].as_array().unwrap().len();
    assert_eq!(mounts, 3);

    // A restart keeps every volume and the container's mounts.
    let before = d.api("GET", "/volumes", None).json()["Volumes"]
        .as_array()
        .unwrap()
        .len();
    d.kill_daemon();
    d.spawn_daemon();
    assert_eq!(
        d.api("GET", "/volumes", None).json()["Volumes"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    assert_eq!(d.inspect("apic")["Mounts"].as_array().unwrap().len(), 3);
    assert_eq!(d.api("DELETE", "/volumes/apiv", None).status, 409);

    let r = d.api("POST", "/volumes/prune", None).json();
    assert_eq!(
        r["VolumesDeleted"],
        serde_json::json!([anon]),
        "unused anonymous only"
    );
    assert_eq!(d.api("DELETE", "/containers/apic?v=1", None).status, 204);
    assert_eq!(d.api("DELETE", "/volumes/nosuch", None).status, 404);
    assert_eq!(d.api("DELETE", "/volumes/nosuch?force=1", None).status, 204);
    let r = d
        .api(
            "POST",
            "/volumes/prune?filters=%7B%22all%22%3A%7B%22true%22%3Atrue%7D%7D",
            None,
        )
        .json();
    assert_eq!(r["VolumesDeleted"].as_array().unwrap().len(), 2, "{r}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn local_driver_mount_options_and_user_mounts_over_managed_files() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&[
            "volume",
            "create",
            "-d",
            "local",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "tv",
        ]);
        let ins = d.api("GET", "/volumes/tv", None).json();
        assert_eq!(ins["Options"]["type"], "tmpfs");
        let out = c(&[
            "run",
            "--rm",
            "-v",
            "tv:/t",
            "busybox",
            "sh",
            "-c",
            "echo x > /t/f && grep ' /t ' /proc/mounts | cut -d' ' -f3",
        ]);
        assert_eq!(out, "tmpfs", "{client:?}: the volume is the tmpfs");
        let host_data = d.data_root().join("volumes/tv/_data");
        assert_eq!(std::fs::read_to_string(host_data.join("f")).unwrap(), "x\n");
        c(&["volume", "rm", "tv"]);
        assert!(!d.data_root().join("volumes/tv").exists());

        // A bind over /etc/hosts replaces the daemon's file.
        let hosts = d.data_root().join("myhosts");
        std::fs::write(&hosts, "10.1.2.3 custom\n").unwrap();
        let spec = format!("{}:/etc/hosts:ro", hosts.display());
        assert_eq!(
            c(&["run", "--rm", "-v", &spec, "busybox", "cat", "/etc/hosts"]),
            "10.1.2.3 custom"
        );
        // A volume on /etc still shows the daemon's hosts file (mounted on top of it), and the
        // image's /etc was copied up into it.
        let out = c(&[
            "run",
            "--rm",
            "-h",
            "boxname",
            "-v",
            "etcv:/etc",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname; grep -c root /etc/passwd; grep -c ip6-allnodes /etc/hosts",
        ]);
        assert_eq!(out, "boxname\n1\n1", "{client:?}");
        c(&["volume", "rm", "etcv"]);
    }
}
