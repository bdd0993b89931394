//! Issue #3: pull, push, login, search against Debian's reference registry
//! (`docker-registry`) on 127.0.0.1, through berth and through the docker CLI.

mod common;
use common::*;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `docker-registry serve` on <ip>:<free port> (127.0.0.1 unless told), killed (by its
/// PID) on drop.
struct Registry {
    child: Child,
    ip: String,
    port: u16,
    dir: tempfile::TempDir,
}

/// How a test registry is set up beyond the defaults (plain HTTP on 127.0.0.1, no auth).
#[derive(Default)]
struct RegistryOpts {
    /// Listen on this address instead of 127.0.0.1.
    ip: Option<String>,
    /// `http.tls`: (certificate, key, client CA that client certificates must chain to).
    tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// The `auth:` section, as YAML.
    auth: String,
}

fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

fn free_port_on(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Runs `openssl ARGS` in `dir`, asserting success.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        stderr(&out)
    );
}

/// A throwaway PKI made with openssl in `dir`: a CA (`ca.crt`/`ca.key`) and leaf
/// certificates it signs (P-256 keys: fast to make).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        fs::create_dir_all(dir).expect("pki dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=berth test CA",
            ],
        );
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// `<name>.crt` + `<name>.key` signed by the CA, with these X.509v3 extensions.
    fn leaf(&self, name: &str, extensions: &str) -> (PathBuf, PathBuf) {
        let ext = self.dir.join(format!("{name}.ext"));
        fs::write(&ext, extensions).expect("write extensions");
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                ext.to_str().expect("utf-8 path"),
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }

    /// A server certificate for these IP addresses.
    fn server(&self, name: &str, ips: &[&str]) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = ips.iter().map(|i| format!("IP:{i}")).collect();
        self.leaf(
            name,
            &format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                sans.join(",")
            ),
        )
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

