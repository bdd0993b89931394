//! The daemon's network service: the default `bridge` network (created at start), user-defined
//! bridge networks, container memberships and their live endpoints (veth + address), and
//! berth's nftables table.
//!
//! A container is a *member* of its networks from create to remove; it has an *endpoint*
//! (an address, a veth) only while it runs, as in Docker.

use crate::error::{ApiError, ApiResult};
use crate::paths::write_atomic;
use berth_network::{dns, ipam, link, nft, Subnet};
use berth_runtime::netns::Sandbox;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

/// Network options of `berth daemon`.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// `-b/--bridge-name` (default `berth0`).
    pub bridge: String,
    /// `--bip`: the default bridge's gateway address with its prefix (default 172.17.0.1/16).
    pub bip: Option<String>,
    /// `--default-address-pool`: `base=CIDR,size=N` (default 172.18.0.0/16 in /16.. → /24 here).
    pub pool: Option<String>,
}

/// A live endpoint of a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub host_if: String,
    /// The host end's interface index (0 in records of older runs).
    #[serde(default)]
    pub host_index: u32,
    pub ifname: String,
    /// Ports published to this endpoint (on the primary network only).
    #[serde(default)]
    pub ports: Vec<Published>,
}

/// One published port: `host_ip:host_port` → `container_port/proto`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub proto: String,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// A container's membership of a network.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Member {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub requested_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// `bridge`, `host`, `null`.
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub subnet: Option<Subnet>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
    /// Container id → membership.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
}

impl NetworkRecord {
    fn is_default_bridge(&self) -> bool {
        self.name == "bridge"
    }
    fn scope_builtin(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }
}

/// The primary network of a container: its gateway, and whether it has a DNS responder.
type Primary = (Ipv4Addr, bool);

pub struct Networks {
    dir: PathBuf,
    table: String,
    /// Address pools for new networks: (base, size of each subnet).
    pools: Vec<(Subnet, u8)>,
    nets: Arc<Mutex<HashMap<String, NetworkRecord>>>,
    /// DNS responders of user-defined networks, by network id.
    dns: Mutex<HashMap<String, dns::Responder>>,
    /// One network namespace made ahead of the next start (see `take_sandbox`).
    spare: Mutex<Option<Sandbox>>,
    refilling: std::sync::atomic::AtomicBool,
    /// Serialises `refresh_rules`.
    rules_lock: Mutex<()>,
}

fn new_id() -> String {
    let b: [u8; 32] = rand::random();
    hex::encode(b)
}

