//! Issue #5: networks — the default bridge, user-defined networks with name resolution,
//! isolation, and clean removal; through berth and through the docker CLI.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn nft_table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn default_bridge_gives_each_container_an_address_and_a_way_out() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let bridge = d.bridge_name();
        assert!(link_exists(&bridge), "the daemon made its bridge {bridge}");
        assert!(nft_table_exists(&format!("berth-{bridge}")));
        let gw = format!("10.49.{}.1", d.net_slot);
        let out = c(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show eth0; ip route",
        ]);
        assert!(
            out.contains(&format!("10.49.{}.2/24", d.net_slot)),
            "{client:?}: eth0 has the first address of the bridge's subnet: {out}"
        );
        assert!(
            out.contains(&format!("default via {gw}")),
            "{client:?}: {out}"
        );
        // The gateway (the host) answers.
        c(&["run", "--rm", "busybox", "ping", "-c1", "-W2", &gw]);
        // --network none: loopback only.
        let out = c(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ip",
            "-o",
            "link",
        ]);
        assert_eq!(
            out.lines().count(),
            1,
            "{client:?}: none has only lo: {out}"
        );

        c(&["run", "-d", "--name", "srv", "busybox", "sleep", "1000"]);
        let v = d.inspect("srv");
        let ip = v["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(v["NetworkSettings"]["IPAddress"], ip.as_str());
        assert_eq!(v["NetworkSettings"]["Gateway"], gw.as_str());
        assert!(
            ip.starts_with(&format!("10.49.{}.", d.net_slot)),
            "{client:?}: {ip}"
        );
        let hosts = c(&["exec", "srv", "cat", "/etc/hosts"]);
        assert!(
            hosts.contains(&ip),
            "{client:?}: /etc/hosts names the container: {hosts}"
        );
        assert!(
            hosts.contains("host.docker.internal"),
            "{client:?}: {hosts}"
        );
        let veths_before = veths_on(&bridge);
        assert_eq!(veths_before.len(), 1, "{client:?}: one veth on the bridge");
        c(&["rm", "-f", "srv"]);
        d.wait_until(
            "the veth is gone",
            std::time::Duration::from_secs(5),
            || veths_on(&bridge).is_empty(),
        );
        // The address is free again: the next container gets it.
        let out = c(&[
            "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
        ]);
        assert!(
            out.contains(&format!("{ip}/24")),
            "{client:?}: address reused: {out}"
        );
    }
}

