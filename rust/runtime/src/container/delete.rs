//! `delete [--force] ID`: remove a stopped container (or, forced, any container):
//! its processes, cgroup, state, then the poststop hooks.

use std::time::{Duration, Instant};

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, Container, Status};

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(&g.root, id) {
        Ok(c) => c,
        Err(Error::NotFound(_)) if force => {
            // An aborted create may have left a directory without state.
            let _ = std::fs::remove_dir_all(state::dir(&g.root, id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match c.status() {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&c)?,
        status if force => {
            if status == Status::Paused {
                let _ = c.cgroup()?.thaw();
            }
            kill_and_wait(&c)?;
        }
        status => {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {}",
                status.as_str()
            )))
        }
    }
    cleanup(&c)
}

fn kill_and_wait(c: &Container) -> Result<()> {
    let cg = c.cgroup()?;
    cg.kill_all(libc::SIGKILL)?;
    // SAFETY: signalling init, whose identity was checked by status().
    unsafe { libc::kill(c.saved.pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.init_alive() {
        if Instant::now() > deadline {
            return Err(Error::State(format!(
                "container {}: init did not die",
                c.saved.id
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Removes the cgroup and the state, then runs poststop hooks (failures logged).
pub fn cleanup(c: &Container) -> Result<()> {
    c.cgroup()?.destroy()?;
    let st = c.oci_state();
    c.remove_dir()?;
    if let Some(h) = &c.saved.hooks {
        if let Err(e) = hooks::run_all(&h.poststop, &st) {
            crate::log::warn(&format!("poststop hook: {e}"));
        }
    }
    Ok(())
}