fn err(e: berth_network::Error) -> ApiError {
    match e {
        berth_network::Error::BadSubnet(_)
        | berth_network::Error::BadAddress(_)
        | berth_network::Error::Invalid(_)
        | berth_network::Error::InUse => ApiError::bad_request(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

pub fn valid_network_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Networks {
    /// Load the networks, create the default bridge and the table. Blocking.
    pub fn open(cfg: NetConfig, data_root: &std::path::Path) -> anyhow::Result<Networks> {
        let dir = data_root.join("networks");
        std::fs::create_dir_all(&dir)?;
        let pools = parse_pool(cfg.pool.as_deref())?;
        let (gw, bsub) = match &cfg.bip {
            Some(b) => ipam::parse_cidr_host(b)?,
            None => (Ipv4Addr::new(172, 17, 0, 1), "172.17.0.0/16".parse()?),
        };
        let mut nets = HashMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            if let Ok(data) = std::fs::read(e.path()) {
                if let Ok(mut n) = serde_json::from_slice::<NetworkRecord>(&data) {
                    // Endpoints of a previous run are re-checked by `restore`.
                    for m in n.members.values_mut() {
                        m.endpoint.take_if(|ep| !link::exists(&ep.host_if));
                    }
                    nets.insert(n.id.clone(), n);
                }
            }
        }
        let now = crate::container::now_rfc3339();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if nets.values().any(|n: &NetworkRecord| n.name == name) {
                continue;
            }
            let n = NetworkRecord {
                id: new_id(),
                name: name.into(),
                driver: driver.into(),
                created: now.clone(),
                bridge: if name == "bridge" {
                    cfg.bridge.clone()
                } else {
                    String::new()
                },
                subnet: (name == "bridge").then_some(bsub),
                gateway: (name == "bridge").then_some(gw),
                ip_range: None,
                internal: false,
                attachable: false,
                labels: HashMap::new(),
                options: HashMap::new(),
                members: BTreeMap::new(),
            };
            nets.insert(n.id.clone(), n);
        }
        // The default bridge follows the flags of this run.
        for n in nets.values_mut().filter(|n| n.name == "bridge") {
            n.bridge = cfg.bridge.clone();
            n.subnet = Some(bsub);
            n.gateway = Some(gw);
        }
        let s = Networks {
            table: nft::table_name(&cfg.bridge),
            dir,
            pools,
            nets: Arc::new(Mutex::new(nets)),
            dns: Mutex::new(HashMap::new()),
            spare: Mutex::new(None),
            refilling: std::sync::atomic::AtomicBool::new(false),
            rules_lock: Mutex::new(()),
        };
        for n in s.lock().values() {
            s.persist(n);
            if n.driver == "bridge" {
                bring_up(n)?;
            }
        }
        s.refresh_rules()?;
        let user: Vec<(String, Option<Ipv4Addr>)> = s
            .lock()
            .values()
            .filter(|n| n.driver == "bridge" && !n.is_default_bridge())
            .map(|n| (n.id.clone(), n.gateway))
            .collect();
        for (id, gw) in user {
            s.start_dns(&id, gw);
        }
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NetworkRecord>> {
        self.nets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, n: &NetworkRecord) {
        match serde_json::to_vec(n) {
            Ok(data) => {
                if let Err(e) = write_atomic(&self.dir.join(format!("{}.json", n.id)), &data, false)
                {
                    tracing::warn!("saving network {}: {e}", n.name);
                }
            }
            Err(e) => tracing::warn!("saving network {}: {e}", n.name),
        }
    }

    /// Answer names of network `id`'s containers on its gateway, port 53.
    fn start_dns(&self, id: &str, gateway: Option<Ipv4Addr>) {
        let Some(gw) = gateway else { return };
        let nets = Arc::downgrade(&self.nets);
        let nid = id.to_string();
        let lookup: dns::Lookup = Arc::new(move |name: &str| {
            let nets = nets.upgrade()?;
            let nets = nets.lock().unwrap_or_else(|p| p.into_inner());
            let n = nets.get(&nid)?;
            resolve(n, name)
        });
        match dns::serve(gw, lookup) {
            Ok(r) => {
                self.dns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), r);
            }
            Err(e) => tracing::warn!("DNS responder on {gw}:53: {e}"),
        }
    }

    /// Rewrite berth's nftables table from the networks' state.
    pub fn refresh_rules(&self) -> anyhow::Result<()> {
        // Read and applied under one lock: two refreshes that interleave would otherwise let
        // the older view (a removed container's DNAT) be applied last.
        let _serial = self.rules_lock.lock().unwrap_or_else(|e| e.into_inner());
        let rules: Vec<nft::NetRule> = self
            .lock()
            .values()
            .filter(|n| n.driver == "bridge")
            .filter_map(|n| {
                Some(nft::NetRule {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet?.to_string(),
                    internal: n.internal,
                })
            })
            .collect();
        let ports: Vec<nft::PortRule> = self
            .lock()
            .values()
            .flat_map(|n| n.members.values())
            .filter_map(|m| m.endpoint.as_ref())
            .flat_map(|ep| {
                ep.ports.iter().map(|p| nft::PortRule {
                    proto: p.proto.clone(),
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_ip: ep.ip,
                    container_port: p.container_port,
                })
            })
            .collect();
        nft::apply(&self.table, &rules, &ports)?;
        Ok(())
    }

    /// At daemon stop: remove the table (bridges stay, as docker0 does).
    pub fn shutdown(&self) {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(e) = nft::remove(&self.table) {
            tracing::warn!("removing nftables table {}: {e}", self.table);
        }
    }

    /// The default bridge's gateway: what `host-gateway` stands for.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        self.lock()
            .values()
            .find(|n| n.is_default_bridge())
            .and_then(|n| n.gateway)
    }

    /// Find a network by full id, name, or unique id prefix.
    pub fn find(&self, key: &str) -> ApiResult<NetworkRecord> {
        let nets = self.lock();
        if let Some(n) = nets.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = nets.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let m: Vec<_> = nets.values().filter(|n| n.id.starts_with(key)).collect();
        match m.len() {
            1 => Ok(m[0].clone()),
            0 => Err(ApiError::not_found(format!("network {key} not found"))),
            _ => Err(ApiError::bad_request(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                m.len()
            ))),
        }
    }

    pub fn all(&self) -> Vec<NetworkRecord> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        v
    }

    /// `POST /networks/create` (blocking).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        ip_range: Option<&str>,
        internal: bool,
        attachable: bool,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> ApiResult<String> {
        if !valid_network_name(name) {
            return Err(ApiError::bad_request(format!(
                "invalid name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if !matches!(driver, "" | "bridge") {
            return Err(ApiError::not_found(format!(
                "could not find plugin {driver} in v1 plugin registry: plugin not found"
            )));
        }
        let mut nets = self.lock();
        if nets.values().any(|n| n.name == name) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let taken: Vec<Subnet> = nets.values().filter_map(|n| n.subnet).collect();
        let sub = match subnet {
            Some(s) => {
                let sub: Subnet = s.parse().map_err(err)?;
                if u32::from(sub.addr) != sub.network() {
                    return Err(ApiError::bad_request(format!(
                        "invalid subnet {s}: it should be {sub}"
                    )));
                }
                if let Some(t) = taken.iter().find(|t| t.overlaps(&sub)) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        format!("invalid pool request: Pool overlaps with other one on this address space ({t})"),
                    ));
                }
                sub
            }
            None => {
                // As Docker: a pool subnet the host already routes elsewhere is skipped.
                let mut taken = taken.clone();
                taken.extend(host_routes());
                self.pools
                    .iter()
                    .find_map(|(p, size)| ipam::next_subnet(p, *size, &taken).ok())
            }
            .ok_or_else(|| {
                ApiError::bad_request("all predefined address pools have been fully subnetted")
            })?,
        };
        let gw = match gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid gateway address {g}")))?;
                if !sub.contains(ip) {
                    return Err(ApiError::bad_request(format!(
                        "no matching subnet for gateway {g}"
                    )));
                }
                ip
            }
            None => sub.first_host(),
        };
        let range = match ip_range {
            Some(r) => {
                let r: Subnet = r.parse().map_err(err)?;
                if !sub.contains(Ipv4Addr::from(r.network())) || r.prefix < sub.prefix {
                    return Err(ApiError::bad_request(format!(
                        "invalid ip-range {r}: it must be within the subnet {sub}"
                    )));
                }
                Some(r)
            }
            None => None,
        };
        let id = new_id();
        let bridge = options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        let n = NetworkRecord {
            id: id.clone(),
            name: name.into(),
            driver: "bridge".into(),
            created: crate::container::now_rfc3339(),
            bridge,
            subnet: Some(sub),
            gateway: Some(gw),
            ip_range: range,
            internal,
            attachable,
            labels,
            options,
            members: BTreeMap::new(),
        };
        if let Err(e) = bring_up(&n) {
            let _ = link::delete(&n.bridge);
            return Err(ApiError::internal(e.to_string()));
        }
        self.persist(&n);
        let gw = n.gateway;
        nets.insert(id.clone(), n);
        drop(nets);
        self.start_dns(&id, gw);
        if let Err(e) = self.refresh_rules() {
            tracing::warn!("nftables: {e}");
        }
        Ok(id)
    }

    /// `DELETE /networks/{id}` (blocking).
    pub fn remove(&self, key: &str) -> ApiResult<()> {
        let n = self.find(key)?;
        if n.scope_builtin() {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        let active: Vec<String> = n
            .members
            .values()
            .filter(|m| m.endpoint.is_some())
            .map(|m| m.name.clone())
            .collect();
        if !active.is_empty() {
            return Err(ApiError::conflict(format!(
                "error while removing network: network {} has active endpoints (name:{:?} id:{:?})",
                n.name,
                active.join(","),
                &n.id[..12]
            )));
        }
        link::delete(&n.bridge).map_err(|e| ApiError::internal(e.to_string()))?;
        self.lock().remove(&n.id);
        self.dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n.id);
        let _ = std::fs::remove_file(self.dir.join(format!("{}.json", n.id)));
        if let Err(e) = self.refresh_rules() {
            tracing::warn!("nftables: {e}");
        }
        Ok(())
    }

    /// Record that a new container belongs to its network (validates the mode). Returns the
    /// network's name, or None for modes without a network object (container:…).
    pub fn join(
        &self,
        container_id: &str,
        container_name: &str,
        network: &str,
        aliases: Vec<String>,
        requested_ip: Option<&str>,
    ) -> ApiResult<()> {
        if network.starts_with("container:") {
            return Ok(());
        }
        let n = self.find(network)?;
        let requested_ip = match requested_ip.filter(|s| !s.is_empty()) {
            Some(s) => {
                let ip: Ipv4Addr = s
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {s}")))?;
                if n.is_default_bridge() || n.driver != "bridge" {
                    return Err(ApiError::bad_request(
                        "user specified IP address is supported on user defined networks only",
                    ));
                }
                Some(ip)
            }
            None => None,
        };
        let mut nets = self.lock();
        if let Some(n) = nets.get_mut(&n.id) {
            if n.members.contains_key(container_id) {
                return Err(ApiError::conflict(format!(
                    "endpoint with name {container_name} already exists in network {}",
                    n.name
                )));
            }
            n.members.insert(
                container_id.to_string(),
                Member {
                    name: container_name.to_string(),
                    aliases,
                    requested_ip,
                    endpoint: None,
                },
            );
            self.persist(n);
        }
        Ok(())
    }

    /// Forget a container in every network (at remove): endpoints are torn down too.
    pub fn leave_all(&self, container_id: &str) {
        self.release(container_id);
        let mut nets = self.lock();
        for n in nets.values_mut() {
            if n.members.remove(container_id).is_some() {
                self.persist(n);
            }
        }
    }

    /// Leave one network (disconnect).
    pub fn leave(&self, container_id: &str, network: &str) -> ApiResult<()> {
        let n = self.find(network)?;
        let mut nets = self.lock();
        let Some(n) = nets.get_mut(&n.id) else {
            return Ok(());
        };
        match n.members.remove(container_id) {
            Some(m) => {
                self.persist(n);
                drop(nets);
                // The interface disappears inside before the answer (docker network disconnect).
                if let Some(ep) = m.endpoint {
                    remove_host_link(&ep);
                    if !ep.ports.is_empty() {
                        if let Err(e) = self.refresh_rules() {
                            tracing::warn!("nftables: {e}");
                        }
                    }
                }
                Ok(())
            }
            None => Err(ApiError::conflict(format!(
                "container {container_id} is not connected to network {}",
                n.name
            ))),
        }
    }

    /// Create endpoints for every bridge network the container belongs to, in the network
    /// namespace of `pid`. Returns the lines to add to its /etc/hosts.
    pub fn connect_all(
        &self,
        container_id: &str,
        hostname: &str,
        netns: &std::fs::File,
    ) -> ApiResult<(Vec<String>, Option<Primary>)> {
        let ids: Vec<String> = {
            let nets = self.lock();
            let mut v: Vec<&NetworkRecord> = nets
                .values()
                .filter(|n| n.driver == "bridge" && n.members.contains_key(container_id))
                .collect();
            // The default bridge first, then by creation: eth0 is the primary network.
            v.sort_by(|a, b| {
                b.is_default_bridge()
                    .cmp(&a.is_default_bridge())
                    .then(a.created.cmp(&b.created))
            });
            v.iter().map(|n| n.id.clone()).collect()
        };
        // The primary network's gateway, and whether its DNS responder serves the container.
        let primary = ids.first().and_then(|id| {
            let nets = self.lock();
            let n = nets.get(id)?;
            Some((n.gateway?, !n.is_default_bridge()))
        });
        let mut hosts = Vec::new();
        for (i, nid) in ids.iter().enumerate() {
            match self.connect_one(container_id, nid, netns, i, i == 0) {
                Ok(ip) => hosts.push(format!("{ip}\t{hostname}")),
                Err(e) => {
                    self.release(container_id);
                    return Err(e);
                }
            }
        }
        Ok((hosts, primary))
    }

    /// The spare network namespace made ahead of time, if it is there (making one costs about
    /// a millisecond of kernel work, better spent before the start is asked for).
    pub fn take_spare(&self) -> Option<Sandbox> {
        self.spare.try_lock().ok()?.take()
    }

    /// Make the next spare namespace in the background (once a start no longer needs the CPU).
    pub fn refill_sandbox(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            let mut spare = me.spare.lock().unwrap_or_else(|e| e.into_inner());
            if spare.is_none() {
                match Sandbox::create() {
                    Ok(s) => *spare = Some(s),
                    Err(e) => tracing::warn!("making a spare network namespace: {e}"),
                }
            }
            drop(spare);
            me.refilling.store(false, Ordering::Release);
        });
    }

    /// Connect a running container to one more network (network connect).
    pub fn connect_running(&self, container_id: &str, network: &str, pid: i64) -> ApiResult<()> {
        let n = self.find(network)?;
        let index = self
            .lock()
            .values()
            .filter(|x| {
                x.members
                    .get(container_id)
                    .is_some_and(|m| m.endpoint.is_some())
            })
            .count();
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| ApiError::internal(format!("container {container_id}: {e}")))?;
        self.connect_one(container_id, &n.id, &netns, index, index == 0)
            .map(|_| ())
    }

    fn connect_one(
        &self,
        container_id: &str,
        network_id: &str,
        netns: &std::fs::File,
        index: usize,
        primary: bool,
    ) -> ApiResult<Ipv4Addr> {
        let (ep, link_ep) = {
            let mut nets = self.lock();
            let n = nets
                .get_mut(network_id)
                .ok_or_else(|| ApiError::not_found(format!("network {network_id} not found")))?;
            let (Some(sub), Some(gw)) = (n.subnet, n.gateway) else {
                return Err(ApiError::internal(format!(
                    "network {} has no subnet",
                    n.name
                )));
            };
            let used: HashSet<Ipv4Addr> = n
                .members
                .values()
                .filter_map(|m| m.endpoint.as_ref().map(|e| e.ip))
                .collect();
            let requested = n.members.get(container_id).and_then(|m| m.requested_ip);
            let ip = match requested {
                Some(ip) => ipam::reserve(&sub, gw, &used, ip).map_err(err)?,
                None => ipam::allocate(&sub, n.ip_range.as_ref(), gw, &used).map_err(err)?,
            };
            let ep = Endpoint {
                id: new_id(),
                ip,
                mac: ipam::mac_for(ip),
                host_if: link::veth_name(&format!("{container_id}/{network_id}")),
                host_index: 0,
                ifname: format!("eth{index}"),
                ports: Vec::new(),
            };
            let link_ep = link::Endpoint {
                host_if: ep.host_if.clone(),
                ifname: ep.ifname.clone(),
                bridge: n.bridge.clone(),
                ip,
                prefix: sub.prefix,
                mac: ep.mac.clone(),
                gateway: (primary && !n.internal).then_some(gw),
                mtu: 1500,
            };
            // Reserve the address before plumbing, so a parallel start cannot take it.
            if let Some(m) = n.members.get_mut(container_id) {
                m.endpoint = Some(ep.clone());
            }
            (ep, link_ep)
        };
        let host_index = match link::attach_in(netns, &link_ep) {
            Ok(i) => i,
            Err(e) => {
                let mut nets = self.lock();
                if let Some(m) = nets
                    .get_mut(network_id)
                    .and_then(|n| n.members.get_mut(container_id))
                {
                    m.endpoint = None;
                }
                return Err(ApiError::internal(format!(
                    "failed to set up container networking: {e}"
                )));
            }
        };
        let mut nets = self.lock();
        if let Some(n) = nets.get_mut(network_id) {
            if let Some(ep) = n
                .members
                .get_mut(container_id)
                .and_then(|m| m.endpoint.as_mut())
            {
                ep.host_index = host_index;
            }
            self.persist(n);
        }
        Ok(ep.ip)
    }

    /// Tear down every endpoint of a container (at exit); memberships stay. The addresses
    /// are free at once; the veths go in the background, off the waiting client's path
    /// (deleting a link costs an RCU grace period, ~20 ms), by index so that a restart
    /// that re-creates the same name is not hit.
    pub fn release(&self, container_id: &str) {
        let mut had_ports = false;
        let mut gone = Vec::new();
        let mut nets = self.lock();
        for n in nets.values_mut() {
            if let Some(ep) = n
                .members
                .get_mut(container_id)
                .and_then(|m| m.endpoint.take())
            {
                gone.push(ep.clone());
                self.persist(n);
                had_ports |= !ep.ports.is_empty();
            }
        }
        drop(nets);
        if !gone.is_empty() {
            std::thread::spawn(move || {
                for ep in gone {
                    remove_host_link(&ep);
                }
            });
        }
        if had_ports {
            if let Err(e) = self.refresh_rules() {
                tracing::warn!("nftables: {e}");
            }
        }
    }

    /// Publish `bindings` (from HostConfig.PortBindings and -P) on the container's primary
    /// endpoint. Host ports in use are refused with Docker's message; nothing is kept then.
    pub fn publish(&self, container_id: &str, wanted: Vec<Published>) -> ApiResult<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        let mut taken: Vec<(String, u16)> = self
            .lock()
            .values()
            .flat_map(|n| n.members.values())
            .filter_map(|m| m.endpoint.as_ref())
            .flat_map(|ep| ep.ports.iter().map(|p| (p.proto.clone(), p.host_port)))
            .collect();
        let mut out = Vec::new();
        for mut p in wanted {
            let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            if p.host_port == 0 {
                p.host_port = free_port(&p.proto, ip)?;
            } else if taken.contains(&(p.proto.clone(), p.host_port))
                || !port_free(&p.proto, ip, p.host_port)
            {
                return Err(ApiError::internal(format!(
                    "driver failed programming external connectivity on endpoint: Bind for {ip}:{} failed: port is already allocated",
                    p.host_port
                )));
            }
            taken.push((p.proto.clone(), p.host_port));
            out.push(p);
        }
        {
            let mut nets = self.lock();
            let mut primary: Vec<&mut NetworkRecord> = nets
                .values_mut()
                .filter(|n| {
                    n.members
                        .get(container_id)
                        .is_some_and(|m| m.endpoint.is_some())
                })
                .collect();
            primary.sort_by(|a, b| {
                b.is_default_bridge()
                    .cmp(&a.is_default_bridge())
                    .then(a.created.cmp(&b.created))
            });
            if let Some(n) = primary.into_iter().next() {
                if let Some(ep) = n
                    .members
                    .get_mut(container_id)
                    .and_then(|m| m.endpoint.as_mut())
                {
                    ep.ports = out;
                }
                let n: &NetworkRecord = n;
                self.persist(n);
            }
        }
        self.refresh_rules()
            .map_err(|e| ApiError::internal(format!("publishing ports: {e}")))
    }

    /// `Ports` of the container list (ps).
    pub fn ports_list(&self, container_id: &str) -> Value {
        let mut out = Vec::new();
        for n in self.lock().values() {
            if let Some(ep) = n
                .members
                .get(container_id)
                .and_then(|m| m.endpoint.as_ref())
            {
                for p in &ep.ports {
                    out.push(json!({
                        "IP": p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string(),
                        "PrivatePort": p.container_port,
                        "PublicPort": p.host_port,
                        "Type": p.proto,
                    }));
                }
            }
        }
        Value::Array(out)
    }

    /// `NetworkSettings.Ports`: every exposed port, with its bindings while running.
    pub fn ports_value(&self, container_id: &str, exposed: &[String]) -> Value {
        let mut out = serde_json::Map::new();
        for e in exposed {
            out.insert(e.clone(), Value::Null);
        }
        for n in self.lock().values() {
            if let Some(ep) = n
                .members
                .get(container_id)
                .and_then(|m| m.endpoint.as_ref())
            {
                for p in &ep.ports {
                    let key = format!("{}/{}", p.container_port, p.proto);
                    let entry = out.entry(key).or_insert_with(|| json!([]));
                    if entry.is_null() {
                        *entry = json!([]);
                    }
                    if let Some(a) = entry.as_array_mut() {
                        a.push(json!({
                            "HostIp": p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string(),
                            "HostPort": p.host_port.to_string(),
                        }));
                    }
                }
            }
        }
        Value::Object(out)
    }

    /// `NetworkSettings` of a container's inspect: the top-level fields describe the default
    /// bridge's endpoint, as Docker's do.
    pub fn network_settings(&self, container_id: &str) -> Value {
        let networks = self.settings(container_id);
        let bridge = networks.get("bridge").cloned().unwrap_or(Value::Null);
        let field = |k: &str| bridge.get(k).cloned().unwrap_or(json!(""));
        json!({
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": self.ports_value(container_id, &[]), "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": field("EndpointID"),
            "Gateway": field("Gateway"),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": field("IPAddress"),
            "IPPrefixLen": bridge.get("IPPrefixLen").cloned().unwrap_or(json!(0)),
            "IPv6Gateway": "",
            "MacAddress": field("MacAddress"),
            "Networks": networks,
        })
    }

    /// The container's networks as `NetworkSettings.Networks` reports them.
    pub fn settings(&self, container_id: &str) -> Value {
        let nets = self.lock();
        let mut out = serde_json::Map::new();
        for n in nets.values() {
            let Some(m) = n.members.get(container_id) else {
                continue;
            };
            let ep = m.endpoint.as_ref();
            out.insert(
                n.name.clone(),
                json!({
                    "IPAMConfig": m.requested_ip.map(|ip| json!({"IPv4Address": ip.to_string()})),
                    "Links": null,
                    "Aliases": if m.aliases.is_empty() { Value::Null } else { json!(m.aliases) },
                    "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                    "DriverOpts": null,
                    "GwPriority": 0,
                    "NetworkID": n.id,
                    "EndpointID": ep.map(|e| e.id.clone()).unwrap_or_default(),
                    "Gateway": if ep.is_some() { n.gateway.map(|g| g.to_string()).unwrap_or_default() } else { String::new() },
                    "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                    "IPPrefixLen": if ep.is_some() { n.subnet.map(|s| s.prefix).unwrap_or(0) } else { 0 },
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DNSNames": if n.is_default_bridge() || ep.is_none() { Value::Null } else {
                        let mut names = vec![m.name.clone()];
                        names.extend(m.aliases.iter().cloned());
                        names.push(container_id[..12].to_string());
                        json!(names)
                    },
                }),
            );
        }
        Value::Object(out)
    }

    /// `GET /networks/{id}` body.
    pub fn inspect_value(&self, n: &NetworkRecord) -> Value {
        let mut containers = serde_json::Map::new();
        for (cid, m) in &n.members {
            if let Some(ep) = &m.endpoint {
                containers.insert(
                    cid.clone(),
                    json!({
                        "Name": m.name,
                        "EndpointID": ep.id,
                        "MacAddress": ep.mac,
                        "IPv4Address": format!("{}/{}", ep.ip, n.subnet.map(|s| s.prefix).unwrap_or(32)),
                        "IPv6Address": "",
                    }),
                );
            }
        }
        let config: Vec<Value> = match (n.subnet, n.gateway) {
            (Some(s), Some(g)) => {
                let mut c = json!({"Subnet": s.to_string(), "Gateway": g.to_string()});
                if let Some(r) = n.ip_range {
                    c["IPRange"] = json!(r.to_string());
                }
                vec![c]
            }
            _ => vec![],
        };
        let mut options = n.options.clone();
        if n.is_default_bridge() {
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            );
            options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
            options.insert(
                "com.docker.network.bridge.enable_ip_masquerade".into(),
                "true".into(),
            );
        }
        json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": config},
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        })
    }
}

