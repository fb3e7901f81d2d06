//! v1 blkio: the weight goes to `blkio.weight` (CFQ) or, where that file is absent,
//! `blkio.bfq.weight` (BFQ), as runc picks; per-device weights likewise; throttles
//! to `blkio.throttle.{read,write}_{bps,iops}_device` as `MAJ:MIN rate`.

use std::path::Path;

use crate::cgroups::write_file;
use crate::error::Result;
use crate::spec::BlockIo;

pub(super) fn needed(b: &BlockIo) -> bool {
    b.weight.is_some_and(|w| w != 0)
        || b.leaf_weight.is_some_and(|w| w != 0)
        || !b.weight_device.is_empty()
        || !b.throttle_read_bps_device.is_empty()
        || !b.throttle_write_bps_device.is_empty()
        || !b.throttle_read_iops_device.is_empty()
        || !b.throttle_write_iops_device.is_empty()
}

/// (weight file, weight-device file) for this cgroup.
pub(super) fn weight_files(dir: &Path) -> (&'static str, &'static str) {
    if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    }
}

pub(super) fn apply(dir: &Path, b: &BlockIo) -> Result<()> {
    let (weight_file, weight_device_file) = weight_files(dir);
    if let Some(w) = b.weight.filter(|&w| w != 0) {
        write_file(&dir.join(weight_file), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight.filter(|&w| w != 0) {
        write_file(&dir.join("blkio.leaf_weight"), &w.to_string())?;
    }
    for wd in &b.weight_device {
        if let Some(w) = wd.weight.filter(|&w| w != 0) {
            write_file(
                &dir.join(weight_device_file),
                &format!("{}:{} {w}", wd.major, wd.minor),
            )?;
        }
        if let Some(w) = wd.leaf_weight.filter(|&w| w != 0) {
            write_file(
                &dir.join("blkio.leaf_weight_device"),
                &format!("{}:{} {w}", wd.major, wd.minor),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            &b.throttle_read_bps_device,
        ),
        (
            "blkio.throttle.write_bps_device",
            &b.throttle_write_bps_device,
        ),
        (
            "blkio.throttle.read_iops_device",
            &b.throttle_read_iops_device,
        ),
        (
            "blkio.throttle.write_iops_device",
            &b.throttle_write_iops_device,
        ),
    ];
    for (file, devices) in throttles {
        for td in devices {
            write_file(
                &dir.join(file),
                &format!("{}:{} {}", td.major, td.minor, td.rate),
            )?;
        }
    }
    Ok(())
}
