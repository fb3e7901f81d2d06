//! Tests: system call tables, compilation checked by running the programs in
//! a small BPF interpreter, the cache, and loading a filter for real.

use super::arch::{Arch, X32_SYSCALL_BIT};
use super::bpf::*;
use super::*;

const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;
const AUDIT_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARM: u32 = 0x4000_0028;

const ALLOW: u32 = SECCOMP_RET_ALLOW;
const KILL_PROCESS: u32 = SECCOMP_RET_KILL_PROCESS;
const fn errno(e: u32) -> u32 {
    SECCOMP_RET_ERRNO | e
}
const EPERM: u32 = errno(1);

// ---------------------------------------------------------------- interpreter

/// Runs `prog` on a seccomp_data, the way the kernel would, for the
/// instructions we emit. Panics on anything else or on a jump out of bounds.
fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    data[8..16].copy_from_slice(&0x7fff_1234_5678u64.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        let cond = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                let k = i.k as usize;
                assert!(k % 4 == 0 && k + 4 <= 64, "bad load {k}");
                a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= i.k,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += cond(a == i.k),
            c if c == BPF_JMP | BPF_JGT | BPF_K => pc += cond(a > i.k),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc += cond(a >= i.k),
            c if c == BPF_JMP | BPF_JSET | BPF_K => pc += cond(a & i.k != 0),
            c if c == BPF_RET | BPF_K => return i.k,
            c => panic!("unexpected opcode {c:#x} at {}", pc - 1),
        }
    }
}

fn profile(json: &str) -> Seccomp {
    serde_json::from_str(json).expect("test profile parses")
}

