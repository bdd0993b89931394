//! The same bundle run by berth's builtin runtime and by runc behaves the same (needs root and
//! /usr/sbin/runc; skipped otherwise).

mod common;
use common::{assert_no_cgroups_left, is_root, Bundle};

// Mount options are compared too, except for the /sys/fs/cgroup tmpfs itself: Docker asks for
// it read-only, berth honours that, runc 1.1 leaves the tmpfs writable (its submounts are ro).
const PROBE: &str = "echo pid=$$; hostname; id; grep -E '^(Cap(Eff|Bnd|Prm)|NoNewPrivs|Seccomp):' /proc/self/status; \
    awk '{ if ($2 == \"/sys/fs/cgroup\") print $2, $3; else print $2, $3, $4 }' /proc/self/mounts | sort";

#[test]
fn berth_and_runc_agree() {
    if !is_root() || !std::path::Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipped: needs root and runc");
        return;
    }
    for (name, user) in [("cmp-root", ""), ("cmp-user", "1000")] {
        let b = Bundle::new(name, &["sh", "-c", PROBE], |o| o.user = user.into());
        let (bc, berth, berr) = b.run_berth();
        let (rc, runc, rerr) = b.run_runc();
        assert_eq!((bc, rc), (0, 0), "berth: {berr}\nrunc: {rerr}");
        assert_eq!(berth, runc, "berth and runc differ for user {user:?}");
        assert_no_cgroups_left(name);
    }
}