fn bring_up(n: &NetworkRecord) -> anyhow::Result<()> {
    let gw = match (n.gateway, n.subnet) {
        (Some(g), Some(s)) => Some((g, s.prefix)),
        _ => None,
    };
    link::ensure_bridge(&n.bridge, gw, 1500)?;
    nft::enable_forwarding(&n.bridge)?;
    Ok(())
}

/// The host's IPv4 routes other than the default one (from /proc/net/route).
fn host_routes() -> Vec<Subnet> {
    parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

fn parse_routes(text: &str) -> Vec<Subnet> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order bytes as a native integer.
            let net = |v: u32| u32::from_be_bytes(v.to_ne_bytes());
            let prefix = net(mask).leading_ones() as u8;
            (prefix > 0).then(|| Subnet {
                addr: Ipv4Addr::from(net(dest)),
                prefix,
            })
        })
        .collect()
}

/// `--default-address-pool base=10.10.0.0/16,size=24` (or just a CIDR).
/// Docker's defaults: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
fn parse_pool(s: Option<&str>) -> anyhow::Result<Vec<(Subnet, u8)>> {
    let Some(s) = s else {
        return Ok(vec![
            ("172.17.0.0/16".parse()?, 16),
            ("172.18.0.0/15".parse()?, 16),
            ("172.20.0.0/14".parse()?, 16),
            ("172.24.0.0/13".parse()?, 16),
            ("192.168.0.0/16".parse()?, 20),
        ]);
    };
    let mut base = None;
    let mut size = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<Subnet>()?),
            Some(("size", v)) => size = Some(v.parse::<u8>()?),
            None => base = Some(part.parse::<Subnet>()?),
            _ => anyhow::bail!("invalid --default-address-pool {s:?}"),
        }
    }
    let base = base.ok_or_else(|| anyhow::anyhow!("--default-address-pool {s:?}: no base"))?;
    let size = size.unwrap_or(24);
    anyhow::ensure!(
        size >= base.prefix && size <= 30,
        "--default-address-pool {s:?}: bad size"
    );
    Ok(vec![(base, size)])
}