fn compile_x86_64(json: &str) -> Program {
    let p = compile_for(&profile(json), Arch::X86_64).expect("compiles");
    validate(&p.filter).expect("valid program");
    p
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.syscall(name)
        .unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

fn config_err(json: &str) -> String {
    match compile_for(&profile(json), Arch::X86_64) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

// --------------------------------------------------------------------- tables

#[test]
fn seccomp_tables_sorted_and_unique() {
    for arch in Arch::ALL {
        let t = arch.table_for_test();
        assert!(t.len() > 300, "{arch:?}: {} calls", t.len());
        for w in t.windows(2) {
            assert!(w[0].0 < w[1].0, "{arch:?}: {} before {}", w[0].0, w[1].0);
        }
    }
}

#[test]
fn seccomp_syscall_numbers() {
    let check = |arch: Arch, expect: &[(&str, u32)]| {
        for &(name, n) in expect {
            assert_eq!(arch.syscall(name), Some(n), "{name} on {arch:?}");
        }
    };
    check(
        Arch::X86_64,
        &[
            ("read", 0),
            ("write", 1),
            ("open", 2),
            ("mount", 165),
            ("umount2", 166),
            ("ptrace", 101),
            ("reboot", 169),
            ("kexec_load", 246),
            ("unshare", 272),
            ("setns", 308),
            ("bpf", 321),
            ("clone3", 435),
            ("openat2", 437),
            ("mkdir", 83),
            ("chmod", 90),
            ("personality", 135),
            ("keyctl", 250),
            ("add_key", 248),
            ("process_vm_readv", 310),
            ("userfaultfd", 323),
            ("clone", 56),
            ("getppid", 110),
            ("set_mempolicy_home_node", 450),
            ("cachestat", 451),
            ("fchmodat2", 452),
            ("statmount", 457),
            ("listmount", 458),
            ("lsm_get_self_attr", 459),
            ("lsm_list_modules", 461),
            ("mseal", 462),
            ("uretprobe", 335),
        ],
    );
    check(
        Arch::X86,
        &[
            ("exit", 1),
            ("fork", 2),
            ("read", 3),
            ("mount", 21),
            ("ptrace", 26),
            ("socketcall", 102),
            ("clone", 120),
            ("unshare", 310),
            ("setns", 346),
            ("personality", 136),
            ("mmap2", 192),
            ("_llseek", 140),
            ("socket", 359),
            ("statx", 383),
            ("clone3", 435),
            ("futex_time64", 422),
            ("mseal", 462),
        ],
    );
    check(
        Arch::Aarch64,
        &[
            ("io_setup", 0),
            ("mount", 40),
            ("umount2", 39),
            ("unshare", 97),
            ("ptrace", 117),
            ("reboot", 142),
            ("clone", 220),
            ("execve", 221),
            ("bpf", 280),
            ("clone3", 435),
            ("openat", 56),
            ("read", 63),
            ("personality", 92),
            ("getppid", 173),
            ("renameat", 38),
            ("fstat", 80),
            ("mseal", 462),
        ],
    );
    check(
        Arch::Arm,
        &[
            ("restart_syscall", 0),
            ("read", 3),
            ("mount", 21),
            ("ptrace", 26),
            ("clone", 120),
            ("personality", 136),
            ("socket", 281),
            ("unshare", 337),
            ("clone3", 435),
            ("cacheflush", 0x000f_0002),
            ("set_tls", 0x000f_0005),
        ],
    );
    check(
        Arch::X32,
        &[
            ("read", X32_SYSCALL_BIT),
            ("mount", X32_SYSCALL_BIT | 165),
            ("rt_sigaction", X32_SYSCALL_BIT | 512),
            ("execve", X32_SYSCALL_BIT | 520),
            ("pwritev2", X32_SYSCALL_BIT | 547),
            ("clone3", X32_SYSCALL_BIT | 435),
        ],
    );
    check(Arch::Riscv64, &[("read", 63), ("riscv_flush_icache", 259)]);
    // Unknown names, and names another ABI has.
    assert_eq!(Arch::X86_64.syscall("socketcall"), None);
    assert_eq!(Arch::Aarch64.syscall("open"), None);
    assert_eq!(Arch::X32.syscall("uretprobe"), None);
    assert_eq!(Arch::X86_64.syscall("no_such_call"), None);
}

// ------------------------------------------------------------ small profiles

#[test]
fn seccomp_small_profile() {
    let p = compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mount","umount2","no_such_call"],"action":"SCMP_ACT_ERRNO"},
                        {"names":["reboot"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                        {"names":["kexec_load"],"action":"SCMP_ACT_KILL"},
                        {"names":["bpf"],"action":"SCMP_ACT_KILL_PROCESS"},
                        {"names":["ptrace"],"action":"SCMP_ACT_TRAP"},
                        {"names":["acct"],"action":"SCMP_ACT_TRACE","errnoRet":77},
                        {"names":["keyctl"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    let x = |name| run(&p.filter, AUDIT_X86_64, nr(Arch::X86_64, name), [0; 6]);
    assert_eq!(x("read"), ALLOW);
    assert_eq!(x("mount"), EPERM);
    assert_eq!(x("umount2"), EPERM);
    assert_eq!(x("reboot"), errno(38));
    assert_eq!(x("kexec_load"), SECCOMP_RET_KILL_THREAD);
    assert_eq!(x("bpf"), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(x("ptrace"), SECCOMP_RET_TRAP);
    assert_eq!(x("acct"), SECCOMP_RET_TRACE | 77);
    assert_eq!(x("keyctl"), SECCOMP_RET_LOG);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 1000, [0; 6]), ALLOW);
    // Empty architectures: native only; others and x32 are bad arches.
    assert_eq!(run(&p.filter, AUDIT_I386, 3, [0; 6]), KILL_PROCESS);
    assert_eq!(run(&p.filter, AUDIT_AARCH64, 63, [0; 6]), KILL_PROCESS);
    assert_eq!(
        run(&p.filter, AUDIT_X86_64, X32_SYSCALL_BIT, [0; 6]),
        KILL_PROCESS
    );
    assert_eq!(p.flags, 0);
}

#[test]
fn seccomp_default_errno_and_flags() {
    let p = compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(p.flags, 1 | 2 | 4);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 0, [0; 6]), ALLOW);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 1, [0; 6]), ALLOW);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 2, [0; 6]), errno(38));
    let p = compile_x86_64(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 2, [0; 6]), EPERM);
}

