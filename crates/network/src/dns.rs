//! A small DNS responder for one network: A records of the network's containers (names,
//! aliases, short ids) answered locally; every other question forwarded to the host's resolvers.
//! One OS thread per network, bound to the network's gateway address, port 53.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Resolves a name (lower case, without the trailing dot) to an address of the network.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Ipv4Addr> + Send + Sync>;

/// A running responder; dropping it stops the thread within half a second.
pub struct Responder {
    stop: Arc<AtomicBool>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Bind `addr:53` and answer there until the returned handle is dropped.
pub fn serve(addr: Ipv4Addr, lookup: Lookup) -> std::io::Result<Responder> {
    let sock = UdpSocket::bind(SocketAddr::from((addr, 53)))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let upstreams = host_resolvers();
    std::thread::Builder::new()
        .name(format!("dns-{addr}"))
        .spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let q = &buf[..n];
                match answer(q, &lookup) {
                    Some(reply) => {
                        let _ = sock.send_to(&reply, peer);
                    }
                    None => {
                        let Ok(reply_sock) = sock.try_clone() else {
                            continue;
                        };
                        let q = q.to_vec();
                        let ups = upstreams.clone();
                        std::thread::spawn(move || {
                            let reply = forward(&q, &ups).unwrap_or_else(|| servfail(&q));
                            let _ = reply_sock.send_to(&reply, peer);
                        });
                    }
                }
            }
        })?;
    Ok(Responder { stop })
}

/// The host's nameservers, loopback ones included (the responder runs on the host).
fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn forward(q: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .ok()?;
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.send_to(q, up).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// Parse the question: (name in lower case, qtype, end offset of the question).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn header(q: &[u8], rcode: u8, answers: u16) -> Vec<u8> {
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&q[0..2]);
    // QR, opcode from the query, AA, RD copied, RA.
    r.push(0x84 | (q[2] & 0x79));
    r.push(0x80 | rcode);
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&answers.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r
}

/// A local answer, or None to forward.
pub fn answer(q: &[u8], lookup: &Lookup) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(q)?;
    let ip = lookup(&name)?;
    let mut r;
    if qtype == 1 {
        r = header(q, 0, 1);
        r.extend_from_slice(&q[12..end]);
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip.octets());
    } else {
        // The name exists, without records of that type.
        r = header(q, 0, 0);
        r.extend_from_slice(&q[12..end]);
    }
    Some(r)
}

fn servfail(q: &[u8]) -> Vec<u8> {
    if q.len() < 12 {
        return Vec::new();
    }
    let mut r = header(q, 2, 0);
    r[4..6].copy_from_slice(&q[4..6]);
    r.extend_from_slice(&q[12..]);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn answers_known_names_and_defers_others() {
        let lookup: Lookup = Arc::new(|n: &str| (n == "web").then_some(Ipv4Addr::new(10, 0, 0, 2)));
        let r = answer(&query("WEB", 1), &lookup).unwrap();
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        let r = answer(&query("web", 28), &lookup).unwrap();
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert!(answer(&query("example.org", 1), &lookup).is_none());
    }
}
