//! Classic BPF as seccomp uses it: the kernel ABI's constants, instruction
//! constructors, a backward assembler that resolves 8-bit conditional jumps
//! (inserting `ja` trampolines when a target is too far), and a validator.

use libc::sock_filter;

// Instruction classes, sizes, modes, operations and sources (linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_W: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_AND: u16 = 0x50;
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;
pub const BPF_K: u16 = 0x00;

/// The kernel's limit on a filter's length.
pub const BPF_MAXINSNS: usize = 4096;

// Filter return values (linux/seccomp.h). The low 16 bits carry data.
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
pub const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

// Offsets in struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub const OFF_ARGS: u32 = 16;
pub const SECCOMP_DATA_LEN: u32 = 64;

/// Offsets of the low and high 32-bit words of argument `index`: the u64 is in
/// the host's byte order.
pub fn arg_offsets(index: u8) -> (u32, u32) {
    let base = OFF_ARGS + 8 * u32::from(index);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

pub const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A position in an [`Asm`]: the index of an instruction counted from the
/// program's end, so it stays valid while instructions are prepended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Builds a program from its end to its start. Every jump goes forward, so
/// when a jump is emitted its targets already exist and their distances are
/// known: a conditional jump whose target is more than 255 instructions away
/// goes through a `ja` (32-bit offset) trampoline placed right after it.
#[derive(Default)]
pub struct Asm {
    rev: Vec<sock_filter>,
}

impl Asm {
    /// The offset a jump emitted next would need to reach `target`.
    pub fn distance(&self, target: Label) -> usize {
        self.rev.len() - target.0 - 1
    }

    fn push(&mut self, ins: sock_filter) -> Label {
        self.rev.push(ins);
        Label(self.rev.len() - 1)
    }

    pub fn ret(&mut self, k: u32) -> Label {
        self.push(stmt(BPF_RET | BPF_K, k))
    }

    /// `A = seccomp_data[off]` (32 bits).
    pub fn load(&mut self, off: u32) -> Label {
        self.push(stmt(BPF_LD | BPF_W | BPF_ABS, off))
    }

    /// `A &= k`.
    pub fn and(&mut self, k: u32) -> Label {
        self.push(stmt(BPF_ALU | BPF_AND | BPF_K, k))
    }

    /// Unconditional jump.
    pub fn ja(&mut self, target: Label) -> Label {
        let off = u32::try_from(self.distance(target)).expect("program too long");
        self.push(stmt(BPF_JMP | BPF_JA, off))
    }

    /// Makes the next instruction emitted continue at `target`: nothing to
    /// do if it is the last one emitted, else a `ja`.
    pub fn goto(&mut self, target: Label) -> Label {
        if self.distance(target) == 0 {
            target
        } else {
            self.ja(target)
        }
    }

    /// `if A <op> k goto jt else goto jf`, for op one of BPF_JEQ, BPF_JGT,
    /// BPF_JGE, BPF_JSET.
    pub fn jump(&mut self, op: u16, k: u32, jt: Label, jf: Label) -> Label {
        if jt == jf {
            // Both ways lead to the same place: no test needed.
            return self.goto(jt);
        }
        // Leave room for a second trampoline, which moves jt one further away.
        let jt = if self.distance(jt) > 254 {
            self.ja(jt)
        } else {
            jt
        };
        let jf = if self.distance(jf) > 255 {
            self.ja(jf)
        } else {
            jf
        };
        let (t, f) = (self.distance(jt), self.distance(jf));
        debug_assert!(t <= 255 && f <= 255);
        self.push(jump(BPF_JMP | op | BPF_K, k, t as u8, f as u8))
    }

    /// The program in execution order.
    pub fn finish(mut self) -> Vec<sock_filter> {
        self.rev.reverse();
        self.rev
    }
}

/// Checks what the kernel's verifier checks for the instructions we emit:
/// known opcodes, jumps inside the program, aligned loads inside
/// seccomp_data, and a program that cannot fall off its end.
pub fn validate(prog: &[sock_filter]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(format!("bad program length {}", prog.len()));
    }
    for (pc, ins) in prog.iter().enumerate() {
        let rest = prog.len() - pc - 1;
        match ins.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                if ins.k % 4 != 0 || ins.k >= SECCOMP_DATA_LEN {
                    return Err(format!("instruction {pc}: bad load offset {}", ins.k));
                }
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {}
            c if c == BPF_RET | BPF_K => {}
            c if c == BPF_JMP | BPF_JA => {
                if ins.k as usize >= rest {
                    return Err(format!("instruction {pc}: jump out of the program"));
                }
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K
                || c == BPF_JMP | BPF_JGT | BPF_K
                || c == BPF_JMP | BPF_JGE | BPF_K
                || c == BPF_JMP | BPF_JSET | BPF_K =>
            {
                if usize::from(ins.jt) >= rest || usize::from(ins.jf) >= rest {
                    return Err(format!("instruction {pc}: jump out of the program"));
                }
            }
            c => return Err(format!("instruction {pc}: unexpected opcode {c:#x}")),
        }
    }
    if prog[prog.len() - 1].code != BPF_RET | BPF_K {
        return Err("program does not end with a return".into());
    }
    Ok(())
}