#[test]
fn seccomp_rules_in_profile_order() {
    let p = compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS",
            "syscalls":[
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":5,
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":10,"op":"SCMP_CMP_LT"}]},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":6,
               "args":[{"index":0,"value":5,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":7},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW"},
              {"names":["uname"],"action":"SCMP_ACT_KILL_PROCESS",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
              {"names":["uname"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let pers = |v| run(&p.filter, AUDIT_X86_64, 135, [v, 0, 0, 0, 0, 0]);
    assert_eq!(pers(1), errno(5));
    assert_eq!(pers(5), ALLOW); // the LT rule comes first
    assert_eq!(pers(9), ALLOW);
    assert_eq!(pers(10), errno(7)); // unconditional rule
    assert_eq!(pers(1 << 40), errno(7));
    // A rule with the default action before others is kept.
    let uname = |v| run(&p.filter, AUDIT_X86_64, 63, [v, 0, 0, 0, 0, 0]);
    assert_eq!(uname(1), KILL_PROCESS);
    assert_eq!(uname(2), ALLOW);
}

#[test]
fn seccomp_conditions_are_anded() {
    let p = compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":9,
              "args":[{"index":0,"value":3,"op":"SCMP_CMP_EQ"},
                      {"index":1,"value":4294967295,"valueTwo":21505,"op":"SCMP_CMP_MASKED_EQ"},
                      {"index":2,"value":100,"op":"SCMP_CMP_GE"},
                      {"index":2,"value":200,"op":"SCMP_CMP_LE"},
                      {"index":3,"value":0,"op":"SCMP_CMP_NE"},
                      {"index":4,"value":1,"op":"SCMP_CMP_GT"},
                      {"index":5,"value":1,"op":"SCMP_CMP_LT"}]}]}"#,
    );
    let ioctl = |args| run(&p.filter, AUDIT_X86_64, 16, args);
    let good = [3, 21505, 150, 1, 2, 0];
    assert_eq!(ioctl(good), errno(9));
    for i in 0..6 {
        let mut bad = good;
        bad[i] = match i {
            0 => 4,
            1 => 21506 | (1 << 33), // the mask's high word is 0
            2 => 201,
            3 => 0,
            4 => 1,
            _ => 1,
        };
        assert_eq!(ioctl(bad), ALLOW, "argument {i} = {}", bad[i]);
    }
    let mut high = good;
    high[1] = 21505 | (7 << 40); // masked away
    assert_eq!(ioctl(high), errno(9));
}

/// Every operator on edge values, against a reference, on a 64-bit ABI and
/// (low word only) on 32-bit ones.
#[test]
fn seccomp_comparisons_exhaustive() {
    const EDGES: [u64; 14] = [
        0,
        1,
        2,
        0x7fff_ffff,
        0xffff_fffe,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x1_ffff_ffff,
        0x2_0000_0000,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_fffe,
        u64::MAX,
        0x1234_5678_9abc_def0,
    ];
    let ops = ["NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"];
    let holds = |op: &str, arg: u64, v: u64, v2: u64| match op {
        "NE" => arg != v,
        "LT" => arg < v,
        "LE" => arg <= v,
        "EQ" => arg == v,
        "GE" => arg >= v,
        "GT" => arg > v,
        _ => arg & v == v2,
    };
    let masks_and_expected = [
        (0xffff_ffff_ffff_ffff, 0x1_0000_0000),
        (0xffff_ffff_0000_0000, 0),
        (0x0000_0000_ffff_ffff, 0xfffe),
        (0x0000_00f0_0000_00f0, 0x0000_0010_0000_0020),
        (0x0000_0000_7e02_0000, 0),
    ];
    for arch in [Arch::X86_64, Arch::X86] {
        let audit = arch.audit();
        let nr = nr(arch, "getpid");
        for op in ops {
            let pairs: Vec<(u64, u64)> = if op == "MASKED_EQ" {
                masks_and_expected.to_vec()
            } else {
                EDGES.iter().map(|&v| (v, 0)).collect()
            };
            for (v, v2) in pairs {
                let json = format!(
                    r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["{}"],
                        "syscalls":[{{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":7,
                          "args":[{{"index":2,"value":{v},"valueTwo":{v2},"op":"SCMP_CMP_{op}"}}]}}]}}"#,
                    arch.name()
                );
                let p = compile_for(&profile(&json), arch).unwrap();
                validate(&p.filter).unwrap();
                let mut args: Vec<u64> = EDGES.to_vec();
                args.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v2, v2 | v]);
                for arg in args {
                    let expect = if arch.args_32bit() {
                        holds(op, arg & 0xffff_ffff, v & 0xffff_ffff, v2 & 0xffff_ffff)
                    } else {
                        holds(op, arg, v, v2)
                    };
                    let got = run(&p.filter, audit, nr, [0, 0, arg, 0, 0, 0]);
                    assert_eq!(
                        got == errno(7),
                        expect,
                        "{arch:?}: {arg:#x} {op} {v:#x} (valueTwo {v2:#x})"
                    );
                }
            }
        }
    }
}