// ---- the container lifecycle's hooks ----------------------------------------------------

/// At create: join the network of `NetworkMode` and those of `NetworkingConfig`.
pub fn join_for_create(
    d: &crate::state::Daemon,
    id: &str,
    name: &str,
    hc: &berth_api::models::HostConfig,
    nc: Option<&berth_api::models::NetworkingConfig>,
) -> ApiResult<()> {
    let Some(nets) = &d.networks else {
        return Ok(());
    };
    let mode = hc.network_mode.clone().unwrap_or_else(|| "bridge".into());
    if let Some(target) = mode.strip_prefix("container:") {
        // Docker checks this at start; checking it at create too spares `run --rm` a
        // container whose start can only fail.
        let t = d.find(target)?.get();
        if !t.state.status.is_running() {
            return Err(ApiError::conflict(format!(
                "cannot join network of a non running container: {}",
                t.id
            )));
        }
        return Ok(());
    }
    let endpoints = nc
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let mut wanted: Vec<(String, Option<&berth_api::models::EndpointSettings>)> =
        vec![(mode.clone(), endpoints.get(&mode))];
    for (k, v) in &endpoints {
        if k == "default" {
            wanted[0].1 = Some(v);
        } else if *k != mode {
            wanted.push((k.clone(), Some(v)));
        }
    }
    let mut joined: Vec<String> = Vec::new();
    for (net, es) in wanted {
        let aliases = es.and_then(|e| e.aliases.clone()).unwrap_or_default();
        let ip = es
            .and_then(|e| e.ipam_config.as_ref())
            .and_then(|c| c.ipv4_address.clone());
        if let Err(e) = nets.join(id, name, &net, aliases, ip.as_deref()) {
            for j in &joined {
                let _ = nets.leave(id, j);
            }
            return Err(e);
        }
        joined.push(net);
    }
    Ok(())
}

