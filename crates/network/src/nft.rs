//! berth's own nftables table: masquerade for container subnets, forwarding for them only,
//! isolation between networks, and DNAT for published ports. The whole table is rewritten in
//! one `nft -f` transaction at every change, so a failure leaves the previous rules in place.

use crate::{run_with_input, Result};
use std::net::Ipv4Addr;

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct NetRule {
    pub bridge: String,
    pub subnet: String,
    /// `--internal`: no traffic leaves the bridge.
    pub internal: bool,
}

/// A published port.
#[derive(Debug, Clone)]
pub struct PortRule {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The host address it is bound to (None: all).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The table's name for a daemon whose default bridge is `bridge`.
pub fn table_name(bridge: &str) -> String {
    format!("berth-{bridge}")
}

/// Render the table.
pub fn render(table: &str, nets: &[NetRule], ports: &[PortRule]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n"
    ));
    // NAT.
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain published {\n");
    for p in ports {
        let daddr = p
            .host_ip
            .map(|ip| format!("ip daddr {ip} "))
            .unwrap_or_default();
        s.push_str(&format!(
            "    {daddr}{proto} dport {hp} dnat to {cip}:{cp}\n",
            proto = p.proto,
            hp = p.host_port,
            cip = p.container_ip,
            cp = p.container_port
        ));
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    for n in nets.iter().filter(|n| !n.internal) {
        s.push_str(&format!(
            "    ip saddr {sub} oifname != \"{br}\" masquerade\n",
            sub = n.subnet,
            br = n.bridge
        ));
    }
    // Loopback hairpin: host-local connections DNATed to a container come from 127.0.0.1.
    for n in nets {
        s.push_str(&format!(
            "    ip saddr 127.0.0.0/8 oifname \"{br}\" masquerade\n",
            br = n.bridge
        ));
    }
    s.push_str("  }\n");
    // Filtering: only our bridges' traffic is judged here; everything else passes untouched.
    s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    s.push_str("    ct state established,related accept\n");
    for n in nets {
        if n.internal {
            s.push_str(&format!(
                "    iifname \"{br}\" oifname != \"{br}\" drop\n    oifname \"{br}\" iifname != \"{br}\" drop\n",
                br = n.bridge
            ));
        }
    }
    for a in nets {
        for b in nets {
            if a.bridge != b.bridge {
                s.push_str(&format!(
                    "    iifname \"{}\" oifname \"{}\" drop\n",
                    a.bridge, b.bridge
                ));
            }
        }
    }
    s.push_str("  }\n}\n");
    s
}

/// Replace the table with `nets` and `ports` (one transaction).
pub fn apply(table: &str, nets: &[NetRule], ports: &[PortRule]) -> Result<()> {
    run_with_input("nft", &["-f", "-"], &render(table, nets, ports))?;
    Ok(())
}

/// Remove the table (missing is fine).
pub fn remove(table: &str) -> Result<()> {
    run_with_input(
        "nft",
        &["-f", "-"],
        &format!("table ip {table}\ndelete table ip {table}\n"),
    )?;
    Ok(())
}

/// Turn on IPv4 forwarding and route_localnet on `bridge` (needed for the 127.0.0.1 DNAT path).
pub fn enable_forwarding(bridge: &str) -> Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rules_for_networks_and_ports() {
        let nets = vec![
            NetRule {
                bridge: "b0".into(),
                subnet: "10.0.0.0/24".into(),
                internal: false,
            },
            NetRule {
                bridge: "b1".into(),
                subnet: "10.0.1.0/24".into(),
                internal: true,
            },
        ];
        let ports = vec![PortRule {
            proto: "tcp".into(),
            host_ip: None,
            host_port: 8080,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_port: 80,
        }];
        let r = render("berth-b0", &nets, &ports);
        assert!(r.contains("ip saddr 10.0.0.0/24 oifname != \"b0\" masquerade"));
        assert!(!r.contains("ip saddr 10.0.1.0/24 oifname"));
        assert!(r.contains("tcp dport 8080 dnat to 10.0.0.2:80"));
        assert!(r.contains("iifname \"b0\" oifname \"b1\" drop"));
    }
}
