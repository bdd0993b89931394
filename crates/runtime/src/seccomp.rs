//! Docker's default seccomp profile (an allowlist; everything else fails with EPERM), expressed as
//! OCI `linux.seccomp` JSON for the spec, and the loader that turns a spec's `LinuxSeccomp` into a
//! kernel filter with libseccomp.

use crate::error::{Result, RuntimeError};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use serde_json::{json, Value};

/// Syscalls Docker allows unconditionally (moby `profiles/seccomp/default.json`, first rule).
const ALWAYS_ALLOWED: &str = "\
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime \
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep \
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create \
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 \
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir \
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork \
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex \
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 \
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority \
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid \
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch \
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents \
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register \
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 \
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 \
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall \
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend \
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap \
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal \
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 \
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink \
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename \
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo \
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity \
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler \
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam \
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send \
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 \
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid \
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area \
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 \
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync \
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime \
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 \
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat \
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
process_vm_readv process_vm_writev ptrace arch_prctl modify_ldt";

/// Syscalls allowed only when the container holds a capability (x86_64 subset of Docker's rules).
const BY_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr \
         move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog \
         umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// The namespace flags a process without CAP_SYS_ADMIN may not pass to clone(2).
const CLONE_NAMESPACE_MASK: u64 = 0x7E02_0000;

