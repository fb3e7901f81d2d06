//! v2 cpuset: `cpuset.cpus` and `cpuset.mems` (an empty v2 cpuset inherits its
//! parent's, so nothing needs copying at creation).

use std::path::Path;

use crate::cgroups::write_file;
use crate::error::Result;
use crate::spec::Cpu;

pub(super) fn needed(c: &Cpu) -> bool {
    c.cpus.as_deref().is_some_and(|s| !s.is_empty())
        || c.mems.as_deref().is_some_and(|s| !s.is_empty())
}

pub(super) fn apply(dir: &Path, c: &Cpu) -> Result<()> {
    if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
        write_file(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = c.mems.as_deref().filter(|s| !s.is_empty()) {
        write_file(&dir.join("cpuset.mems"), mems)?;
    }
    Ok(())
}
