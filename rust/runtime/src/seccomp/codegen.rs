//! Code generation: a resolved [`Filter`] to BPF.
//!
//! Layout, in execution order:
//!
//! ```text
//!       ld  arch
//!       jeq AUDIT_ARCH_A, sec_a        ; one test per AUDIT_ARCH, native first
//!       jeq AUDIT_ARCH_B, sec_b
//!       ret KILL_PROCESS               ; bad arch
//! sec_a: ld nr
//!       [jge X32_SYSCALL_BIT, x32, x86_64]   ; AUDIT_ARCH_X86_64 only
//!       binary search on nr over intervals of equal outcome; each leaf is a
//!       `ret` or the call's rules: per rule, its conditions then `ret action`,
//!       a failed condition going to the next rule, the last to the default
//!       (or the action of the call's first unconditional rule).
//! ```
//!
//! Code is emitted backwards by [`Asm`], which handles far jumps.

use std::collections::HashMap;

use super::arch::{Arch, X32_SYSCALL_BIT};
use super::bpf::*;
use super::{Cond, Filter, Op, Rule};

/// What a range of system call numbers leads to.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Ret(u32),
    /// Conditional rules, then what applies when none matches.
    Rules(&'a [Rule], u32),
}

impl Leaf<'_> {
    fn same_ret(&self, other: &Leaf<'_>) -> bool {
        matches!((self, other), (Leaf::Ret(a), Leaf::Ret(b)) if a == b)
    }
}

struct Gen {
    asm: Asm,
    /// The latest `ret k` emitted for each k, reused while near.
    rets: HashMap<u32, Label>,
    default: u32,
}

/// Reuse an existing `ret` only this close, so jumps to it rarely need a trampoline.
const RET_REUSE_DISTANCE: usize = 200;

pub(super) fn generate(filter: &Filter) -> Vec<libc::sock_filter> {
    let mut g = Gen {
        asm: Asm::default(),
        rets: HashMap::new(),
        default: filter.default,
    };

    // Group ABIs by AUDIT_ARCH (x86_64 and x32 share one), keeping order.
    let mut groups: Vec<(u32, Vec<&(Arch, _)>)> = Vec::new();
    for entry in &filter.arches {
        let audit = entry.0.audit();
        match groups.iter_mut().find(|(a, _)| *a == audit) {
            Some((_, v)) => v.push(entry),
            None => groups.push((audit, vec![entry])),
        }
    }

    let mut entries = Vec::with_capacity(groups.len());
    for (audit, abis) in groups.iter().rev() {
        let find = |a: Arch| abis.iter().find(|(b, _)| *b == a).map(|(_, m)| m);
        let entry = if *audit == Arch::X86_64.audit() {
            // x32 calls have X32_SYSCALL_BIT set in nr; an ABI not in the
            // filter is a bad arch.
            let x32 = match find(Arch::X32) {
                Some(m) => g.tree(Arch::X32, m),
                None => g.ret(SECCOMP_RET_KILL_PROCESS),
            };
            let x86_64 = match find(Arch::X86_64) {
                Some(m) => g.tree(Arch::X86_64, m),
                None => g.ret(SECCOMP_RET_KILL_PROCESS),
            };
            g.asm.jump(BPF_JGE, X32_SYSCALL_BIT, x32, x86_64)
        } else {
            let (arch, map) = abis[0];
            g.tree(*arch, map)
        };
        // The entry may be a shared `ret` elsewhere.
        g.asm.goto(entry);
        entries.push((*audit, g.asm.load(OFF_NR)));
    }

    let mut next = g.asm.ret(SECCOMP_RET_KILL_PROCESS);
    for (audit, entry) in entries {
        next = g.asm.jump(BPF_JEQ, audit, entry, next);
    }
    g.asm.load(OFF_ARCH);
    g.asm.finish()
}

impl Gen {
    /// `ret k`, shared with an earlier one when near enough.
    fn ret(&mut self, k: u32) -> Label {
        if let Some(&l) = self.rets.get(&k) {
            if self.asm.distance(l) <= RET_REUSE_DISTANCE {
                return l;
            }
        }
        let l = self.asm.ret(k);
        self.rets.insert(k, l);
        l
    }

    /// The code deciding a call of `arch`, whose number is in A.
    fn tree(&mut self, arch: Arch, calls: &std::collections::BTreeMap<u32, Vec<Rule>>) -> Label {
        let (lo, hi) = arch.nr_range();
        // Intervals [start, next start) of equal outcome, covering [lo, hi).
        let mut iv: Vec<(u64, Leaf)> = vec![(lo, Leaf::Ret(self.default))];
        let range = lo as u32..=(hi - 1) as u32;
        for (&nr, rules) in calls.range(range) {
            let nr = u64::from(nr);
            set_interval(&mut iv, nr, simplify(rules, self.default));
            if nr + 1 < hi {
                set_interval(&mut iv, nr + 1, Leaf::Ret(self.default));
            }
        }
        self.search(arch, &iv)
    }

