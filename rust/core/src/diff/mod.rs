//! Layer diff: directory trees to OCI layer tars, and the list of changes between
//! them (`docker diff`).
//!
//! Three sources of a layer:
//! - [`write_upper`]: a container's overlayfs upper dir. A 0/0 character device is a
//!   deletion and becomes a `.wh.<name>` whiteout; a directory with the xattr
//!   `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) is followed by its
//!   `.wh..wh..opq` marker. overlayfs's own xattrs never reach the tar; an upper that
//!   uses `redirect_dir` or `metacopy` is refused (Skiff mounts without them).
//! - [`write_tree`]: a whole tree (import of a directory, export of a flattened root
//!   filesystem).
//! - [`write_changes`]: what differs between two plain trees, Docker's rules: type,
//!   mode, owner, device number, symlink target and xattrs, plus size and mtime for
//!   non-directories (contents are not compared). An entry missing from the new tree
//!   is one whiteout, even for a whole directory; unchanged parent directories of a
//!   change are included (and reported as modified).
//!
//! The tar is deterministic: entries depth-first, names sorted byte-wise in each
//! directory, a directory before its contents; ustar headers with PAX records only
//! where needed (see `tar.rs`); empty uname/gname; no atime or ctime; hard links
//! within the layer as link entries to the first name archived; sockets skipped.
//! Symlinks are never followed. The tar is hashed (the diff id) and the compressed
//! stream hashed (the digest) while they are written; nothing is buffered whole.
//! gzip is compressed on several threads in fixed 1 MiB blocks (pigz's scheme, see
//! `compressor.rs`): a standard single-member gzip whose bytes do not depend on the
//! thread count, but which differ from a one-stream gzip of the same tar. zstd goes
//! through `compress::encoder` on one thread.
//!
//! Xattrs: all but overlayfs's (`trusted.overlay.*`, `user.overlay.*`) and
//! `security.selinux` (a host label, which Docker and containerd leave out too).

mod compressor;
mod fs;
mod tar;
mod walk;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::compress::Compression;
use crate::error::{Error, IoContext, Result};

use self::fs::Dir;
use self::walk::{Mode, Walker};

/// How to write a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    pub compression: Compression,
    /// None: the format's default (gzip 6, zstd 3). gzip takes 0..=9, zstd its own
    /// range (negative levels are its fast modes).
    pub level: Option<i32>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            compression: Compression::Gzip,
            level: None,
        }
    }
}

impl DiffOptions {
    fn validate(&self) -> Result<()> {
        let Some(level) = self.level else {
            return Ok(());
        };
        let ok = match self.compression {
            Compression::None => true,
            Compression::Gzip => (0..=9).contains(&level),
            Compression::Zstd => zstd::compression_level_range().contains(&level),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "compression level {level} is out of range for {:?}",
                self.compression
            )))
        }
    }
}

/// What a written layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// `sha256:<hex>` of the written (compressed) blob.
    pub digest: String,
    /// Bytes of the written blob.
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    pub uncompressed_size: u64,
    /// Tar entries (whiteouts and opaque markers included, PAX headers not).
    pub entries: u64,
}

/// What happened to a path, numbered as in Docker's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl ChangeKind {
    /// The number Docker's `GET /containers/{id}/changes` uses.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One changed path, absolute in the container (`/etc/passwd`). Names that are not
/// UTF-8 are shown with replacement characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

const OUTPUT: &str = "<layer output>";

/// Writes an overlay upper dir as a layer.
pub fn write_upper(upper: &Path, out: impl Write + Send, opts: DiffOptions) -> Result<DiffStats> {
    write_upper_with_lowers(upper, &[], out, opts)
}

/// Writes an overlay upper dir as a layer. `lowers` (top first), when given, let
/// whiteouts and opaque markers that hide nothing be left out.
pub fn write_upper_with_lowers(
    upper: &Path,
    lowers: &[PathBuf],
    out: impl Write + Send,
    opts: DiffOptions,
) -> Result<DiffStats> {
    write_upper_at(upper, lowers, out, opts, Path::new(OUTPUT))
}

/// Writes a whole tree as a layer.
pub fn write_tree(root: &Path, out: impl Write + Send, opts: DiffOptions) -> Result<DiffStats> {
    write_tree_at(root, out, opts, Path::new(OUTPUT))
}

/// Writes what changed from `lower` (the old tree) to `upper_tree` (the new one).
pub fn write_changes(
    lower: &Path,
    upper_tree: &Path,
    out: impl Write + Send,
    opts: DiffOptions,
) -> Result<DiffStats> {
    write_changes_at(lower, upper_tree, out, opts, Path::new(OUTPUT))
}