/// Whether a start gives the container a namespace the daemon made (`Networks::take_sandbox`):
/// every mode but the host's and another container's, when berth manages networks.
pub fn wants_sandbox(d: &crate::state::Daemon, rec: &crate::container::ContainerRecord) -> bool {
    let mode = rec.host_config.network_mode.as_deref().unwrap_or("bridge");
    d.networks.is_some() && mode != "host" && !mode.starts_with("container:")
}

/// At start, while the shim starts: create the endpoints in the container's network
/// namespace (`netns`, made by the daemon) and add the addresses to its /etc/hosts. Done
/// before the container's process runs.
pub async fn setup(
    d: &crate::state::Shared,
    rec: &crate::container::ContainerRecord,
    netns: Option<std::fs::File>,
) -> ApiResult<()> {
    let Some(nets) = d.networks.clone() else {
        return Ok(());
    };
    let mode = rec.host_config.network_mode.as_deref().unwrap_or("bridge");
    let dir = d.paths.container_dir(&rec.id);
    let hosts_path = dir.join("hosts");
    if let Some(gw) = nets.default_gateway() {
        resolve_host_gateway(&hosts_path, gw)?;
    }
    if let Some(target) = mode.strip_prefix("container:") {
        // As Docker: the joined container's /etc/hosts and resolv.conf describe this one too.
        let from = d.paths.container_dir(&d.find(target)?.id);
        for f in ["hosts", "resolv.conf"] {
            if let Ok(data) = std::fs::read(from.join(f)) {
                // In place: the file is bind-mounted into the container.
                std::fs::write(dir.join(f), data)?;
            }
        }
        return Ok(());
    }
    if matches!(mode, "host" | "none") {
        return Ok(());
    }
    let Some(netns) = netns else {
        return Err(ApiError::internal("no network namespace to plumb"));
    };
    let id = rec.id.clone();
    let hostname = crate::lifecycle::hostname_of(rec);
    let custom_dns = rec.host_config.dns.as_ref().is_some_and(|v| !v.is_empty());
    let wanted = wanted_ports(rec)?;
    tokio::task::spawn_blocking(move || -> ApiResult<()> {
        let t0 = std::time::Instant::now();
        let (mut lines, primary) = nets.connect_all(&id, &hostname, &netns)?;
        tracing::debug!("endpoints of {} plumbed in {:?}", &id[..12], t0.elapsed());
        if let Err(e) = nets.publish(&id, wanted) {
            nets.release(&id);
            return Err(e);
        }
        if let Some((gw, dns)) = primary {
            // The host, from inside, as Docker Desktop and `--add-host …:host-gateway` name it.
            lines.push(format!("{gw}\thost.docker.internal"));
            if dns && !custom_dns {
                let resolv = dir.join("resolv.conf");
                let old = std::fs::read_to_string(&resolv).unwrap_or_default();
                let mut new = format!("nameserver {gw}\n");
                for l in old
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("nameserver"))
                {
                    new.push_str(l);
                    new.push('\n');
                }
                new.push_str("options ndots:0\n");
                std::fs::write(&resolv, new)?;
            }
        }
        if !lines.is_empty() {
            use std::io::Write;
            // In place: the file is bind-mounted into the container.
            let mut f = std::fs::OpenOptions::new().append(true).open(&hosts_path)?;
            let mut s = String::new();
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
            f.write_all(s.as_bytes())?;
        }
        Ok(())
    })
    .await?
}

