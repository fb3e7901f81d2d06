//! v2 io. Weight as runc sets it: when `io.bfq.weight` exists (BFQ), the blkio
//! weight goes there as is (and per-device weights, `MAJ:MIN weight`); otherwise
//! `io.weight` gets the blkio weight converted from 10..1000 to 1..10000.
//! Throttles go to `io.max`, one line per device: `MAJ:MIN rbps=.. wbps=..
//! riops=.. wiops=..` (only the keys given).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cgroups::write_file;
use crate::error::Result;
use crate::spec::BlockIo;

/// runc's ConvertBlkIOToIOWeightValue: 10..1000 onto 1..10000 (values below 10
/// are taken as 10); 0 is "unset".
pub(crate) fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    let w = (w as u64).clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// The `io.max` lines, one per device, in device order.
pub(crate) fn io_max_lines(b: &BlockIo) -> Vec<String> {
    let mut per_dev: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    let groups = [
        ("rbps", &b.throttle_read_bps_device),
        ("wbps", &b.throttle_write_bps_device),
        ("riops", &b.throttle_read_iops_device),
        ("wiops", &b.throttle_write_iops_device),
    ];
    for (key, devices) in groups {
        for td in devices {
            per_dev
                .entry((td.major, td.minor))
                .or_default()
                .push(format!("{key}={}", td.rate));
        }
    }
    per_dev
        .into_iter()
        .map(|((maj, min), kv)| format!("{maj}:{min} {}", kv.join(" ")))
        .collect()
}

pub(super) fn needed(b: &BlockIo) -> bool {
    b.weight.is_some_and(|w| w != 0)
        || !b.weight_device.is_empty()
        || !b.throttle_read_bps_device.is_empty()
        || !b.throttle_write_bps_device.is_empty()
        || !b.throttle_read_iops_device.is_empty()
        || !b.throttle_write_iops_device.is_empty()
}

pub(super) fn apply(dir: &Path, b: &BlockIo) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    let has_bfq = bfq.exists();
    if let Some(w) = b.weight.filter(|&w| w != 0) {
        if has_bfq {
            write_file(&bfq, &w.to_string())?;
        } else {
            write_file(&dir.join("io.weight"), &blkio_to_io_weight(w).to_string())?;
        }
    }
    if has_bfq {
        for wd in &b.weight_device {
            if let Some(w) = wd.weight.filter(|&w| w != 0) {
                write_file(&bfq, &format!("{}:{} {w}", wd.major, wd.minor))?;
            }
        }
    }
    for line in io_max_lines(b) {
        write_file(&dir.join("io.max"), &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ThrottleDevice;

    #[test]
    fn io_weight_conversion() {
        assert_eq!(blkio_to_io_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(5), 1);
        assert_eq!(blkio_to_io_weight(2000), 10000);
    }

    #[test]
    fn io_max() {
        let td = |major, minor, rate| ThrottleDevice { major, minor, rate };
        let b = BlockIo {
            throttle_read_bps_device: vec![td(8, 0, 1 << 20), td(8, 16, 10)],
            throttle_write_bps_device: vec![td(8, 0, 2 << 20)],
            throttle_write_iops_device: vec![td(8, 0, 100)],
            ..Default::default()
        };
        assert_eq!(
            io_max_lines(&b),
            vec!["8:0 rbps=1048576 wbps=2097152 wiops=100", "8:16 rbps=10"]
        );
    }
}
