//! `--wait-args --fork-server`: one process that makes waiting monitors by forking
//! itself, instead of a new monitor process being started (executed) for each.
//! skiffd keeps one beside its pool: each monitor then costs two forks of this
//! small process rather than an exec, the program's start-up and a fork, and the
//! cgroup mounts are read (pinned) once for all of them.
//!
//! The server reads one byte per request on its `--sync-fd` (a unix stream
//! socket): `b` for a monitor kept ahead of need (it waits at the lowest priority,
//! nice 19, and takes `--nice` when used, as a pooled monitor started at a low
//! priority does), `n` for one needed now (at `--nice` from the start). It
//! answers each with one line: `+` carrying (SCM_RIGHTS) the caller's end of the
//! new monitor's sync socket, or `-` and the reason. The new monitor is what
//! `--wait-args` makes (daemonized: its own session, in `/`, stdio on /dev/null),
//! with that socket as its `--sync-fd`; one made ahead of need makes its spare
//! cgroup with `--spare-cgroup` (one needed now would only rename it into place
//! at once: its create makes the cgroup instead).
//! The server itself runs at `--nice` and ends at the end of its input.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::sys;

/// The nice value of a monitor made ahead of need while it waits.
const BACKGROUND_NICE: libc::c_int = 19;

/// How a call to [`serve`] ends in each process.
pub enum Served {
    /// The server: its exit code (0 at the end of its input).
    Exit(i32),
    /// A new waiting monitor (in the forked process): its sync socket, and
    /// whether it was made ahead of need.
    Monitor(RawFd, bool),
}

/// Serves requests on `sync` until its end (see the module's comment).
pub fn serve(sync: RawFd, nice: i32) -> Served {
    // SAFETY: setpriority only changes this process's nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    // Stdin and stdout (the caller's socket, when started with `--sync-fd 1`) on
    // /dev/null: nothing but answers reaches the socket, no monitor inherits it.
    crate::null_stdio(&[0, 1]);
    loop {
        let mut request = [0u8; 1];
        match sys::read(sync, &mut request) {
            Ok(0) => return Served::Exit(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Served::Exit(1),
        }
        let background = match request[0] {
            b'b' => true,
            b'n' => false,
            other => {
                let msg = format!("-unknown request {other:#04x}\n");
                if sys::write_all(sync, msg.as_bytes()).is_err() {
                    return Served::Exit(1);
                }
                continue;
            }
        };
        let answered = match fork_monitor(sync, background) {
            Ok(Forked::Monitor(fd)) => return Served::Monitor(fd, background),
            Ok(Forked::Server(ours)) => {
                skiff_runtime::sys::send_with_fd(sync, b"+\n", ours.as_raw_fd(), 0).map(|_| ())
            }
            Err(e) => sys::write_all(sync, format!("-fork: {e}\n").as_bytes()),
        };
        if answered.is_err() {
            return Served::Exit(1);
        }
    }
}

enum Forked {
    /// In the server: the caller's end of the new monitor's sync socket.
    Server(OwnedFd),
    /// In the new monitor: its end.
    Monitor(RawFd),
}

/// Forks twice (the middle process leaves at once, so the monitor is nobody's
/// child here and never waits to be reaped by the server).
fn fork_monitor(sync: RawFd, background: bool) -> io::Result<Forked> {
    let (ours, theirs) = stream_pair()?;
    // SAFETY: the server is single-threaded; the middle process only forks and
    // leaves with _exit.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        return Err(io::Error::last_os_error());
    }
    if middle > 0 {
        drop(theirs);
        return match sys::waitpid(middle, 0)? {
            Some((_, 0)) => Ok(Forked::Server(ours)),
            _ => Err(io::Error::other("the second fork failed")),
        };
    }
    if background {
        // Before the second fork: the monitor waits at it from its first moment,
        // and the fork's own work is done at it.
        // SAFETY: setpriority only changes this process's nice value.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
    }
    // SAFETY: as above.
    match unsafe { libc::fork() } {
        0 => {}
        -1 => unsafe { libc::_exit(1) },
        _ => unsafe { libc::_exit(0) },
    }
    drop(ours);
    // SAFETY: the server's socket is not this monitor's; closing it here does not
    // close the server's.
    unsafe { libc::close(sync) };
    crate::detach();
    Ok(Forked::Monitor(theirs.into_raw_fd()))
}

/// A unix stream socket pair, close-on-exec (as the daemon's own pool sockets).
fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    Ok((a.into(), b.into()))
}