/// `--add-host NAME:host-gateway`: the value names the default bridge's gateway (the host),
/// as Docker's does.
fn resolve_host_gateway(hosts: &std::path::Path, gw: Ipv4Addr) -> ApiResult<()> {
    let Ok(text) = std::fs::read_to_string(hosts) else {
        return Ok(());
    };
    if !text.lines().any(|l| l.starts_with("host-gateway\t")) {
        return Ok(());
    }
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        match l.strip_prefix("host-gateway\t") {
            Some(names) => out.push_str(&format!("{gw}\t{names}\n")),
            None => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    std::fs::write(hosts, out)?;
    Ok(())
}

/// Delete an endpoint's veth pair through its host end (by index where known, so a restart
/// that re-created the same name is not hit).
fn remove_host_link(ep: &Endpoint) {
    let r = if ep.host_index > 0 {
        link::delete_index(ep.host_index)
    } else {
        link::detach(&ep.host_if)
    };
    if let Err(e) = r {
        tracing::warn!("removing {}: {e}", ep.host_if);
    }
}

/// `--network container:<name|id>`: the network namespace of that container, which must run.
pub fn joined_netns(
    d: &crate::state::Daemon,
    rec: &crate::container::ContainerRecord,
) -> ApiResult<Option<PathBuf>> {
    let Some(target) = rec
        .host_config
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("container:"))
    else {
        return Ok(None);
    };
    let t = d.find(target)?.get();
    if !t.state.status.is_running() || t.state.pid <= 0 {
        return Err(ApiError::conflict(format!(
            "cannot join network of a non running container: {}",
            t.id
        )));
    }
    Ok(Some(PathBuf::from(format!("/proc/{}/ns/net", t.state.pid))))
}

