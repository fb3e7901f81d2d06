//! Network namespaces made ahead of need. A thread of its own unshares one, brings
//! its loopback interface up (a container has 127.0.0.1 even with `--network
//! none`, as with Docker) and opens it; the thread then ends, so the calling
//! process's own namespace is never touched. The descriptor keeps the namespace
//! alive: a runtime joins it by path (`/proc/<pid>/fd/<fd>` of the holder).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// A new network namespace with `lo` up; the descriptor is close-on-exec.
pub fn new_netns() -> Result<OwnedFd> {
    let made = std::thread::Builder::new()
        .name("netns".into())
        .spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: unshare only changes this thread's namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a constant C string.
            let fd = unsafe {
                libc::open(
                    c"/proc/thread-self/ns/net".as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a descriptor we just opened and own.
            let ns = unsafe { OwnedFd::from_raw_fd(fd) };
            loopback_up()?;
            Ok(ns)
        })
        .map_err(|e| Error::io("netns thread", e))?
        .join()
        .map_err(|_| Error::InvalidArgument("the netns thread panicked".into()))?;
    made.map_err(|e| Error::io(Path::new("/proc/thread-self/ns/net"), e))
}

/// Sets IFF_UP on `lo` of the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket call.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode(path: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_new_namespace_with_loopback_up_and_ours_untouched() {
        // SAFETY: geteuid only asks.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let before = inode("/proc/thread-self/ns/net");
        let ns = new_netns().unwrap();
        assert_eq!(inode("/proc/thread-self/ns/net"), before);
        let path = format!("/proc/self/fd/{}", ns.as_raw_fd());
        assert_ne!(inode(&path), before);
        // Join it on a thread of our own and look at lo there.
        let flags = std::thread::spawn(move || {
            // SAFETY: setns on a namespace fd, in this thread only.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            // SAFETY: plain socket/ioctl calls on a zeroed ifreq naming "lo".
            unsafe {
                let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                let mut ifr: libc::ifreq = std::mem::zeroed();
                for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                    *dst = *src as libc::c_char;
                }
                let r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
                libc::close(s);
                assert_eq!(r, 0);
                ifr.ifr_ifru.ifru_flags
            }
        })
        .join()
        .unwrap();
        assert_ne!(flags & libc::IFF_UP as libc::c_short, 0);
    }
}