    /// A binary search over intervals: `jge start_of_upper_half`.
    fn search(&mut self, arch: Arch, iv: &[(u64, Leaf)]) -> Label {
        if let [(_, leaf)] = iv {
            return match *leaf {
                Leaf::Ret(k) => self.ret(k),
                Leaf::Rules(rules, otherwise) => self.rules(arch, rules, otherwise),
            };
        }
        let mid = iv.len() / 2;
        let upper = self.search(arch, &iv[mid..]);
        let lower = self.search(arch, &iv[..mid]);
        // Starts after the first are below 2^32.
        self.asm.jump(BPF_JGE, iv[mid].0 as u32, upper, lower)
    }

    /// Rules in order; the first whose conditions all hold decides.
    fn rules(&mut self, arch: Arch, rules: &[Rule], otherwise: u32) -> Label {
        let mut next = self.ret(otherwise);
        for rule in rules.iter().rev() {
            let mut ok = self.ret(rule.action);
            for c in rule.conds.iter().rev() {
                ok = self.cond(arch, c, ok, next);
            }
            next = ok;
        }
        next
    }

    /// Tests one condition, going to `ok` or `fail`. 64-bit arguments are
    /// compared high word first; on 32-bit ABIs only the low word counts.
    fn cond(&mut self, arch: Arch, c: &Cond, ok: Label, fail: Label) -> Label {
        let (lo_off, hi_off) = arg_offsets(c.index);
        let (vh, vl) = ((c.value >> 32) as u32, c.value as u32);
        // The low word's test, given where to go when the high words are equal.
        let lo = self.word(c, lo_off, vl, c.value_two as u32, ok, fail);
        if arch.args_32bit() {
            return lo;
        }
        let a = &mut self.asm;
        match c.op {
            Op::Eq => {
                a.jump(BPF_JEQ, vh, lo, fail);
            }
            Op::Ne => {
                a.jump(BPF_JEQ, vh, lo, ok);
            }
            // Greater: high words greater => ok, equal => low words decide.
            Op::Gt | Op::Ge => {
                if vh == 0 {
                    a.jump(BPF_JGT, 0, ok, lo);
                } else if vh == u32::MAX {
                    a.jump(BPF_JEQ, vh, lo, fail);
                } else {
                    let eq = a.jump(BPF_JEQ, vh, lo, fail);
                    a.jump(BPF_JGT, vh, ok, eq);
                }
            }
            // Less: high words greater => fail, equal => low words decide.
            Op::Lt | Op::Le => {
                if vh == 0 {
                    a.jump(BPF_JGT, 0, fail, lo);
                } else if vh == u32::MAX {
                    a.jump(BPF_JEQ, vh, lo, ok);
                } else {
                    let eq = a.jump(BPF_JEQ, vh, lo, ok);
                    a.jump(BPF_JGT, vh, fail, eq);
                }
            }
            Op::MaskedEq => {
                let (mh, eh) = ((c.value >> 32) as u32, (c.value_two >> 32) as u32);
                if mh == 0 && eh == 0 {
                    return lo;
                }
                a.jump(BPF_JEQ, eh, lo, fail);
                if mh != u32::MAX {
                    a.and(mh);
                }
            }
        }
        a.load(hi_off)
    }

    /// Loads the word at `off` and tests it: on a 32-bit ABI this is the
    /// whole condition; on a 64-bit one, the low-word half of it.
    fn word(&mut self, c: &Cond, off: u32, v: u32, v2: u32, ok: Label, fail: Label) -> Label {
        let a = &mut self.asm;
        match c.op {
            Op::Eq => a.jump(BPF_JEQ, v, ok, fail),
            Op::Ne => a.jump(BPF_JEQ, v, fail, ok),
            Op::Gt => a.jump(BPF_JGT, v, ok, fail),
            Op::Ge => a.jump(BPF_JGE, v, ok, fail),
            Op::Lt => a.jump(BPF_JGE, v, fail, ok),
            Op::Le => a.jump(BPF_JGT, v, fail, ok),
            Op::MaskedEq => {
                let test = a.jump(BPF_JEQ, v2, ok, fail);
                if v != u32::MAX {
                    a.and(v);
                }
                test
            }
        };
        a.load(off)
    }
}

/// Makes [start, next interval) lead to `leaf`, merging equal neighbours.
/// Starts come in increasing order.
fn set_interval<'a>(iv: &mut Vec<(u64, Leaf<'a>)>, start: u64, leaf: Leaf<'a>) {
    if iv.last().is_some_and(|l| l.0 == start) {
        iv.pop();
    }
    if !iv.last().is_some_and(|l| l.1.same_ret(&leaf)) {
        iv.push((start, leaf));
    }
}

/// A call's rules reduced to what can matter: the rules before the first
/// unconditional one, whose action becomes the fallback, less the trailing
/// rules that do what the fallback does.
fn simplify(rules: &[Rule], default: u32) -> Leaf<'_> {
    let (mut rules, otherwise) = match rules.iter().position(|r| r.conds.is_empty()) {
        Some(i) => (&rules[..i], rules[i].action),
        None => (rules, default),
    };
    while rules.last().is_some_and(|r| r.action == otherwise) {
        rules = &rules[..rules.len() - 1];
    }
    if rules.is_empty() {
        Leaf::Ret(otherwise)
    } else {
        Leaf::Rules(rules, otherwise)
    }
}
