//! The cgroup v2 device filter: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! generated from the device rules, like runc's `devicefilter`.
//!
//! The program reads the context (`struct bpf_cgroup_dev_ctx`: `access_type` =
//! device type in the low 16 bits, access in the high 16; then `major`, `minor`)
//! into registers, then tests the rules from the last to the first: the first
//! block that matches returns 1 (allow) or 0 (deny), so the last matching rule
//! wins; when none matches, the program returns 0. A rule that matches
//! everything ends the program (what it would skip is unreachable, which the
//! verifier refuses).
//!
//! Register use: R1 context (then scratch), R2 type, R3 access, R4 major,
//! R5 minor, R0 the verdict.

use crate::cgroups::devices::{normalize_all, DevKind, Rule, ACC_ALL};
use crate::error::Result;
use crate::spec::DeviceRule;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn dst(&self) -> usize {
        (self.regs & 0x0f) as usize
    }
    pub fn src(&self) -> usize {
        (self.regs >> 4) as usize
    }
}

/// `BPF_DEVCG_DEV_*`: the device type in the context.
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;

// Opcodes (class | op | source/size).
/// BPF_LDX | BPF_MEM | BPF_W
pub const LDX_MEM_W: u8 = 0x61;
/// BPF_ALU | BPF_AND | BPF_K
pub const ALU32_AND_K: u8 = 0x54;
/// BPF_ALU | BPF_RSH | BPF_K
pub const ALU32_RSH_K: u8 = 0x74;
/// BPF_ALU | BPF_MOV | BPF_K
pub const ALU32_MOV_K: u8 = 0xb4;
/// BPF_ALU | BPF_MOV | BPF_X
pub const ALU32_MOV_X: u8 = 0xbc;
/// BPF_JMP | BPF_JEQ | BPF_K
pub const JMP_JEQ_K: u8 = 0x15;
/// BPF_JMP | BPF_JNE | BPF_K
pub const JMP_JNE_K: u8 = 0x55;
/// BPF_JMP | BPF_JNE | BPF_X
pub const JMP_JNE_X: u8 = 0x5d;
/// BPF_JMP | BPF_EXIT
pub const JMP_EXIT: u8 = 0x95;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0x0f) | (src << 4),
        off,
        imm,
    }
}

fn prologue() -> Vec<Insn> {
    vec![
        // R2 = ctx->access_type & 0xffff (the type)
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        // R3 = ctx->access_type >> 16 (the access)
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        // R4 = ctx->major, R5 = ctx->minor
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ]
}

fn verdict(allow: bool) -> [Insn; 2] {
    [
        insn(ALU32_MOV_K, R0, 0, 0, allow as i32),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// The block for one rule: tests that jump past the block when the rule does not
/// match, then the verdict.
fn rule_block(rule: &Rule) -> Vec<Insn> {
    let mut block = Vec::new();
    let mut jumps = Vec::new();
    match rule.kind {
        DevKind::Char | DevKind::Block => {
            let t = if rule.kind == DevKind::Char {
                DEV_CHAR
            } else {
                DEV_BLOCK
            };
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, R2, 0, 0, t as i32));
        }
        DevKind::All => {}
    }
    if rule.access != ACC_ALL {
        block.push(insn(ALU32_MOV_X, R1, R3, 0, 0));
        block.push(insn(ALU32_AND_K, R1, 0, 0, rule.access as i32));
        jumps.push(block.len());
        if rule.allow {
            // Allow only when every access asked for is granted: (R3 & acc) == R3.
            block.push(insn(JMP_JNE_X, R1, R3, 0, 0));
        } else {
            // Deny when any access asked for is forbidden: (R3 & acc) != 0.
            block.push(insn(JMP_JEQ_K, R1, 0, 0, 0));
        }
    }
    if let Some(major) = rule.major {
        jumps.push(block.len());
        block.push(insn(JMP_JNE_K, R4, 0, 0, major as i32));
    }
    if let Some(minor) = rule.minor {
        jumps.push(block.len());
        block.push(insn(JMP_JNE_K, R5, 0, 0, minor as i32));
    }
    block.extend(verdict(rule.allow));
    let len = block.len();
    for j in jumps {
        // The offset counts from the instruction after the jump.
        block[j].off = (len - j - 1) as i16;
    }
    block
}

/// The program for `rules` (checked first; see the module documentation).
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>> {
    let rules = normalize_all(rules)?;
    Ok(program_for(&rules))
}

