//! The shim is exec'd on every container start. Linked as a position-dependent executable,
//! the dynamic loader has no relocations to apply to it: 0.45 ms less CPU per start, 83
//! page faults instead of 146 (as Go builds containerd's shims). The daemon, which parses
//! what API clients send, stays a PIE.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
