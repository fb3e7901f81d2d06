//! `kill [--all] ID [SIGNAL]`.

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::signals;
use crate::state::{Container, Status};

pub fn kill(g: &Global, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = signals::parse(signal)?;
    let c = Container::load(&g.root, id)?;
    if c.status() == Status::Stopped {
        if all {
            // Processes may outlive init in a shared pid namespace.
            return c.cgroup()?.kill_all(sig);
        }
        return Err(Error::State("container not running".into()));
    }
    if all {
        return c.cgroup()?.kill_all(sig);
    }
    // SAFETY: the pid was checked to be init (start time matches).
    if unsafe { libc::kill(c.saved.pid, sig) } != 0 {
        return Err(Error::last(format!(
            "kill {} with signal {sig}",
            c.saved.pid
        )));
    }
    Ok(())
}
