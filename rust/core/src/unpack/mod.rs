//! Layer unpack: a (compressed) layer tar to a directory in one streaming pass.
//!
//! ```text
//! source ─▶ sha256 (digest) ─▶ gzip/zstd/none ─▶ sha256 (diffID) ─▶ tar ─▶ *at() calls
//! ```
//!
//! Nothing is buffered whole: the blob is hashed, decompressed, hashed again and
//! extracted as it streams. After the last member the rest of the stream (end-of-archive
//! blocks, padding) is read too, so both digests cover the whole blob, and only then are
//! they compared with what was expected.
//!
//! # Destination
//!
//! `dest` should be a new directory (it is created when missing; its parent must
//! exist) that this call owns: on any error everything under it is removed, and `dest`
//! itself when this call created it. When `dest` already holds files (applying a layer
//! onto a tree), the paths that did not exist before are removed on error, but what the
//! layer replaced or deleted is gone: the caller should then treat the tree as lost.
//!
//! # Safety against hostile layers
//!
//! - Names are cleaned lexically (`/abs` → `abs`, `a/../b` → `b`); a `..` that climbs
//!   above the root, a NUL, a component over 255 bytes or a path over PATH_MAX is an
//!   [`Error::InvalidArgument`] naming the member.
//! - The parent directory of each member is opened with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` on a dirfd of `dest`: symlinks on
//!   the way (`link -> /`, `link -> ../../..`) resolve inside the root, never outside.
//!   Without openat2 (ENOSYS) the walk is by `O_NOFOLLOW` component and a symlink on the
//!   way is refused. The member itself is then made with *at() calls on that dirfd, and
//!   files are opened `O_CREAT | O_EXCL | O_NOFOLLOW` after removing what was there, so a
//!   symlink left by an earlier member is replaced, never followed.
//! - Hard link targets are cleaned and resolved the same way, and must exist in this
//!   layer (a link to a lower layer cannot be made here).
//! - A stream that ends early or does not decompress is `InvalidArgument("truncated or
//!   corrupt layer: ...")`.
//!
//! # Whiteouts
//!
//! [`Whiteouts::Overlay`] writes them the way overlayfs reads them: `.wh.<name>` becomes
//! a 0/0 character device `<name>`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y`
//! on its directory. [`Whiteouts::Apply`] carries them out instead: the named path is
//! removed, and an opaque directory loses everything this layer did not put in it.
//! Whiteout members themselves are never written; other `.wh..wh.` names (AUFS
//! metadata) are skipped, as Docker does.
//!
//! # Metadata
//!
//! Owners (with `same_owner`), then xattrs (`SCHILY.xattr.*`; chown drops
//! `security.capability`, so they come after), then modes with setuid/setgid/sticky
//! (chown clears setuid, so after that), then times (PAX nanoseconds when present).
//! Directory modes and times are set at the very end, in reverse order, so writing into
//! a read-only directory works and creating files does not disturb their mtimes. A
//! directory member for the root itself (`./`) applies to `dest`, as Docker does.

mod files;
mod path;
mod stream;
mod sys;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compress::{self, Compression};
use crate::digest::{self, Sha256Digester};
use crate::error::{Error, IoContext, Result};

use stream::{Kind, Member, TarError, TarReader, Time};

/// How whiteouts in the layer are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// As overlayfs reads them (0/0 character devices, `trusted.overlay.opaque=y`), for a
    /// snapshot that will be a lower layer of an overlay mount.
    #[default]
    Overlay,
    /// Carried out (deletions), for flattening layers onto one tree.
    Apply,
}

impl Whiteouts {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "overlay" => Some(Whiteouts::Overlay),
            "apply" => Some(Whiteouts::Apply),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// sha256 of the compressed stream (the blob), `sha256:<hex>`.
    pub expected_digest: Option<String>,
    /// sha256 of the uncompressed tar (the diffID), `sha256:<hex>`.
    pub expected_diff_id: Option<String>,
    pub whiteouts: Whiteouts,
    /// chown to the tar's uid/gid (needs root).
    pub same_owner: bool,
    /// Threads that create small regular files while the calling thread goes on
    /// reading the layer (see `files.rs`); 0 does everything on the calling thread.
    /// Used only when `dest` starts empty.
    pub file_workers: usize,
}

/// One worker per CPU, at most 4; none on a single CPU (nothing to overlap with).
fn default_file_workers() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => 0,
        n => n.min(4),
    }
}

