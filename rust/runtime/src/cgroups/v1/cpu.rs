//! v1 cpu: `cpu.shares` (read back: the kernel clamps it), `cpu.cfs_period_us`
//! and `cpu.cfs_quota_us` (period retried after the quota when the kernel refuses
//! it first, as runc does), `cpu.rt_period_us`/`cpu.rt_runtime_us`.

use std::path::Path;

use crate::cgroups::{read_file, write_file};
use crate::error::{Error, Result};
use crate::spec::Cpu;

pub(super) fn needed(c: &Cpu) -> bool {
    c.shares.is_some_and(|v| v != 0)
        || c.quota.is_some_and(|v| v != 0)
        || c.period.is_some_and(|v| v != 0)
        || c.realtime_runtime.is_some_and(|v| v != 0)
        || c.realtime_period.is_some_and(|v| v != 0)
}

pub(super) fn apply(dir: &Path, c: &Cpu) -> Result<()> {
    if let Some(shares) = c.shares.filter(|&v| v != 0) {
        let file = dir.join("cpu.shares");
        write_file(&file, &shares.to_string())?;
        let read: u64 = read_file(&file)?.trim().parse().unwrap_or(shares);
        if shares > read {
            return Err(Error::Config(format!(
                "cpu shares {shares}: the maximum allowed cpu-shares is {read}"
            )));
        } else if shares < read {
            return Err(Error::Config(format!(
                "cpu shares {shares}: the minimum allowed cpu-shares is {read}"
            )));
        }
    }
    let quota = c.quota.unwrap_or(0);
    let mut period_later = None;
    if let Some(period) = c.period.filter(|&v| v != 0) {
        if let Err(e) = write_file(&dir.join("cpu.cfs_period_us"), &period.to_string()) {
            // A smaller period can be refused (EINVAL) while the old quota exceeds
            // what it allows; retry once the quota is set.
            let einval = matches!(&e, Error::Sys { source, .. } if source.raw_os_error() == Some(libc::EINVAL));
            if !einval || quota == 0 {
                return Err(e);
            }
            period_later = Some(period);
        }
    }
    if quota != 0 {
        write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        if let Some(period) = period_later {
            write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
        }
    }
    if let Some(p) = c.realtime_period.filter(|&v| v != 0) {
        write_file(&dir.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime.filter(|&v| v != 0) {
        write_file(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
    }
    Ok(())
}
