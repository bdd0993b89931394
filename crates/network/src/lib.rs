//! berth-network: IPv4 address management, bridge and veth plumbing, berth's own nftables
//! table (masquerade, forwarding, DNAT for published ports), and a per-network DNS responder.
//!
//! It knows nothing of HTTP or containers' records: the daemon composes it.

pub mod dns;
pub mod ipam;
pub mod link;
pub mod nft;

pub use ipam::Subnet;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid subnet {0:?}")]
    BadSubnet(String),
    #[error("invalid address {0:?}")]
    BadAddress(String),
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    Exhausted(String),
    #[error("Address already in use")]
    InUse,
    #[error("{0}")]
    Invalid(String),
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("netlink: {0}")]
    Netlink(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Run a command feeding `input` on stdin; an error carries its stderr.
pub(crate) fn run_with_input(cmd: &str, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: format!("{cmd} {}", args.join(" ")),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
