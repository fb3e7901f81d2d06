//! seccomp: compiles an OCI `linux.seccomp` profile to a classic BPF program
//! (no libseccomp), caches compiled programs, and loads them.
//!
//! The program (see `codegen`) checks `seccomp_data.arch` first: a call from
//! an architecture that is neither native nor listed is killed
//! (SECCOMP_RET_KILL_PROCESS), as libseccomp does. Within an architecture a
//! binary search on the system call number reaches either a return or the
//! call's rules, tried in profile order; the first rule whose argument
//! conditions all hold decides, and the default action applies otherwise.
//! Names are resolved per architecture; a name unknown on one is skipped there.

mod arch;
mod bpf;
mod cache;
mod codegen;
mod table_aarch64;
mod table_arm;
mod table_riscv64;
mod table_x32;
mod table_x86;
mod table_x86_64;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::spec::{Seccomp, SeccompArg};

use arch::{Arch, Parsed};
use bpf::*;

pub use cache::compile_cached;

/// A compiled filter, ready for [`load`].
#[derive(Clone)]
pub struct Program {
    pub filter: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits for seccomp(2).
    pub flags: u32,
}

impl PartialEq for Program {
    fn eq(&self, other: &Self) -> bool {
        self.flags == other.flags
            && self.filter.len() == other.filter.len()
            && self
                .filter
                .iter()
                .zip(&other.filter)
                .all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k))
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Program {{ flags: {:#x}, filter: [", self.flags)?;
        for (pc, i) in self.filter.iter().enumerate() {
            writeln!(
                f,
                "  {pc:4}: code {:#06x} jt {:3} jf {:3} k {:#010x}",
                i.code, i.jt, i.jf, i.k
            )?;
        }
        write!(f, "] }}")
    }
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

const OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// SECCOMP_FILTER_FLAG_* (linux/seccomp.h) that a profile may ask for.
const FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
];
const FLAG_NAMES: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/// The actions a profile may use (SCMP_ACT_NOTIFY is not supported).
pub fn action_names() -> &'static [&'static str] {
    ACTIONS
}

/// The architectures a profile may list.
pub fn arch_names() -> &'static [&'static str] {
    arch::NAMES
}

/// The filter flags a profile may ask for.
pub fn flag_names() -> &'static [&'static str] {
    FLAG_NAMES
}

/// The argument comparison operators a profile may use.
pub fn operator_names() -> &'static [&'static str] {
    OPERATORS
}

/// Whether `profile` lets every one of `names` through, whatever its arguments:
/// its default action allows, and no rule names any of them (rules are by name:
/// `names` must hold each architecture's own, `mmap2` beside `mmap`).
/// Conservative: a rule that allows one of them explicitly also answers false.
pub fn allows_all_of(profile: &Seccomp, names: &[&str]) -> bool {
    profile.default_action == "SCMP_ACT_ALLOW"
        && profile.listener_path.is_none()
        && !profile
            .syscalls
            .iter()
            .any(|rule| rule.names.iter().any(|n| names.contains(&n.as_str())))
}

/// Compiles a profile for this host's architecture.
pub fn compile(profile: &Seccomp) -> Result<Program> {
    let native = Arch::native().ok_or_else(|| {
        Error::Config(format!(
            "seccomp is not supported on this architecture ({})",
            std::env::consts::ARCH
        ))
    })?;
    compile_for(profile, native)
}

/// Compiles a profile as if `native` were the host's architecture.
fn compile_for(profile: &Seccomp, native: Arch) -> Result<Program> {
    let (filter, flags) = parse(profile, native)?;
    let insns = codegen::generate(&filter);
    if insns.len() > BPF_MAXINSNS {
        return Err(Error::Config(format!(
            "seccomp profile compiles to {} BPF instructions, more than the kernel's limit of {BPF_MAXINSNS}",
            insns.len()
        )));
    }
    debug_assert_eq!(validate(&insns), Ok(()));
    Ok(Program {
        filter: insns,
        flags,
    })
}

/// Installs `program` on the calling thread (all threads with TSYNC). The
/// caller has set no_new_privs or has CAP_SYS_ADMIN. Allocates only to report
/// an error; see [`load_raw`].
pub fn load(program: &Program) -> Result<()> {
    load_raw(program).map_err(|errno| {
        Error::sys(
            "loading the seccomp filter",
            std::io::Error::from_raw_os_error(errno),
        )
    })
}

