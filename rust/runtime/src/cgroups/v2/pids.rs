//! v2 pids: `pids.max` (a limit of 0 or less is "max").

use std::path::Path;

use crate::cgroups::{pids_max, read_u64_opt, write_file, Stats};
use crate::error::Result;
use crate::spec::Pids;

pub(super) fn apply(dir: &Path, p: &Pids) -> Result<()> {
    write_file(&dir.join("pids.max"), &pids_max(p.limit))
}

pub(super) fn stats(dir: &Path, s: &mut Stats) {
    s.pids_current = read_u64_opt(&dir.join("pids.current"));
    s.pids_limit = read_u64_opt(&dir.join("pids.max"));
}