fn write_upper_at(
    upper: &Path,
    lowers: &[PathBuf],
    mut out: impl Write + Send,
    opts: DiffOptions,
    out_path: &Path,
) -> Result<DiffStats> {
    opts.validate()?;
    let dir = Dir::open(upper).at(upper)?;
    tar::with_tar_out(&mut out, opts.compression, opts.level, out_path, |tar| {
        Walker::new(upper, Some(tar), false).walk(&dir, &mut Vec::new(), Mode::Upper { lowers })
    })
}

fn write_tree_at(
    root: &Path,
    mut out: impl Write + Send,
    opts: DiffOptions,
    out_path: &Path,
) -> Result<DiffStats> {
    opts.validate()?;
    let dir = Dir::open(root).at(root)?;
    tar::with_tar_out(&mut out, opts.compression, opts.level, out_path, |tar| {
        Walker::new(root, Some(tar), false).walk(&dir, &mut Vec::new(), Mode::Tree)
    })
}

fn write_changes_at(
    lower: &Path,
    upper_tree: &Path,
    mut out: impl Write + Send,
    opts: DiffOptions,
    out_path: &Path,
) -> Result<DiffStats> {
    opts.validate()?;
    let old = Dir::open(lower).at(lower)?;
    let new = Dir::open(upper_tree).at(upper_tree)?;
    tar::with_tar_out(&mut out, opts.compression, opts.level, out_path, |tar| {
        Walker::new(upper_tree, Some(tar), false).compare(
            Some(&old),
            lower,
            &new,
            &mut Vec::new(),
            &mut Vec::new(),
        )
    })
}

/// The changes from `lower` to `upper_tree` (both plain trees), in walk order
/// (a directory before its contents, names sorted byte-wise).
pub fn changes(lower: &Path, upper_tree: &Path) -> Result<Vec<Change>> {
    let old = Dir::open(lower).at(lower)?;
    let new = Dir::open(upper_tree).at(upper_tree)?;
    let mut walker = Walker::new(upper_tree, None, true);
    walker.compare(Some(&old), lower, &new, &mut Vec::new(), &mut Vec::new())?;
    Ok(walker.into_changes())
}

/// The changes an overlay upper dir holds over its `lowers` (top first): a path that
/// exists in a lower is modified, else added; a whiteout of an existing path is a
/// deletion; below an opaque directory, what the lowers had and the upper lacks is
/// deleted.
pub fn upper_changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let dir = Dir::open(upper).at(upper)?;
    let mut walker = Walker::new(upper, None, true);
    walker.upper_changes(&dir, &mut Vec::new(), lowers, true, false)?;
    Ok(walker.into_changes())
}

/// [`write_upper_with_lowers`] into the file `dest`, which appears only complete.
pub fn write_upper_to_file(
    upper: &Path,
    lowers: &[PathBuf],
    dest: &Path,
    opts: DiffOptions,
) -> Result<DiffStats> {
    to_file(dest, |file, out_path| {
        write_upper_at(upper, lowers, file, opts, out_path)
    })
}

/// [`write_tree`] into the file `dest`, which appears only complete.
pub fn write_tree_to_file(root: &Path, dest: &Path, opts: DiffOptions) -> Result<DiffStats> {
    to_file(dest, |file, out_path| {
        write_tree_at(root, file, opts, out_path)
    })
}

/// [`write_changes`] into the file `dest`, which appears only complete.
pub fn write_changes_to_file(
    lower: &Path,
    upper_tree: &Path,
    dest: &Path,
    opts: DiffOptions,
) -> Result<DiffStats> {
    to_file(dest, |file, out_path| {
        write_changes_at(lower, upper_tree, file, opts, out_path)
    })
}

/// Removes the temporary file unless disarmed (also when a panic unwinds).
struct TempGuard<'a>(Option<&'a Path>);

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes through `<dest>.tmp-<pid>-<n>`, synced, then renamed over `dest`; on any
/// error the temporary file is removed and `dest` is untouched. Errors about the
/// output name `dest`.
fn to_file(
    dest: &Path,
    write: impl FnOnce(&mut File, &Path) -> Result<DiffStats>,
) -> Result<DiffStats> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .at(dest)?;
    let mut guard = TempGuard(Some(&tmp));
    let stats = write(&mut file, dest)?;
    file.sync_all().at(dest)?;
    drop(file);
    std::fs::rename(&tmp, dest).at(dest)?;
    guard.0 = None;
    Ok(stats)
}
