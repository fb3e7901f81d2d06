//! v2 cpu: `cpu.weight` from the OCI shares (runc's conversion) and `cpu.max`
//! (`quota period`, `max period`, or without the period when it is not given).
//! Realtime scheduling has no v2 interface: asking for it is an error.

use std::path::Path;

use crate::cgroups::{flat_keyed, read_file_opt, write_file, Stats};
use crate::error::{Error, Result};
use crate::spec::Cpu;

/// runc's ConvertCPUSharesToCgroupV2Value: shares 2..262144 map onto weight
/// 1..10000 (shares are clamped to that range first); 0 is "unset".
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The `cpu.max` line, if quota or period is given (0 is "not given").
pub(crate) fn cpu_max(quota: i64, period: u64) -> Option<String> {
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_string()
    };
    if period != 0 {
        s.push(' ');
        s.push_str(&period.to_string());
    }
    Some(s)
}

pub(super) fn needed(c: &Cpu) -> bool {
    c.shares.is_some_and(|v| v != 0)
        || c.quota.is_some_and(|v| v != 0)
        || c.period.is_some_and(|v| v != 0)
        || c.realtime_runtime.is_some_and(|v| v != 0)
        || c.realtime_period.is_some_and(|v| v != 0)
}

pub(super) fn apply(dir: &Path, c: &Cpu) -> Result<()> {
    if c.realtime_runtime.is_some_and(|v| v != 0) || c.realtime_period.is_some_and(|v| v != 0) {
        return Err(Error::Config(
            "cpu.realtimeRuntime/realtimePeriod are not supported on cgroup v2".to_string(),
        ));
    }
    let weight = shares_to_weight(c.shares.unwrap_or(0));
    if weight != 0 {
        write_file(&dir.join("cpu.weight"), &weight.to_string())?;
    }
    if let Some(v) = cpu_max(c.quota.unwrap_or(0), c.period.unwrap_or(0)) {
        write_file(&dir.join("cpu.max"), &v)?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, s: &mut Stats) {
    if let Ok(Some(text)) = read_file_opt(&dir.join("cpu.stat")) {
        s.cpu_usage_ns = flat_keyed(&text, "usage_usec").map(|us| us.saturating_mul(1000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1 << 40), 10_000);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max(0, 0), None);
        assert_eq!(cpu_max(50_000, 100_000).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max(-1, 100_000).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max(0, 100_000).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max(25_000, 0).as_deref(), Some("25000"));
    }
}