pub(crate) fn program_for(rules: &[Rule]) -> Vec<Insn> {
    let mut p = prologue();
    for rule in rules.iter().rev() {
        p.extend(rule_block(rule));
        if rule.matches_everything() {
            return p;
        }
    }
    p.extend(verdict(false));
    p
}

#[cfg(test)]
pub(crate) mod interp {
    //! A tiny interpreter for the instructions `program` emits, to check decisions.

    use super::*;

    /// Runs `prog` on a device access; returns R0.
    pub fn run(prog: &[Insn], dev_type: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx: [u32; 3] = [dev_type | (access << 16), major, minor];
        let mut r = [0u64; 11];
        // R1 holds the context "address": 0 here, and LDX offsets index the ctx.
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "runaway program");
            let i = prog[pc];
            let (d, s) = (i.dst(), i.src());
            let imm64 = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    let addr = r[s] as i64 + i.off as i64;
                    assert!(addr % 4 == 0 && (0..12).contains(&addr), "bad load {addr}");
                    r[d] = ctx[(addr / 4) as usize] as u64;
                }
                ALU32_AND_K => r[d] = ((r[d] as u32) & (i.imm as u32)) as u64,
                ALU32_RSH_K => r[d] = ((r[d] as u32) >> (i.imm as u32)) as u64,
                ALU32_MOV_K => r[d] = i.imm as u32 as u64,
                ALU32_MOV_X => r[d] = r[s] as u32 as u64,
                JMP_JEQ_K => {
                    if r[d] == imm64 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                JMP_JNE_K => {
                    if r[d] != imm64 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                JMP_JNE_X => {
                    if r[d] != r[s] {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
            assert!(pc < prog.len(), "fell off the end");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interp::run;
    use super::*;
    use crate::cgroups::devices::{rule, ACC_MKNOD, ACC_READ, ACC_WRITE};

    const RW: u32 = ACC_READ | ACC_WRITE;

    fn allowed(rules: &[DeviceRule], t: u32, acc: u32, maj: u32, min: u32) -> bool {
        let p = program(rules).unwrap();
        check_reachable(&p);
        match run(&p, t, acc, maj, min) {
            0 => false,
            1 => true,
            v => panic!("bad verdict {v}"),
        }
    }

    /// Every jump lands inside the program and every instruction is reachable
    /// (the verifier's demands).
    fn check_reachable(p: &[Insn]) {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= p.len() {
                panic!("jump out of the program");
            }
            if seen[pc] {
                continue;
            }
            seen[pc] = true;
            let i = p[pc];
            match i.code {
                JMP_EXIT => {}
                JMP_JEQ_K | JMP_JNE_K | JMP_JNE_X => {
                    todo.push(pc + 1);
                    todo.push((pc as i64 + 1 + i.off as i64) as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        assert!(seen.iter().all(|&s| s), "unreachable instructions in {p:?}");
        assert_eq!(p.last().unwrap().code, JMP_EXIT);
    }

    /// Docker's default rules, in order.
    fn docker_defaults() -> Vec<DeviceRule> {
        vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", None, None, "m"),
            rule(true, "b", None, None, "m"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(1), Some(5), "rwm"),
            rule(true, "c", Some(1), Some(8), "rwm"),
            rule(true, "c", Some(1), Some(9), "rwm"),
            rule(true, "c", Some(5), Some(0), "rwm"),
            rule(true, "c", Some(5), Some(1), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
            rule(true, "c", Some(5), Some(2), "rwm"),
            rule(false, "c", Some(10), Some(200), "rwm"),
        ]
    }

    #[test]
    fn docker_default_rules() {
        let r = docker_defaults();
        assert!(allowed(&r, DEV_CHAR, RW, 1, 3), "/dev/null rw");
        assert!(allowed(&r, DEV_CHAR, ACC_READ, 1, 3), "/dev/null r");
        assert!(allowed(&r, DEV_CHAR, RW, 136, 7), "pts wildcard minor");
        assert!(!allowed(&r, DEV_BLOCK, ACC_READ, 8, 0), "block 8:0 read");
        assert!(allowed(&r, DEV_BLOCK, ACC_MKNOD, 8, 0), "block mknod");
        assert!(allowed(&r, DEV_CHAR, ACC_MKNOD, 10, 229), "char mknod");
        assert!(!allowed(&r, DEV_CHAR, ACC_READ, 10, 229), "fuse read");
        assert!(!allowed(&r, DEV_CHAR, ACC_READ, 10, 200), "tun read");
        assert!(
            !allowed(&r, DEV_CHAR, ACC_MKNOD, 10, 200),
            "tun mknod: last rule denies"
        );
        assert!(!allowed(&r, DEV_CHAR, RW, 1, 4), "1:4");
    }

    #[test]
    fn default_deny_and_allow_all() {
        assert!(!allowed(&[], DEV_CHAR, ACC_READ, 1, 3));
        let all = [rule(true, "a", None, None, "")];
        assert!(allowed(&all, DEV_BLOCK, RW | ACC_MKNOD, 8, 0));
        // A rule matching everything ends the program: prologue + verdict only.
        assert_eq!(program(&all).unwrap().len(), prologue().len() + 2);
        // Rules before an allow-all cannot matter.
        let r = [
            rule(false, "c", Some(1), Some(3), "rwm"),
            rule(true, "", None, None, "rwm"),
        ];
        assert_eq!(program(&r).unwrap().len(), prologue().len() + 2);
        assert!(allowed(&r, DEV_CHAR, RW, 1, 3));
    }

    #[test]
    fn last_match_wins() {
        let r = [
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(false, "c", Some(1), Some(3), "rwm"),
        ];
        assert!(!allowed(&r, DEV_CHAR, ACC_READ, 1, 3));
        let r = [
            rule(false, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
        ];
        assert!(allowed(&r, DEV_CHAR, ACC_READ, 1, 3));
        // Allow all, then deny writing /dev/null.
        let r = [
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
        ];
        assert!(allowed(&r, DEV_CHAR, ACC_READ, 1, 3));
        assert!(!allowed(&r, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(
            !allowed(&r, DEV_CHAR, RW, 1, 3),
            "deny matches any forbidden access"
        );
        assert!(allowed(&r, DEV_CHAR, RW, 1, 5));
        assert!(allowed(&r, DEV_BLOCK, RW, 1, 3));
    }

    #[test]
    fn access_subsets() {
        let r = [rule(true, "c", Some(1), Some(3), "r")];
        assert!(allowed(&r, DEV_CHAR, ACC_READ, 1, 3));
        assert!(!allowed(&r, DEV_CHAR, RW, 1, 3));
        assert!(!allowed(&r, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(!allowed(&r, DEV_BLOCK, ACC_READ, 1, 3), "type matters");
    }

    #[test]
    fn wildcards() {
        // Type a with numbers: both char and block.
        let r = [rule(true, "a", Some(8), None, "rw")];
        assert!(allowed(&r, DEV_BLOCK, ACC_READ, 8, 0));
        assert!(allowed(&r, DEV_CHAR, ACC_WRITE, 8, 17));
        assert!(!allowed(&r, DEV_BLOCK, ACC_READ, 9, 0));
        assert!(!allowed(&r, DEV_BLOCK, ACC_MKNOD, 8, 0));
        // Wildcard major, fixed minor.
        let r = [rule(true, "b", None, Some(0), "rwm")];
        assert!(allowed(&r, DEV_BLOCK, RW, 8, 0));
        assert!(allowed(&r, DEV_BLOCK, RW, 259, 0));
        assert!(!allowed(&r, DEV_BLOCK, RW, 8, 1));
    }

    #[test]
    fn encoding() {
        let p = program(&[rule(true, "c", Some(1), Some(3), "rw")]).unwrap();
        // Block: jne r2,2 ; mov32 r1,r3 ; and32 r1,6 ; jne r1,r3 ; jne r4,1 ; jne r5,3 ; mov32 r0,1 ; exit
        let b = &p[prologue().len()..];
        assert_eq!(b[0], insn(JMP_JNE_K, 2, 0, 7, 2));
        assert_eq!(b[1], insn(ALU32_MOV_X, 1, 3, 0, 0));
        assert_eq!(b[2], insn(ALU32_AND_K, 1, 0, 0, 6));
        assert_eq!(b[3], insn(JMP_JNE_X, 1, 3, 4, 0));
        assert_eq!(b[4], insn(JMP_JNE_K, 4, 0, 3, 1));
        assert_eq!(b[5], insn(JMP_JNE_K, 5, 0, 2, 3));
        assert_eq!(b[6], insn(ALU32_MOV_K, 0, 0, 0, 1));
        assert_eq!(b[7].code, JMP_EXIT);
        assert_eq!(b[8], insn(ALU32_MOV_K, 0, 0, 0, 0));
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(b[1].regs, 0x31);
    }
}