/// At exit: remove the endpoints, release the addresses.
pub async fn teardown(d: &crate::state::Daemon, id: &str) {
    if let Some(nets) = d.networks.clone() {
        let id = id.to_string();
        let _ = tokio::task::spawn_blocking(move || nets.release(&id)).await;
    }
}

/// At remove: leave every network.
pub async fn forget(d: &crate::state::Daemon, id: &str) {
    if let Some(nets) = d.networks.clone() {
        let id = id.to_string();
        let _ = tokio::task::spawn_blocking(move || nets.leave_all(&id)).await;
    }
}

/// A name on network `n`: a container's name, alias or short id; host.docker.internal.
fn resolve(n: &NetworkRecord, name: &str) -> Option<Ipv4Addr> {
    let name = name.trim_end_matches('.');
    if name == "host.docker.internal" {
        return n.gateway;
    }
    n.members.iter().find_map(|(id, m)| {
        let ep = m.endpoint.as_ref()?;
        let hit = m.name.eq_ignore_ascii_case(name)
            || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            || (name.len() == 12 && id.starts_with(name));
        hit.then_some(ep.ip)
    })
}

fn port_free(proto: &str, ip: Ipv4Addr, port: u16) -> bool {
    let addr = std::net::SocketAddr::from((ip, port));
    if proto == "udp" {
        std::net::UdpSocket::bind(addr).is_ok()
    } else {
        std::net::TcpListener::bind(addr).is_ok()
    }
}

