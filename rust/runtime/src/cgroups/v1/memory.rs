//! v1 memory: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (the OCI
//! `swap` is memory+swap, as v1 has it), `memory.soft_limit_in_bytes`,
//! `memory.swappiness`, `memory.oom_control`. The limit and memsw writes are
//! ordered as runc orders them so that raising or lowering both never trips the
//! kernel's "memsw >= limit" check.

use std::path::Path;

use crate::cgroups::{flat_keyed, read_file, read_u64_opt, write_file, Stats};
use crate::error::{Error, Result};
use crate::spec::Memory;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// v1 reports "no limit" as a huge page-aligned number; anything this large is it.
const UNLIMITED_AT: u64 = 1 << 62;

pub(super) fn needed(m: &Memory) -> bool {
    m.limit.is_some()
        || m.reservation.is_some()
        || m.swap.is_some()
        || m.swappiness.is_some()
        || m.disable_oom_killer.is_some()
}

/// The order of the limit and memsw writes: `true` when memsw goes first.
/// (runc: when both are set and the new memsw is unlimited or above the current
/// limit, write memsw first.)
pub(super) fn swap_first(limit: i64, swap: i64, current_limit: u64) -> bool {
    limit != 0 && swap != 0 && (swap == -1 || current_limit < swap as u64)
}

pub(super) fn check(m: &Memory) -> Result<()> {
    let limit = m.limit.unwrap_or(0);
    let swap = m.swap.unwrap_or(0);
    if limit > 0 && swap > 0 && swap < limit {
        return Err(Error::Config(format!(
            "memory.swap ({swap}, memory+swap) is below memory.limit ({limit})"
        )));
    }
    if limit < -1 || swap < -1 {
        return Err(Error::Config(format!(
            "invalid memory limit {limit} / swap {swap}"
        )));
    }
    if let Some(s) = m.swappiness {
        if s > 100 {
            return Err(Error::Config(format!("memory.swappiness {s} is above 100")));
        }
    }
    Ok(())
}

fn set_limit(dir: &Path, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let file = dir.join(LIMIT);
    write_file(&file, &limit.to_string()).map_err(|e| {
        let busy =
            matches!(&e, Error::Sys { source, .. } if source.raw_os_error() == Some(libc::EBUSY));
        if busy {
            let usage = read_u64_opt(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
            let peak = read_u64_opt(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
            Error::Config(format!(
                "cannot set memory limit to {limit}: current usage {usage}, peak usage {peak} ({e})"
            ))
        } else {
            e
        }
    })
}

fn set_swap(dir: &Path, swap: i64) -> Result<()> {
    if swap == 0 {
        return Ok(());
    }
    write_file(&dir.join(MEMSW), &swap.to_string())
}

pub(super) fn apply(dir: &Path, m: &Memory) -> Result<()> {
    check(m)?;
    let limit = m.limit.unwrap_or(0);
    let mut swap = m.swap.unwrap_or(0);
    // An unlimited memory with no swap given means unlimited swap too.
    if limit == -1 && swap == 0 && dir.join(MEMSW).exists() {
        swap = -1;
    }
    let current = if limit != 0 && swap != 0 {
        let text = read_file(&dir.join(LIMIT))?;
        text.trim().parse::<u64>().unwrap_or(u64::MAX)
    } else {
        0
    };
    if swap_first(limit, swap, current) {
        set_swap(dir, swap)?;
        set_limit(dir, limit)?;
    } else {
        set_limit(dir, limit)?;
        set_swap(dir, swap)?;
    }
    if let Some(r) = m.reservation {
        if r != 0 {
            write_file(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
        }
    }
    if let Some(s) = m.swappiness {
        write_file(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer {
        write_file(&dir.join("memory.oom_control"), if d { "1" } else { "0" })?;
    }
    Ok(())
}

pub(super) fn oom_kills(dir: &Path) -> Result<u64> {
    match crate::cgroups::read_file_opt(&dir.join("memory.oom_control"))? {
        Some(text) => Ok(flat_keyed(&text, "oom_kill").unwrap_or(0)),
        None => Ok(0),
    }
}

pub(super) fn stats(dir: &Path, s: &mut Stats) {
    s.memory_usage = read_u64_opt(&dir.join("memory.usage_in_bytes"));
    s.memory_limit = read_u64_opt(&dir.join(LIMIT)).filter(|&v| v < UNLIMITED_AT);
    s.memory_max_usage = read_u64_opt(&dir.join("memory.max_usage_in_bytes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_order() {
        // Fresh cgroup (limit unlimited): limit first, then memsw.
        assert!(!swap_first(64 << 20, 128 << 20, u64::MAX / 2));
        // Raising both from 64M: memsw first.
        assert!(swap_first(256 << 20, 512 << 20, 64 << 20));
        // Unlimited swap: memsw first.
        assert!(swap_first(64 << 20, -1, 32 << 20));
        // Only one of them: no ordering question.
        assert!(!swap_first(0, 128, 0));
        assert!(!swap_first(128, 0, 0));
    }

    #[test]
    fn checks() {
        let m = |limit, swap| Memory {
            limit,
            swap,
            ..Default::default()
        };
        assert!(check(&m(Some(100), Some(50))).is_err());
        assert!(check(&m(Some(100), Some(100))).is_ok());
        assert!(check(&m(Some(-1), Some(-1))).is_ok());
        assert!(check(&m(Some(-2), None)).is_err());
        let sw = Memory {
            swappiness: Some(101),
            ..Default::default()
        };
        assert!(check(&sw).is_err());
    }
}