fn veths_on(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn user_network_resolves_names_and_aliases_default_bridge_does_not() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let id = c(&["network", "create", "app-net"]);
        assert_eq!(id.len(), 64, "{client:?}: create prints the id: {id}");
        let ls = c(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
        for want in ["app-net bridge", "bridge bridge", "host host", "none null"] {
            assert!(
                ls.lines().any(|l| l == want),
                "{client:?}: ls has {want}: {ls}"
            );
        }
        c(&[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "app-net",
            "--network-alias",
            "mongo",
            "busybox",
            "sleep",
            "1000",
        ]);
        let db_ip = d.inspect("db")["NetworkSettings"]["Networks"]["app-net"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !db_ip.is_empty(),
            "{client:?}: db has an address on app-net"
        );
        for name in ["db", "mongo"] {
            let out = c(&[
                "run",
                "--rm",
                "--network",
                "app-net",
                "busybox",
                "nslookup",
                name,
            ]);
            assert!(
                out.contains(&db_ip),
                "{client:?}: {name} resolves to {db_ip}: {out}"
            );
        }
        c(&[
            "run",
            "--rm",
            "--network",
            "app-net",
            "busybox",
            "ping",
            "-c1",
            "-W2",
            "db",
        ]);
        // No names on the default bridge.
        let o = d.cli(
            client,
            &["run", "--rm", "busybox", "ping", "-c1", "-W1", "db"],
        );
        assert_ne!(
            code(&o),
            0,
            "{client:?}: db does not resolve on the default bridge"
        );

        let v = d.api("GET", "/networks/app-net", None).json();
        assert_eq!(v["Containers"].as_object().map(|m| m.len()), Some(1));
        let bridge = format!("br-{}", &id[..12]);
        assert!(
            link_exists(&bridge),
            "{client:?}: the network's bridge exists"
        );

        // Removing a network in use is refused and names the container.
        let o = d.cli(client, &["network", "rm", "app-net"]);
        assert_ne!(code(&o), 0);
        assert!(
            stderr(&o).contains("has active endpoints"),
            "{client:?}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("db"), "{client:?}: {}", stderr(&o));
        c(&["rm", "-f", "db"]);
        assert_eq!(c(&["network", "rm", "app-net"]), "app-net");
        assert!(!link_exists(&bridge), "{client:?}: the bridge is gone");
        let o = d.cli(client, &["network", "inspect", "app-net"]);
        assert_ne!(code(&o), 0);
    }
}

#[test]
fn two_user_networks_are_isolated_and_bad_input_is_refused() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&["network", "create", "a"]);
        c(&["network", "create", "b"]);
        c(&[
            "run",
            "-d",
            "--name",
            "ina",
            "--network",
            "a",
            "busybox",
            "sleep",
            "1000",
        ]);
        let ip = d.inspect("ina")["NetworkSettings"]["Networks"]["a"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let o = d.cli(
            client,
            &[
                "run",
                "--rm",
                "--network",
                "b",
                "busybox",
                "ping",
                "-c1",
                "-W1",
                &ip,
            ],
        );
        assert_ne!(code(&o), 0, "{client:?}: network b cannot reach network a");

        let o = d.cli(client, &["network", "create", "a"]);
        assert_ne!(code(&o), 0, "{client:?}: duplicate name refused");
        let o = d.cli(
            client,
            &["network", "create", "--subnet", "300.1.0.0/16", "bad"],
        );
        assert_ne!(code(&o), 0, "{client:?}: malformed subnet refused");
        let sub = d.api("GET", "/networks/a", None).json()["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let o = d.cli(client, &["network", "create", "--subnet", &sub, "overlap"]);
        assert_ne!(code(&o), 0, "{client:?}: overlapping subnet refused");
        let o = d.cli(client, &["network", "create", "-o", "x=y", "in valid"]);
        assert_ne!(code(&o), 0, "{client:?}: invalid name refused");
        let nets = c(&["network", "ls", "-q"]);
        assert_eq!(
            nets.lines().count(),
            5,
            "{client:?}: nothing half-made: {nets}"
        );
        c(&["rm", "-f", "ina"]);
        c(&["network", "prune", "-f"]);
        let nets = c(&["network", "ls", "--format", "{{.Name}}"]);
        assert_eq!(
            nets.lines().count(),
            3,
            "{client:?}: prune left the builtins: {nets}"
        );
    }
}

#[test]
fn published_tcp_port_is_reached_through_loopback_and_a_taken_port_is_refused() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        // A free host port, as the kernel picks it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let spec = format!("{port}:80");
        c(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &spec,
            "busybox",
            "sh",
            "-c",
            "echo hello > /tmp/i.html; exec httpd -f -p 80 -h /tmp",
        ]);
        let v = d.inspect("web");
        assert_eq!(
            v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
            port.to_string().as_str(),
            "{client:?}: inspect reports the binding"
        );
        let ps = c(&["ps", "--format", "{{.Ports}}"]);
        assert!(
            ps.contains(&format!("{port}->80/tcp")),
            "{client:?}: ps PORTS: {ps}"
        );
        let mut body = String::new();
        d.wait_until(
            "the published port answers",
            std::time::Duration::from_secs(5),
            || {
                let o = Command::new("busybox")
                    .args(["wget", "-qO-", &format!("http://127.0.0.1:{port}/i.html")])
                    .output();
                body = o
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                body.contains("hello")
            },
        );
        let o = d.cli(client, &["run", "-d", "-p", &spec, "busybox", "true"]);
        assert_ne!(code(&o), 0, "{client:?}: the port is taken");
        assert!(
            stderr(&o).contains("port is already allocated"),
            "{client:?}: {}",
            stderr(&o)
        );
        c(&["rm", "-f", "web"]);
        let table = format!("berth-{}", d.bridge_name());
        let rules = Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .expect("nft");
        assert!(
            !String::from_utf8_lossy(&rules.stdout).contains("dnat"),
            "{client:?}: the DNAT rule is gone"
        );
    }
}

/// A network namespace the test creates to stand in for another machine: a veth pair to the
/// host with addresses from this test's own range, removed on drop.
struct OtherMachine {
    ns: String,
    host_if: String,
    /// The host's address on the link (what the other machine connects to).
    host_ip: String,
}

