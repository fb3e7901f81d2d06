//! The *at() system calls unpack works with, and path resolution confined to a root.
//!
//! Every call takes a directory fd and one name (never a path through directories),
//! so what an earlier member of a layer put on disk (a symlink, say) can never send a
//! later write somewhere else. Only [`Root::open_dir`] walks paths, and it stays inside
//! the root: `openat2(RESOLVE_IN_ROOT)`, or without openat2 a component-by-component
//! `O_NOFOLLOW` walk that refuses symlinks.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use libc::{c_int, mode_t};

pub(crate) fn errno_is(e: &io::Error, code: c_int) -> bool {
    e.raw_os_error() == Some(code)
}

fn cvt(r: c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `bytes` (which hold no NUL) as a C string in `buf`.
pub(crate) fn cstr<'a>(buf: &'a mut Vec<u8>, bytes: &[u8]) -> io::Result<&'a CStr> {
    buf.clear();
    buf.extend_from_slice(bytes);
    buf.push(0);
    CStr::from_bytes_with_nul(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(crate) fn openat(dir: RawFd, name: &CStr, flags: c_int, mode: mode_t) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated; the result is a new fd we own.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd >= 0 {
            // SAFETY: a fresh fd from the kernel.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if !errno_is(&e, libc::EINTR) {
            return Err(e);
        }
    }
}

/// The directory `name` in `dir`, never through a symlink.
pub(crate) fn open_subdir(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2 with `root` as the root of resolution: absolute symlinks and `..` stay
/// inside it.
fn openat2_in_root(root: RawFd, path: &CStr, flags: c_int) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // EAGAIN: a rename raced with a `..` lookup; EINTR: a signal. Both are retried.
    for _ in 0..64 {
        // SAFETY: `path` is NUL-terminated, `how` lives across the call and its size is
        // passed; the result is a new fd we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: a fresh fd from the kernel.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        if !(errno_is(&e, libc::EAGAIN) || errno_is(&e, libc::EINTR)) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// The destination directory, and lookups confined to it.
pub(crate) struct Root {
    fd: Arc<OwnedFd>,
    openat2: Cell<bool>,
}

impl Root {
    pub(crate) fn new(fd: OwnedFd, use_openat2: bool) -> Self {
        Self {
            fd: Arc::new(fd),
            openat2: Cell::new(use_openat2),
        }
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The root's fd, for work handed to other threads.
    pub(crate) fn shared(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd)
    }

    /// Whether lookups follow symlinks inside the root (openat2) or refuse them.
    pub(crate) fn follows_symlinks(&self) -> bool {
        self.openat2.get()
    }

    /// Opens the directory at `path` (normalized, not empty) under the root.
    ///
    /// With openat2, symlinks on the way resolve as if the root were `/`. Without it
    /// (ENOSYS), a symlink anywhere on the way is refused with ELOOP; a component that
    /// is not a directory gives ENOTDIR.
    pub(crate) fn open_dir(&self, path: &[u8], scratch: &mut Vec<u8>) -> io::Result<OwnedFd> {
        if self.openat2.get() {
            let c = cstr(scratch, path)?;
            match openat2_in_root(self.raw(), c, libc::O_RDONLY | libc::O_DIRECTORY) {
                Err(e) if errno_is(&e, libc::ENOSYS) => self.openat2.set(false),
                other => return other,
            }
        }
        let mut cur: Option<OwnedFd> = None;
        for comp in path.split(|&b| b == b'/') {
            let dir = cur.as_ref().map_or(self.raw(), |f| f.as_raw_fd());
            let c = cstr(scratch, comp)?;
            match open_subdir(dir, c) {
                Ok(fd) => cur = Some(fd),
                Err(e) if errno_is(&e, libc::ELOOP) || errno_is(&e, libc::ENOTDIR) => {
                    let st = fstatat(dir, c, libc::AT_SYMLINK_NOFOLLOW)?;
                    let code = if is_kind(&st, libc::S_IFLNK) {
                        libc::ELOOP
                    } else {
                        libc::ENOTDIR
                    };
                    return Err(io::Error::from_raw_os_error(code));
                }
                Err(e) => return Err(e),
            }
        }
        cur.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }
}

pub(crate) fn mkdirat(dir: RawFd, name: &CStr, mode: mode_t) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
}

pub(crate) fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
}