/// Docker's default profile for a container holding `caps`, as OCI `linux.seccomp` JSON.
pub fn docker_default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut rules = vec![json!({"names": names(ALWAYS_ALLOWED), "action": "SCMP_ACT_ALLOW"})];
    rules.push(json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40 /* AF_VSOCK */, "op": "SCMP_CMP_NE"}]}));
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]}));
    }
    for (cap, calls) in BY_CAPABILITY {
        if has(cap) {
            rules.push(json!({"names": names(calls), "action": "SCMP_ACT_ALLOW"}));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        // clone3's flags live in memory seccomp cannot inspect: make libc fall back to clone.
        rules.push(
            json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
        );
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

fn names(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(
    op: LinuxSeccompOperator,
    index: u32,
    value: u64,
    value_two: Option<u64>,
) -> ScmpArgCompare {
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // MASKED_EQ: (arg & value) == value_two
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    };
    let datum = if matches!(op, ScmpCompareOp::MaskedEqual(_)) {
        value_two.unwrap_or(0)
    } else {
        value
    };
    ScmpArgCompare::new(index, op, datum)
}

fn arch(a: &oci_spec::runtime::Arch) -> Option<ScmpArch> {
    use oci_spec::runtime::Arch;
    Some(match a {
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchArm => ScmpArch::Arm,
        _ => return None,
    })
}

/// Compile a spec's seccomp section into a filter (not yet loaded).
pub fn compile(profile: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let err = |e: libseccomp::error::SeccompError| RuntimeError::Seccomp(e.to_string());
    let mut filter = ScmpFilterContext::new(action(
        profile.default_action(),
        profile.default_errno_ret(),
    ))
    .map_err(err)?;
    // A binary tree by syscall number instead of a linear chain: every syscall the container
    // makes walks O(log n) instructions, and the kernel's per-filter action cache (built at load
    // by emulating the filter for each syscall number) is built that much faster.
    filter.set_ctl_optimize(2).map_err(err)?;
    for a in profile.architectures().iter().flatten().filter_map(arch) {
        if a != ScmpArch::native() {
            filter.add_arch(a).map_err(err)?;
        }
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| compare(a.op(), a.index() as u32, a.value(), a.value_two()))
            .collect();
        for name in rule.names() {
            // Names of other architectures (chown32, ...) do not resolve here: skip them, as runc does.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if conds.is_empty() {
                filter.add_rule(act, call)
            } else {
                filter.add_rule_conditional(act, call, &conds)
            };
            // A rule equal to the default action is rejected by libseccomp; that is harmless.
            if let Err(e) = added {
                if act != action(profile.default_action(), profile.default_errno_ret()) {
                    return Err(err(e));
                }
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles() {
        let caps: Vec<String> = crate::capabilities::DOCKER_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let profile: LinuxSeccomp = serde_json::from_value(docker_default_profile(&caps)).unwrap();
        assert_eq!(profile.default_errno_ret(), Some(1));
        compile(&profile).unwrap();
    }

    /// Run a classic BPF seccomp program over one syscall, as the kernel would: returns the
    /// action word. Covers the instructions libseccomp emits.
    fn eval(prog: &Program, nr: u32, args: [u64; 6]) -> u32 {
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let word = |off: u32| {
            let o = off as usize;
            u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
        };
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let i = prog.0[pc];
            pc += 1;
            let src = |k: u32| if i.code & 0x08 != 0 { x } else { k };
            match i.code & 0x07 {
                0x00 => match i.code {
                    0x20 => a = word(i.k),         // ld [k]
                    0x00 => a = i.k,               // ld #k
                    0x60 => a = mem[i.k as usize], // ld M[k]
                    c => panic!("ld {c:#x}"),
                },
                0x01 => match i.code {
                    0x01 => x = i.k,
                    0x61 => x = mem[i.k as usize],
                    c => panic!("ldx {c:#x}"),
                },
                0x02 => mem[i.k as usize] = a,
                0x03 => mem[i.k as usize] = x,
                0x04 => {
                    let v = src(i.k);
                    a = match i.code & 0xf0 {
                        0x00 => a.wrapping_add(v),
                        0x10 => a.wrapping_sub(v),
                        0x50 => a & v,
                        0x40 => a | v,
                        0x60 => a << v,
                        0x70 => a >> v,
                        c => panic!("alu {c:#x}"),
                    }
                }
                0x05 => {
                    let v = src(i.k);
                    let taken = match i.code & 0xf0 {
                        0x00 => {
                            pc += i.k as usize;
                            continue;
                        }
                        0x10 => a == v,
                        0x20 => a > v,
                        0x30 => a >= v,
                        0x40 => a & v != 0,
                        c => panic!("jmp {c:#x}"),
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                0x06 => return if i.code & 0x18 == 0x10 { a } else { i.k },
                0x07 => {
                    if i.code == 0x07 {
                        x = a
                    } else {
                        a = x
                    }
                }
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn compiled_default_profile_allows_and_blocks_like_docker() {
        let caps: Vec<String> = crate::capabilities::DOCKER_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let profile: LinuxSeccomp = serde_json::from_value(docker_default_profile(&caps)).unwrap();
        let prog = Program::from_bytes(&export_bpf(&compile(&profile).unwrap()).unwrap()).unwrap();
        const ALLOW: u32 = 0x7fff_0000;
        const EPERM: u32 = 0x0005_0000 | 1;
        let none = [0u64; 6];
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_exit_group,
        ] {
            assert_eq!(eval(&prog, nr as u32, none), ALLOW, "syscall {nr}");
        }
        for nr in [
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_mount,
            libc::SYS_reboot,
        ] {
            assert_eq!(eval(&prog, nr as u32, none), EPERM, "syscall {nr}");
        }
        // Argument filters: clone without namespace flags is allowed, with CLONE_NEWUSER not;
        // socket(AF_VSOCK) is refused, socket(AF_INET) allowed.
        let clone = libc::SYS_clone as u32;
        assert_eq!(
            eval(&prog, clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            eval(&prog, clone, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            EPERM
        );
        let socket = libc::SYS_socket as u32;
        assert_eq!(
            eval(&prog, socket, [libc::AF_INET as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            eval(&prog, socket, [libc::AF_VSOCK as u64, 0, 0, 0, 0, 0]),
            EPERM
        );
    }

    #[test]
    fn sys_admin_unlocks_mount() {
        let with = docker_default_profile(&["CAP_SYS_ADMIN".into()]).to_string();
        let without = docker_default_profile(&[]).to_string();
        assert!(with.contains("\"mount\"") && !without.contains("\"mount\""));
    }
}

/// A compiled filter: classic BPF instructions, ready for seccomp(2).
#[derive(Debug, Clone)]
pub struct Program(Vec<libc::sock_filter>);

/// Where compiled filters are cached, keyed by a hash of the profile: libseccomp needs ~20 ms
/// to compile Docker's profile for three architectures; loading cached BPF takes microseconds.
pub const CACHE_DIR: &str = "/run/berth/seccomp-cache";

/// The BPF program for `profile`, from the cache or freshly compiled (and then cached).
pub fn program(profile: &LinuxSeccomp) -> Result<Program> {
    use std::hash::{Hash, Hasher};
    let json = serde_json::to_vec(profile).map_err(|e| RuntimeError::Seccomp(e.to_string()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    // Bump when `compile` changes what it emits for the same profile.
    const COMPILER_VERSION: u32 = 2;
    COMPILER_VERSION.hash(&mut h);
    let cached =
        std::path::Path::new(CACHE_DIR).join(format!("{:016x}-{}.bpf", h.finish(), json.len()));
    if let Some(p) = std::fs::read(&cached)
        .ok()
        .and_then(|b| Program::from_bytes(&b))
    {
        return Ok(p);
    }
    let bytes = export_bpf(&compile(profile)?)?;
    let program = Program::from_bytes(&bytes)
        .ok_or_else(|| RuntimeError::Seccomp("libseccomp exported a malformed program".into()))?;
    // Best effort: a read-only /run only costs the next container the compile time.
    let _ = store(&cached, &bytes);
    Ok(program)
}

/// libseccomp 2.5 exports to an fd only: go through a memfd.
fn export_bpf(filter: &ScmpFilterContext) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let fd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| RuntimeError::syscall("memfd_create", e))?;
    filter
        .export_bpf(&fd)
        .map_err(|e| RuntimeError::Seccomp(e.to_string()))?;
    let mut f = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    f.rewind()?;
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn store(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

impl Program {
    fn from_bytes(b: &[u8]) -> Option<Program> {
        if b.is_empty() || !b.len().is_multiple_of(8) || b.len() / 8 > u16::MAX as usize {
            return None;
        }
        Some(Program(
            b.chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        ))
    }

    /// Install the filter on the calling thread. Without no_new_privs this needs CAP_SYS_ADMIN;
    /// unlike libseccomp's default, it does not set no_new_privs (Docker does not either).
    pub fn load(&self) -> Result<()> {
        let prog = libc::sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at self.0, a live array of exactly `len` instructions; the kernel
        // copies it and does not keep the pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret == -1 {
            return Err(RuntimeError::Seccomp(format!(
                "load filter: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}
