//! Bridges and veth pairs, configured in-process over rtnetlink.
//!
//! Every netlink conversation runs on a dedicated OS thread with its own current-thread
//! runtime, never on a tokio worker: the thread that configures a container's side
//! `setns()`es into the container's network namespace and must die with it.

use crate::{Error, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// Whether a link of that name exists in the host namespace.
pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The index of a host-namespace link, from sysfs (no netlink round trip).
fn index_of(name: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn nl(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Netlink(format!("{what}: {e}"))
}

/// Run `job` with a netlink handle in the daemon's namespace, on a thread of its own.
fn on_netlink_thread<T, F, Fut>(job: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            rt.block_on(async {
                let (conn, handle, _) = rtnetlink::new_connection()?;
                tokio::spawn(conn);
                job(handle).await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Netlink("netlink thread panicked".into())))
    })
}

/// Create (or adopt) a bridge with `gateway/prefix` on it, and bring it up.
pub fn ensure_bridge(name: &str, gateway: Option<(Ipv4Addr, u8)>, mtu: u32) -> Result<()> {
    on_netlink_thread(|h| async move {
        if !exists(name) {
            h.link()
                .add(LinkBridge::new(name).mtu(mtu).up().build())
                .execute()
                .await
                .map_err(|e| nl(&format!("creating bridge {name}"), e))?;
        }
        let index = index_of(name).ok_or_else(|| Error::Netlink(format!("{name} vanished")))?;
        if let Some((gw, prefix)) = gateway {
            h.address()
                .add(index, IpAddr::V4(gw), prefix)
                .replace()
                .execute()
                .await
                .map_err(|e| nl(&format!("adding {gw}/{prefix} to {name}"), e))?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| nl(&format!("bringing {name} up"), e))
    })
}

/// Delete a link of the host namespace by name; a missing one is not an error.
pub fn delete(name: &str) -> Result<()> {
    match index_of(name) {
        Some(index) => delete_index(index),
        None => Ok(()),
    }
}

/// Delete a link of the host namespace by index (an index is never reused soon, so a late
/// deletion cannot hit a newer link of the same name); a missing one is not an error.
pub fn delete_index(index: u32) -> Result<()> {
    on_netlink_thread(|h| async move {
        match h.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -ENODEV => Ok(()),
            Err(e) => Err(nl(&format!("deleting link {index}"), e)),
        }
    })
}

const ENODEV: i32 = 19;

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

fn parse_mac(mac: &str) -> Result<Vec<u8>> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::BadAddress(mac.to_string()))?;
    if bytes.len() != 6 {
        return Err(Error::BadAddress(mac.to_string()));
    }
    Ok(bytes)
}

/// Create the veth pair for `ep` with its peer born inside the network namespace of `pid`,
/// address it and route through the gateway. Returns the host end's index. On failure
/// nothing is left behind in the host namespace.
pub fn attach(pid: i64, ep: &Endpoint) -> Result<u32> {
    if pid <= 0 {
        return Err(Error::Invalid(format!(
            "no process to attach to (pid {pid})"
        )));
    }
    attach_in(&File::open(format!("/proc/{pid}/ns/net"))?, ep)
}

/// As `attach`, into the network namespace open as `netns` (e.g. a daemon-made sandbox).
pub fn attach_in(netns: &File, ep: &Endpoint) -> Result<u32> {
    let mac = parse_mac(&ep.mac)?;
    let bridge = index_of(&ep.bridge)
        .ok_or_else(|| Error::Netlink(format!("bridge {} does not exist", ep.bridge)))?;
    // A leftover of a crashed run would make the creation fail.
    if exists(&ep.host_if) {
        delete(&ep.host_if)?;
    }
    on_netlink_thread(|host| async move {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(ep.ifname.clone())
            .mtu(ep.mtu)
            .address(mac)
            .setns_by_fd(netns.as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(ep.host_if.clone())
            .mtu(ep.mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        host.link()
            .add(veth)
            .execute()
            .await
            .map_err(|e| nl(&format!("creating veth {}", ep.host_if), e))?;
        let index = index_of(&ep.host_if)
            .ok_or_else(|| Error::Netlink(format!("{} vanished", ep.host_if)))?;
        if let Err(e) = configure_inside(netns, ep).await {
            let _ = host.link().del(index).execute().await;
            return Err(e);
        }
        Ok(index)
    })
}

/// Inside the container's namespace: address, up, default route. Moves the calling thread
/// into that namespace for good (it is a dedicated netlink thread).
async fn configure_inside(netns: &File, ep: &Endpoint) -> Result<()> {
    rustix::thread::move_into_link_name_space(
        netns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| nl("entering the container's network namespace", e))?;
    let (conn, h, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    let link = h
        .link()
        .get()
        .match_name(ep.ifname.clone())
        .execute()
        .try_next()
        .await
        .map_err(|e| nl(&format!("finding {}", ep.ifname), e))?
        .ok_or_else(|| Error::Netlink(format!("{} is not in the container", ep.ifname)))?;
    let index = link.header.index;
    h.address()
        .add(index, IpAddr::V4(ep.ip), ep.prefix)
        .execute()
        .await
        .map_err(|e| nl(&format!("adding {}/{}", ep.ip, ep.prefix), e))?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl(&format!("bringing {} up", ep.ifname), e))?;
    if let Some(gw) = ep.gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(|e| nl(&format!("adding the default route via {gw}"), e))?;
    }
    Ok(())
}

/// Remove an endpoint: deleting the host end deletes its peer.
pub fn detach(host_if: &str) -> Result<()> {
    delete(host_if)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_short() {
        let a = veth_name("abc/def");
        assert_eq!(a, veth_name("abc/def"));
        assert_ne!(a, veth_name("abc/deg"));
        assert!(a.len() <= 15, "{a}");
    }

    #[test]
    fn macs_parse_to_six_bytes() {
        assert_eq!(
            parse_mac("02:42:0a:00:00:02").unwrap(),
            vec![2, 0x42, 10, 0, 0, 2]
        );
        assert!(parse_mac("02:42").is_err());
        assert!(parse_mac("zz:42:0a:00:00:02").is_err());
    }
}
