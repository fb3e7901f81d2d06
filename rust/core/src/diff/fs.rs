//! The file-system side of diffing: directories read with `getdents64` and entries
//! looked at relative to open directory fds (`openat`, `fstatat`), never following a
//! symbolic link, plus extended attributes filtered for layers.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Runs a syscall wrapper until it is not interrupted.
fn retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn retry_size(mut f: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
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

/// A path as a NUL-terminated C string (paths with NUL bytes cannot exist).
pub fn cpath(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(path.as_os_str().as_bytes());
    if buf.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ));
    }
    buf.push(0);
    Ok(())
}

/// `buf` up to and including its NUL terminator.
pub fn as_cstr(buf: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(buf).expect("built with one trailing NUL")
}

/// What `fstat` says about an entry, in the widths the tar writer wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
impl From<&libc::stat> for Stat {
    fn from(st: &libc::stat) -> Self {
        Stat {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as u32,
            rdev: st.st_rdev as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
        }
    }
}

impl Stat {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    /// An overlayfs whiteout: a character device numbered 0/0.
    pub fn is_whiteout(&self) -> bool {
        self.kind() == libc::S_IFCHR && self.rdev == 0
    }
    #[allow(clippy::unnecessary_cast)]
    pub fn major(&self) -> u32 {
        libc::major(self.rdev as libc::dev_t) as u32
    }
    #[allow(clippy::unnecessary_cast)]
    pub fn minor(&self) -> u32 {
        libc::minor(self.rdev as libc::dev_t) as u32
    }
}

pub fn fstat(fd: RawFd) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer; the kernel fills it on success.
    retry(|| unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so `st` is initialized.
    Ok(Stat::from(unsafe { &st.assume_init() }))
}

/// `lstat` of a path given as a C string.
pub fn lstat(path: &CStr) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid C string and out-pointer.
    retry(|| unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: lstat succeeded.
    Ok(Stat::from(unsafe { &st.assume_init() }))
}

/// An open directory; everything below it is reached relative to its fd.
pub struct Dir {
    fd: OwnedFd,
}

const O_DIR: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
const O_FILE: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

