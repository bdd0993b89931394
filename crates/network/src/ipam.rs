//! IPv4 subnets and address allocation. Allocations themselves are persisted by the caller
//! (with the network's record); this module decides which address is free.

use crate::{Error, Result};
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: base address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    pub fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(Ipv4Addr::from(other.network()))
            || other.contains(Ipv4Addr::from(self.network()))
    }
    /// The first usable address (Docker's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() + 1)
    }
    /// Split into subnets of `size` bits, in order.
    pub fn split(&self, size: u8) -> impl Iterator<Item = Subnet> + '_ {
        let count: u64 = if size >= self.prefix {
            1u64 << (size - self.prefix)
        } else {
            0
        };
        let step: u64 = 1u64 << (32 - u32::from(size));
        (0..count).map(move |i| Subnet {
            addr: Ipv4Addr::from((u64::from(self.network()) + i * step) as u32),
            prefix: size,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network()), self.prefix)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Subnet {
    type Err = Error;
    /// `a.b.c.d/n`; host bits must be zero, as Docker requires for --subnet.
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = || Error::BadSubnet(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Subnet { addr, prefix })
    }
}

/// Parse `a.b.c.d/n` keeping the host part (for --bip: the gateway address with its prefix).
pub fn parse_cidr_host(s: &str) -> Result<(Ipv4Addr, Subnet)> {
    let sub: Subnet = s.parse()?;
    let host = sub.addr;
    Ok((
        host,
        Subnet {
            addr: Ipv4Addr::from(sub.network()),
            prefix: sub.prefix,
        },
    ))
}

/// Pick the first free address of `range` (or `subnet`) not in `used`, skipping the network and
/// broadcast addresses and the gateway.
pub fn allocate(
    subnet: &Subnet,
    range: Option<&Subnet>,
    gateway: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    let lo = r.network().max(subnet.network() + 1);
    let hi = r.broadcast().min(subnet.broadcast().saturating_sub(1));
    (lo..=hi)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| Error::Exhausted(subnet.to_string()))
}

/// Validate a requested address (`--ip`).
pub fn reserve(
    subnet: &Subnet,
    gateway: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<Ipv4Addr> {
    if !subnet.contains(ip)
        || u32::from(ip) == subnet.network()
        || u32::from(ip) == subnet.broadcast()
    {
        return Err(Error::Invalid(format!(
            "no configured subnet or ip-range contain the IP address {ip}"
        )));
    }
    if ip == gateway || used.contains(&ip) {
        return Err(Error::InUse);
    }
    Ok(ip)
}

/// The first subnet of `size` bits in `pool` that overlaps none of `taken` (and no route of the host).
pub fn next_subnet(pool: &Subnet, size: u8, taken: &[Subnet]) -> Result<Subnet> {
    pool.split(size)
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
        .ok_or_else(|| {
            Error::Invalid("all predefined address pools have been fully subnetted".into())
        })
}

/// Docker's MAC for an address: 02:42 followed by the IPv4 bytes.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let s: Subnet = "172.18.0.0/16".parse().unwrap();
        assert!(s.contains("172.18.3.4".parse().unwrap()));
        assert!(!s.contains("172.19.0.1".parse().unwrap()));
        assert!("172.18.0.0/33".parse::<Subnet>().is_err());
        assert!("nonsense".parse::<Subnet>().is_err());
        assert_eq!(s.to_string(), "172.18.0.0/16");
    }

    #[test]
    fn allocation_skips_gateway_and_used() {
        let s: Subnet = "10.1.0.0/30".parse().unwrap();
        let gw = s.first_host();
        let mut used = HashSet::new();
        let a = allocate(&s, None, gw, &used).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 0, 2));
        used.insert(a);
        assert!(allocate(&s, None, gw, &used).is_err());
        assert!(reserve(&s, gw, &used, a).is_err());
        assert!(reserve(&s, gw, &used, Ipv4Addr::new(10, 2, 0, 2)).is_err());
    }

    #[test]
    fn subnets_from_pool_do_not_overlap() {
        let pool: Subnet = "10.5.0.0/16".parse().unwrap();
        let a = next_subnet(&pool, 24, &[]).unwrap();
        let b = next_subnet(&pool, 24, &[a]).unwrap();
        assert_eq!(a.to_string(), "10.5.0.0/24");
        assert_eq!(b.to_string(), "10.5.1.0/24");
        assert!(!a.overlaps(&b));
    }
}
