//! v2 memory: `memory.max` (limit), `memory.low` (reservation),
//! `memory.swap.max` = OCI swap (memory+swap) minus the limit, as runc converts
//! it. Swappiness and disable_oom_killer have no v2 file and are ignored.

use std::path::Path;

use crate::cgroups::{flat_keyed, read_file_opt, read_u64_opt, write_file, Stats};
use crate::error::{Error, Result};
use crate::spec::Memory;

/// A value for a v2 memory file: 0 is "leave alone" (`None`), -1 is "max".
pub(crate) fn num_to_str(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".to_string()),
        v => Some(v.to_string()),
    }
}

/// runc's ConvertMemorySwapToCgroupV2Value: the `memory.swap.max` number for an
/// OCI swap (memory+swap) and limit. 0 means "unset", -1 "max".
pub(crate) fn swap_to_v2(swap: i64, limit: i64) -> Result<i64> {
    // Unlimited memory with no swap given: both unlimited.
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(Error::Config(
            "memory.swap cannot be set without a memory limit".to_string(),
        ));
    }
    if limit < 0 || swap < 0 {
        return Err(Error::Config(format!(
            "invalid memory limit {limit} / swap {swap}"
        )));
    }
    if swap < limit {
        return Err(Error::Config(format!(
            "memory.swap ({swap}, memory+swap) is below memory.limit ({limit})"
        )));
    }
    Ok(swap - limit)
}

/// The string for `memory.swap.max`, if anything is to be written.
pub(crate) fn swap_max_value(m: &Memory) -> Result<Option<String>> {
    let limit = m.limit.unwrap_or(0);
    let swap_total = m.swap.unwrap_or(0);
    let swap = swap_to_v2(swap_total, limit)?;
    Ok(match num_to_str(swap) {
        // Memory and memory+swap equal: no swap at all.
        None if swap_total > 0 => Some("0".to_string()),
        v => v,
    })
}

pub(super) fn needed(m: &Memory) -> bool {
    m.limit.is_some_and(|v| v != 0)
        || m.reservation.is_some_and(|v| v != 0)
        || m.swap.is_some_and(|v| v != 0)
}

pub(super) fn apply(dir: &Path, m: &Memory) -> Result<()> {
    if let Some(v) = swap_max_value(m)? {
        if let Err(e) = write_file(&dir.join("memory.swap.max"), &v) {
            // No swap accounting: setting "max" or "none" is moot.
            let absent = matches!(&e, Error::Sys { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
            if !(absent && (v == "max" || v == "0")) {
                return Err(e);
            }
        }
    }
    if let Some(v) = num_to_str(m.limit.unwrap_or(0)) {
        write_file(&dir.join("memory.max"), &v)?;
    }
    if let Some(v) = num_to_str(m.reservation.unwrap_or(0)) {
        write_file(&dir.join("memory.low"), &v)?;
    }
    Ok(())
}

pub(super) fn oom_kills(dir: &Path) -> Result<u64> {
    match read_file_opt(&dir.join("memory.events"))? {
        Some(text) => Ok(flat_keyed(&text, "oom_kill").unwrap_or(0)),
        None => Ok(0),
    }
}

pub(super) fn stats(dir: &Path, s: &mut Stats) {
    s.memory_usage = read_u64_opt(&dir.join("memory.current"));
    s.memory_limit = read_u64_opt(&dir.join("memory.max"));
    s.memory_max_usage = read_u64_opt(&dir.join("memory.peak"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
        swap_max_value(&Memory {
            limit,
            swap,
            ..Default::default()
        })
    }

    #[test]
    fn swap_math() {
        assert_eq!(swap_to_v2(200, 100).unwrap(), 100);
        assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(100, 0).is_err());
        assert!(swap_to_v2(100, -1).is_err());

        assert_eq!(
            swap_max(Some(64 << 20), Some(128 << 20))
                .unwrap()
                .as_deref(),
            Some("67108864")
        );
        assert_eq!(
            swap_max(Some(64 << 20), Some(64 << 20)).unwrap().as_deref(),
            Some("0")
        );
        assert_eq!(swap_max(Some(64 << 20), None).unwrap(), None);
        assert_eq!(swap_max(Some(-1), None).unwrap().as_deref(), Some("max"));
        assert_eq!(
            swap_max(Some(100), Some(-1)).unwrap().as_deref(),
            Some("max")
        );
        assert_eq!(num_to_str(-1).as_deref(), Some("max"));
        assert_eq!(num_to_str(0), None);
    }
}