impl OtherMachine {
    fn new(d: &TestDaemon) -> OtherMachine {
        let ns = format!("bt{}-peer", d.net_slot);
        let host_if = format!("bt{}-m", d.net_slot);
        // The last /30 of this daemon's address pool: no network of a test gets that far.
        let base = format!("10.{}.255", 50 + d.net_slot);
        let m = OtherMachine {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: format!("{base}.1"),
        };
        m.cleanup();
        let sh = |cmd: &str| {
            let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
            assert_success(cmd, &o);
        };
        sh(&format!("ip netns add {ns}"));
        sh(&format!(
            "ip link add {host_if} type veth peer name eth0 netns {ns} && \
             ip addr add {base}.1/30 dev {host_if} && ip link set {host_if} up && \
             ip -n {ns} addr add {base}.2/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up"
        ));
        m
    }

    /// Run a command inside the other machine (bounded in time).
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).args(args);
        run_bounded(cmd, None, std::time::Duration::from_secs(10))
    }

    fn cleanup(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for OtherMachine {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free UDP port")
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port")
    }
}

/// A UDP echo server for a busybox container: busybox has no UDP server, so the host's
/// python3 runs inside it from read-only binds of the host's /usr.
const UDP_ECHO: &str = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',53))\nwhile True:\n    d,a=s.recvfrom(512)\n    s.sendto(b'echo:'+d,a)\n";

/// Send `msg` to `addr` over UDP and return the answer (`tries` times, while the server starts).
fn udp_ask(addr: &str, msg: &[u8], tries: usize) -> Option<Vec<u8>> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .ok()?;
    let mut buf = [0u8; 512];
    for _ in 0..tries {
        let _ = s.send_to(msg, addr);
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

#[test]
fn published_tcp_and_udp_ports_are_reached_from_the_host_and_from_another_machine() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let other = OtherMachine::new(&d);
        let tcp = free_port(false);
        let udp = free_port(true);
        let tcp_spec = format!("{tcp}:80");
        let udp_spec = format!("{udp}:53/udp");
        c(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &tcp_spec,
            "busybox",
            "sh",
            "-c",
            "echo hello > /tmp/i.html; exec httpd -f -p 80 -h /tmp",
        ]);
        c(&[
            "run",
            "-d",
            "--name",
            "dns",
            "-p",
            &udp_spec,
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/usr/lib:/lib:ro",
            "-v",
            "/usr/lib64:/lib64:ro",
            "busybox",
            "/usr/bin/python3",
            "-c",
            UDP_ECHO,
        ]);
        // berth port / docker port, in docker's format.
        assert_eq!(
            c(&["port", "web"]),
            format!("80/tcp -> 0.0.0.0:{tcp}"),
            "{client:?}"
        );
        assert_eq!(c(&["port", "web", "80"]), format!("0.0.0.0:{tcp}"));
        assert_eq!(c(&["port", "dns", "53/udp"]), format!("0.0.0.0:{udp}"));
        let o = d.cli(client, &["port", "web", "81"]);
        assert_ne!(code(&o), 0, "{client:?}: 81 is not published");
        assert!(
            stderr(&o).contains("Error: No public port '81' published for web"),
            "{client:?}: {}",
            stderr(&o)
        );
        let ps = c(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
        assert!(
            ps.contains(&format!("0.0.0.0:{udp}->53/udp")),
            "{client:?}: ps PORTS: {ps}"
        );

        // UDP through 127.0.0.1 and from the other machine.
        let answer = udp_ask(&format!("127.0.0.1:{udp}"), b"ping", 20);
        assert_eq!(
            answer.as_deref(),
            Some(&b"echo:ping"[..]),
            "{client:?}: UDP through loopback"
        );
        let py = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\n\
             for _ in range(10):\n    s.sendto(b'far',('{}',{udp}))\n    try:\n        print(s.recvfrom(512)[0].decode()); break\n    except OSError: pass\n",
            other.host_ip
        );
        let o = other.run(&["python3", "-c", &py]);
        assert_eq!(
            stdout(&o).trim(),
            "echo:far",
            "{client:?}: UDP from another machine: {}",
            stderr(&o)
        );

        // TCP from the other machine (DNAT on the host's address) and through loopback.
        let url = format!("http://{}:{tcp}/i.html", other.host_ip);
        let mut body = String::new();
        d.wait_until(
            "the published TCP port answers the other machine",
            std::time::Duration::from_secs(5),
            || {
                body = stdout(
                    &other.run(&["busybox", "timeout", "2", "busybox", "wget", "-qO-", &url]),
                );
                body.contains("hello")
            },
        );
        let o = Command::new("busybox")
            .args(["wget", "-qO-", &format!("http://127.0.0.1:{tcp}/i.html")])
            .output()
            .expect("wget");
        assert!(stdout(&o).contains("hello"), "{client:?}: loopback");

        c(&["rm", "-f", "web", "dns"]);
        let table = format!("berth-{}", d.bridge_name());
        let rules = Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .expect("nft");
        assert!(
            !String::from_utf8_lossy(&rules.stdout).contains("dnat"),
            "{client:?}: the DNAT rules are gone"
        );
        assert!(
            udp_ask(&format!("127.0.0.1:{udp}"), b"x", 3).is_none(),
            "{client:?}: nothing answers once the container is gone"
        );
    }
}

