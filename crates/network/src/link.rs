//! Bridges and veth pairs, configured with iproute2's batch mode (one process per namespace).

use crate::{run_with_input, Error, Result};
use std::net::Ipv4Addr;
use std::path::Path;

/// Whether a link of that name exists in the host namespace.
pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Create (or adopt) a bridge with `gateway/prefix` on it, and bring it up.
pub fn ensure_bridge(name: &str, gateway: Option<(Ipv4Addr, u8)>, mtu: u32) -> Result<()> {
    let mut batch = String::new();
    if !exists(name) {
        batch.push_str(&format!("link add name {name} mtu {mtu} type bridge\n"));
    }
    if let Some((gw, prefix)) = gateway {
        batch.push_str(&format!("addr replace {gw}/{prefix} dev {name}\n"));
    }
    batch.push_str(&format!("link set {name} up\n"));
    run_with_input("ip", &["-b", "-"], &batch)?;
    Ok(())
}

/// Delete a link of the host namespace; a missing one is not an error.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    match run_with_input("ip", &["link", "del", name], "") {
        Ok(_) => Ok(()),
        Err(_) if !exists(name) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One interface to create inside a container's network namespace.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The host end's name (at most 15 bytes).
    pub host_if: String,
    /// The name inside the container (`eth0`, `eth1`…).
    pub ifname: String,
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: String,
    /// The default route's next hop (none for a second interface or an internal network).
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
}

/// The veth name Docker-style: `veth` + 7 hex digits derived from `seed`.
pub fn veth_name(seed: &str) -> String {
    // FNV-1a: stable across runs.
    let mut h: u32 = 0x811c9dc5;
    for b in seed.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("veth{:07x}", h & 0x0fff_ffff)
}

/// Create the veth pair for `ep`, put its peer into the namespace of `pid`, address it and
/// route through the gateway. On failure nothing is left behind in the host namespace.
pub fn attach(pid: i64, ep: &Endpoint) -> Result<()> {
    if pid <= 0 {
        return Err(Error::Invalid(format!(
            "no process to attach to (pid {pid})"
        )));
    }
    let host = format!(
        "link add name {h} mtu {mtu} type veth peer name {i} mtu {mtu} address {mac} netns {pid}\nlink set {h} master {br} up\n",
        h = ep.host_if,
        mtu = ep.mtu,
        i = ep.ifname,
        mac = ep.mac,
        br = ep.bridge,
    );
    run_with_input("ip", &["-b", "-"], &host)?;
    let mut inside = format!(
        "addr add {ip}/{p} dev {i}\nlink set {i} up\n",
        ip = ep.ip,
        p = ep.prefix,
        i = ep.ifname
    );
    if let Some(gw) = ep.gateway {
        inside.push_str(&format!("route add default via {gw} dev {}\n", ep.ifname));
    }
    let ns = format!("--net=/proc/{pid}/ns/net");
    if let Err(e) = run_with_input("nsenter", &[&ns, "ip", "-b", "-"], &inside) {
        let _ = delete(&ep.host_if);
        return Err(e);
    }
    Ok(())
}

/// Remove an endpoint: deleting the host end deletes its peer.
pub fn detach(host_if: &str) -> Result<()> {
    delete(host_if)
}