#[test]
fn seccomp_invalid_profiles() {
    let m = config_err(r#"{"defaultAction":"SCMP_ACT_FOO"}"#);
    assert!(m.contains("SCMP_ACT_FOO"), "{m}");
    let m = config_err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
    assert!(m.contains("notification"), "{m}");
    let m = config_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mount"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(m.contains("not supported") && m.contains("mount"), "{m}");
    let m = config_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#);
    assert!(m.contains("SCMP_ARCH_VAX"), "{m}");
    let m =
        config_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_BOGUS"]}"#);
    assert!(m.contains("SECCOMP_FILTER_FLAG_BOGUS"), "{m}");
    let m = config_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(m.contains("index 6"), "{m}");
    let m = config_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_SIMILAR"}]}]}"#,
    );
    assert!(m.contains("SCMP_CMP_SIMILAR"), "{m}");
    let m = config_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
    );
    assert!(m.contains("70000"), "{m}");
    // Known but untabled architectures and unknown names are fine.
    compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PPC64LE","SCMP_ARCH_S390X"],
            "syscalls":[{"names":["no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
}

/// Programs much longer than an 8-bit jump: every call has a conditional
/// block, and conditions sit far from the search tree's root.
#[test]
fn seccomp_long_programs() {
    for arch in [Arch::X86_64, Arch::X86] {
        let names: Vec<&str> = arch
            .table_for_test()
            .iter()
            .map(|(n, _)| *n)
            .take(200)
            .collect();
        let rules: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    r#"{{"names":["{n}"],"action":"SCMP_ACT_ERRNO","errnoRet":{e},
                        "args":[{{"index":0,"value":{i},"op":"SCMP_CMP_EQ"}},
                                {{"index":1,"value":{i},"op":"SCMP_CMP_GT"}}]}},
                       {{"names":["{n}"],"action":"SCMP_ACT_TRACE","errnoRet":{e},
                        "args":[{{"index":2,"value":4096,"valueTwo":4096,"op":"SCMP_CMP_MASKED_EQ"}}]}}"#,
                    e = i + 1
                )
            })
            .collect();
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_LOG","architectures":["{}"],"syscalls":[{}]}}"#,
            arch.name(),
            rules.join(",")
        );
        let p = compile_for(&profile(&json), arch).unwrap();
        validate(&p.filter).unwrap();
        assert!(p.filter.len() > 1500, "{} instructions", p.filter.len());
        let far = p
            .filter
            .iter()
            .filter(|i| i.code == BPF_JMP | BPF_JA)
            .count();
        assert!(far > 0, "expected trampolines");
        for (i, n) in names.iter().enumerate() {
            let i = i as u64;
            let e = i as u32 + 1;
            let nr = nr(arch, n);
            let r = |args| run(&p.filter, arch.audit(), nr, args);
            assert_eq!(r([i, i + 1, 0, 0, 0, 0]), errno(e), "{n}");
            assert_eq!(r([i, i, 4096, 0, 0, 0]), SECCOMP_RET_TRACE | e, "{n}");
            assert_eq!(r([i + 1, i + 1, 0, 0, 0, 0]), SECCOMP_RET_LOG, "{n}");
        }
    }
}