/// A bcrypt htpasswd line ("user:$2b$04$…") from python's crypt module; cost 4, the
/// lowest, as the registry checks it on every request.
fn htpasswd_line(user: &str, pw: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(sys.argv[1]+':'+crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            user,
            pw,
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "htpasswd: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = match htpasswd {
            Some((u, p)) => {
                let f = dir.path().join("htpasswd");
                fs::write(&f, format!("{}\n", htpasswd_line(u, p))).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    f.display()
                )
            }
            None => String::new(),
        };
        Registry::start_in(
            dir,
            RegistryOpts {
                auth,
                ..Default::default()
            },
        )
    }

    fn start_with(opts: RegistryOpts) -> Registry {
        Registry::start_in(tempfile::tempdir().expect("tempdir"), opts)
    }

    fn start_in(dir: tempfile::TempDir, opts: RegistryOpts) -> Registry {
        let ip = opts.ip.unwrap_or_else(|| "127.0.0.1".to_string());
        let port = free_port_on(&ip);
        let tls = match &opts.tls {
            Some((crt, key, client_ca)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n{}",
                crt.display(),
                key.display(),
                client_ca
                    .as_ref()
                    .map(|c| format!("    clientcas:\n      - {}\n", c.display()))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        let auth = &opts.auth;
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n  secret: berth-test\n{tls}{auth}",
            dir.path().join("store").display()
        );
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, cfg).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            ip,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect((r.ip.as_str(), port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen: {}",
                fs::read_to_string(r.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The blob's data file in the registry's storage.
    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("store/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn combined(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// `client ARGS` with the client's config dir set to the test's own (login writes there).
fn with_config(d: &TestDaemon, client: Client, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut c = d.cli_cmd(client, args);
    c.env("BERTH_CONFIG", d.dir.join("docker-config"))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"));
    run_bounded(c, input, COMMAND_TIMEOUT)
}

fn repo_digests(d: &TestDaemon, name: &str) -> Vec<String> {
    let r = d.api("GET", &format!("/images/{name}/json"), None);
    assert_eq!(r.status, 200, "inspect {name}: {}", r.text());
    r.json()["RepoDigests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_then_pull_round_trip_by_tag_and_digest() {
    let reg = Registry::start(None);
    for client in CLIENTS {
        let d = TestDaemon::start();
        let name = format!("{}/{}/bb:1", reg.host(), client.name());
        d.cli_ok(client, &["tag", "busybox", &name]);
        let id = d.cli_ok(client, &["image", "inspect", "-f", "{{.Id}}", &name]);

        let out = d.cli(client, &["push", &name]);
        assert_success(&format!("{client:?} push"), &out);
        let text = combined(&out);
        assert!(
            text.contains(&format!("The push refers to repository [{}", reg.host())),
            "{client:?}: {text}"
        );
        let digest = text
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("{client:?}: no digest in push output: {text}"))
            .to_string();
        assert!(digest.starts_with("sha256:"), "{client:?}: {text}");
        // A second push skips every blob.
        let again = combined(&d.cli(client, &["push", &name]));
        assert!(
            again.contains("Layer already exists"),
            "{client:?}: {again}"
        );

        d.cli_ok(client, &["rmi", &name]);
        let out = d.cli(client, &["pull", &name]);
        assert_success(&format!("{client:?} pull"), &out);
        let text = combined(&out);
        assert!(text.contains("Pulling from"), "{client:?}: {text}");
        assert!(
            text.contains(&format!("Digest: {digest}")),
            "{client:?}: {text}"
        );
        assert!(text.contains("Status: "), "{client:?}: {text}");
        assert_eq!(
            d.cli_ok(client, &["image", "inspect", "-f", "{{.Id}}", &name]),
            id,
            "{client:?}: same image id after the round trip"
        );
        let repo = name.trim_end_matches(":1");
        assert!(
            repo_digests(&d, &name).contains(&format!("{repo}@{digest}")),
            "{client:?}: RepoDigests {:?}",
            repo_digests(&d, &name)
        );
        // Pulling again: up to date.
        let text = combined(&d.cli(client, &["pull", &name]));
        assert!(text.contains("Image is up to date"), "{client:?}: {text}");

        // By digest, and the pulled image runs.
        let by_digest = format!("{repo}@{digest}");
        d.cli_ok(client, &["rmi", &name]);
        let out = d.cli(client, &["pull", &by_digest]);
        assert_success(&format!("{client:?} pull by digest"), &out);
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", &by_digest, "echo", "pulled"]),
            "pulled"
        );
        // Pushing the pulled image again gives the same manifest digest.
        d.cli_ok(client, &["tag", &by_digest, &name]);
        let text = combined(&d.cli(client, &["push", &name]));
        assert!(
            text.contains(&format!("digest: {digest}")),
            "{client:?}: {text}"
        );
    }
}

#[test]
fn run_pulls_a_missing_image() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/seed/bb:run", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["run", "--rm", &name, "echo", "hi"]);
        assert_success(&format!("{client:?} run"), &out);
        assert_eq!(stdout(&out).trim(), "hi", "{client:?}");
        assert!(
            stderr(&out).contains(&format!("Unable to find image '{name}' locally")),
            "{client:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn pull_progress_on_the_api_stream() {
    let reg = Registry::start(None);
    let d = TestDaemon::start();
    let name = format!("{}/api/bb", reg.host());
    d.ok(&["tag", "busybox", &format!("{name}:2")]);
    // Push progress on the API stream: bytes sent as the upload goes.
    let r = d.api("POST", &format!("/images/{name}/push?tag=2"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let layer_size = fs::metadata(busybox_tar()).expect("busybox tar").len() / 2;
    let pushed_bytes = r
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["status"] == "Pushing")
        .filter_map(|v| v["progressDetail"]["current"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        pushed_bytes > layer_size,
        "Pushing progress reached {pushed_bytes} bytes: {}",
        r.text()
    );
    assert!(r.text().contains("\"Pushed\""), "{}", r.text());
    d.ok(&["rmi", &format!("{name}:2")]);
    // busybox's layer stays in the content store: "Already exists". Pull into a fresh daemon.
    let e = TestDaemon::start_empty();
    let r = e.api(
        "POST",
        &format!("/images/create?fromImage={name}&tag=2"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for want in [
        "\"Pulling from api/bb\"",
        "Pulling fs layer",
        "Verifying Checksum",
        "Download complete",
        "Pull complete",
        "Status: Downloaded newer image for",
    ] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
    let r = e.api(
        "POST",
        &format!("/images/create?fromImage={name}&tag=nope"),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("manifest unknown"), "{}", r.text());
}

#[test]
fn pull_errors_tag_not_found_unreachable_invalid() {
    let reg = Registry::start(None);
    let dead = free_port();
    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["pull", &format!("{}/none/x:nope", reg.host())]);
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("manifest unknown"),
            "{client:?}: {}",
            stderr(&out)
        );
        let out = d.cli(client, &["pull", &format!("127.0.0.1:{dead}/x:1")]);
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("connect") || stderr(&out).contains("refused"),
            "{client:?}: {}",
            stderr(&out)
        );
        let out = d.cli(client, &["pull", "Bad/Name"]);
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("invalid reference format"),
            "{client:?}: {}",
            stderr(&out)
        );
        let imgs = d.cli_ok(client, &["images", "-q"]);
        assert!(imgs.is_empty(), "{client:?}: nothing stored: {imgs}");
    }
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_is_tagged() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/bad/bb:1", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    let layers = seed
        .api("GET", &format!("/images/{name}/json"), None)
        .json()["RootFS"]["Layers"]
        .clone();
    assert!(layers.is_array());
    // The blob of the (only) layer as the registry stores it.
    let manifest = fs::read_dir(reg.dir.path().join("store/docker/registry/v2/blobs/sha256"))
        .expect("registry blobs")
        .flatten()
        .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path().join("data"))
        .filter(|p| fs::metadata(p).map(|m| m.len() > 10_000).unwrap_or(false))
        .collect::<Vec<_>>();
    assert_eq!(manifest.len(), 1, "one big layer blob: {manifest:?}");
    let blob = &manifest[0];
    let digest = format!(
        "sha256:{}",
        blob.parent()
            .and_then(Path::file_name)
            .and_then(|s| s.to_str())
            .unwrap_or("")
    );
    assert_eq!(&reg.blob_path(&digest), blob);
    let mut data = fs::read(blob).expect("read blob");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(blob, &data).expect("corrupt blob");

    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["pull", &name]);
        assert_ne!(code(&out), 0, "{client:?}: {}", combined(&out));
        assert!(
            combined(&out).contains("verification failed"),
            "{client:?}: {}",
            combined(&out)
        );
        assert!(d.cli_ok(client, &["images", "-q"]).is_empty(), "{client:?}");
        let hex = digest.trim_start_matches("sha256:");
        assert!(
            !d.data_root()
                .join("content/blobs/sha256")
                .join(hex)
                .exists(),
            "{client:?}: the bad blob is not kept"
        );
    }
}

