//! Terminals: a pty made inside the container, its master sent to the caller's
//! console socket with SCM_RIGHTS, its slave made the process's stdio and
//! controlling terminal.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::ConsoleSize;
use crate::sys;

/// Connects to the console socket (done by the runtime before it forks).
pub fn connect(path: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last("socket"));
    }
    // SAFETY: fd was just created.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(Error::Config(format!(
            "console socket path too long: {path}"
        )));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: addr is a valid sockaddr_un of length len.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as u32,
        )
    };
    if r != 0 {
        return Err(Error::last(format!("connect to console socket {path}")));
    }
    Ok(sock)
}

/// Opens a new pty from the container's /dev/ptmx; returns (master, slave).
pub fn open_pty(size: Option<ConsoleSize>) -> Result<(OwnedFd, OwnedFd)> {
    let master = sys::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the ptmx fd with valid argument pointers.
    unsafe {
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(Error::last("unlock pty"));
        }
        let slave = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(Error::last("open pty slave"));
        }
        let slave = OwnedFd::from_raw_fd(slave);
        if let Some(sz) = size {
            set_size(&slave, sz)?;
        }
        Ok((master, slave))
    }
}

pub fn set_size(fd: &OwnedFd, sz: ConsoleSize) -> Result<()> {
    let ws = libc::winsize {
        ws_row: sz.height as u16,
        ws_col: sz.width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(Error::last("set the console size"));
    }
    Ok(())
}

/// Sends `fd` over the console socket with SCM_RIGHTS (the payload names the pty).
pub fn send_fd(sock: &OwnedFd, fd: RawFd) -> Result<()> {
    crate::sys::send_with_fd(sock.as_raw_fd(), b"/dev/ptmx", fd, 0)
        .map(drop)
        .map_err(|e| Error::sys("send the pty master to the console socket", e))
}

/// Makes `slave` the stdio and controlling terminal of this (new session) process.
pub fn take_slave(slave: OwnedFd) -> Result<()> {
    let s = slave.as_raw_fd();
    // SAFETY: plain fd syscalls.
    unsafe {
        libc::setsid();
        if libc::ioctl(s, libc::TIOCSCTTY, 0) != 0 {
            return Err(Error::last("make the pty the controlling terminal"));
        }
        for target in 0..3 {
            if libc::dup2(s, target) < 0 {
                return Err(Error::last("dup the pty onto stdio"));
            }
        }
    }
    if s > 2 {
        drop(slave);
    } else {
        std::mem::forget(slave);
    }
    Ok(())
}