#[test]
fn seccomp_too_long() {
    let rules: Vec<String> = (0..1200)
        .map(|i| {
            format!(
                r#"{{"names":["ioctl"],"action":"SCMP_ACT_ERRNO",
                    "args":[{{"index":1,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let m = config_err(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    ));
    assert!(m.contains("4096"), "{m}");
}

// ------------------------------------------------------ a Docker-like profile

/// Moby's default profile as the OCI config it produces on amd64 (trimmed).
const DOCKER_LIKE: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
      "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
      "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
      "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
      "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
      "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
      "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
      "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
      "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
      "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
      "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
      "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
      "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
      "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
      "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
      "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
      "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
      "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
      "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
      "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
      "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
      "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
      "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
      "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
      "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
      "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
      "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
      "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
      "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
      "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
      "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
      "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
      "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
      "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
      "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
      "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
      "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
      "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
      "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
      "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
      "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
      "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
      "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
      "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
      "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
      "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
      "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
      "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
      "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
      "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
      "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
      "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
      "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
      "waitpid", "write", "writev"],
     "action": "SCMP_ACT_ALLOW"},
    {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 131072, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 131080, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 4294967295, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
  ]
}"#;

#[test]
fn seccomp_docker_like_profile() {
    let mut json: serde_json::Value = serde_json::from_str(DOCKER_LIKE).unwrap();
    let names = json["syscalls"][0]["names"].as_array().unwrap().len();
    assert!(names > 300, "{names} names");

    let p = compile_x86_64(DOCKER_LIKE);
    println!(
        "Docker-like profile ({names} names), x86_64 + x86 + x32: {} instructions",
        p.filter.len()
    );
    let x = |name, args| run(&p.filter, AUDIT_X86_64, nr(Arch::X86_64, name), args);
    for name in [
        "read",
        "write",
        "openat",
        "getpid",
        "ptrace",
        "arch_prctl",
        "futex_waitv",
        "mseal",
    ] {
        let expect = if name == "mseal" { EPERM } else { ALLOW };
        assert_eq!(x(name, [0; 6]), expect, "{name}");
    }
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "kexec_load",
        "reboot",
        "keyctl",
    ] {
        assert_eq!(x(name, [0; 6]), EPERM, "{name}");
    }
    assert_eq!(x("clone3", [0; 6]), errno(38));
    let pers = |v| x("personality", [v, 0, 0, 0, 0, 0]);
    assert_eq!(pers(0), ALLOW);
    assert_eq!(pers(8), ALLOW);
    assert_eq!(pers(0x20008), ALLOW);
    assert_eq!(pers(0xffff_ffff), ALLOW);
    assert_eq!(pers(1), EPERM);
    assert_eq!(pers(0x1_0000_0000), EPERM); // the high word matters
    assert_eq!(pers(0xffff_ffff_ffff_ffff), EPERM);
    // clone: allowed unless a namespace flag (mask 0x7e020000) is set.
    let clone = |flags| x("clone", [flags, 0, 0, 0, 0, 0]);
    assert_eq!(clone(0x003d_0f00), ALLOW); // pthread_create
    assert_eq!(clone(0x0120_0011), ALLOW); // fork
    assert_eq!(clone(0x1000_0000 | 0x11), EPERM); // CLONE_NEWUSER
    assert_eq!(clone(0x0002_0000), EPERM); // CLONE_NEWNS
    assert_eq!(clone(0x1_0000_0011), ALLOW); // high word is not in the mask
                                             // socket: anything but AF_VSOCK.
    assert_eq!(x("socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x("socket", [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&p.filter, AUDIT_X86_64, 999, [0; 6]), EPERM);
    assert_eq!(run(&p.filter, AUDIT_X86_64, u32::MAX, [0; 6]), EPERM);

    // i386: its own numbers; 32-bit arguments.
    let i = |name, args| run(&p.filter, AUDIT_I386, nr(Arch::X86, name), args);
    assert_eq!(i("read", [0; 6]), ALLOW);
    assert_eq!(i("socketcall", [0; 6]), ALLOW);
    assert_eq!(i("mmap2", [0; 6]), ALLOW);
    assert_eq!(i("mount", [0; 6]), EPERM);
    assert_eq!(i("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(i("personality", [0x5_ffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(i("personality", [2, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(i("clone", [0x1000_0000, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(i("clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(run(&p.filter, AUDIT_I386, 21, [0; 6]), EPERM); // mount
    assert_eq!(run(&p.filter, AUDIT_I386, 0, [0; 6]), ALLOW); // restart_syscall

    // x32: x86_64 numbers with the x32 bit, plus its own 512 and up.
    let x32 = |name| run(&p.filter, AUDIT_X86_64, nr(Arch::X32, name), [0; 6]);
    assert_eq!(x32("read"), ALLOW);
    assert_eq!(x32("rt_sigaction"), ALLOW);
    assert_eq!(x32("execve"), ALLOW);
    assert_eq!(x32("mount"), EPERM);
    assert_eq!(
        run(&p.filter, AUDIT_X86_64, X32_SYSCALL_BIT | 13, [0; 6]),
        EPERM,
        "the x86_64-only rt_sigaction number is not an x32 call"
    );

    // Foreign architectures are killed.
    assert_eq!(run(&p.filter, AUDIT_AARCH64, 63, [0; 6]), KILL_PROCESS);
    assert_eq!(run(&p.filter, AUDIT_ARM, 3, [0; 6]), KILL_PROCESS);

    // Without x32 in the list, x32 calls are a bad arch.
    json["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    let p2 = compile_for(&serde_json::from_value(json.clone()).unwrap(), Arch::X86_64).unwrap();
    println!("  x86_64 + x86: {} instructions", p2.filter.len());
    assert_eq!(
        run(&p2.filter, AUDIT_X86_64, X32_SYSCALL_BIT, [0; 6]),
        KILL_PROCESS
    );
    assert_eq!(run(&p2.filter, AUDIT_X86_64, 0, [0; 6]), ALLOW);
    assert_eq!(run(&p2.filter, AUDIT_I386, 3, [0; 6]), ALLOW);

    json["architectures"] = serde_json::json!([]);
    let p3 = compile_for(&serde_json::from_value(json.clone()).unwrap(), Arch::X86_64).unwrap();
    println!("  x86_64 only: {} instructions", p3.filter.len());
    assert_eq!(run(&p3.filter, AUDIT_I386, 3, [0; 6]), KILL_PROCESS);

    // The same profile on arm64 (Moby lists ARM and AARCH64 there).
    json["architectures"] = serde_json::json!(["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]);
    let pa = compile_for(&serde_json::from_value(json).unwrap(), Arch::Aarch64).unwrap();
    validate(&pa.filter).unwrap();
    println!("  aarch64 + arm: {} instructions", pa.filter.len());
    let a = |name, args| run(&pa.filter, AUDIT_AARCH64, nr(Arch::Aarch64, name), args);
    assert_eq!(a("read", [0; 6]), ALLOW);
    assert_eq!(a("mount", [0; 6]), EPERM);
    assert_eq!(a("clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(a("clone", [0x1000_0011, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(a("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(a("personality", [3, 0, 0, 0, 0, 0]), EPERM);
    let arm = |name| run(&pa.filter, AUDIT_ARM, nr(Arch::Arm, name), [0; 6]);
    assert_eq!(arm("read"), ALLOW);
    assert_eq!(arm("mount"), EPERM);
    assert_eq!(run(&pa.filter, AUDIT_X86_64, 0, [0; 6]), KILL_PROCESS);
}

// --------------------------------------------------------------------- cache

#[test]
fn seccomp_cache() {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("skiff-seccomp-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("a/b");
    let prof = profile(DOCKER_LIKE);

    let p1 = cache::compile_cached_for(&prof, &dir, Arch::X86_64).unwrap();
    assert_eq!(p1, compile_for(&prof, Arch::X86_64).unwrap());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert_eq!(file.extension().unwrap(), "bpf");
    let good = std::fs::read(file).unwrap();
    assert_eq!(good.len(), 20 + 8 * p1.filter.len() + 32);
    assert_eq!(cache::decode(&good).unwrap(), p1);

    // A hit reads the file: make it say something else (validly) to see.
    let other = Program {
        filter: vec![stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)],
        flags: 2,
    };
    std::fs::write(file, cache::encode(&other)).unwrap();
    assert_eq!(
        cache::compile_cached_for(&prof, &dir, Arch::X86_64).unwrap(),
        other
    );

    // Short, corrupt or empty files are ignored and rewritten.
    for bad in [&good[..good.len() - 1], &good[..10], &[][..]] {
        std::fs::write(file, bad).unwrap();
        assert_eq!(
            cache::compile_cached_for(&prof, &dir, Arch::X86_64).unwrap(),
            p1
        );
        assert_eq!(std::fs::read(file).unwrap(), good);
    }
    let mut flipped = good.clone();
    flipped[100] ^= 1;
    std::fs::write(file, &flipped).unwrap();
    assert_eq!(
        cache::compile_cached_for(&prof, &dir, Arch::X86_64).unwrap(),
        p1
    );
    assert_eq!(std::fs::read(file).unwrap(), good);

    // Another profile, another file; no temporary files left behind.
    let small =
        profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#);
    let ps = cache::compile_cached_for(&small, &dir, Arch::X86_64).unwrap();
    assert_eq!(ps.flags, 2);
    assert_eq!(
        cache::compile_cached_for(&small, &dir, Arch::X86_64).unwrap(),
        ps
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);

    // Invalid profiles fail the same way, and are not cached.
    let bad = profile(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#);
    assert!(matches!(
        cache::compile_cached_for(&bad, &dir, Arch::X86_64),
        Err(Error::Config(_))
    ));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    std::fs::remove_dir_all(&base).unwrap();
}

// ---------------------------------------------------------------------- load

/// Forks; the child sets no_new_privs, loads `program`, runs `check` and
/// exits with its result. Returns the child's exit status.
fn in_child(program: &Program, check: fn() -> i32) -> i32 {
    // SAFETY: the child only makes system calls (load_raw does not allocate)
    // and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(100);
            }
            if load_raw(program).is_err() {
                libc::_exit(101);
            }
            libc::_exit(check());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

fn last_errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

#[test]
fn seccomp_load_in_child() {
    let p = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":42}]}"#,
    ))
    .unwrap();
    let status = in_child(&p, || {
        // SAFETY: a plain system call.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        if r == -1 && last_errno() == 42 {
            0
        } else {
            1
        }
    });
    assert_eq!(status, 0);
}

#[test]
fn seccomp_load_docker_like_in_child() {
    let mut prof = profile(DOCKER_LIKE);
    prof.flags = vec![
        "SECCOMP_FILTER_FLAG_TSYNC".into(),
        "SECCOMP_FILTER_FLAG_LOG".into(),
    ];
    let p = compile(&prof).unwrap();
    assert_eq!(p.flags, 3);
    let status = in_child(&p, || {
        // SAFETY: plain system calls, with arguments they accept.
        unsafe {
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 1;
            }
            // unshare(0) succeeds unfiltered.
            if libc::syscall(libc::SYS_unshare, 0) != -1 || last_errno() != libc::EPERM {
                return 2;
            }
            // personality(0xffffffff) queries; personality(1) is denied.
            if libc::syscall(libc::SYS_personality, 0xffff_ffff_u64) == -1 {
                return 3;
            }
            if libc::syscall(libc::SYS_personality, 1) != -1 || last_errno() != libc::EPERM {
                return 4;
            }
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || last_errno() != libc::ENOSYS {
                return 5;
            }
        }
        0
    });
    assert_eq!(status, 0, "check {status} failed");
}

#[test]
fn seccomp_names() {
    assert!(action_names().contains(&"SCMP_ACT_KILL_PROCESS"));
    assert!(!action_names().contains(&"SCMP_ACT_NOTIFY"));
    assert!(arch_names().contains(&"SCMP_ARCH_X32"));
    assert!(flag_names().contains(&"SECCOMP_FILTER_FLAG_SPEC_ALLOW"));
    assert_eq!(operator_names().len(), 7);
    for name in action_names() {
        let json = format!(r#"{{"defaultAction":"{name}"}}"#);
        compile_x86_64(&json);
    }
    for name in arch_names() {
        let json = format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["{name}"]}}"#);
        compile_x86_64(&json);
    }
    for name in flag_names() {
        let json = format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":["{name}"]}}"#);
        compile_x86_64(&json);
    }
}

#[test]
fn seccomp_asm_far_jumps() {
    let mut asm = Asm::default();
    let far_true = asm.ret(SECCOMP_RET_ALLOW);
    for i in 0..300 {
        asm.ret(i);
    }
    let far_false = asm.ret(SECCOMP_RET_LOG);
    for i in 0..300 {
        asm.ret(i);
    }
    let near = asm.ret(SECCOMP_RET_TRAP);
    let t = asm.jump(BPF_JEQ, 5, far_true, far_false);
    let u = asm.jump(BPF_JGT, 2, near, far_true);
    asm.jump(BPF_JGE, 5, t, u);
    asm.load(OFF_NR);
    let prog = asm.finish();
    validate(&prog).unwrap();
    let r = |nr| run(&prog, AUDIT_X86_64, nr, [0; 6]);
    assert_eq!(r(5), SECCOMP_RET_ALLOW);
    assert_eq!(r(6), SECCOMP_RET_LOG);
    assert_eq!(r(3), SECCOMP_RET_TRAP);
    assert_eq!(r(1), SECCOMP_RET_ALLOW);
    assert!(prog.len() > 600);
}

#[test]
#[ignore = "prints the Docker-like program"]
fn seccomp_dump_docker_like() {
    println!("{:?}", compile_x86_64(DOCKER_LIKE));
}

/// Sections whose whole decision is one `ret` (shared with other sections).
#[test]
fn seccomp_trivial_sections() {
    for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS"] {
        let p = compile_x86_64(&format!(
            r#"{{"defaultAction":"{default}",
                "architectures":["SCMP_ARCH_X86","SCMP_ARCH_ARM","SCMP_ARCH_AARCH64","SCMP_ARCH_RISCV64"]}}"#
        ));
        let expect = if default == "SCMP_ACT_ALLOW" {
            ALLOW
        } else {
            KILL_PROCESS
        };
        for audit in [
            AUDIT_X86_64,
            AUDIT_I386,
            AUDIT_ARM,
            AUDIT_AARCH64,
            0xc000_00f3,
        ] {
            assert_eq!(run(&p.filter, audit, 3, [0; 6]), expect, "{audit:#x}");
        }
        assert_eq!(
            run(&p.filter, AUDIT_X86_64, X32_SYSCALL_BIT, [0; 6]),
            KILL_PROCESS
        );
        assert_eq!(run(&p.filter, 0x8000_0016, 3, [0; 6]), KILL_PROCESS);
    }
    // Some sections with rules, some without.
    let p = compile_x86_64(
        r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32","SCMP_ARCH_AARCH64","SCMP_ARCH_ARM"],
            "syscalls":[{"names":["socketcall","mmap2"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(run(&p.filter, AUDIT_I386, 102, [0; 6]), ALLOW);
    assert_eq!(run(&p.filter, AUDIT_ARM, 192, [0; 6]), ALLOW);
    for audit in [AUDIT_X86_64, AUDIT_AARCH64] {
        assert_eq!(run(&p.filter, audit, 102, [0; 6]), EPERM);
        assert_eq!(run(&p.filter, audit, 192, [0; 6]), EPERM);
    }
    assert_eq!(run(&p.filter, AUDIT_X86_64, X32_SYSCALL_BIT, [0; 6]), EPERM);
}

/// Random profiles against a direct evaluation of the profile's meaning.
#[test]
fn seccomp_random_profiles_match_reference() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const NAMES: [&str; 12] = [
        "read",
        "write",
        "open",
        "mmap",
        "mmap2",
        "socketcall",
        "socket",
        "clone",
        "personality",
        "rt_sigaction",
        "ioctl",
        "no_such_call",
    ];
    const ACTIONS: [&str; 5] = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_KILL_PROCESS",
    ];
    const OPS: [&str; 7] = ["NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"];
    const VALUES: [u64; 8] = [
        0,
        1,
        7,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0007,
        u64::MAX,
        0x80,
    ];
    const ARCHES: [Arch; 4] = [Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm];
    let pick = |r: u64, n: usize| (r % n as u64) as usize;

    for _ in 0..300 {
        let mut p = Seccomp {
            default_action: ACTIONS[pick(rand(), 5)].into(),
            default_errno_ret: Some(rand() as u32 % 100),
            ..Default::default()
        };
        for a in ARCHES {
            if rand() % 2 == 0 {
                p.architectures.push(a.name().into());
            }
        }
        for _ in 0..pick(rand(), 12) {
            let names = (0..1 + pick(rand(), 3))
                .map(|_| NAMES[pick(rand(), NAMES.len())].to_string())
                .collect();
            let args = (0..pick(rand(), 4))
                .map(|_| SeccompArg {
                    index: pick(rand(), 6) as u32,
                    value: VALUES[pick(rand(), 8)],
                    value_two: VALUES[pick(rand(), 8)] & 0x1_0000_00ff,
                    op: format!("SCMP_CMP_{}", OPS[pick(rand(), 7)]),
                })
                .collect();
            p.syscalls.push(crate::spec::SyscallRule {
                names,
                action: ACTIONS[pick(rand(), 5)].into(),
                errno_ret: Some(rand() as u32 % 100),
                args,
            });
        }
        let prog = compile_for(&p, Arch::X86_64).unwrap();
        validate(&prog.filter).unwrap();

        let mut present = vec![Arch::X86_64];
        present.extend(
            ARCHES
                .into_iter()
                .filter(|a| p.architectures.iter().any(|n| n == a.name())),
        );
        let act = |name: &str, errno: Option<u32>| action(name, errno, "").unwrap();
        for _ in 0..200 {
            let arch =
                [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm][pick(rand(), 5)];
            let name = NAMES[pick(rand(), NAMES.len())];
            let Some(nr) = arch.syscall(name).or_else(|| arch.syscall("read")) else {
                continue;
            };
            let mut args = [0u64; 6];
            for a in &mut args {
                *a = VALUES[pick(rand(), 8)] ^ (rand() % 3);
            }
            let expect = if !present.contains(&arch) {
                KILL_PROCESS
            } else {
                let narrow = |v: u64| {
                    if arch.args_32bit() {
                        v & 0xffff_ffff
                    } else {
                        v
                    }
                };
                p.syscalls
                    .iter()
                    .filter(|r| r.names.iter().any(|n| arch.syscall(n) == Some(nr)))
                    .find(|r| {
                        r.args.iter().all(|c| {
                            let (x, v, v2) = (
                                narrow(args[c.index as usize]),
                                narrow(c.value),
                                narrow(c.value_two),
                            );
                            match &c.op[9..] {
                                "NE" => x != v,
                                "LT" => x < v,
                                "LE" => x <= v,
                                "EQ" => x == v,
                                "GE" => x >= v,
                                "GT" => x > v,
                                _ => x & v == v2,
                            }
                        })
                    })
                    .map_or(act(&p.default_action, p.default_errno_ret), |r| {
                        act(&r.action, r.errno_ret)
                    })
            };
            let got = run(&prog.filter, arch.audit(), nr, args);
            assert_eq!(got, expect, "{arch:?} {name} {args:x?}\n{p:#?}");
        }
    }
}

// ------------------------------------------------------------ early loading

#[test]
fn seccomp_allows_all_of_needs_an_allowing_default_and_no_rule_on_them() {
    let names = crate::init::AFTER_PARK;
    // Skiff's default: allow, with rules on other calls (mount, clone flags...).
    let deny_list = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount", "keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 131072}]}]}"#;
    assert!(allows_all_of(&profile(deny_list), names));
    // A rule on one of them, whatever its action, makes it a no.
    for action in ["SCMP_ACT_ERRNO", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW"] {
        let p = format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["mount", "sethostname"], "action": "{action}"}}]}}"#
        );
        assert!(!allows_all_of(&profile(&p), names), "{action}");
    }
    // An allow list (Docker's own profile) never.
    let allow_list = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#;
    assert!(!allows_all_of(&profile(allow_list), names));
    let notify = r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}"#;
    assert!(!allows_all_of(&profile(notify), names));
}