/// A free port of the host's ephemeral range, as the kernel picks it.
fn free_port(proto: &str, ip: Ipv4Addr) -> ApiResult<u16> {
    let addr = std::net::SocketAddr::from((ip, 0));
    let port = if proto == "udp" {
        std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind(addr).and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| ApiError::internal(format!("no free host port: {e}")))
}

/// The ports to publish for a container: HostConfig.PortBindings, plus with -P every
/// exposed port on a random host port.
pub fn wanted_ports(rec: &crate::container::ContainerRecord) -> ApiResult<Vec<Published>> {
    let mut out = Vec::new();
    let parse_key = |k: &str| -> ApiResult<(u16, String)> {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port: u16 = port
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid port specification: {k:?}")))?;
        if !matches!(proto, "tcp" | "udp") {
            return Err(ApiError::bad_request(format!("invalid proto: {proto}")));
        }
        Ok((port, proto.to_string()))
    };
    let bindings = rec.host_config.port_bindings.clone().unwrap_or_default();
    for (k, list) in &bindings {
        let (cport, proto) = parse_key(k)?;
        for b in list.clone().unwrap_or_default() {
            let host_ip = match b.host_ip.as_deref().filter(|s| !s.is_empty()) {
                Some(ip) => Some(
                    ip.parse::<Ipv4Addr>()
                        .map_err(|_| ApiError::bad_request(format!("invalid IP address: {ip}")))?,
                ),
                None => None,
            };
            let host_port = match b.host_port.as_deref().filter(|s| !s.is_empty()) {
                Some(p) => p.parse::<u16>().map_err(|_| {
                    ApiError::bad_request(format!("invalid port specification: {p:?}"))
                })?,
                None => 0,
            };
            out.push(Published {
                proto: proto.clone(),
                host_ip,
                host_port,
                container_port: cport,
            });
        }
    }
    if rec.host_config.publish_all_ports == Some(true) {
        for k in rec.config.exposed_ports.clone().unwrap_or_default().keys() {
            if bindings.contains_key(k) {
                continue;
            }
            let (cport, proto) = parse_key(k)?;
            out.push(Published {
                proto,
                host_ip: None,
                host_port: 0,
                container_port: cport,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn routes_are_read_from_the_kernels_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            cni0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            br-1\t0000620A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r: Vec<String> = parse_routes(table).iter().map(|s| s.to_string()).collect();
        assert_eq!(r, ["10.88.0.0/16", "10.98.0.0/24"]);
    }
}
