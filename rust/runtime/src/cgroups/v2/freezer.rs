//! v2 freezer: `cgroup.freeze` 1/0, then wait until `cgroup.events` says
//! `frozen 1` (or `frozen 0`).

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{flat_keyed, read_file_opt, wait_until, write_file};
use crate::error::{Error, Result};

const PATIENCE: Duration = Duration::from_secs(5);

/// The kernel's view (`cgroup.events` frozen), or `cgroup.freeze` where there is no
/// events file.
pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    if let Some(events) = read_file_opt(&dir.join("cgroup.events"))? {
        return Ok(flat_keyed(&events, "frozen") == Some(1));
    }
    match read_file_opt(&dir.join("cgroup.freeze"))? {
        Some(v) => Ok(v.trim() == "1"),
        None => Ok(false),
    }
}

fn set(dir: &Path, frozen: bool) -> Result<()> {
    let file = dir.join("cgroup.freeze");
    if !file.exists() {
        return Err(Error::sys(
            format!(
                "{} does not exist: the kernel's cgroup v2 freezer (5.2+) is needed",
                file.display()
            ),
            std::io::Error::from_raw_os_error(libc::ENOTSUP),
        ));
    }
    write_file(&file, if frozen { "1" } else { "0" })?;
    if wait_until(PATIENCE, || Ok(is_frozen(dir)? == frozen))? {
        return Ok(());
    }
    if frozen {
        let _ = write_file(&file, "0");
    }
    Err(Error::sys(
        format!(
            "{}: the cgroup did not {} within {PATIENCE:?}",
            dir.display(),
            if frozen { "freeze" } else { "thaw" }
        ),
        std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
    ))
}

pub(super) fn freeze(dir: &Path) -> Result<()> {
    set(dir, true)
}

pub(super) fn thaw(dir: &Path) -> Result<()> {
    set(dir, false)
}
