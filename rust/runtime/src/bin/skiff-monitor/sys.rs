//! Thin wrappers over the system calls the monitor makes: every fd created
//! close-on-exec, EINTR retried. Those of the event loop (read, write, sendmsg,
//! ppoll, clock_gettime) are made directly ([`raw`]), not through libc: see mem.rs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A direct system call ([`raw`]) returning a count, retried on EINTR.
///
/// # Safety
/// The arguments must be valid for system call `nr`.
unsafe fn raw_io(nr: libc::c_long, args: [usize; 4]) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's promise.
        let r = unsafe { raw(nr, args) };
        if r >= 0 {
            return Ok(r as usize);
        }
        if r != -(libc::EINTR as isize) {
            return Err(io::Error::from_raw_os_error(-r as i32));
        }
    }
}

/// Runs a libc call returning ssize_t, retrying on EINTR.
fn retry(mut f: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

pub use skiff_runtime::sys::io_cstr as cstring;

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just created and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid C string.
    owned(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain fcntl on a descriptor.
    owned(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

pub fn set_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor.
    unsafe {
        let fl = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let v = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: plain fcntl on a descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, v) }).map(drop)
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let args = [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0];
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { raw_io(libc::SYS_read, args) }
}

/// Reads into the spare capacity of `buf`, growing its length by what was read.
pub fn read_spare(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let len = buf.len();
    let room = buf.capacity() - len;
    // SAFETY: the spare capacity is valid for writes of `room` bytes, and exactly
    // the `n` bytes the kernel wrote become part of the vector.
    unsafe {
        let n = raw_io(
            libc::SYS_read,
            [fd as usize, buf.as_mut_ptr().add(len) as usize, room, 0],
        )?;
        buf.set_len(len + n);
        Ok(n)
    }
}

pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let args = [fd as usize, buf.as_ptr() as usize, buf.len(), 0];
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { raw_io(libc::SYS_write, args) }
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// Sends the slices as one message, never blocking and never raising SIGPIPE.
/// Returns how many bytes went out.
pub fn sendv(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2];
    let n = parts.len().min(iov.len());
    for (v, p) in iov.iter_mut().zip(parts) {
        v.iov_base = p.as_ptr() as *mut libc::c_void;
        v.iov_len = p.len();
    }
    // SAFETY: a zeroed msghdr is valid; it points at `iov`, which outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n as _;
    let flags = (libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) as usize;
    // SAFETY: `msg` and what it points to are valid for the call.
    unsafe {
        raw_io(
            libc::SYS_sendmsg,
            [fd as usize, &msg as *const _ as usize, flags, 0],
        )
    }
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A non-blocking listening unix stream socket at `path` (replacing a stale one),
/// mode `mode`.
pub fn listen_unix(path: &Path, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let (addr, len) = sockaddr(path)?;
    let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: plain socket call.
    let fd = owned(unsafe { libc::socket(libc::AF_UNIX, flags, 0) })?;
    let _ = std::fs::remove_file(path);
    // SAFETY: `addr` is a valid sockaddr_un of length `len`.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    let c = cstring(path)?;
    // SAFETY: `c` is a valid C string; the socket is not listening yet, so nobody
    // can connect before its mode is right.
    check(unsafe { libc::chmod(c.as_ptr(), mode) })?;
    // SAFETY: plain listen call.
    check(unsafe { libc::listen(fd.as_raw_fd(), 32) })?;
    Ok(fd)
}

/// Accepts one connection (non-blocking, close-on-exec); None when none is queued.
pub fn accept(fd: RawFd) -> io::Result<Option<OwnedFd>> {
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    loop {
        // SAFETY: null address arguments are allowed.
        let r = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) };
        if r >= 0 {
            return owned(r).map(Some);
        }
        match errno() {
            libc::EINTR | libc::ECONNABORTED => continue,
            libc::EAGAIN => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Receives one message carrying a descriptor (SCM_RIGHTS), as runc's console
/// socket protocol sends the pty master. Extra descriptors are closed.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut data = [0u8; 256]; // the pty's name, unused
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 16]; // aligned room for a few descriptors
                               // SAFETY: a zeroed msghdr is valid; the pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT;
    // SAFETY: `msg` is valid for the call.
    retry(|| unsafe { libc::recvmsg(sock, &mut msg, flags) })?;
    let mut got = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const RawFd;
                for i in 0..n {
                    let fd = OwnedFd::from_raw_fd(p.add(i).read_unaligned());
                    if got.is_none() {
                        got = Some(fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(got)
}

/// Blocks `signals` and returns a non-blocking signalfd that reports them.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: the set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        owned(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))
    }
}

/// Reads and discards every pending signal of a signalfd.
pub fn drain_signalfd(fd: RawFd) {
    let mut buf = [0u8; 4 * std::mem::size_of::<libc::signalfd_siginfo>()];
    while matches!(read(fd, &mut buf), Ok(n) if n > 0) {}
}

/// CLOCK_REALTIME as (seconds, nanoseconds).
pub fn now() -> (i64, u32) {
    clock(libc::CLOCK_REALTIME)
}

/// CLOCK_MONOTONIC in milliseconds.
pub fn monotonic_ms() -> i64 {
    let (s, ns) = clock(libc::CLOCK_MONOTONIC);
    s * 1000 + i64::from(ns / 1_000_000)
}

fn clock(id: libc::clockid_t) -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    unsafe {
        raw(
            libc::SYS_clock_gettime,
            [id as usize, &mut ts as *mut _ as usize, 0, 0],
        )
    };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// poll(2) (as ppoll); Ok(0) on timeout or EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000).into(),
        tv_nsec: (timeout_ms % 1000 * 1_000_000).into(),
    };
    let tsp = if timeout_ms < 0 {
        0
    } else {
        &ts as *const _ as usize
    };
    // SAFETY: `fds` is a valid array of its length, `ts` outlives the call.
    let r = unsafe {
        raw(
            libc::SYS_ppoll,
            [fds.as_mut_ptr() as usize, fds.len(), tsp, 0],
        )
    };
    match r {
        0.. => Ok(r as usize),
        _ if r == -(libc::EINTR as isize) => Ok(0),
        _ => Err(io::Error::from_raw_os_error(-r as i32)),
    }
}

/// waitpid; Ok(None) when `WNOHANG` found nothing to reap.
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(libc::pid_t, i32)>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is valid for writes.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r > 0 {
            return Ok(Some((r, status)));
        }
        if r == 0 {
            return Ok(None);
        }
        if errno() != libc::EINTR {
            return Err(io::Error::last_os_error());
        }
    }
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the kernel returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(r as libc::c_int)
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Closes every inherited descriptor from 3 up, except `keep`.
pub fn close_inherited(keep: Option<RawFd>) {
    use skiff_runtime::sys::close_range;
    match keep.filter(|&k| k >= 3) {
        Some(k) => {
            close_range(3, k - 1);
            close_range(k + 1, RawFd::MAX);
        }
        None => close_range(3, RawFd::MAX),
    }
}

/// A system call made directly, without libc's wrapper: the monitor's hot path
/// (and mem.rs's shrinking) touches no libc code this way. Returns the kernel's
/// result, a negative errno on failure.
#[cfg(target_arch = "x86_64")]
pub unsafe fn raw(nr: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call; `syscall` clobbers rcx, r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
pub unsafe fn raw(nr: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            options(nostack),
        );
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn raw(nr: libc::c_long, a: [usize; 4]) -> isize {
    // SAFETY: the caller passes a valid system call.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3]) };
    if r < 0 {
        -(errno() as isize)
    } else {
        r as isize
    }
}
