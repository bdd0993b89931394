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
