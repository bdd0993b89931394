//! Write a Docker-default config.json for an existing rootfs (for benchmarks):
//! `make_bundle BUNDLE_DIR [ARGS...]` (the rootfs is BUNDLE_DIR/rootfs).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bundle =
        std::path::PathBuf::from(args.next().ok_or("usage: make_bundle BUNDLE [ARGS...]")?);
    let mut cmd: Vec<String> = args.collect();
    if cmd.is_empty() {
        cmd = vec!["true".into()];
    }
    let opts = berth_runtime::spec::SpecOptions {
        rootfs: bundle.join("rootfs"),
        args: cmd,
        cwd: "/".into(),
        hostname: "bench".into(),
        cgroup_path: "/berth-bench".into(),
        seccomp: true,
        ..Default::default()
    };
    let spec = berth_runtime::spec::build(&opts)?;
    berth_runtime::spec::write_bundle(&bundle, &spec)?;
    Ok(())
}