/// A hard link `ndir/nname` to `odir/oname` (a symlink is linked itself, not followed).
pub(crate) fn linkat(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    cvt(unsafe { libc::linkat(odir, oname.as_ptr(), ndir, nname.as_ptr(), 0) })
}

pub(crate) fn mknodat(dir: RawFd, name: &CStr, mode: mode_t, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    cvt(unsafe { libc::mknodat(dir, name.as_ptr(), mode, dev) })
}

pub(crate) fn unlinkat(dir: RawFd, name: &CStr, flags: c_int) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) })
}

pub(crate) fn fstatat(dir: RawFd, name: &CStr, flags: c_int) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: NUL-terminated name; `st` is written on success.
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: initialized by a successful fstatat.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn is_kind(st: &libc::stat, kind: mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written on success.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: initialized by a successful fstat.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd.
    cvt(unsafe { libc::fchown(fd, uid, gid) })
}

pub(crate) fn lchownat(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    cvt(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

pub(crate) fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd.
    cvt(unsafe { libc::fchmod(fd, mode as mode_t) })
}

/// chmod of `dir/name`; only for nodes this call just created (it follows a symlink).
pub(crate) fn fchmodat(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    cvt(unsafe { libc::fchmodat(dir, name.as_ptr(), mode as mode_t, 0) })
}

pub(crate) fn futimens(fd: RawFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: `times` points at two timespecs.
    cvt(unsafe { libc::futimens(fd, times.as_ptr()) })
}

pub(crate) fn lutimensat(dir: RawFd, name: &CStr, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: NUL-terminated name; `times` points at two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(crate) fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: NUL-terminated name; value pointer and length from a slice.
    cvt(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

pub(crate) fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: NUL-terminated strings; value pointer and length from a slice.
    cvt(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `/proc/self/fd/<dir>/<name>`: a path to `name` in `dir` for the calls that have no
/// *at() form (lsetxattr). The last component is not followed by l*() calls.
pub(crate) fn proc_path(dir: RawFd, name: &CStr) -> CString {
    let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
    p.extend_from_slice(name.to_bytes());
    // The name holds no NUL (it came from a CStr).
    CString::new(p).unwrap_or_default()
}

/// The names in directory `dir`, without `.` and `..`.
pub(crate) fn read_names(dir: RawFd) -> io::Result<Vec<CString>> {
    // A new open file description: readdir must not move `dir`'s offset.
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: on success the DIR owns the fd and closedir closes it.
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    let _ = fd.into_raw_fd();
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir64 returns an entry valid until the next
        // call on `dirp`, which we copy at once.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: dirp came from fdopendir and is closed once.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// Removes `dir/name` and, when it is a directory, everything in it; never follows a
/// symlink. Missing is fine. Directories without write permission (possible when not
/// root) are made writable first.
pub(crate) fn remove_all_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    match unlinkat(dir, name, 0) {
        Ok(()) => return Ok(()),
        Err(e) if errno_is(&e, libc::ENOENT) => return Ok(()),
        Err(e) if errno_is(&e, libc::EISDIR) || errno_is(&e, libc::EPERM) => {}
        Err(e) => return Err(e),
    }
    let sub = match open_subdir(dir, name) {
        Ok(fd) => fd,
        Err(e) if errno_is(&e, libc::EACCES) => {
            fchmodat(dir, name, 0o700)?;
            open_subdir(dir, name)?
        }
        // Not a directory after all: the unlink failed for a real reason.
        Err(e) if errno_is(&e, libc::ENOTDIR) || errno_is(&e, libc::ELOOP) => {
            return unlinkat(dir, name, 0);
        }
        Err(e) => return Err(e),
    };
    clear_dir(sub.as_raw_fd())?;
    drop(sub);
    unlinkat(dir, name, libc::AT_REMOVEDIR)
}

/// Removes everything inside directory `fd`.
pub(crate) fn clear_dir(fd: RawFd) -> io::Result<()> {
    let names = match read_names(fd) {
        Ok(names) => names,
        Err(e) if errno_is(&e, libc::EACCES) => {
            fchmod(fd, 0o700)?;
            read_names(fd)?
        }
        Err(e) => return Err(e),
    };
    let mut fixed = false;
    for name in &names {
        match remove_all_at(fd, name) {
            Err(e) if errno_is(&e, libc::EACCES) && !fixed => {
                fixed = true;
                fchmod(fd, 0o700)?;
                remove_all_at(fd, name)?;
            }
            other => other?,
        }
    }
    Ok(())
}