#[test]
fn login_with_htpasswd_then_push_pull_logout() {
    let reg = Registry::start(Some(("me", "s3cret")));
    for client in CLIENTS {
        let d = TestDaemon::start();
        let cfg = d.dir.join("docker-config/config.json");
        let name = format!("{}/{}/private:1", reg.host(), client.name());
        d.cli_ok(client, &["tag", "busybox", &name]);

        // Anonymous push is refused.
        let out = with_config(&d, client, &["push", &name], None);
        assert_ne!(code(&out), 0, "{client:?}: {}", combined(&out));
        assert!(
            combined(&out).contains("unauthorized"),
            "{client:?}: {}",
            combined(&out)
        );

        // A wrong password: 401, nothing stored.
        let out = with_config(
            &d,
            client,
            &["login", &reg.host(), "-u", "me", "--password-stdin"],
            Some(b"wrong\n"),
        );
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("401 Unauthorized"),
            "{client:?}: {}",
            stderr(&out)
        );
        let stored = fs::read_to_string(&cfg).unwrap_or_default();
        assert!(!stored.contains(&reg.host()), "{client:?}: {stored}");

        let out = with_config(
            &d,
            client,
            &["login", &reg.host(), "-u", "me", "--password-stdin"],
            Some(b"s3cret\n"),
        );
        assert_success(&format!("{client:?} login"), &out);
        assert!(stdout(&out).contains("Login Succeeded"), "{client:?}");
        let stored: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&cfg).expect("config.json")).expect("json");
        assert_eq!(
            stored["auths"][reg.host()]["auth"],
            "bWU6czNjcmV0",
            "{client:?}: base64 me:s3cret"
        );

        let out = with_config(&d, client, &["push", &name], None);
        assert_success(&format!("{client:?} push with credentials"), &out);
        assert_success(
            &format!("{client:?} rmi"),
            &with_config(&d, client, &["rmi", &name], None),
        );
        let out = with_config(&d, client, &["pull", &name], None);
        assert_success(&format!("{client:?} pull with credentials"), &out);

        let out = with_config(&d, client, &["logout", &reg.host()], None);
        assert_success(&format!("{client:?} logout"), &out);
        let stored = fs::read_to_string(&cfg).unwrap_or_default();
        assert!(!stored.contains("bWU6czNjcmV0"), "{client:?}: {stored}");
    }
}

#[test]
fn search_a_private_registry_catalog() {
    let reg = Registry::start(None);
    let d = TestDaemon::start();
    for n in ["busy/one:1", "other/two:1"] {
        let name = format!("{}/{n}", reg.host());
        d.ok(&["tag", "busybox", &name]);
        d.ok(&["push", &name]);
    }
    for client in CLIENTS {
        let out = d.cli_ok(
            client,
            &[
                "search",
                "--format",
                "{{.Name}}",
                &format!("{}/busy", reg.host()),
            ],
        );
        assert_eq!(out, format!("{}/busy/one", reg.host()), "{client:?}");
    }
}

/// A `berth daemon` on `d`'s dirs and socket with extra flags (after `d.kill_daemon()`);
/// killed by its PID on drop.
struct FlaggedDaemon(Child);

impl FlaggedDaemon {
    fn start(d: &mut TestDaemon, extra: &[&str]) -> FlaggedDaemon {
        d.kill_daemon();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.log_path())
            .expect("daemon log");
        let child = Command::new(BERTH)
            .arg("daemon")
            .arg("--data-root")
            .arg(d.data_root())
            .arg("--exec-root")
            .arg(d.exec_root())
            .args(["-H", &d.host, "--bridge-name", &d.bridge_name()])
            .arg("--bip")
            .arg(format!("10.49.{}.1/24", d.net_slot))
            .arg("--default-address-pool")
            .arg(format!("base=10.{}.0.0/16,size=24", 50 + d.net_slot))
            .args(extra)
            .env_remove("BERTH_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn berth daemon");
        let f = FlaggedDaemon(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.try_api("GET", "/_ping", None).map(|r| r.status).ok() != Some(200) {
            assert!(
                Instant::now() < deadline,
                "daemon did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        f
    }
}

impl Drop for FlaggedDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn registry_mirror_serves_docker_io_names() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let in_mirror = format!("{}/library/mirrored:1", reg.host());
    seed.ok(&["tag", "busybox", &in_mirror]);
    seed.ok(&["push", &in_mirror]);
    for client in CLIENTS {
        let mut d = TestDaemon::start_empty();
        let mirror = format!("http://{}", reg.host());
        let _daemon = FlaggedDaemon::start(&mut d, &["--registry-mirror", &mirror]);
        let out = d.cli(client, &["pull", "mirrored:1"]);
        assert_success(&format!("{client:?} pull through the mirror"), &out);
        assert!(
            combined(&out).contains("Pulling from library/mirrored"),
            "{client:?}: {}",
            combined(&out)
        );
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", "mirrored:1", "echo", "via-mirror"]),
            "via-mirror"
        );
        // Not in the mirror: the origin is tried next, and its failure is reported.
        let out = d.cli(client, &["pull", "not-in-mirror:1"]);
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("registry-1.docker.io"),
            "{client:?}: {}",
            stderr(&out)
        );
    }
}

