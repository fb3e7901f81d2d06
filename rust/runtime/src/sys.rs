//! Thin, checked wrappers over the libc calls the runtime makes everywhere.
//! Each returns `Result` with the call and its argument named in the error.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::{check, Context, Error, Result};

pub fn cstr(s: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::Config(format!("{:?} contains a NUL byte", s.as_ref())))
}

pub fn path_cstr(p: &Path) -> Result<CString> {
    cstr(p.as_os_str())
}

/// Writes `value` to an existing file (procfs, sysfs, cgroupfs) in one write.
pub fn write_file(path: impl AsRef<Path>, value: &str) -> Result<()> {
    let path = path.as_ref();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .ctx(|| format!("open {}", path.display()))?;
    f.write_all(value.as_bytes())
        .ctx(|| format!("write {value:?} to {}", path.display()))
}

/// Writes a whole file atomically: a temporary beside it, then rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("rename {} into place", path.display()))
}

/// A pipe or socket pair end that closes on drop.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid 2-element array.
    check(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        || "socketpair".into(),
    )?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message on a SOCK_SEQPACKET socket.
pub fn send_msg(fd: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: msg is a valid buffer for its length.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `data` with the descriptor `fd` (SCM_RIGHTS) as one message on `sock`,
/// with `flags` (MSG_NOSIGNAL always); how many bytes went out.
pub fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Aligned room for one descriptor's cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: a zeroed msghdr is valid; the pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE and CMSG_LEN are pure computations.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
    // SAFETY: the control buffer holds one cmsghdr with one descriptor.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
    }
    loop {
        // SAFETY: `msg` and what it points to are valid for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, flags | libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message (up to 4 KiB); an empty vector means the peer closed.
pub fn recv_msg(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    recv_msg_max(fd, 4096)
}

/// Receives one message of up to `max` bytes (a longer one is an error).
pub fn recv_msg_max(fd: &OwnedFd, max: usize) -> io::Result<Vec<u8>> {
    // Not zeroed first: init takes its process in up to 128 KiB, and touching
    // every page of that costs more than the rest of the receive.
    let mut buf: Vec<u8> = Vec::with_capacity(max);
    loop {
        // SAFETY: the spare capacity is valid for `max` bytes. With MSG_TRUNC a
        // (seqpacket) message longer than that is cut, and its whole length returned.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.spare_capacity_mut().as_mut_ptr().cast(),
                max,
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n as usize > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message of {n} bytes (at most {max})"),
            ));
        }
        // SAFETY: recv wrote these n (<= max, the capacity) bytes.
        unsafe { buf.set_len(n as usize) };
        return Ok(buf);
    }
}

/// Whether a process exists (signal 0 reaches it; EPERM counts as alive).
/// Closes the descriptors from `lo` to `hi` (close_range, or what /proc says is
/// open on kernels before 5.9). The caller owns none of them.
pub fn close_range(lo: RawFd, hi: RawFd) {
    if lo > hi {
        return;
    }
    // SAFETY: the caller vouches that nothing uses these descriptors.
    if unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0) } == 0 {
        return;
    }
    let open: Vec<RawFd> = fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| (lo..=hi).contains(fd)) {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
}

pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `path` as a C string for a call that reports `io::Error`s.
pub fn io_cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// Reads a small file (/proc, cgroupfs) whole: a 4 KiB buffer first, without the
/// stat and the doubling reads of `fs::read_to_string` (whose size hint is 0 there).
pub fn read_small(path: impl AsRef<Path>) -> io::Result<String> {
    use std::io::Read;
    let f = fs::File::open(path)?;
    let mut buf = Vec::with_capacity(4096);
    // Through `take`: File's own read_to_end asks for the size (statx, lseek) first.
    f.take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a live process from a recycled pid; None if gone or
/// a zombie.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let raw = read_small(format!("/proc/{pid}/stat")).ok()?;
    let after = &raw[raw.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Waits for a child; returns its exit code (128+signal when killed, like shells).
pub fn wait_child(pid: i32) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::sys(format!("waitpid {pid}"), err));
        }
        break;
    }
    Ok(exit_code(status))
}

pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// `fstatat(dir, rel, AT_SYMLINK_NOFOLLOW)`: (is a symlink, is a directory).
pub fn lstat_kind_at(dir: &impl AsRawFd, rel: &Path) -> io::Result<(bool, bool)> {
    let c = io_cstr(rel)?;
    // SAFETY: c is a valid C string; st is written by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let kind = st.st_mode & libc::S_IFMT;
    Ok((kind == libc::S_IFLNK, kind == libc::S_IFDIR))
}

/// `readlinkat(dir, rel)`.
pub fn read_link_at(dir: &impl AsRawFd, rel: &Path) -> io::Result<PathBuf> {
    let c = io_cstr(rel)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: c is a valid C string; buf has buf.len() writable bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// `open(2)` with flags, as an owned fd.
pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd> {
    let c = path_cstr(path)?;
    // SAFETY: c is a valid C string.
    let fd = check(
        unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) },
        || format!("open {}", path.display()),
    )?;
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn c_err_text(errno: i32) -> String {
    // SAFETY: strerror returns a valid static C string.
    unsafe { CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// Seconds since the epoch, as RFC 3339 UTC with nanoseconds.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
    }
}
