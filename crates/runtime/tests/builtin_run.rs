//! The builtin runtime runs busybox bundles (needs root; skipped otherwise).

mod common;
use common::{assert_no_cgroups_left, is_root, Bundle};

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

#[test]
fn echo_and_exit_zero() {
    need_root!();
    let b = Bundle::new("echo", &["echo", "hello"], |_| {});
    let (code, out, err) = b.run_berth();
    assert_eq!((code, out.as_str()), (0, "hello\n"), "stderr: {err}");
    assert_no_cgroups_left("echo");
}