/// `PUT /v2/NAME/manifests/REF` on the test registry with a raw HTTP/1.1 request.
fn put_manifest(reg: &Registry, name: &str, reference: &str, media_type: &str, body: &[u8]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", reg.port)).expect("connect registry");
    write!(
        s,
        "PUT /v2/{name}/manifests/{reference} HTTP/1.1\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reg.host(),
        body.len()
    )
    .expect("write request");
    s.write_all(body).expect("write body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read answer");
    assert!(resp.starts_with("HTTP/1.1 201"), "PUT manifest: {resp}");
}

#[test]
fn manifest_index_resolves_the_platform() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let single = format!("{}/multi/bb:single", reg.host());
    seed.ok(&["tag", "busybox", &single]);
    let out = seed.ok(&["push", &single]);
    let digest = out
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .expect("push digest")
        .to_string();
    let size = out
        .split_whitespace()
        .skip_while(|w| *w != "size:")
        .nth(1)
        .expect("push size")
        .to_string();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let manifest = fs::read(reg.blob_path(&digest)).expect("manifest blob");
    let mt_real = serde_json::from_slice::<serde_json::Value>(&manifest).expect("manifest json")
        ["mediaType"]
        .as_str()
        .unwrap_or(mt)
        .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt_real, "digest": digest, "size": size.parse::<u64>().expect("size"),
             "platform": {"os": "linux", "architecture": arch}},
        ]
    });
    put_manifest(
        &reg,
        "multi/bb",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        index.to_string().as_bytes(),
    );
    let name = format!("{}/multi/bb:multi", reg.host());
    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["pull", "--platform", "linux/s390x", &name]);
        assert_ne!(code(&out), 0, "{client:?}");
        assert!(
            stderr(&out).contains("no matching manifest for linux/s390x"),
            "{client:?}: {}",
            stderr(&out)
        );
        let out = d.cli(client, &["pull", &name]);
        assert_success(&format!("{client:?} pull of an index"), &out);
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", &name, "echo", "indexed"]),
            "indexed"
        );
    }
}

/// A TCP proxy to the registry that cuts the first `cuts` answers bigger than 64 KiB halfway
/// (a registry dropping the connection mid-layer), and counts the requests that asked for a
/// byte range (resumed downloads). Threads end when their sockets close.
fn flaky_proxy(upstream: u16, cuts: usize) -> (u16, Arc<AtomicUsize>) {
    misbehaving_proxy(upstream, cuts, Misbehaviour::Drop)
}

/// What `misbehaving_proxy` does to an answer it picks.
#[derive(Clone, Copy, PartialEq)]
enum Misbehaviour {
    /// Closes the connection.
    Drop,
    /// Stops sending and keeps the connection open (for up to 30 s, until the client
    /// gives up and closes it).
    Stall,
}

/// `flaky_proxy`, cutting the chosen answers as `how` says.
fn misbehaving_proxy(upstream: u16, cuts: usize, how: Misbehaviour) -> (u16, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = l.local_addr().expect("proxy addr").port();
    let cuts = Arc::new(AtomicUsize::new(cuts));
    let ranges = Arc::new(AtomicUsize::new(0));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut client) = c else { continue };
            let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c2, mut u2) = match (client.try_clone(), up.try_clone()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => continue,
            };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match c2.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                    if text.contains("\r\nrange: bytes=") {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    if u2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            let cuts = cuts.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let mut sent = 0usize;
                loop {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sent + n > 64 * 1024
                        && cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                            .is_ok()
                    {
                        if how == Misbehaviour::Stall {
                            // Silent, the socket open, until the client closes its end.
                            let _ = up.shutdown(std::net::Shutdown::Both);
                            let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
                            let mut sink = [0u8; 1024];
                            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                        }
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, ranges)
}

/// Files named `partial-*` under `dir` (layers downloaded in part).
fn partial_blobs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else if e.file_name().to_string_lossy().starts_with("partial-") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_dropped_connection_mid_layer_is_retried() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/flaky/bb:1", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    let (proxy, ranges) = flaky_proxy(reg.port, 1);
    let via = format!("127.0.0.1:{proxy}/flaky/bb:1");
    let d = TestDaemon::start_empty();
    let out = d.berth(&["pull", &via]);
    assert_success("pull through a connection that drops once", &out);
    assert!(
        stdout(&out).contains("Retrying in"),
        "the cut was seen and retried: {}",
        stdout(&out)
    );
    assert_eq!(
        ranges.load(Ordering::SeqCst),
        1,
        "the retry asked only for the rest of the layer"
    );
    assert_eq!(d.ok(&["run", "--rm", &via, "echo", "whole"]), "whole");
}

/// Every attempt cut: the pull fails with a clear error and keeps what it received; the
/// next pull asks only for the rest, verifies the whole layer and runs it.
#[test]
fn a_second_pull_resumes_a_partial_layer() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/resume/bb:1", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    for client in CLIENTS {
        let (proxy, ranges) = flaky_proxy(reg.port, 4);
        let via = format!("127.0.0.1:{proxy}/resume/bb:1");
        let d = TestDaemon::start_empty();
        let out = d.cli(client, &["pull", &via]);
        assert_ne!(code(&out), 0, "{client:?}: every attempt was cut");
        assert!(
            stderr(&out).contains("failed after 4 attempts"),
            "{client:?}: {}",
            stderr(&out)
        );
        assert!(d.cli_ok(client, &["images", "-q"]).is_empty(), "{client:?}");
        let partial = partial_blobs(&d.data_root());
        assert_eq!(partial.len(), 1, "{client:?}: {partial:?}");
        let kept = fs::metadata(&partial[0]).expect("partial").len();
        assert!(kept > 64 * 1024, "{client:?}: kept {kept} bytes");

        let before = ranges.load(Ordering::SeqCst);
        d.cli_ok(client, &["pull", &via]);
        assert!(
            ranges.load(Ordering::SeqCst) > before,
            "{client:?}: the second pull resumed"
        );
        assert!(partial_blobs(&d.data_root()).is_empty(), "{client:?}");
        assert_eq!(
            d.cli_ok(client, &["run", "--rm", &via, "echo", "resumed"]),
            "resumed"
        );
    }
}

