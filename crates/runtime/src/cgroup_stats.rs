//! Resource usage of a container's cgroup, for `docker stats`: CPU time, memory, pids and
//! block I/O, from the v1 controller files or the cgroup2 ones, whichever the host has.

use crate::cgroups::Cgroup;
use std::collections::BTreeMap;
use std::path::Path;

/// Nanoseconds per USER_HZ tick (cpuacct.stat counts ticks; USER_HZ is 100 on Linux).
const NS_PER_TICK: u64 = 10_000_000;

/// One block-I/O counter of one device, as Docker reports it (`op` is "read", "write", …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

fn entry(major: u64, minor: u64, op: &str, value: u64) -> BlkioEntry {
    BlkioEntry {
        major,
        minor,
        op: op.to_string(),
        value,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub cpu_percpu_ns: Vec<u64>,
    pub throttled_periods: u64,
    pub throttled_time_ns: u64,
    pub periods: u64,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    /// None when unlimited.
    pub memory_limit: Option<u64>,
    pub memory_failcnt: u64,
    pub memory_stat: BTreeMap<String, u64>,
    pub pids_current: u64,
    /// None when unlimited.
    pub pids_limit: Option<u64>,
    pub io_service_bytes: Vec<BlkioEntry>,
    pub io_serviced: Vec<BlkioEntry>,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A v1 limit file: the kernel's "unlimited" is a huge page-aligned number.
fn v1_limit(v: Option<u64>) -> Option<u64> {
    v.filter(|&l| l < (1u64 << 62))
}

/// v1 blkio "8:0 Read 123" lines (the "Total" lines dropped).
fn v1_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (maj, min) = f.next()?.split_once(':')?;
            let op = f.next()?.to_ascii_lowercase();
            let value = f.next()?.parse().ok()?;
            Some(entry(maj.parse().ok()?, min.parse().ok()?, &op, value))
        })
        .collect()
}

/// v2 io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 …" lines.
fn v2_io(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => bytes.push(entry(maj, min, "read", v)),
                "wbytes" => bytes.push(entry(maj, min, "write", v)),
                "rios" => ios.push(entry(maj, min, "read", v)),
                "wios" => ios.push(entry(maj, min, "write", v)),
                _ => {}
            }
        }
    }
    (bytes, ios)
}

impl Cgroup {
    /// What the container has used so far. Files that are missing (a controller not mounted)
    /// leave their fields at zero.
    pub fn stats(&self) -> CgroupStats {
        let mut s = CgroupStats::default();
        let v1 = |ctrl: &str| self.layout.find(&self.path, |h| h.has(ctrl));
        let v2 = self
            .layout
            .find(&self.path, |h| h.v2)
            .filter(|d| d.join("cpu.stat").exists() || d.join("memory.current").exists());

        if let Some(d) = v1("cpuacct") {
            s.cpu_total_ns = read_u64(&d, "cpuacct.usage").unwrap_or(0);
            s.cpu_percpu_ns = read(&d, "cpuacct.usage_percpu")
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let st = key_values(&read(&d, "cpuacct.stat").unwrap_or_default());
            s.cpu_user_ns = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
            s.cpu_system_ns = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
        } else if let Some(d) = &v2 {
            let st = key_values(&read(d, "cpu.stat").unwrap_or_default());
            s.cpu_total_ns = st.get("usage_usec").copied().unwrap_or(0) * 1000;
            s.cpu_user_ns = st.get("user_usec").copied().unwrap_or(0) * 1000;
            s.cpu_system_ns = st.get("system_usec").copied().unwrap_or(0) * 1000;
        }
        if let Some(d) = v1("cpu") {
            let st = key_values(&read(&d, "cpu.stat").unwrap_or_default());
            s.periods = st.get("nr_periods").copied().unwrap_or(0);
            s.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            s.throttled_time_ns = st.get("throttled_time").copied().unwrap_or(0);
        } else if let Some(d) = &v2 {
            let st = key_values(&read(d, "cpu.stat").unwrap_or_default());
            s.periods = st.get("nr_periods").copied().unwrap_or(0);
            s.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            s.throttled_time_ns = st.get("throttled_usec").copied().unwrap_or(0) * 1000;
        }

        if let Some(d) = v1("memory") {
            s.memory_usage = read_u64(&d, "memory.usage_in_bytes").unwrap_or(0);
            s.memory_max_usage = read_u64(&d, "memory.max_usage_in_bytes").unwrap_or(0);
            s.memory_limit = v1_limit(read_u64(&d, "memory.limit_in_bytes"));
            s.memory_failcnt = read_u64(&d, "memory.failcnt").unwrap_or(0);
            s.memory_stat = key_values(&read(&d, "memory.stat").unwrap_or_default());
        } else if let Some(d) = &v2 {
            s.memory_usage = read_u64(d, "memory.current").unwrap_or(0);
            s.memory_max_usage = read_u64(d, "memory.peak").unwrap_or(0);
            s.memory_limit = read_u64(d, "memory.max");
            s.memory_stat = key_values(&read(d, "memory.stat").unwrap_or_default());
        }

        let pids_dir = v1("pids").or_else(|| v2.clone());
        if let Some(d) = pids_dir {
            s.pids_current = read_u64(&d, "pids.current").unwrap_or(0);
            s.pids_limit = read_u64(&d, "pids.max");
        }

        if let Some(d) = v1("blkio") {
            s.io_service_bytes = v1_blkio(
                &read(&d, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default(),
            );
            s.io_serviced =
                v1_blkio(&read(&d, "blkio.throttle.io_serviced_recursive").unwrap_or_default());
        } else if let Some(d) = &v2 {
            (s.io_service_bytes, s.io_serviced) = v2_io(&read(d, "io.stat").unwrap_or_default());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_controller_files() {
        let kv = key_values("cache 4096\nrss 8192\ntotal_inactive_file 100\nbogus\n");
        assert_eq!(kv.get("rss"), Some(&8192));
        assert_eq!(kv.len(), 3);
        assert_eq!(v1_limit(Some(9223372036854771712)), None);
        assert_eq!(v1_limit(Some(64 << 20)), Some(64 << 20));
        let b = v1_blkio("8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n");
        assert_eq!(
            b,
            vec![
                entry(8, 0, "read", 4096),
                entry(8, 0, "write", 512),
                entry(8, 0, "total", 4608)
            ]
        );
        let (bytes, ios) = v2_io("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(
            bytes,
            vec![entry(254, 0, "read", 10), entry(254, 0, "write", 20)]
        );
        assert_eq!(
            ios,
            vec![entry(254, 0, "read", 1), entry(254, 0, "write", 2)]
        );
    }
}