impl Dir {
    /// Opens the directory at `path` (a symlink here is followed: the caller named it).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let mut c = Vec::new();
        cpath(path, &mut c)?;
        // SAFETY: valid C string.
        let fd = retry(|| unsafe { libc::open(c.as_ptr().cast(), O_DIR) })?;
        // SAFETY: a fresh fd we own.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the subdirectory `name`, failing (ELOOP/ENOTDIR) on anything else.
    pub fn open_dir(&self, name: &CStr) -> io::Result<Dir> {
        // SAFETY: valid fd and C string.
        let fd =
            retry(|| unsafe { libc::openat(self.raw(), name.as_ptr(), O_DIR | libc::O_NOFOLLOW) })?;
        // SAFETY: a fresh fd we own.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens `name` for reading without following a symlink, blocking on a fifo or
    /// becoming a controlling terminal.
    pub fn open_file(&self, name: &CStr) -> io::Result<OwnedFd> {
        // SAFETY: valid fd and C string.
        let fd = retry(|| unsafe { libc::openat(self.raw(), name.as_ptr(), O_FILE) })?;
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)` of an entry.
    pub fn stat_at(&self, name: &CStr) -> io::Result<Stat> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid fd, C string and out-pointer.
        retry(|| unsafe {
            libc::fstatat(
                self.raw(),
                name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        // SAFETY: fstatat succeeded.
        Ok(Stat::from(unsafe { &st.assume_init() }))
    }

    /// The target of the symlink `name`, into `buf`.
    pub fn readlink_at(&self, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut cap = 256;
        loop {
            buf.clear();
            buf.reserve(cap);
            // SAFETY: the buffer has `cap` writable bytes.
            let n = retry_size(|| unsafe {
                libc::readlinkat(
                    self.raw(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.capacity(),
                )
            })?;
            if n < buf.capacity() {
                // SAFETY: the kernel wrote `n` bytes.
                unsafe { buf.set_len(n) };
                return Ok(());
            }
            cap = buf.capacity() * 2;
        }
    }

    /// Reads every entry name (but `.` and `..`) into `names`, sorted byte-wise.
    /// `scratch` is a reusable buffer for the raw records.
    pub fn read_names(&self, names: &mut Names, scratch: &mut Vec<u8>) -> io::Result<()> {
        names.clear();
        if scratch.len() < 64 * 1024 {
            scratch.resize(64 * 1024, 0);
        }
        loop {
            // SAFETY: the buffer is writable for its length.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.raw(),
                    scratch.as_mut_ptr(),
                    scratch.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                break;
            }
            let mut off = 0usize;
            let n = n as usize;
            while off < n {
                // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
                let rec = &scratch[off..n];
                let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
                let dtype = rec[18];
                let name_area = &rec[19..reclen];
                let len = name_area
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(name_area.len());
                let name = &name_area[..len];
                if name != b"." && name != b".." {
                    names.push(name, dtype);
                }
                off += reclen;
            }
        }
        names.sort();
        Ok(())
    }
}

/// The names of one directory in a single arena (each NUL-terminated), with their
/// `d_type`, sorted byte-wise.
#[derive(Default)]
pub struct Names {
    bytes: Vec<u8>,
    items: Vec<(u32, u32, u8)>,
}

impl Names {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    fn push(&mut self, name: &[u8], dtype: u8) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        self.bytes.push(0);
        self.items.push((start, name.len() as u32, dtype));
    }

    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.items.sort_unstable_by(|a, b| {
            bytes[a.0 as usize..(a.0 + a.1) as usize]
                .cmp(&bytes[b.0 as usize..(b.0 + b.1) as usize])
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The i-th name, without its NUL.
    pub fn name(&self, i: usize) -> &[u8] {
        let (start, len, _) = self.items[i];
        &self.bytes[start as usize..(start + len) as usize]
    }

    /// The i-th name as a C string.
    pub fn cname(&self, i: usize) -> &CStr {
        let (start, len, _) = self.items[i];
        as_cstr(&self.bytes[start as usize..=(start + len) as usize])
    }

    pub fn dtype(&self, i: usize) -> u8 {
        self.items[i].2
    }

    /// Whether `name` is among the names (binary search).
    pub fn contains(&self, name: &[u8]) -> bool {
        self.items
            .binary_search_by(|&(s, l, _)| self.bytes[s as usize..(s + l) as usize].cmp(name))
            .is_ok()
    }
}

/// Where to read extended attributes from.
#[derive(Clone, Copy)]
pub enum XattrSource<'a> {
    Fd(RawFd),
    /// A path whose last component is not followed (`l*xattr`).
    Path(&'a CStr),
}

/// The extended attributes of one entry as they go into a layer, plus what overlayfs
/// recorded in its own (never copied).
#[derive(Default)]
pub struct Xattrs {
    list: Vec<u8>,
    value: Vec<u8>,
    /// (name, value), sorted by name.
    pub kept: Vec<(Vec<u8>, Vec<u8>)>,
    /// `trusted.overlay.opaque` (or `user.overlay.opaque`) is `y`.
    pub opaque: bool,
    /// overlayfs features Skiff does not use and a layer cannot express from the
    /// upper dir alone.
    pub redirect: bool,
    pub metacopy: bool,
}

/// overlayfs keeps its bookkeeping under these prefixes (`user.` when mounted with
/// `userxattr`); none of it belongs in a layer.
const OVERLAY_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// Host-specific labels that Docker and containerd never put in layers either.
fn host_specific(name: &[u8]) -> bool {
    name == b"security.selinux"
}

impl Xattrs {
    pub fn clear(&mut self) {
        self.kept.clear();
        self.opaque = false;
        self.redirect = false;
        self.metacopy = false;
    }

    /// Loads the attributes of `src`; file systems without xattr support have none.
    pub fn load(&mut self, src: XattrSource<'_>) -> io::Result<()> {
        self.clear();
        let mut list = std::mem::take(&mut self.list);
        let result = self.load_with(src, &mut list);
        self.list = list;
        result
    }

    fn load_with(&mut self, src: XattrSource<'_>, list: &mut Vec<u8>) -> io::Result<()> {
        loop {
            list.clear();
            let cap = list.capacity().max(256);
            list.reserve(cap);
            // SAFETY: the buffer has `capacity` writable bytes.
            let r = retry_size(|| unsafe {
                match src {
                    XattrSource::Fd(fd) => {
                        libc::flistxattr(fd, list.as_mut_ptr().cast(), list.capacity())
                    }
                    XattrSource::Path(p) => {
                        libc::llistxattr(p.as_ptr(), list.as_mut_ptr().cast(), list.capacity())
                    }
                }
            });
            match r {
                Ok(n) => {
                    // SAFETY: the kernel wrote `n` bytes.
                    unsafe { list.set_len(n) };
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
                    let need = xattr_len(src, None)?;
                    list.reserve(need.max(list.capacity() * 2));
                }
                Err(e) if unsupported(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if list.is_empty() {
            return Ok(());
        }
        for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            if let Some(rest) = OVERLAY_PREFIXES.iter().find_map(|p| name.strip_prefix(*p)) {
                match rest {
                    b"opaque" => self.opaque |= self.get(src, name)? && self.value == b"y",
                    b"redirect" => self.redirect = true,
                    b"metacopy" => self.metacopy = true,
                    _ => {}
                }
                continue;
            }
            if host_specific(name) {
                continue;
            }
            if self.get(src, name)? {
                self.kept.push((name.to_vec(), self.value.clone()));
            }
        }
        self.kept.sort_unstable();
        Ok(())
    }

    /// Reads one attribute into `self.value`; false when it vanished meanwhile.
    fn get(&mut self, src: XattrSource<'_>, name: &[u8]) -> io::Result<bool> {
        let mut cname = Vec::with_capacity(name.len() + 1);
        cname.extend_from_slice(name);
        cname.push(0);
        let cname = as_cstr(&cname);
        loop {
            self.value.clear();
            let cap = self.value.capacity().max(128);
            self.value.reserve(cap);
            let buf = &mut self.value;
            // SAFETY: valid C strings and a buffer with `capacity` writable bytes.
            let r = retry_size(|| unsafe {
                match src {
                    XattrSource::Fd(fd) => {
                        libc::fgetxattr(fd, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.capacity())
                    }
                    XattrSource::Path(p) => libc::lgetxattr(
                        p.as_ptr(),
                        cname.as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.capacity(),
                    ),
                }
            });
            match r {
                Ok(n) => {
                    // SAFETY: the kernel wrote `n` bytes.
                    unsafe { buf.set_len(n) };
                    return Ok(true);
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
                    let need = xattr_len(src, Some(cname))?;
                    self.value.reserve(need.max(self.value.capacity() * 2));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The size the kernel needs for the list (`name` None) or one value.
fn xattr_len(src: XattrSource<'_>, name: Option<&CStr>) -> io::Result<usize> {
    // SAFETY: size queries with a null buffer and valid C strings.
    retry_size(|| unsafe {
        match (src, name) {
            (XattrSource::Fd(fd), None) => libc::flistxattr(fd, std::ptr::null_mut(), 0),
            (XattrSource::Path(p), None) => libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0),
            (XattrSource::Fd(fd), Some(n)) => {
                libc::fgetxattr(fd, n.as_ptr(), std::ptr::null_mut(), 0)
            }
            (XattrSource::Path(p), Some(n)) => {
                libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0)
            }
        }
    })
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

/// Reads up to `buf.len()` bytes from `fd`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is writable for its length.
    retry_size(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}
