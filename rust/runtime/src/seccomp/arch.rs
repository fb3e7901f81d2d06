//! Architectures: profile names (SCMP_ARCH_*), the AUDIT_ARCH_* values the
//! kernel puts in seccomp_data.arch, and system call tables.

use super::{table_aarch64, table_arm, table_riscv64, table_x32, table_x86, table_x86_64};

/// x32 system calls are x86_64 ones (same AUDIT_ARCH) with this bit set in nr.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The architectures we have system call tables for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
}

/// Every architecture name a profile may use: the ones with a syscall table first
/// ([`TABLED`] of them), then those the OCI runtime spec names that we accept but
/// have no table for. None of the latter can run on a host we support (see
/// [`Arch::native`]), so a profile listing them compiles as if they were not listed.
pub static NAMES: &[&str] = &[
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// How many of [`NAMES`] have a syscall table.
const TABLED: usize = 6;

/// The accepted names without a table.
fn untabled() -> &'static [&'static str] {
    &NAMES[TABLED..]
}

/// The result of looking up an architecture name.
pub enum Parsed {
    Tabled(Arch),
    /// Valid, but no table: see [`NAMES`].
    Untabled,
    Unknown,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::X86_64,
        Arch::X86,
        Arch::X32,
        Arch::Aarch64,
        Arch::Arm,
        Arch::Riscv64,
    ];

    pub fn parse(name: &str) -> Parsed {
        if let Some(a) = Arch::ALL.into_iter().find(|a| a.name() == name) {
            Parsed::Tabled(a)
        } else if untabled().contains(&name) {
            Parsed::Untabled
        } else {
            Parsed::Unknown
        }
    }

    /// The architecture this program runs on, if we can filter it.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            // An x32 build is x86_64 with 32-bit pointers.
            if cfg!(target_pointer_width = "32") {
                Some(Arch::X32)
            } else {
                Some(Arch::X86_64)
            }
        } else if cfg!(target_arch = "x86") {
            Some(Arch::X86)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "arm") {
            Some(Arch::Arm)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Arm => "SCMP_ARCH_ARM",
            Arch::Riscv64 => "SCMP_ARCH_RISCV64",
        }
    }

    /// AUDIT_ARCH_* (linux/audit.h): ELF machine | 64BIT 0x80000000 | LE 0x40000000.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => 0xc000_003e,
            Arch::X86 => 0x4000_0003,
            Arch::Aarch64 => 0xc000_00b7,
            Arch::Arm => 0x4000_0028,
            Arch::Riscv64 => 0xc000_00f3,
        }
    }

    /// Whether only the low 32 bits of arguments are meaningful. As libseccomp
    /// does, conditions on these ABIs compare the low word with the value
    /// truncated to 32 bits.
    pub fn args_32bit(self) -> bool {
        matches!(self, Arch::X86 | Arch::X32 | Arch::Arm)
    }

    /// The system call numbers this ABI uses, within its AUDIT_ARCH: x86_64
    /// and x32 share one and split it on [`X32_SYSCALL_BIT`]. End exclusive.
    pub fn nr_range(self) -> (u64, u64) {
        match self {
            Arch::X86_64 => (0, u64::from(X32_SYSCALL_BIT)),
            Arch::X32 => (u64::from(X32_SYSCALL_BIT), 1 << 32),
            _ => (0, 1 << 32),
        }
    }

    fn table(self) -> &'static [Entry] {
        match self {
            Arch::X86_64 => &X86_64_TABLE,
            Arch::X86 => &X86_TABLE,
            Arch::X32 => &X32_TABLE,
            Arch::Aarch64 => &AARCH64_TABLE,
            Arch::Arm => &ARM_TABLE,
            Arch::Riscv64 => &RISCV64_TABLE,
        }
    }

    /// The number of system call `name` on this ABI (as seen in
    /// seccomp_data.nr), or None if it has no such call.
    pub fn syscall(self, name: &str) -> Option<u32> {
        let table = self.table();
        let i = table
            .binary_search_by(|e| e.name().cmp(name.as_bytes()))
            .ok()?;
        let nr = table[i].nr;
        Some(if self == Arch::X32 {
            nr | X32_SYSCALL_BIT
        } else {
            nr
        })
    }

    #[cfg(test)]
    pub(super) fn table_for_test(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => table_x86_64::X86_64,
            Arch::X86 => table_x86::X86,
            Arch::X32 => table_x32::X32,
            Arch::Aarch64 => table_aarch64::AARCH64,
            Arch::Arm => table_arm::ARM,
            Arch::Riscv64 => table_riscv64::RISCV64,
        }
    }
}

/// The longest system call name (sched_rr_get_interval_time64).
const NAME_MAX: usize = 28;

/// One system call of a table: its name, NUL-padded, and its number. The tables
/// (table_*.rs) are written as `(&str, u32)` pairs, but a static of those needs one
/// relocation per entry in a position-independent executable: 2,300 entries, some
/// 55 KiB written at every start of the runtime, and kept as private memory for the
/// whole life of skiff-monitor, which links the runtime. These are plain read-only
/// data, packed from the pairs at compile time.
#[derive(Clone, Copy)]
struct Entry {
    name: [u8; NAME_MAX],
    nr: u32,
}

impl Entry {
    fn name(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
        &self.name[..len]
    }
}

const fn pack<const N: usize>(src: &[(&str, u32)]) -> [Entry; N] {
    let mut out = [Entry {
        name: [0; NAME_MAX],
        nr: 0,
    }; N];
    let mut i = 0;
    while i < N {
        let name = src[i].0.as_bytes();
        assert!(name.len() <= NAME_MAX, "a system call name is too long");
        let mut j = 0;
        while j < name.len() {
            out[i].name[j] = name[j];
            j += 1;
        }
        out[i].nr = src[i].1;
        i += 1;
    }
    out
}

static X86_64_TABLE: [Entry; table_x86_64::X86_64.len()] = pack(table_x86_64::X86_64);
static X86_TABLE: [Entry; table_x86::X86.len()] = pack(table_x86::X86);
static X32_TABLE: [Entry; table_x32::X32.len()] = pack(table_x32::X32);
static AARCH64_TABLE: [Entry; table_aarch64::AARCH64.len()] = pack(table_aarch64::AARCH64);
static ARM_TABLE: [Entry; table_arm::ARM.len()] = pack(table_arm::ARM);
static RISCV64_TABLE: [Entry; table_riscv64::RISCV64.len()] = pack(table_riscv64::RISCV64);
