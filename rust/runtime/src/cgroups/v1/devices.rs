//! v1 devices: `a` to `devices.deny` (deny everything), then each rule in order
//! to `devices.allow` or `devices.deny` (`c 1:3 rwm`, `*` for a wildcard number).

use std::path::Path;

use crate::cgroups::devices::normalize_all;
use crate::cgroups::write_file;
use crate::error::Result;
use crate::spec::DeviceRule;

pub(super) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let rules = normalize_all(rules)?;
    write_file(&dir.join("devices.deny"), "a")?;
    for rule in &rules {
        let file = dir.join(if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        for line in rule.v1_lines() {
            write_file(&file, &line)?;
        }
    }
    Ok(())
}
