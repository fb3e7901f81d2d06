//! `run`: create and start in one process, without the exec fifo; then, unless
//! detached, wait for the container, forwarding signals, and delete it.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::cli::{CreateOpts, Global};
use crate::container::{create, delete, start};
use crate::error::{Error, Result};
use crate::sys;

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Returns the container's exit code (0 when detached).
pub fn run(g: &Global, o: &CreateOpts, detach: bool) -> Result<i32> {
    let created = create::create(g, o, true)?;
    let pid = created.container.saved.pid;
    sys::send_msg(&created.sync, b"start").map_err(|e| Error::sys("start init", e))?;
    start::poststart(&created.container);
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(pid)?;
    delete::cleanup(&created.container)?;
    Ok(code)
}

/// Waits for our child `pid`, passing on the signals a user sends us.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    CHILD.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing a handler that only calls kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    sys::wait_child(pid)
}