/// Sets a file's modification time `secs` seconds into the past.
fn age_file(p: &Path, secs: u64) {
    let f = fs::File::options()
        .write(true)
        .open(p)
        .expect("open partial");
    let t = std::time::SystemTime::now() - Duration::from_secs(secs);
    f.set_modified(t).expect("set mtime");
}

/// A partial layer outlives a daemon restart and the next pull resumes it; `image prune`
/// removes one nobody resumes, and a restart removes one a day old.
#[test]
fn a_partial_layer_survives_a_restart_and_prune_removes_it() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/restart/bb:1", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    let mut d = TestDaemon::start_empty();
    // A pull through a proxy that cuts all 4 attempts: fails, keeping one partial layer.
    let cut_pull = |d: &TestDaemon| {
        let (proxy, ranges) = flaky_proxy(reg.port, 4);
        let via = format!("127.0.0.1:{proxy}/restart/bb:1");
        let out = d.berth(&["pull", &via]);
        assert!(
            stderr(&out).contains("failed after 4 attempts"),
            "{}",
            combined(&out)
        );
        let partial = partial_blobs(&d.data_root());
        assert_eq!(partial.len(), 1, "{partial:?}");
        (via, ranges, partial[0].clone())
    };

    let (via, ranges, partial) = cut_pull(&d);
    let kept = fs::metadata(&partial).expect("partial").len();
    d.kill_daemon();
    d.spawn_daemon();
    assert_eq!(
        fs::metadata(&partial).map(|m| m.len()).ok(),
        Some(kept),
        "the restart kept the partial layer"
    );
    // The proxy has no cuts left: this pull completes, from where the last one stopped.
    let before = ranges.load(Ordering::SeqCst);
    d.ok(&["pull", &via]);
    assert_eq!(
        ranges.load(Ordering::SeqCst),
        before + 1,
        "the pull after the restart asked for the rest only"
    );
    assert!(partial_blobs(&d.data_root()).is_empty());
    assert_eq!(
        d.ok(&["run", "--rm", &via, "echo", "after restart"]),
        "after restart"
    );

    // Another partial; `image prune` removes it.
    d.ok(&["rmi", &via]);
    cut_pull(&d);
    d.ok(&["image", "prune", "-f"]);
    assert!(partial_blobs(&d.data_root()).is_empty(), "prune removed it");

    // A partial a day old is not worth resuming: a restart removes it.
    let (_, _, partial) = cut_pull(&d);
    age_file(&partial, 25 * 3600);
    d.kill_daemon();
    d.spawn_daemon();
    assert!(
        partial_blobs(&d.data_root()).is_empty(),
        "stale partial removed at start"
    );
}

/// A registry that stops sending mid-layer with the connection open: the download is cut
/// after the stall timeout and resumed; one that always stalls fails the pull with a clear
/// error in bounded time, and nothing is tagged.
#[test]
fn a_stalled_download_is_resumed_then_fails_in_bounded_time() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start();
    let name = format!("{}/stall/bb:1", reg.host());
    seed.ok(&["tag", "busybox", &name]);
    seed.ok(&["push", &name]);
    let mut d = TestDaemon::start_empty();
    let _daemon = FlaggedDaemon::start(&mut d, &["--registry-stall-timeout", "1"]);

    // One stall: resumed with a Range request.
    let (proxy, ranges) = misbehaving_proxy(reg.port, 1, Misbehaviour::Stall);
    let via = format!("127.0.0.1:{proxy}/stall/bb:1");
    let started = Instant::now();
    let out = d.berth(&["pull", &via]);
    assert_success("pull through a registry that stalls once", &out);
    assert!(
        stdout(&out).contains("Retrying in"),
        "the stall was seen and retried: {}",
        stdout(&out)
    );
    assert_eq!(ranges.load(Ordering::SeqCst), 1, "resumed, not restarted");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        d.ok(&["run", "--rm", &via, "echo", "unstalled"]),
        "unstalled"
    );

    // Stalls every time: a clear error within the stall timeout × attempts plus back-off.
    d.ok(&["rmi", &via]);
    let (proxy, _) = misbehaving_proxy(reg.port, 100, Misbehaviour::Stall);
    let via = format!("127.0.0.1:{proxy}/stall/bb:1");
    let started = Instant::now();
    let out = d.berth(&["pull", &via]);
    let took = started.elapsed();
    assert_ne!(code(&out), 0, "{}", combined(&out));
    assert!(
        stderr(&out).contains("failed after 4 attempts")
            && stderr(&out).contains("sent nothing for 1s"),
        "{}",
        combined(&out)
    );
    assert!(took < Duration::from_secs(20), "failed after {took:?}");
    assert!(d.ok(&["images", "-q", &via]).is_empty(), "nothing tagged");
}

