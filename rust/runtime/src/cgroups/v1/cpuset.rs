//! v1 cpuset: `cpuset.cpus` and `cpuset.mems`. A new v1 cpuset cgroup starts with
//! both empty and refuses tasks until they are set, so `create` copies them from
//! the parent, level by level from the hierarchy's root down.

use std::path::{Path, PathBuf};

use crate::cgroups::{read_file, write_file};
use crate::error::Result;
use crate::spec::Cpu;

pub(super) fn needed(c: &Cpu) -> bool {
    c.cpus.as_deref().is_some_and(|s| !s.is_empty())
        || c.mems.as_deref().is_some_and(|s| !s.is_empty())
}

/// Gives every cgroup from below `mount_point` down to `dir` its parent's cpus and
/// mems where it has none.
pub(super) fn init(mount_point: &Path, dir: &Path) -> Result<()> {
    let mut levels: Vec<PathBuf> = Vec::new();
    let mut cur = dir;
    loop {
        levels.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if cur != mount_point && p.starts_with(mount_point) => cur = p,
            _ => break,
        }
    }
    levels.reverse();
    // levels[0] is the mount point itself (or the top we could reach): it is never
    // empty, so start copying into the level below it.
    for pair in levels.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = read_file(&child.join(file))?;
            if !mine.trim().is_empty() {
                continue;
            }
            let theirs = read_file(&parent.join(file))?;
            let theirs = theirs.trim();
            if !theirs.is_empty() {
                write_file(&child.join(file), theirs)?;
            }
        }
    }
    Ok(())
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
