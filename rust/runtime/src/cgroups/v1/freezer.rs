//! v1 freezer: `freezer.state` FROZEN/THAWED, waiting until the state reads back.
//! While FREEZING, FROZEN is written again now and then (runc does so too: tasks
//! that were busy may need another nudge).

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{read_file, wait_until, write_file};
use crate::error::{Error, Result};

const STATE: &str = "freezer.state";
const PATIENCE: Duration = Duration::from_secs(5);

fn state(dir: &Path) -> Result<String> {
    Ok(read_file(&dir.join(STATE))?.trim().to_string())
}

fn set(dir: &Path, want: &str) -> Result<()> {
    let file = dir.join(STATE);
    write_file(&file, want)?;
    let mut polls = 0u32;
    let done = wait_until(PATIENCE, || {
        polls += 1;
        if polls % 100 == 0 {
            write_file(&file, want)?;
        }
        Ok(state(dir)? == want)
    })?;
    if done {
        return Ok(());
    }
    let now = state(dir)?;
    if want == "FROZEN" {
        let _ = write_file(&file, "THAWED");
    }
    Err(Error::sys(
        format!(
            "{}: still {now} after {PATIENCE:?} (wanted {want})",
            file.display()
        ),
        std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
    ))
}

pub(super) fn freeze(dir: &Path) -> Result<()> {
    set(dir, "FROZEN")
}

pub(super) fn thaw(dir: &Path) -> Result<()> {
    set(dir, "THAWED")
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(state(dir)? == "FROZEN")
}