impl Default for UnpackOptions {
    /// No expected digests, overlay whiteouts, owners kept when running as root.
    fn default() -> Self {
        Self {
            expected_digest: None,
            expected_diff_id: None,
            whiteouts: Whiteouts::Overlay,
            // SAFETY: geteuid cannot fail.
            same_owner: unsafe { libc::geteuid() } == 0,
            file_workers: default_file_workers(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the compressed stream, `sha256:<hex>`.
    pub digest: String,
    pub compressed_size: u64,
    /// sha256 of the uncompressed tar, `sha256:<hex>`.
    pub diff_id: String,
    /// Bytes of uncompressed tar.
    pub size: u64,
    /// Members in the tar (extension headers not counted).
    pub entries: u64,
    pub compression: Compression,
}

/// Unpacks the layer read from `reader` into `dest`; see the module documentation.
pub fn unpack(reader: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    unpack_with(reader, Path::new("<layer stream>"), dest, opts, true)
}

/// Unpacks the layer blob at `path` into `dest`.
pub fn unpack_file(path: &Path, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let file = File::open(path).at(path)?;
    // Advice only: a failure changes nothing but read-ahead.
    // SAFETY: the fd is valid while `file` lives.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    unpack_with(file, path, dest, opts, true)
}

/// Unpacks the layer read from `fd` (a file or a pipe) into `dest`; the fd is closed.
pub fn unpack_fd(fd: OwnedFd, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let label = PathBuf::from(format!("<fd {}>", fd.as_raw_fd()));
    unpack_with(File::from(fd), &label, dest, opts, true)
}

/// Copy buffer for file data: large enough that syscalls do not matter.
const COPY_BUF: usize = 1 << 20;
/// Buffer between the decompressor and the tar reader (headers are read 512 bytes at
/// a time).
const TAR_BUF: usize = 256 * 1024;

/// Hashes what is read through it; remembers the last error of the source, so errors
/// of the source (I/O) can be told from errors of the format (decompression, tar).
struct Hashing<'s, R> {
    inner: R,
    digester: Sha256Digester,
    source_error: Option<&'s Cell<Option<io::Error>>>,
}

impl<'s, R: Read> Hashing<'s, R> {
    fn new(inner: R, source_error: Option<&'s Cell<Option<io::Error>>>) -> Self {
        Self {
            inner,
            digester: Sha256Digester::new(),
            source_error,
        }
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.digester.update(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Some(cell) = self.source_error {
                        cell.set(Some(match e.raw_os_error() {
                            Some(code) => io::Error::from_raw_os_error(code),
                            None => io::Error::new(e.kind(), e.to_string()),
                        }));
                    }
                    return Err(e);
                }
            }
        }
    }
}

fn drain(mut r: impl Read, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The whole operation; `use_openat2` false forces the fallback walk (for tests).
fn unpack_with<R: Read>(
    reader: R,
    src: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    use_openat2: bool,
) -> Result<UnpackStats> {
    let want_digest = opts
        .expected_digest
        .as_deref()
        .map(digest::parse_sha256_digest)
        .transpose()?;
    let want_diff_id = opts
        .expected_diff_id
        .as_deref()
        .map(digest::parse_sha256_digest)
        .transpose()?;

    let cdest = CString::new(dest.as_os_str().as_bytes()).map_err(|_| {
        Error::InvalidArgument(format!("destination {} holds a NUL byte", dest.display()))
    })?;
    let created = match std::fs::create_dir(dest) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io(dest, e)),
    };
    let root = match sys::openat(
        libc::AT_FDCWD,
        &cdest,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(dest);
            }
            return Err(Error::io(dest, e));
        }
    };
    // Track what this call creates only when `dest` already holds something: otherwise
    // everything under it is this layer's, which is all cleanup and opaque dirs need.
    let tracked = !created
        && match sys::read_names(root.as_raw_fd()) {
            Ok(names) => !names.is_empty(),
            Err(e) => return Err(Error::io(dest, e)),
        };

    let mut u = Unpacker::new(dest, opts, sys::Root::new(root, use_openat2), tracked);
    let source_error = Cell::new(None);
    let result = u.run(reader, src, &source_error, want_digest, want_diff_id);
    if result.is_err() {
        u.cleanup(created);
    }
    result
}

/// Paths this call made or touched, kept only when `dest` was not empty.
#[derive(Default)]
struct Tracking {
    /// Every path a member or an implied parent of this layer names.
    seen: HashSet<Vec<u8>>,
    /// The paths that did not exist before (removed again on failure).
    fresh: Vec<Vec<u8>>,
}

/// A directory whose mode and times are set at the end.
struct DeferredDir {
    path: Range,
    mode: u32,
    times: [libc::timespec; 2],
}

type Range = std::ops::Range<usize>;

struct Unpacker<'a> {
    dest: &'a Path,
    opts: &'a UnpackOptions,
    root: sys::Root,
    /// The parent directory of the previous member, reused while members stay in it,
    /// and what [`DirInfo`] says of it.
    cache_path: Vec<u8>,
    cache_fd: Option<Arc<OwnedFd>>,
    cache_info: DirInfo,
    cache_ok: bool,
    root_info: DirInfo,
    track: Option<Tracking>,
    dirs: Vec<DeferredDir>,
    dir_paths: Vec<u8>,
    /// The current member's cleaned path, and a hard link's cleaned target.
    path: Vec<u8>,
    link: Vec<u8>,
    /// Scratch space for C strings.
    name_buf: Vec<u8>,
    aux_buf: Vec<u8>,
    lookup_buf: Vec<u8>,
    buf: Vec<u8>,
    entries: u64,
    /// The process umask, read once: a file whose mode survives it is created with
    /// that mode and needs no fchmod (one syscall less per file).
    umask: u32,
    /// Effective uid and gid: what a new file is owned by (unless its directory gives
    /// it its group), when no fchown is needed.
    euid: u32,
    egid: u32,
    /// Workers for small files (0: none), started at the first such file.
    workers: usize,
    pool: Option<files::Pool>,
    /// Every entry made so far, as a hash of (parent directory inode, name), while
    /// workers are used: a name not in here cannot be in the way of a new file.
    seen: HashSet<u64>,
}

/// What the unpack needs to know of a parent directory: its inode (to key the names
/// made in it) and whether a new file in it is owned by the group it should be.
#[derive(Clone, Copy, Default)]
struct DirInfo {
    ino: u64,
    gid: u32,
}

fn dir_info(fd: RawFd) -> io::Result<DirInfo> {
    let st = sys::fstat(fd)?;
    Ok(DirInfo {
        ino: st.st_ino as u64,
        gid: st.st_gid,
    })
}

fn name_key(dir: DirInfo, name: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name, dir.ino)
}

/// The umask without changing it (umask(2) can only be read by setting it, which
/// would race other threads): from /proc/self/status; all bits when unknown, so
/// every file gets its fchmod.
fn read_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o7777)
}

