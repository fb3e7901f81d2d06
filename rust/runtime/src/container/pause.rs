//! `pause` / `resume`: freeze and thaw the container's cgroup.

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::state::{Container, Status};

pub fn pause(g: &Global, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    match c.status() {
        Status::Running | Status::Created => c.cgroup()?.freeze(),
        s => Err(Error::State(format!(
            "cannot pause a container that is {}",
            s.as_str()
        ))),
    }
}

pub fn resume(g: &Global, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    match c.status() {
        Status::Paused => c.cgroup()?.thaw(),
        s => Err(Error::State(format!(
            "cannot resume a container that is {}",
            s.as_str()
        ))),
    }
}