#[test]
fn a_credential_helper_is_honoured() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start(Some(("me", "s3cret")));
    for client in CLIENTS {
        let d = TestDaemon::start();
        let bin = d.dir.join("helper-bin");
        fs::create_dir_all(&bin).expect("helper dir");
        let helper = bin.join("docker-credential-berthtest");
        fs::write(
            &helper,
            r#"#!/bin/sh
f="$(dirname "$0")/store.json"
case "$1" in
  store) cat > "$f" ;;
  get) read server
       if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) rm -f "$f" ;;
esac
"#,
        )
        .expect("write helper");
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).expect("chmod helper");
        let cfg = d.dir.join("docker-config/config.json");
        fs::write(&cfg, r#"{"credsStore": "berthtest"}"#).expect("config");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let run = |args: &[&str], input: Option<&[u8]>| {
            let mut c = d.cli_cmd(client, args);
            c.env("BERTH_CONFIG", d.dir.join("docker-config"))
                .env("DOCKER_CONFIG", d.dir.join("docker-config"))
                .env("PATH", &path);
            run_bounded(c, input, COMMAND_TIMEOUT)
        };
        let out = run(
            &["login", &reg.host(), "-u", "me", "--password-stdin"],
            Some(b"s3cret\n"),
        );
        assert_success(&format!("{client:?} login through the helper"), &out);
        let stored = fs::read_to_string(bin.join("store.json")).expect("the helper stored");
        assert!(stored.contains("s3cret"), "{client:?}: {stored}");
        assert!(
            !fs::read_to_string(&cfg)
                .unwrap_or_default()
                .contains("s3cret"),
            "{client:?}: nothing in config.json"
        );
        let name = format!("{}/helper/bb:1", reg.host());
        d.cli_ok(client, &["tag", "busybox", &name]);
        assert_success(
            &format!("{client:?} push with the helper's credentials"),
            &run(&["push", &name], None),
        );
        assert_success(
            &format!("{client:?} logout"),
            &run(&["logout", &reg.host()], None),
        );
        assert!(!bin.join("store.json").exists(), "{client:?}: erased");
    }
}

