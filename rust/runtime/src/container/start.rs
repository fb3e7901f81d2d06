//! `start`: release init from the exec fifo so it execs the user's process.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{Container, Status};
use crate::sys;

pub fn start(g: &Global, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    match c.status() {
        Status::Created => {}
        other => {
            return Err(Error::State(format!(
                "cannot start a container that is {}",
                other.as_str()
            )))
        }
    }
    let fifo = sys::open(&c.fifo(), libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    // Init opens its end for writing and writes one byte; wait for it while it lives.
    loop {
        let mut pfd = libc::pollfd {
            fd: fifo.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is valid.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            break;
        }
        if !c.init_alive() {
            return Err(Error::State(format!(
                "container {id}: init exited before start"
            )));
        }
        std::thread::sleep(Duration::from_millis(0));
    }
    let mut b = [0u8; 1];
    // SAFETY: b is valid for one byte.
    let n = unsafe { libc::read(fifo.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    if n != 1 {
        return Err(Error::State(format!(
            "container {id}: init exited before start"
        )));
    }
    let _ = std::fs::remove_file(c.fifo());
    poststart(&c);
    Ok(())
}

/// Starts a container created in run mode (no exec fifo; `create::create` with
/// `run_mode`) over the sync socket its create left, then runs its poststart hooks
/// (`poststart`: it has some). For a caller that runs `create` in its own process
/// and keeps that socket (skiff-monitor).
pub fn start_created(g: &Global, id: &str, sync: &OwnedFd, poststart: bool) -> Result<()> {
    sys::send_msg(sync, b"start")
        .map_err(|e| Error::State(format!("container {id}: init exited before start ({e})")))?;
    if poststart {
        self::poststart(&Container::load(&g.root, id)?);
    }
    Ok(())
}

/// poststart hooks: a failure is logged, and the container keeps running.
pub fn poststart(c: &Container) {
    if let Some(h) = &c.saved.hooks {
        if let Err(e) = hooks::run_all(&h.poststart, &c.oci_state()) {
            crate::log::warn(&format!("poststart hook: {e}"));
        }
    }
}