/// [`load`] without allocating, for use between fork and execve: the error
/// is an errno (ESRCH if TSYNC could not synchronise another thread).
pub fn load_raw(program: &Program) -> std::result::Result<(), i32> {
    if program.filter.is_empty() || program.filter.len() > BPF_MAXINSNS {
        return Err(libc::EINVAL);
    }
    let prog = libc::sock_fprog {
        len: program.filter.len() as libc::c_ushort,
        filter: program.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `len` valid instructions, which the kernel copies.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::c_ulong::from(program.flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    if ret > 0 {
        // With TSYNC, the id of a thread that could not be synchronised.
        return Err(libc::ESRCH);
    }
    let err = errno();
    if err != libc::ENOSYS || program.flags != 0 {
        return Err(err);
    }
    // Kernels before 3.17 have no seccomp(2).
    // SAFETY: as above.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// An argument comparison (SCMP_CMP_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `arg & value == value_two`.
    MaskedEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// All must hold (none: the rule always applies).
    conds: Vec<Cond>,
    /// SECCOMP_RET_* with data.
    action: u32,
}

/// A profile resolved for the architectures it covers.
struct Filter {
    /// SECCOMP_RET_* with data.
    default: u32,
    /// Each architecture (native first) with its calls' rules in profile order.
    arches: Vec<(Arch, BTreeMap<u32, Vec<Rule>>)>,
}

fn parse(profile: &Seccomp, native: Arch) -> Result<(Filter, u32)> {
    let default = action(
        &profile.default_action,
        profile.default_errno_ret,
        "defaultAction",
    )
    .map_err(Error::Config)?;

    let mut arches = vec![native];
    for name in &profile.architectures {
        match Arch::parse(name) {
            Parsed::Tabled(a) if !arches.contains(&a) => arches.push(a),
            Parsed::Tabled(_) | Parsed::Untabled => {}
            Parsed::Unknown => {
                return Err(Error::Config(format!(
                    "unknown seccomp architecture {name:?}"
                )))
            }
        }
    }

    let mut flags = 0;
    for name in &profile.flags {
        let bit = FLAGS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bit)| *bit)
            .ok_or_else(|| Error::Config(format!("unsupported seccomp flag {name:?}")))?;
        flags |= bit;
    }

    let mut maps: Vec<BTreeMap<u32, Vec<Rule>>> = vec![BTreeMap::new(); arches.len()];
    for (i, sc) in profile.syscalls.iter().enumerate() {
        let invalid = |msg: String| {
            Error::Config(format!("seccomp rule {i} ({}): {msg}", sc.names.join(", ")))
        };
        let rule = Rule {
            conds: sc
                .args
                .iter()
                .map(cond)
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            action: action(&sc.action, sc.errno_ret, "action").map_err(invalid)?,
        };
        for name in &sc.names {
            for (a, map) in arches.iter().zip(&mut maps) {
                if let Some(nr) = a.syscall(name) {
                    map.entry(nr).or_default().push(rule.clone());
                }
            }
        }
    }

    let filter = Filter {
        default,
        arches: arches.into_iter().zip(maps).collect(),
    };
    Ok((filter, flags))
}

/// SCMP_ACT_* to SECCOMP_RET_*; `errno` is the ERRNO / TRACE data (EPERM if absent).
fn action(name: &str, errno: Option<u32>, what: &str) -> Result<u32, String> {
    let data = || match errno.unwrap_or(libc::EPERM as u32) {
        d if d <= SECCOMP_RET_DATA => Ok(d),
        d => Err(format!(
            "errno {d} for {name} is out of range (at most {SECCOMP_RET_DATA})"
        )),
    };
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SECCOMP_RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => SECCOMP_RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => SECCOMP_RET_TRAP,
        "SCMP_ACT_ERRNO" => SECCOMP_RET_ERRNO | data()?,
        "SCMP_ACT_TRACE" => SECCOMP_RET_TRACE | data()?,
        "SCMP_ACT_ALLOW" => SECCOMP_RET_ALLOW,
        "SCMP_ACT_LOG" => SECCOMP_RET_LOG,
        "SCMP_ACT_NOTIFY" => {
            return Err(format!(
                "seccomp {what} SCMP_ACT_NOTIFY is not supported: \
                 this runtime has no seccomp user notification listener"
            ))
        }
        _ => return Err(format!("unknown seccomp {what} {name:?}")),
    })
}

fn cond(arg: &SeccompArg) -> Result<Cond, String> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        op => return Err(format!("unknown seccomp operator {op:?}")),
    };
    if arg.index > 5 {
        return Err(format!(
            "seccomp argument index {} is out of range (0 to 5)",
            arg.index
        ));
    }
    Ok(Cond {
        index: arg.index as u8,
        op,
        value: arg.value,
        value_two: arg.value_two,
    })
}