fn timespec(t: Time) -> libc::timespec {
    libc::timespec {
        tv_sec: t.secs as libc::time_t,
        tv_nsec: t.nanos as _,
    }
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("truncated or corrupt layer: {e}"))
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, opts: &'a UnpackOptions, root: sys::Root, tracked: bool) -> Self {
        // A tree that held something before may have anything in the way of a file:
        // only the calling thread, which clears it first, creates files there.
        let workers = if tracked { 0 } else { opts.file_workers };
        Self {
            dest,
            opts,
            root_info: DirInfo::default(),
            root,
            cache_path: Vec::with_capacity(256),
            cache_fd: None,
            cache_info: DirInfo::default(),
            cache_ok: false,
            track: tracked.then(Tracking::default),
            dirs: Vec::new(),
            dir_paths: Vec::new(),
            path: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            name_buf: Vec::with_capacity(256),
            aux_buf: Vec::with_capacity(256),
            lookup_buf: Vec::with_capacity(256),
            buf: vec![0; COPY_BUF],
            entries: 0,
            umask: read_umask(),
            // SAFETY: geteuid and getegid cannot fail.
            euid: unsafe { libc::geteuid() },
            egid: unsafe { libc::getegid() },
            workers,
            pool: None,
            seen: HashSet::new(),
        }
    }

    /// Whether names and parent directories are looked at closely: for workers (see
    /// `files.rs`) and for leaving out chowns that would change nothing.
    fn watch_dirs(&self) -> bool {
        self.workers > 0 || self.opts.same_owner
    }

    /// Waits until every file handed to the workers exists; their first failure.
    fn wait_files(&mut self) -> Result<()> {
        match &mut self.pool {
            Some(pool) => pool.wait(),
            None => Ok(()),
        }
    }

    fn run<R: Read>(
        &mut self,
        reader: R,
        src: &Path,
        source_error: &Cell<Option<io::Error>>,
        want_digest: Option<[u8; 32]>,
        want_diff_id: Option<[u8; 32]>,
    ) -> Result<UnpackStats> {
        // An error of the source is an I/O error about `src`; any other error while
        // reading is the layer's fault.
        let stream_err = |e: io::Error| match source_error.take() {
            Some(source) => Error::io(src, source),
            None => corrupt(e),
        };
        let tar_err = |e: TarError| match e {
            TarError::Io(e) => stream_err(e),
            TarError::Format(msg) => corrupt(msg),
        };

        if self.watch_dirs() {
            self.root_info = dir_info(self.root.raw()).at(self.dest)?;
        }
        let mut raw = Hashing::new(reader, Some(source_error));
        let (compression, diff) = {
            let (compression, decoded) = compress::decoder(&mut raw).map_err(stream_err)?;
            let mut tar = TarReader::new(BufReader::with_capacity(
                TAR_BUF,
                Hashing::new(decoded, None),
            ));
            while let Some(member) = tar.next().map_err(tar_err)? {
                self.entries += 1;
                self.member(&mut tar, &member, &stream_err)?;
            }
            self.wait_files()?;
            self.pool = None;
            let mut rest = tar.into_inner();
            drain(&mut rest, &mut self.buf).map_err(stream_err)?;
            (compression, rest.into_inner().digester)
        };
        drain(&mut raw, &mut self.buf).map_err(stream_err)?;
        let size = diff.len();
        let diff = diff.finalize();
        let compressed_size = raw.digester.len();
        let blob = raw.digester.finalize();
        for (want, got) in [(want_digest, blob), (want_diff_id, diff)] {
            if let Some(want) = want {
                if want != got {
                    return Err(Error::DigestMismatch {
                        expected: digest::oci_digest(&want),
                        actual: digest::oci_digest(&got),
                    });
                }
            }
        }
        self.finish_dirs()?;
        Ok(UnpackStats {
            digest: digest::oci_digest(&blob),
            compressed_size,
            diff_id: digest::oci_digest(&diff),
            size,
            entries: self.entries,
            compression,
        })
    }

    // ---- errors --------------------------------------------------------------------

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// An I/O error about the current member.
    fn io_err(&self, e: io::Error) -> Error {
        Error::io(self.dest.join(OsStr::from_bytes(&self.path)), e)
    }

    fn invalid(&self, why: impl std::fmt::Display) -> Error {
        Error::InvalidArgument(format!("layer member {:?}: {why}", self.shown()))
    }

    // ---- lookups -------------------------------------------------------------------

    /// The directory `self.path[..len]` in the root, made (mode 0755, like Docker)
    /// with any missing parents when `create`; None when missing and not `create`.
    ///
    /// The fd returned stays valid until the next call.
    fn parent(&mut self, len: usize, create: bool) -> Result<Option<RawFd>> {
        if len == 0 {
            return Ok(Some(self.root.raw()));
        }
        let want = &self.path[..len];
        if self.cache_ok && self.cache_path == want {
            if let Some(fd) = &self.cache_fd {
                return Ok(Some(fd.as_raw_fd()));
            }
        }
        let mut found = self.root.open_dir(want, &mut self.lookup_buf);
        // Files still being written can only turn a missing component into a file,
        // never make a directory appear: when the lookup fails, look again once they
        // are all there, so the outcome is the one of a member-by-member unpack.
        if let Err(e) = &found {
            if self.pool.is_some()
                && (sys::errno_is(e, libc::ENOENT) || sys::errno_is(e, libc::ENOTDIR))
            {
                self.wait_files()?;
                found = self.root.open_dir(&self.path[..len], &mut self.lookup_buf);
            }
        }
        let fd = match found {
            Ok(fd) => fd,
            Err(e) if sys::errno_is(&e, libc::ENOENT) => {
                if !create {
                    return Ok(None);
                }
                self.make_dirs(len)?
            }
            Err(e) => return Err(self.lookup_err(e, len)),
        };
        let raw = fd.as_raw_fd();
        self.cache_info = if self.watch_dirs() {
            dir_info(raw)
                .map_err(|e| Error::io(self.dest.join(OsStr::from_bytes(&self.path[..len])), e))?
        } else {
            DirInfo::default()
        };
        self.cache_path.clear();
        self.cache_path.extend_from_slice(&self.path[..len]);
        self.cache_fd = Some(Arc::new(fd));
        self.cache_ok = true;
        Ok(Some(raw))
    }

    /// The parent directory of the current member (after [`Self::parent`] found it)
    /// as a handle for a worker, and what is known of it.
    fn parent_handle(&self, len: usize) -> (Arc<OwnedFd>, DirInfo) {
        match &self.cache_fd {
            Some(fd) if len > 0 => (Arc::clone(fd), self.cache_info),
            _ => (self.root.shared(), self.root_info),
        }
    }

    fn parent_info(&self, len: usize) -> DirInfo {
        if len == 0 {
            self.root_info
        } else {
            self.cache_info
        }
    }

    fn lookup_err(&self, e: io::Error, len: usize) -> Error {
        let dir = String::from_utf8_lossy(&self.path[..len]).into_owned();
        if sys::errno_is(&e, libc::ENOTDIR) {
            self.invalid(format_args!("{dir:?} is not a directory"))
        } else if sys::errno_is(&e, libc::ELOOP) {
            if self.root.follows_symlinks() {
                self.invalid(format_args!("too many levels of symbolic links in {dir:?}"))
            } else {
                self.invalid(format_args!(
                    "{dir:?} goes through a symbolic link (refused: no openat2 on this kernel)"
                ))
            }
        } else {
            Error::io(self.dest.join(OsStr::from_bytes(&self.path[..len])), e)
        }
    }

    /// Makes the missing directories of `self.path[..len]`; returns the last one.
    fn make_dirs(&mut self, len: usize) -> Result<OwnedFd> {
        let mut cur: Option<OwnedFd> = None;
        let mut creating = false;
        let mut start = 0;
        while start < len {
            let end = self.path[start..len]
                .iter()
                .position(|&b| b == b'/')
                .map_or(len, |i| start + i);
            if !creating {
                match self.root.open_dir(&self.path[..end], &mut self.lookup_buf) {
                    Ok(fd) => {
                        cur = Some(fd);
                        start = end + 1;
                        continue;
                    }
                    Err(e) if sys::errno_is(&e, libc::ENOENT) => creating = true,
                    Err(e) => return Err(self.lookup_err(e, end)),
                }
            }
            let dir = cur.as_ref().map_or(self.root.raw(), |f| f.as_raw_fd());
            if self.workers > 0 {
                let info = match &cur {
                    None => Ok(self.root_info),
                    Some(fd) => dir_info(fd.as_raw_fd()),
                };
                let info = info.map_err(|e| {
                    Error::io(self.dest.join(OsStr::from_bytes(&self.path[..end])), e)
                })?;
                self.seen.insert(name_key(info, &self.path[start..end]));
            }
            let made = (|| {
                let name = sys::cstr(&mut self.aux_buf, &self.path[start..end])?;
                match sys::mkdirat(dir, name, 0o755) {
                    Err(e) if !sys::errno_is(&e, libc::EEXIST) => return Err(e),
                    _ => {}
                }
                let fd = sys::open_subdir(dir, name)?;
                // Not left to the umask.
                sys::fchmod(fd.as_raw_fd(), 0o755)?;
                Ok(fd)
            })();
            let fd = match made {
                Ok(fd) => fd,
                // It exists, yet the lookup found nothing: a symlink to a missing path.
                Err(e) if sys::errno_is(&e, libc::ELOOP) || sys::errno_is(&e, libc::ENOTDIR) => {
                    return Err(self.invalid(format_args!(
                        "{:?} is a symbolic link to a missing directory",
                        String::from_utf8_lossy(&self.path[..end])
                    )))
                }
                Err(e) => {
                    return Err(Error::io(
                        self.dest.join(OsStr::from_bytes(&self.path[..end])),
                        e,
                    ))
                }
            };
            if let Some(t) = &mut self.track {
                t.seen.insert(self.path[..end].to_vec());
                t.fresh.push(self.path[..end].to_vec());
            }
            cur = Some(fd);
            start = end + 1;
        }
        cur.ok_or_else(|| self.invalid("empty parent"))
    }

    /// Makes room for a new `name` in `dir` after the create call said EEXIST: keeps a
    /// directory when `keep_dir` (returns false), else removes what is there.
    fn clear_slot(&mut self, dir: RawFd, name: &CStr, keep_dir: bool) -> Result<bool> {
        let st = match sys::fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) if sys::errno_is(&e, libc::ENOENT) => return Ok(true),
            Err(e) => return Err(self.io_err(e)),
        };
        let is_dir = sys::is_kind(&st, libc::S_IFDIR);
        if is_dir && keep_dir {
            return Ok(false);
        }
        if is_dir || sys::is_kind(&st, libc::S_IFLNK) {
            // Cached lookups may have gone through it.
            self.cache_ok = false;
        }
        sys::remove_all_at(dir, name).map_err(|e| self.io_err(e))?;
        Ok(true)
    }

    /// Runs `create` and, when something is in the way, clears it and runs it again.
    /// Returns the result and whether the path is new (did not exist before).
    fn create<T>(
        &mut self,
        dir: RawFd,
        name: &CStr,
        mut create: impl FnMut() -> io::Result<T>,
    ) -> Result<(T, bool)> {
        match create() {
            Ok(v) => return Ok((v, true)),
            Err(e) if sys::errno_is(&e, libc::EEXIST) => {}
            Err(e) => return Err(self.io_err(e)),
        }
        self.clear_slot(dir, name, false)?;
        match create() {
            Ok(v) => Ok((v, false)),
            Err(e) => Err(self.io_err(e)),
        }
    }

    // ---- members -------------------------------------------------------------------

    fn member<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        m: &Member,
        stream_err: &dyn Fn(io::Error) -> Error,
    ) -> Result<()> {
        if let Err(why) = path::normalize(tar.path(), &mut self.path) {
            return Err(Error::InvalidArgument(format!(
                "layer member {:?}: {why}",
                String::from_utf8_lossy(tar.path())
            )));
        }
        if self.path.is_empty() {
            if m.kind != Kind::Dir {
                return Err(self.invalid("names the layer root but is not a directory"));
            }
            let root = self.root.raw();
            self.dir_meta(tar, m, root)?;
            if self.watch_dirs() {
                self.root_info = dir_info(root).at(self.dest)?;
            }
            self.defer_dir(m);
            return Ok(());
        }
        let (parent_len, name_start) = path::split(&self.path);
        if self.path[name_start..].starts_with(b".wh.") {
            // A whiteout removes or replaces what may be a file still being written.
            self.wait_files()?;
            return self.whiteout(parent_len, name_start);
        }

        // With `create`, the lookup makes the parent or fails: never None.
        let pfd = self
            .parent(parent_len, true)?
            .ok_or_else(|| self.invalid("has no parent directory"))?;
        let mut offload = false;
        if self.workers > 0 {
            let key = name_key(self.parent_info(parent_len), &self.path[name_start..]);
            let fresh_name = self.seen.insert(key);
            if !fresh_name || m.kind == Kind::HardLink {
                // The name is taken (by what may be a file still being written), or
                // the link's target may be such a file.
                self.wait_files()?;
            }
            offload = fresh_name && m.kind == Kind::File && m.size <= files::MAX_JOB_FILE;
        }
        let mut name_buf = std::mem::take(&mut self.name_buf);
        let result = sys::cstr(&mut name_buf, &self.path[name_start..])
            .map_err(|e| self.io_err(e))
            .and_then(|name| match m.kind {
                Kind::File if offload => self.file_job(tar, m, parent_len, name, stream_err),
                Kind::File => self.file(tar, m, pfd, parent_len, name, stream_err),
                Kind::Dir => self.dir(tar, m, pfd, name),
                Kind::Symlink => self.symlink(tar, m, pfd, name),
                Kind::HardLink => self.hardlink(tar, pfd, name),
                Kind::Char | Kind::Block | Kind::Fifo => self.node(tar, m, pfd, name),
            });
        self.name_buf = name_buf;
        let fresh = result?;
        if let Some(t) = &mut self.track {
            if !t.seen.contains(&self.path) {
                t.seen.insert(self.path.clone());
            }
            if fresh {
                t.fresh.push(self.path.clone());
            }
        }
        Ok(())
    }

    /// The mode to create a file with, and whether it is the member's mode already.
    fn create_mode(&self, m: &Member) -> (u32, bool) {
        // Plain permission bits the umask leaves alone are set by the create itself.
        let exact = m.mode & 0o7000 == 0 && m.mode & self.umask == 0;
        (if exact { m.mode & 0o777 } else { 0o600 }, exact)
    }

    /// The owner to give a new file in the parent directory `parent_len` long, or None
    /// when it has that owner already: created by this euid, in a directory whose group
    /// is the egid (so neither a set-group-ID directory nor a `grpid` mount gives it
    /// another group). chown would also clear set-user-ID bits and file capabilities,
    /// which is why modes and xattrs are set after it.
    fn file_owner(&self, m: &Member, parent_len: usize) -> Result<Option<(u32, u32)>> {
        if !self.opts.same_owner {
            return Ok(None);
        }
        let (uid, gid) = (self.uid(m)?, self.gid(m)?);
        let unchanged =
            uid == self.euid && gid == self.egid && self.parent_info(parent_len).gid == self.egid;
        Ok((!unchanged).then_some((uid, gid)))
    }

    /// A small new file, handed to a worker with its data (see `files.rs`).
    fn file_job<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        m: &Member,
        parent_len: usize,
        name: &CStr,
        stream_err: &dyn Fn(io::Error) -> Error,
    ) -> Result<bool> {
        let mut data = vec![0; m.size as usize];
        let mut got = 0;
        while got < data.len() {
            let n = tar.read_data(&mut data[got..]).map_err(stream_err)?;
            if n == 0 {
                return Err(stream_err(io::Error::from(io::ErrorKind::UnexpectedEof)));
            }
            got += n;
        }
        let mut xattrs = Vec::new();
        for (xname, value) in tar.xattrs() {
            let cname = CString::new(xname)
                .map_err(|_| self.xattr_err(xname, io::Error::from_raw_os_error(libc::EINVAL)))?;
            xattrs.push((cname, value.to_vec()));
        }
        let (create_mode, exact) = self.create_mode(m);
        let (dir, info) = self.parent_handle(parent_len);
        let job = files::FileJob {
            seq: self.entries,
            dir,
            name: name.to_owned(),
            path: self.path.clone(),
            data,
            create_mode,
            chmod: (!exact).then_some(m.mode),
            owner: self.file_owner(m, parent_len)?,
            xattrs,
            times: times(m),
        };
        let pool = match &mut self.pool {
            Some(pool) => pool,
            None => self.pool.insert(files::Pool::new(self.workers, self.dest)?),
        };
        pool.submit(job, info.ino)?;
        Ok(true)
    }

    fn file<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        m: &Member,
        dir: RawFd,
        parent_len: usize,
        name: &CStr,
        stream_err: &dyn Fn(io::Error) -> Error,
    ) -> Result<bool> {
        let (create_mode, exact) = self.create_mode(m);
        let owner = self.file_owner(m, parent_len)?;
        let flags = files::CREATE_FLAGS;
        let (fd, fresh) = self.create(dir, name, || sys::openat(dir, name, flags, create_mode))?;
        let mut file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let copied = (|| loop {
            let n = tar.read_data(&mut buf).map_err(stream_err)?;
            if n == 0 {
                return Ok(());
            }
            file.write_all(&buf[..n]).map_err(|e| self.io_err(e))?;
        })();
        self.buf = buf;
        copied?;
        let fd = file.as_raw_fd();
        if let Some((uid, gid)) = owner {
            sys::fchown(fd, uid, gid).map_err(|e| self.io_err(e))?;
        }
        self.xattrs_fd(tar, fd)?;
        // `create` always makes a new file (it clears what was in the way first), so
        // the mode given at creation stands.
        if !exact {
            sys::fchmod(fd, m.mode).map_err(|e| self.io_err(e))?;
        }
        sys::futimens(fd, &times(m)).map_err(|e| self.io_err(e))?;
        Ok(fresh)
    }

    fn dir<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        m: &Member,
        dir: RawFd,
        name: &CStr,
    ) -> Result<bool> {
        // Owner-only until the end: the real mode may not let us write into it.
        let fresh = match sys::mkdirat(dir, name, 0o700) {
            Ok(()) => true,
            Err(e) if sys::errno_is(&e, libc::EEXIST) => {
                if self.clear_slot(dir, name, true)? {
                    sys::mkdirat(dir, name, 0o700).map_err(|e| self.io_err(e))?;
                }
                false
            }
            Err(e) => return Err(self.io_err(e)),
        };
        let fd = sys::open_subdir(dir, name).map_err(|e| self.io_err(e))?;
        self.dir_meta(tar, m, fd.as_raw_fd())?;
        self.defer_dir(m);
        // The next members are most likely in this directory.
        self.cache_info = if self.watch_dirs() {
            dir_info(fd.as_raw_fd()).map_err(|e| self.io_err(e))?
        } else {
            DirInfo::default()
        };
        self.cache_path.clear();
        self.cache_path.extend_from_slice(&self.path);
        self.cache_fd = Some(Arc::new(fd));
        self.cache_ok = true;
        Ok(fresh)
    }

    /// Owner and xattrs of a directory now; its mode and times come at the end.
    fn dir_meta<R: Read>(&mut self, tar: &TarReader<R>, m: &Member, fd: RawFd) -> Result<()> {
        if self.opts.same_owner {
            sys::fchown(fd, self.uid(m)?, self.gid(m)?).map_err(|e| self.io_err(e))?;
        }
        self.xattrs_fd(tar, fd)
    }

    fn defer_dir(&mut self, m: &Member) {
        let start = self.dir_paths.len();
        self.dir_paths.extend_from_slice(&self.path);
        self.dirs.push(DeferredDir {
            path: start..self.dir_paths.len(),
            mode: m.mode,
            times: times(m),
        });
    }

    fn symlink<R: Read>(
        &mut self,
        tar: &TarReader<R>,
        m: &Member,
        dir: RawFd,
        name: &CStr,
    ) -> Result<bool> {
        let target = tar.link();
        if target.is_empty() || target.contains(&0) || target.len() >= path::PATH_MAX {
            return Err(self.invalid("has an empty, overlong or NUL-holding symlink target"));
        }
        let mut target_buf = std::mem::take(&mut self.aux_buf);
        let result = (|| {
            let target = sys::cstr(&mut target_buf, target).map_err(|e| self.io_err(e))?;
            self.create(dir, name, || sys::symlinkat(target, dir, name))
        })();
        self.aux_buf = target_buf;
        let ((), fresh) = result?;
        if self.opts.same_owner {
            sys::lchownat(dir, name, self.uid(m)?, self.gid(m)?).map_err(|e| self.io_err(e))?;
        }
        self.xattrs_path(tar, dir, name)?;
        sys::lutimensat(dir, name, &times(m)).map_err(|e| self.io_err(e))?;
        Ok(fresh)
    }

    fn hardlink<R: Read>(&mut self, tar: &TarReader<R>, dir: RawFd, name: &CStr) -> Result<bool> {
        if let Err(why) = path::normalize(tar.link(), &mut self.link) {
            return Err(self.invalid(format_args!(
                "hard link target {:?} {why}",
                String::from_utf8_lossy(tar.link())
            )));
        }
        if self.link.is_empty() {
            return Err(self.invalid("is a hard link to the layer root"));
        }
        let (tparent_len, tname_start) = path::split(&self.link);
        // Resolved like any path: inside the root.
        let tdir_owned = if tparent_len == 0 {
            None
        } else {
            match self
                .root
                .open_dir(&self.link[..tparent_len], &mut self.lookup_buf)
            {
                Ok(fd) => Some(fd),
                Err(e) if sys::errno_is(&e, libc::ENOENT) || sys::errno_is(&e, libc::ENOTDIR) => {
                    return Err(self.missing_target())
                }
                Err(e) => return Err(self.io_err(e)),
            }
        };
        let tdir = tdir_owned
            .as_ref()
            .map_or(self.root.raw(), |f| f.as_raw_fd());
        let mut tname_buf = std::mem::take(&mut self.aux_buf);
        let result = (|| {
            let tname =
                sys::cstr(&mut tname_buf, &self.link[tname_start..]).map_err(|e| self.io_err(e))?;
            let link = || sys::linkat(tdir, tname, dir, name);
            match link() {
                Ok(()) => return Ok(true),
                Err(e) if sys::errno_is(&e, libc::ENOENT) => return Err(self.missing_target()),
                Err(e) if sys::errno_is(&e, libc::EEXIST) => {}
                Err(e) if sys::errno_is(&e, libc::EPERM) => {
                    return Err(self.invalid(format_args!(
                        "cannot hard link to {:?} (a directory?): {e}",
                        String::from_utf8_lossy(&self.link)
                    )))
                }
                Err(e) => return Err(self.io_err(e)),
            }
            // Already linked (the same member twice, or a link to itself): nothing to do.
            let target = sys::fstatat(tdir, tname, libc::AT_SYMLINK_NOFOLLOW)
                .map_err(|_| self.missing_target())?;
            if let Ok(here) = sys::fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
                if here.st_dev == target.st_dev && here.st_ino == target.st_ino {
                    return Ok(false);
                }
            }
            self.clear_slot(dir, name, false)?;
            link().map_err(|e| self.io_err(e))?;
            Ok(false)
        })();
        self.aux_buf = tname_buf;
        result
    }

    fn missing_target(&self) -> Error {
        self.invalid(format_args!(
            "hard link target {:?} does not exist in this layer",
            String::from_utf8_lossy(&self.link)
        ))
    }

    fn node<R: Read>(
        &mut self,
        tar: &TarReader<R>,
        m: &Member,
        dir: RawFd,
        name: &CStr,
    ) -> Result<bool> {
        let (kind, dev) = match m.kind {
            Kind::Char => (libc::S_IFCHR, libc::makedev(m.dev_major, m.dev_minor)),
            Kind::Block => (libc::S_IFBLK, libc::makedev(m.dev_major, m.dev_minor)),
            _ => (libc::S_IFIFO, 0),
        };
        // EPERM without CAP_MKNOD (in a user namespace, say) is an error like any other.
        let ((), fresh) = self.create(dir, name, || sys::mknodat(dir, name, kind | 0o600, dev))?;
        if self.opts.same_owner {
            sys::lchownat(dir, name, self.uid(m)?, self.gid(m)?).map_err(|e| self.io_err(e))?;
        }
        self.xattrs_path(tar, dir, name)?;
        // Just made by us: following cannot lead anywhere else.
        sys::fchmodat(dir, name, m.mode).map_err(|e| self.io_err(e))?;
        sys::lutimensat(dir, name, &times(m)).map_err(|e| self.io_err(e))?;
        Ok(fresh)
    }

    fn whiteout(&mut self, parent_len: usize, name_start: usize) -> Result<()> {
        let target = name_start + b".wh.".len();
        let overlay = self.opts.whiteouts == Whiteouts::Overlay;
        if &self.path[target..] == b".wh..opq" {
            let Some(dir) = self.parent(parent_len, overlay)? else {
                return Ok(());
            };
            if overlay {
                sys::fsetxattr(dir, c"trusted.overlay.opaque", b"y").map_err(|e| {
                    Error::io(
                        self.dest.join(format!(
                            "{} (setting xattr trusted.overlay.opaque)",
                            String::from_utf8_lossy(&self.path[..parent_len])
                        )),
                        e,
                    )
                })?;
            } else if self.track.is_some() {
                self.cache_ok = false;
                let mut prefix = self.path[..parent_len].to_vec();
                self.remove_unseen(dir, &mut prefix)
                    .map_err(|e| Error::io(self.dest.join(OsStr::from_bytes(&prefix)), e))?;
            }
            return Ok(());
        }
        if self.path[target..].starts_with(b".wh.") {
            // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        let wname = &self.path[target..];
        if wname.is_empty() || wname == b"." || wname == b".." {
            return Err(self.invalid("is a whiteout without a name"));
        }
        let Some(dir) = self.parent(parent_len, overlay)? else {
            return Ok(());
        };
        // The whiteout concerns the path without the prefix.
        self.path.drain(name_start..target);
        if self.workers > 0 {
            let key = name_key(self.parent_info(parent_len), &self.path[name_start..]);
            self.seen.insert(key);
        }
        let mut name_buf = std::mem::take(&mut self.name_buf);
        let result = (|| {
            let name =
                sys::cstr(&mut name_buf, &self.path[name_start..]).map_err(|e| self.io_err(e))?;
            if overlay {
                let ((), fresh) = self.create(dir, name, || {
                    sys::mknodat(dir, name, libc::S_IFCHR, libc::makedev(0, 0))
                })?;
                Ok(Some(fresh))
            } else {
                self.cache_ok = false;
                sys::remove_all_at(dir, name).map_err(|e| self.io_err(e))?;
                Ok(None)
            }
        })();
        self.name_buf = name_buf;
        if let (Some(fresh), Some(t)) = (result?, &mut self.track) {
            t.seen.insert(self.path.clone());
            if fresh {
                t.fresh.push(self.path.clone());
            }
        }
        Ok(())
    }

    /// Removes from directory `dir` (at `prefix`) everything this layer did not name,
    /// recursing into what it did.
    fn remove_unseen(&self, dir: RawFd, prefix: &mut Vec<u8>) -> io::Result<()> {
        let Some(t) = &self.track else {
            return Ok(());
        };
        for name in sys::read_names(dir)? {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name.to_bytes());
            if !t.seen.contains(prefix) {
                sys::remove_all_at(dir, &name)?;
            } else if let Ok(sub) = sys::open_subdir(dir, &name) {
                self.remove_unseen(sub.as_raw_fd(), prefix)?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    // ---- metadata ------------------------------------------------------------------

    fn uid(&self, m: &Member) -> Result<u32> {
        u32::try_from(m.uid).map_err(|_| self.invalid(format_args!("uid {} is too large", m.uid)))
    }

    fn gid(&self, m: &Member) -> Result<u32> {
        u32::try_from(m.gid).map_err(|_| self.invalid(format_args!("gid {} is too large", m.gid)))
    }

    fn xattr_err(&self, name: &[u8], e: io::Error) -> Error {
        let what = format!(
            "{} (setting xattr {})",
            self.shown(),
            String::from_utf8_lossy(name)
        );
        Error::io(self.dest.join(what), e)
    }

    fn xattrs_fd<R: Read>(&self, tar: &TarReader<R>, fd: RawFd) -> Result<()> {
        for (name, value) in tar.xattrs() {
            // Allocates, but only for members that have xattrs.
            let cname = CString::new(name)
                .map_err(|_| self.xattr_err(name, io::Error::from_raw_os_error(libc::EINVAL)))?;
            if let Err(e) = sys::fsetxattr(fd, &cname, value) {
                return Err(self.xattr_err(name, e));
            }
        }
        Ok(())
    }

    /// xattrs of a symlink or device node (no fd to set them on).
    fn xattrs_path<R: Read>(&self, tar: &TarReader<R>, dir: RawFd, name: &CStr) -> Result<()> {
        if !tar.has_xattrs() {
            return Ok(());
        }
        let path = sys::proc_path(dir, name);
        for (xname, value) in tar.xattrs() {
            let cname = CString::new(xname)
                .map_err(|_| self.xattr_err(xname, io::Error::from_raw_os_error(libc::EINVAL)))?;
            if let Err(e) = sys::lsetxattr(&path, &cname, value) {
                return Err(self.xattr_err(xname, e));
            }
        }
        Ok(())
    }

    /// Modes and times of the directories, last member first; a directory named twice
    /// gets its last member's.
    fn finish_dirs(&mut self) -> Result<()> {
        self.cache_fd = None;
        let mut done: HashSet<&[u8]> = HashSet::new();
        let mut last_parent: Option<(&[u8], OwnedFd)> = None;
        let mut buf = Vec::new();
        for d in self.dirs.iter().rev() {
            let path = &self.dir_paths[d.path.clone()];
            if self.dirs.len() > 1 && !done.insert(path) {
                continue;
            }
            let shown = || self.dest.join(OsStr::from_bytes(path));
            let fd_owned;
            let fd = if path.is_empty() {
                self.root.raw()
            } else {
                let (parent_len, name_start) = path::split(path);
                let parent = &path[..parent_len];
                let pfd = if parent.is_empty() {
                    self.root.raw()
                } else {
                    match &last_parent {
                        Some((p, fd)) if *p == parent => fd.as_raw_fd(),
                        _ => match self.root.open_dir(parent, &mut buf) {
                            Ok(fd) => {
                                let raw = fd.as_raw_fd();
                                last_parent = Some((parent, fd));
                                raw
                            }
                            // Replaced or removed by a later member.
                            Err(_) => continue,
                        },
                    }
                };
                let name = sys::cstr(&mut self.aux_buf, &path[name_start..]).at(shown())?;
                match sys::open_subdir(pfd, name) {
                    Ok(fd) => {
                        fd_owned = fd;
                        fd_owned.as_raw_fd()
                    }
                    Err(e)
                        if sys::errno_is(&e, libc::ENOENT)
                            || sys::errno_is(&e, libc::ENOTDIR)
                            || sys::errno_is(&e, libc::ELOOP) =>
                    {
                        continue
                    }
                    Err(e) => return Err(Error::io(shown(), e)),
                }
            };
            sys::fchmod(fd, d.mode).at(shown())?;
            sys::futimens(fd, &d.times).at(shown())?;
        }
        Ok(())
    }

    /// After a failure: removes what this call made (see the module documentation).
    fn cleanup(&mut self, created: bool) {
        // Nothing may be written into the tree while it is taken apart.
        if let Some(mut pool) = self.pool.take() {
            let _ = pool.wait();
        }
        self.cache_fd = None;
        if let Some(t) = &mut self.track {
            t.fresh.sort_unstable();
            let mut buf = Vec::new();
            let mut name_buf = Vec::new();
            for p in t.fresh.iter().rev() {
                let (parent_len, name_start) = path::split(p);
                let dir = if parent_len == 0 {
                    None
                } else {
                    match self.root.open_dir(&p[..parent_len], &mut buf) {
                        Ok(fd) => Some(fd),
                        Err(_) => continue,
                    }
                };
                let raw = dir.as_ref().map_or(self.root.raw(), |f| f.as_raw_fd());
                if let Ok(name) = sys::cstr(&mut name_buf, &p[name_start..]) {
                    let _ = sys::remove_all_at(raw, name);
                }
            }
        } else {
            let _ = sys::clear_dir(self.root.raw());
            if created {
                let _ = std::fs::remove_dir(self.dest);
            }
        }
    }
}

fn times(m: &Member) -> [libc::timespec; 2] {
    [timespec(m.atime.unwrap_or(m.mtime)), timespec(m.mtime)]
}

impl UnpackStats {
    /// The compression's name: `gzip`, `zstd` or `none`.
    pub fn compression_name(&self) -> &'static str {
        match self.compression {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}