/// The address of `name` on `net`, from inspect.
fn ip_on(d: &TestDaemon, name: &str, net: &str) -> String {
    d.inspect(name)["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn connect_and_disconnect_a_running_container() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&["network", "create", "app-net"]);
        c(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
        c(&[
            "run",
            "-d",
            "--name",
            "probe",
            "--network",
            "app-net",
            "busybox",
            "sleep",
            "1000",
        ]);
        let o = d.cli(client, &["exec", "probe", "nslookup", "web"]);
        assert_ne!(code(&o), 0, "{client:?}: web is not on app-net yet");

        c(&["network", "connect", "--alias", "www", "app-net", "web"]);
        let ip = ip_on(&d, "web", "app-net");
        assert!(!ip.is_empty(), "{client:?}: web has an address on app-net");
        let links = c(&["exec", "web", "ip", "-o", "-4", "addr"]);
        assert!(
            links.contains("eth1") && links.contains(&ip),
            "{client:?}: a new interface inside: {links}"
        );
        for name in ["web", "www"] {
            let out = c(&["exec", "probe", "nslookup", name]);
            assert!(out.contains(&ip), "{client:?}: {name} → {ip}: {out}");
        }
        c(&["exec", "probe", "ping", "-c1", "-W2", "web"]);
        let o = d.cli(client, &["network", "connect", "app-net", "web"]);
        assert_ne!(code(&o), 0, "{client:?}: connecting twice is refused");

        let veths = veths_on(&format!(
            "br-{}",
            &d.api("GET", "/networks/app-net", None).json()["Id"]
                .as_str()
                .unwrap_or_default()[..12]
        ));
        assert_eq!(veths.len(), 2, "{client:?}: two veths on app-net");
        c(&["network", "disconnect", "app-net", "web"]);
        let links = c(&["exec", "web", "ip", "-o", "link"]);
        assert!(
            !links.contains("eth1"),
            "{client:?}: the interface is gone: {links}"
        );
        let o = d.cli(client, &["exec", "probe", "nslookup", "web"]);
        assert_ne!(code(&o), 0, "{client:?}: the name is gone: {}", stdout(&o));
        assert!(
            d.inspect("web")["NetworkSettings"]["Networks"]["app-net"].is_null(),
            "{client:?}"
        );
        let o = d.cli(client, &["network", "disconnect", "app-net", "web"]);
        assert_ne!(code(&o), 0, "{client:?}: not connected any more");
        c(&["rm", "-f", "web", "probe"]);
        c(&["network", "rm", "app-net"]);
    }
}

#[test]
fn internal_network_has_no_way_out_but_its_members_talk() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&["network", "create", "--internal", "inside"]);
        let v = d.api("GET", "/networks/inside", None).json();
        assert_eq!(v["Internal"], true, "{client:?}");
        let subnet = v["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        c(&[
            "run",
            "-d",
            "--name",
            "aa",
            "--network",
            "inside",
            "busybox",
            "sleep",
            "1000",
        ]);
        c(&[
            "run",
            "--rm",
            "--network",
            "inside",
            "busybox",
            "ping",
            "-c1",
            "-W2",
            "aa",
        ]);
        let routes = c(&["exec", "aa", "ip", "route"]);
        assert!(
            !routes.contains("default"),
            "{client:?}: no default route: {routes}"
        );
        // The host's address on the default bridge: a way out would reach it.
        let outside = format!("10.49.{}.1", d.net_slot);
        let o = d.cli(client, &["exec", "aa", "ping", "-c1", "-W1", &outside]);
        assert_ne!(code(&o), 0, "{client:?}: {outside} is unreachable");
        let table = format!("berth-{}", d.bridge_name());
        let rules = Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .expect("nft");
        let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
        assert!(
            !rules
                .lines()
                .any(|l| l.contains(&subnet) && l.contains("masquerade")),
            "{client:?}: no NAT for {subnet}: {rules}"
        );
        c(&["rm", "-f", "aa"]);
        c(&["network", "rm", "inside"]);
    }
}