/// An https registry on the test daemon's bridge address (not loopback, so verified as
/// Docker verifies it) that also demands a client certificate: unknown CA → x509 error;
/// the CA in certs.d but no client certificate → refused; both → push/pull round trip.
#[test]
fn https_registry_trusted_through_certs_d() {
    let mut d = TestDaemon::start();
    let ip = format!("10.49.{}.1", d.net_slot);
    let pki = Pki::new(&d.dir.join("pki"));
    let (crt, key) = pki.server("registry", &[&ip]);
    let reg = Registry::start_with(RegistryOpts {
        ip: Some(ip.clone()),
        tls: Some((crt, key, Some(pki.ca()))),
        ..Default::default()
    });
    let certs_d = d.dir.join("certs.d");
    let daemon = FlaggedDaemon::start(
        &mut d,
        &["--registry-certs-dir", certs_d.to_str().expect("utf-8")],
    );
    let name = format!("{}/tls/bb:1", reg.host());
    d.ok(&["tag", "busybox", &name]);

    for client in CLIENTS {
        let out = d.cli(client, &["push", &name]);
        assert_ne!(code(&out), 0, "{client:?}: pushed without trusting the CA");
        assert!(
            stderr(&out).contains("x509: certificate signed by unknown authority"),
            "{client:?}: {}",
            stderr(&out)
        );
        let out = d.cli(client, &["pull", &name]);
        assert!(
            stderr(&out).contains("x509: certificate signed by unknown authority"),
            "{client:?}: {}",
            stderr(&out)
        );
    }

    let host_dir = certs_d.join(reg.host());
    fs::create_dir_all(&host_dir).expect("certs.d/<host:port>");
    fs::copy(pki.ca(), host_dir.join("ca.crt")).expect("copy the CA");
    let out = d.berth(&["push", &name]);
    assert_ne!(code(&out), 0, "pushed without the client certificate");

    let (ccrt, ckey) = pki.leaf(
        "client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    fs::copy(ccrt, host_dir.join("client.cert")).expect("copy the client certificate");
    fs::copy(ckey, host_dir.join("client.key")).expect("copy the client key");
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", &name]);
    for client in CLIENTS {
        let tagged = format!("{}/tls/{}:1", reg.host(), client.name());
        d.cli_ok(client, &["tag", &name, &tagged]);
        let out = d.cli(client, &["push", &tagged]);
        assert_success(&format!("{client:?} push over https"), &out);
        if client == Client::Docker {
            // The layers are in tls/berth already: mounted, not uploaded again.
            assert!(
                combined(&out).contains("Mounted from tls/berth"),
                "{}",
                combined(&out)
            );
        }
        let digest = combined(&out)
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(digest.starts_with("sha256:"), "{}", combined(&out));
        d.cli_ok(client, &["rmi", &tagged]);
        let out = d.cli(client, &["pull", &tagged]);
        assert_success(&format!("{client:?} pull over https"), &out);
        assert!(
            combined(&out).contains(&format!("Digest: {digest}")),
            "{client:?}: {}",
            combined(&out)
        );
        assert_eq!(
            d.cli_ok(client, &["image", "inspect", "-f", "{{.Id}}", &tagged]),
            id
        );
    }
    assert_eq!(
        d.ok(&["run", "--rm", &name, "echo", "over-tls"]),
        "over-tls"
    );

    // --insecure-registry naming the registry's subnet: certificates are not verified (no CA
    // needed), the client certificate is still presented.
    drop(daemon);
    fs::remove_file(host_dir.join("ca.crt")).expect("remove the CA");
    let subnet = format!("10.49.{}.0/24", d.net_slot);
    let _daemon = FlaggedDaemon::start(
        &mut d,
        &[
            "--registry-certs-dir",
            certs_d.to_str().expect("utf-8"),
            "--insecure-registry",
            &subnet,
        ],
    );
    let tagged = format!("{}/tls/berth:1", reg.host());
    d.ok(&["rmi", &tagged]);
    d.ok(&["pull", &tagged]);
}

/// A loopback registry speaking https with a certificate nobody trusts: loopback registries
/// are insecure (as in Docker), so berth uses https without verifying and needs no CA.
#[test]
fn loopback_https_registry_needs_no_ca() {
    let d = TestDaemon::start();
    let pki = Pki::new(&d.dir.join("pki"));
    let (crt, key) = pki.server("registry", &["127.0.0.1"]);
    let reg = Registry::start_with(RegistryOpts {
        tls: Some((crt, key, None)),
        ..Default::default()
    });
    for client in CLIENTS {
        let name = format!("{}/lo/{}:1", reg.host(), client.name());
        d.cli_ok(client, &["tag", "busybox", &name]);
        d.cli_ok(client, &["push", &name]);
        d.cli_ok(client, &["rmi", &name]);
        d.cli_ok(client, &["pull", &name]);
    }
    // It really spoke TLS: plain HTTP to it is refused by the registry.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/", reg.host()))
        .output()
        .expect("curl");
    assert_eq!(stdout(&out).trim(), "400", "plain HTTP to a TLS registry");
}

/// The token issuer (tests/registry/token_server.py) on 127.0.0.1:<free port>, killed (by
/// its PID) on drop.
struct TokenServer {
    child: Child,
    port: u16,
    /// One line per token issued (the scopes asked for).
    issued: PathBuf,
}

impl TokenServer {
    fn start(dir: &Path, pki: &Pki, user: &str, password: &str) -> TokenServer {
        let (crt, key) = pki.leaf(
            "token-signer",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n",
        );
        let script = dir.join("token_server.py");
        fs::write(&script, include_str!("registry/token_server.py")).expect("write script");
        let issued = dir.join("tokens-issued");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .args([&crt, &key])
            .args(["berth-test-issuer", user, password])
            .arg(&issued)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("token-server.log")).expect("log"))
            .spawn()
            .expect("start the token server");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "token server did not listen: {}",
                fs::read_to_string(dir.join("token-server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TokenServer {
            child,
            port,
            issued,
        }
    }

    fn issued(&self) -> Vec<String> {
        fs::read_to_string(&self.issued)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// docker-registry with `auth: token`, trusting tokens signed by a certificate of the test's
/// CA: login checks the password at the token server, push and pull get scoped bearer
/// tokens (cached: not one per request), anonymous pulls are denied.
#[test]
fn token_auth_login_push_pull() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(&dir.path().join("pki"));
    let tokens = TokenServer::start(dir.path(), &pki, "me", "t0ken-pw");
    let reg = Registry::start_with(RegistryOpts {
        auth: format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
            tokens.port,
            pki.ca().display()
        ),
        ..Default::default()
    });
    for client in CLIENTS {
        let d = TestDaemon::start();
        let cfg = d.dir.join("docker-config/config.json");
        let name = format!("{}/{}/tok:1", reg.host(), client.name());
        d.cli_ok(client, &["tag", "busybox", &name]);

        let out = with_config(&d, client, &["push", &name], None);
        assert_ne!(code(&out), 0, "{client:?}: anonymous push");
        assert!(
            combined(&out).contains("unauthorized") || combined(&out).contains("denied"),
            "{client:?}: {}",
            combined(&out)
        );

        let out = with_config(
            &d,
            client,
            &["login", &reg.host(), "-u", "me", "--password-stdin"],
            Some(b"wrong\n"),
        );
        assert_ne!(code(&out), 0, "{client:?}: wrong password");
        assert!(
            stderr(&out).contains("401 Unauthorized"),
            "{client:?}: {}",
            stderr(&out)
        );
        assert!(!fs::read_to_string(&cfg)
            .unwrap_or_default()
            .contains(&reg.host()));

        let out = with_config(
            &d,
            client,
            &["login", &reg.host(), "-u", "me", "--password-stdin"],
            Some(b"t0ken-pw\n"),
        );
        assert_success(&format!("{client:?} login"), &out);
        assert!(stdout(&out).contains("Login Succeeded"), "{client:?}");

        let before = tokens.issued().len();
        let out = with_config(&d, client, &["push", &name], None);
        assert_success(&format!("{client:?} push with a token"), &out);
        let digest = combined(&out)
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let issued = tokens.issued();
        let push_tokens = &issued[before..];
        assert!(
            push_tokens
                .iter()
                .any(|s| s.contains(&format!("repository:{}/tok:pull,push", client.name()))),
            "{client:?}: {push_tokens:?}"
        );
        assert!(
            push_tokens.len() <= 2,
            "{client:?}: the token is cached for the push: {push_tokens:?}"
        );

        with_config(&d, client, &["rmi", &name], None);
        let out = with_config(&d, client, &["pull", &name], None);
        assert_success(&format!("{client:?} pull with a token"), &out);
        assert!(
            combined(&out).contains(&format!("Digest: {digest}")),
            "{client:?}: {}",
            combined(&out)
        );

        assert_success(
            "logout",
            &with_config(&d, client, &["logout", &reg.host()], None),
        );
        with_config(&d, client, &["rmi", &name], None);
        let out = with_config(&d, client, &["pull", &name], None);
        assert_ne!(code(&out), 0, "{client:?}: anonymous pull");
        assert!(
            stderr(&out).contains("pull access denied"),
            "{client:?}: {}",
            stderr(&out)
        );
    }
}

/// Writes a docker-archive at `out` (tagged `tag`) whose three layers are busybox's rootfs
/// gzip-compressed, a file compressed with zstd (the CLI), and a file not compressed at all.
const MIXED_LAYERS_IMAGE: &str = r#"
import gzip, hashlib, io, json, subprocess, sys, tarfile
src, out, tag = sys.argv[1:4]
with tarfile.open(src) as t:
    m = json.load(t.extractfile("manifest.json"))[0]
    config = json.load(t.extractfile(m["Config"]))
    base = t.extractfile(m["Layers"][0]).read()
if base[:2] == b"\x1f\x8b":
    base = gzip.decompress(base)
def tar_of(name, data):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as t:
        i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644
        t.addfile(i, io.BytesIO(data))
    return b.getvalue()
zst_tar = tar_of("layers/zstd.txt", b"from a zstd layer\n")
raw_tar = tar_of("layers/plain.txt", b"from an uncompressed layer\n")
zst = subprocess.run(["zstd", "-q", "-c"], input=zst_tar, check=True, capture_output=True).stdout
layers = [(base, gzip.compress(base, mtime=0)), (zst_tar, zst), (raw_tar, raw_tar)]
config["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t, _ in layers]}
config["history"] = [{"created_by": "layer %d" % i} for i in range(3)]
cfg = json.dumps(config).encode()
def add(t, path, data):
    i = tarfile.TarInfo(path); i.size = len(data); i.mode = 0o644
    t.addfile(i, io.BytesIO(data))
with tarfile.open(out, "w") as t:
    paths = []
    for _, blob in layers:
        p = "blobs/sha256/" + hashlib.sha256(blob).hexdigest(); add(t, p, blob); paths.append(p)
    c = "blobs/sha256/" + hashlib.sha256(cfg).hexdigest(); add(t, c, cfg)
    add(t, "manifest.json", json.dumps([{"Config": c, "RepoTags": [tag], "Layers": paths}]).encode())
"#;

/// gzip, zstd and uncompressed layers in one image: pushed with their media types, pulled
/// into an empty store, verified and unpacked, and the container sees all three.
#[test]
fn gzip_zstd_and_uncompressed_layers_pull() {
    let reg = Registry::start(None);
    let seed = TestDaemon::start_empty();
    let name = format!("{}/mixed/layers:1", reg.host());
    let tar = seed.dir.join("mixed.tar");
    let out = Command::new("python3")
        .arg("-c")
        .arg(MIXED_LAYERS_IMAGE)
        .arg(busybox_tar())
        .arg(&tar)
        .arg(&name)
        .output()
        .expect("python3");
    assert!(out.status.success(), "make the image: {}", stderr(&out));
    seed.load(&tar);
    let out = seed.ok(&["push", &name]);
    let digest = out
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .expect("push digest")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.blob_path(&digest)).expect("manifest blob"))
            .expect("manifest json");
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["mediaType"].as_str())
        .collect();
    assert!(types[0].ends_with("gzip"), "{types:?}");
    assert!(types[1].ends_with("zstd"), "{types:?}");
    assert!(types[2].ends_with(".tar"), "{types:?}");
    for client in CLIENTS {
        let d = TestDaemon::start_empty();
        d.cli_ok(client, &["pull", &name]);
        assert_eq!(
            d.cli_ok(
                client,
                &[
                    "run",
                    "--rm",
                    &name,
                    "cat",
                    "/layers/zstd.txt",
                    "/layers/plain.txt"
                ]
            ),
            "from a zstd layer\nfrom an uncompressed layer"
        );
    }
}

/// A plain-HTTP registry that is not on loopback: https is required unless it is named
/// with --insecure-registry, which falls back to plain HTTP (Docker's message otherwise).
#[test]
fn plain_http_needs_insecure_registry_off_loopback() {
    let mut d = TestDaemon::start();
    let reg = Registry::start_with(RegistryOpts {
        ip: Some(format!("10.49.{}.1", d.net_slot)),
        ..Default::default()
    });
    let name = format!("{}/plain/bb:1", reg.host());
    d.ok(&["tag", "busybox", &name]);
    for client in CLIENTS {
        let out = d.cli(client, &["push", &name]);
        assert_ne!(code(&out), 0, "{client:?}: pushed over plain HTTP");
        assert!(
            stderr(&out).contains("server gave HTTP response to HTTPS client"),
            "{client:?}: {}",
            stderr(&out)
        );
    }
    let _daemon = FlaggedDaemon::start(&mut d, &["--insecure-registry", &reg.host()]);
    for client in CLIENTS {
        d.cli_ok(client, &["push", &name]);
        d.cli_ok(client, &["rmi", &name]);
        d.cli_ok(client, &["pull", &name]);
    }
    // `info` reports the configuration the daemon runs with, as dockerd does.
    for client in CLIENTS {
        let out = d.cli_ok(
            client,
            &["info", "--format", "{{json .RegistryConfig.IndexConfigs}}"],
        );
        let index: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
        assert_eq!(index[reg.host()]["Secure"], false, "{client:?}: {out}");
        assert_eq!(index["docker.io"]["Secure"], true, "{client:?}: {out}");
    }
}