#[test]
fn host_docker_internal_and_host_gateway_reach_a_server_on_the_host() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let gw = format!("10.49.{}.1", d.net_slot);
        // A one-shot HTTP server on the host, on this daemon's bridge address only.
        let listener = std::net::TcpListener::bind((gw.as_str(), 0)).expect("bind on the bridge");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for _ in 0..2 {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nfrom-host",
                );
            }
        });
        let url = format!("http://host.docker.internal:{port}/");
        // (busybox 1.35's wget -T crashes: bound it with timeout instead.)
        let out = c(&[
            "run", "--rm", "busybox", "timeout", "5", "wget", "-qO-", &url,
        ]);
        assert_eq!(out, "from-host", "{client:?}: host.docker.internal");
        c(&["network", "create", "app-net"]);
        let url = format!("http://myhost:{port}/");
        let out = c(&[
            "run",
            "--rm",
            "--network",
            "app-net",
            "--add-host",
            "myhost:host-gateway",
            "busybox",
            "sh",
            "-c",
            &format!("grep myhost /etc/hosts; timeout 5 wget -qO- {url}"),
        ]);
        assert!(
            out.contains(&format!("{gw}\tmyhost")),
            "{client:?}: host-gateway is the default bridge's gateway: {out}"
        );
        assert!(out.ends_with("from-host"), "{client:?}: {out}");
        server.join().expect("server");
        c(&["network", "rm", "app-net"]);
    }
}

#[test]
fn network_modes_container_and_host() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        c(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo shared > /tmp/i.html; exec httpd -f -p 80 -h /tmp",
        ]);
        let ip = ip_on(&d, "web", "bridge");
        let out = c(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; wget -qO- http://127.0.0.1:80/i.html; grep -c . /etc/hosts",
        ]);
        assert!(
            out.contains(&format!("{ip}/")),
            "{client:?}: the same interface: {out}"
        );
        assert!(
            out.contains("shared"),
            "{client:?}: web's server on its loopback: {out}"
        );
        let out = c(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ip",
            "-o",
            "link",
        ]);
        assert!(
            out.contains(&d.bridge_name()),
            "{client:?}: the host's links, with this daemon's bridge: {out}"
        );
        c(&["stop", "-t", "1", "web"]);
        let o = d.cli(
            client,
            &[
                "run",
                "--rm",
                "--network",
                "container:web",
                "busybox",
                "true",
            ],
        );
        assert_ne!(code(&o), 0, "{client:?}: web does not run");
        assert!(
            stderr(&o).contains("cannot join network of a non running container"),
            "{client:?}: {}",
            stderr(&o)
        );
        c(&["rm", "-f", "web"]);
    }
}

#[test]
fn random_host_ports_for_an_address_and_for_every_exposed_port() {
    for client in CLIENTS {
        let d = TestDaemon::start();
        let c = |args: &[&str]| d.cli_ok(client, args);
        let serve = "echo hi > /tmp/i.html; httpd -p 81 -h /tmp; exec httpd -f -p 80 -h /tmp";
        c(&[
            "run",
            "-d",
            "--name",
            "one",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sh",
            "-c",
            serve,
        ]);
        let bound = c(&["port", "one", "80/tcp"]);
        let port = bound
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("{client:?}: a random port on 127.0.0.1: {bound}"));
        assert!(port > 0);
        c(&[
            "run", "-d", "--name", "all", "--expose", "80", "--expose", "81", "-P", "busybox",
            "sh", "-c", serve,
        ]);
        let out = c(&["port", "all"]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{client:?}: both exposed ports: {out}");
        assert!(
            lines[0].starts_with("80/tcp -> 0.0.0.0:")
                && lines[1].starts_with("81/tcp -> 0.0.0.0:"),
            "{client:?}: {out}"
        );
        let mut urls = vec![format!("http://127.0.0.1:{port}/i.html")];
        for l in &lines {
            let p = l.rsplit(':').next().unwrap_or_default();
            urls.push(format!("http://127.0.0.1:{p}/i.html"));
        }
        for url in urls {
            d.wait_until(
                &format!("{url} answers"),
                std::time::Duration::from_secs(5),
                || {
                    Command::new("busybox")
                        .args(["wget", "-qO-", &url])
                        .output()
                        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("hi"))
                },
            );
        }
        c(&["rm", "-f", "one", "all"]);
    }
}
