//! The walks: a whole tree, an overlay upper dir, and two trees compared. Each goes
//! depth-first through directories relative to their fds, names sorted byte-wise,
//! and emits tar entries and/or records changes as it goes.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

use super::fs::{self, Dir, Names, Stat, XattrSource, Xattrs};
use super::tar::{self, Header, TarOut};
use super::{Change, ChangeKind};

const DT_UNKNOWN: u8 = 0;
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;

/// Entries that vanish between readdir and a look at them are skipped: the tree was
/// changing, and what is not there cannot be archived.
fn vanished(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// An entry looked at, with what was opened to look at it.
enum Opened {
    File(OwnedFd),
    Dir(Dir),
    Other,
}

struct Entry {
    stat: Stat,
    opened: Opened,
}

/// How a walk treats what it finds.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// A plain tree: everything is an entry.
    Tree,
    /// An overlay upper dir: 0/0 character devices are whiteouts, opaque directories
    /// get an opaque marker. With lowers, whiteouts and markers that hide nothing in
    /// any lower are left out.
    Upper { lowers: &'a [PathBuf] },
}

/// A directory entered during a compare that did not change itself: emitted (as
/// "modified") only once something below it changes.
pub struct Pending {
    /// Length of its path in `rel`.
    len: usize,
    stat: Stat,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    emitted: bool,
}

/// The state of one walk.
pub struct Walker<'t, 'w> {
    tar: Option<&'t mut TarOut<'w>>,
    changes: Option<Vec<Change>>,
    /// The root being archived (`new` for a compare), for errors and `l*xattr`.
    root: PathBuf,
    /// Hard links already archived: (dev, ino) to the first name.
    links: HashMap<(u64, u64), Vec<u8>>,
    xattrs: Xattrs,
    old_xattrs: Xattrs,
    dirents: Vec<u8>,
    target: Vec<u8>,
    old_target: Vec<u8>,
    name: Vec<u8>,
    cpath: Vec<u8>,
}

impl<'t, 'w> Walker<'t, 'w> {
    pub fn new(root: &Path, tar: Option<&'t mut TarOut<'w>>, record_changes: bool) -> Self {
        Walker {
            tar,
            changes: record_changes.then(Vec::new),
            root: root.to_path_buf(),
            links: HashMap::new(),
            xattrs: Xattrs::default(),
            old_xattrs: Xattrs::default(),
            dirents: Vec::new(),
            target: Vec::new(),
            old_target: Vec::new(),
            name: Vec::new(),
            cpath: Vec::new(),
        }
    }

    pub fn into_changes(self) -> Vec<Change> {
        self.changes.unwrap_or_default()
    }

    fn abs(&self, rel: &[u8]) -> PathBuf {
        abs(&self.root, rel)
    }

    fn read_names(&mut self, dir: &Dir, rel: &[u8], root: &Path) -> Result<Names> {
        let mut names = Names::default();
        dir.read_names(&mut names, &mut self.dirents)
            .at(abs(root, rel))?;
        Ok(names)
    }

    fn record(&mut self, rel: &[u8], kind: ChangeKind) {
        if let Some(changes) = &mut self.changes {
            changes.push(Change {
                path: format!("/{}", String::from_utf8_lossy(rel)),
                kind,
            });
        }
    }

    /// Looks at one entry of `dir`. Regular files and directories are opened first and
    /// examined through their fd (no race between looking and reading); anything else
    /// is examined by name without following it. With `full`, xattrs are loaded too.
    fn inspect(
        &mut self,
        dir: &Dir,
        name: &CStr,
        dtype: u8,
        rel: &[u8],
        full: bool,
    ) -> Result<Option<Entry>> {
        let opened = match dtype {
            DT_REG if full => match dir.open_file(name) {
                Ok(fd) => Some(Opened::File(fd)),
                Err(e) if vanished(&e) => return Ok(None),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP)) => None,
                Err(e) => return Err(Error::io(self.abs(rel), e)),
            },
            DT_DIR => match dir.open_dir(name) {
                Ok(d) => Some(Opened::Dir(d)),
                Err(e) if vanished(&e) => return Ok(None),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => None,
                Err(e) => return Err(Error::io(self.abs(rel), e)),
            },
            _ => None,
        };
        if let Some(opened) = opened {
            let fd = match &opened {
                Opened::File(fd) => fd.as_raw_fd(),
                Opened::Dir(d) => d.raw(),
                Opened::Other => unreachable!(),
            };
            let stat = fs::fstat(fd).at(self.abs(rel))?;
            let expected = matches!(
                (&opened, stat.kind()),
                (Opened::File(_), libc::S_IFREG) | (Opened::Dir(_), libc::S_IFDIR)
            );
            if expected {
                if full {
                    self.xattrs.load(XattrSource::Fd(fd)).at(self.abs(rel))?;
                } else {
                    self.xattrs.clear();
                }
                return Ok(Some(Entry { stat, opened }));
            }
            // Replaced by something else meanwhile: look again by name.
        }
        let stat = match dir.stat_at(name) {
            Ok(st) => st,
            Err(e) if vanished(&e) => return Ok(None),
            Err(e) => return Err(Error::io(self.abs(rel), e)),
        };
        let reopen = match stat.kind() {
            libc::S_IFREG if full => DT_REG,
            libc::S_IFDIR => DT_DIR,
            _ => DT_UNKNOWN,
        };
        if reopen != DT_UNKNOWN && reopen != dtype {
            return self.inspect(dir, name, reopen, rel, full);
        }
        self.xattrs.clear();
        if full && !matches!(stat.kind(), libc::S_IFSOCK) && !stat.is_whiteout() {
            build_cpath(&mut self.cpath, &self.root, rel);
            let res = self
                .xattrs
                .load(XattrSource::Path(fs::as_cstr(&self.cpath)));
            res.at(self.abs(rel))?;
        }
        Ok(Some(Entry {
            stat,
            opened: Opened::Other,
        }))
    }

    // ----- tar output -----

    fn header(
        &mut self,
        name: &[u8],
        stat: &Stat,
        typeflag: u8,
        size: u64,
        link: &[u8],
        xattrs: bool,
    ) -> Result<()> {
        let Some(tar) = self.tar.as_deref_mut() else {
            return Ok(());
        };
        tar.header(&Header {
            name,
            typeflag,
            mode: stat.mode,
            uid: u64::from(stat.uid),
            gid: u64::from(stat.gid),
            size,
            mtime: stat.mtime,
            link,
            devmajor: stat.major(),
            devminor: stat.minor(),
            xattrs: if xattrs { &self.xattrs.kept } else { &[] },
        })
    }

    /// An empty regular file named `<dir>/<prefix><base>` (a whiteout or the opaque
    /// marker `<dir>/.wh..wh..opq`, where `base` is empty and `rel` is the directory).
    fn marker(
        &mut self,
        rel: &[u8],
        opaque: bool,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    ) -> Result<()> {
        let Some(tar) = self.tar.as_deref_mut() else {
            return Ok(());
        };
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        if opaque {
            name.extend_from_slice(rel);
            name.extend_from_slice(b"/.wh..wh..opq");
        } else {
            let (parent, base) = split(rel);
            name.extend_from_slice(parent);
            name.extend_from_slice(b".wh.");
            name.extend_from_slice(base);
        }
        let result = tar.header(&Header {
            name: &name,
            typeflag: tar::REG,
            mode,
            uid: u64::from(uid),
            gid: u64::from(gid),
            size: 0,
            mtime,
            link: b"",
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        });
        self.name = name;
        result
    }

    fn dir_header(&mut self, rel: &[u8], stat: &Stat) -> Result<()> {
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        name.extend_from_slice(rel);
        name.push(b'/');
        let result = self.header(&name, stat, tar::DIR, 0, b"", true);
        self.name = name;
        result
    }

    /// Emits a non-directory entry (already inspected, xattrs loaded).
    fn leaf(&mut self, dir: &Dir, name: &CStr, rel: &[u8], entry: &Entry) -> Result<()> {
        let st = &entry.stat;
        if st.nlink > 1 {
            let key = (st.dev, st.ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                return self.header(rel, st, tar::LINK, 0, &first, false);
            }
            self.links.insert(key, rel.to_vec());
        }
        match st.kind() {
            libc::S_IFREG => {
                let Opened::File(fd) = &entry.opened else {
                    unreachable!("regular files are inspected open")
                };
                self.header(rel, st, tar::REG, st.size, b"", true)?;
                if let Some(tar) = self.tar.as_deref_mut() {
                    let root = &self.root;
                    tar.content(fd.as_raw_fd(), st.size, || abs(root, rel))?;
                }
                Ok(())
            }
            libc::S_IFLNK => {
                let mut target = std::mem::take(&mut self.target);
                let read = dir.readlink_at(name, &mut target).at(self.abs(rel));
                let result =
                    read.and_then(|()| self.header(rel, st, tar::SYMLINK, 0, &target, true));
                self.target = target;
                result
            }
            libc::S_IFCHR => self.header(rel, st, tar::CHAR, 0, b"", true),
            libc::S_IFBLK => self.header(rel, st, tar::BLOCKDEV, 0, b"", true),
            libc::S_IFIFO => self.header(rel, st, tar::FIFO, 0, b"", true),
            // Sockets (and anything unknown) cannot be in a layer.
            _ => Ok(()),
        }
    }

    // ----- a tree or an overlay upper -----

    /// Walks `dir` (whose path relative to the root is `rel`).
    pub fn walk(&mut self, dir: &Dir, rel: &mut Vec<u8>, mode: Mode<'_>) -> Result<()> {
        let names = self.read_names(dir, rel, &self.root.clone())?;
        for i in 0..names.len() {
            let len = rel.len();
            if len > 0 {
                rel.push(b'/');
            }
            rel.extend_from_slice(names.name(i));
            let result = self.walk_one(dir, names.cname(i), names.dtype(i), rel, mode);
            rel.truncate(len);
            result?;
        }
        Ok(())
    }

    fn walk_one(
        &mut self,
        dir: &Dir,
        name: &CStr,
        dtype: u8,
        rel: &mut Vec<u8>,
        mode: Mode<'_>,
    ) -> Result<()> {
        let Some(entry) = self.inspect(dir, name, dtype, rel, true)? else {
            return Ok(());
        };
        let st = entry.stat;
        let upper = match mode {
            Mode::Upper { lowers } => Some(lowers),
            Mode::Tree => None,
        };
        if let Some(lowers) = upper {
            if st.is_whiteout() {
                if lowers.is_empty() || exists_in_lowers(lowers, rel, &mut self.cpath)? {
                    self.marker(rel, false, 0o600, st.uid, st.gid, st.mtime)?;
                }
                return Ok(());
            }
            if self.xattrs.redirect || self.xattrs.metacopy {
                return Err(Error::InvalidArgument(format!(
                    "{}: overlay {} is not supported (mount without redirect_dir/metacopy)",
                    self.abs(rel).display(),
                    if self.xattrs.redirect {
                        "redirect_dir"
                    } else {
                        "metacopy"
                    }
                )));
            }
        }
        match entry.opened {
            Opened::Dir(ref sub) => {
                self.dir_header(rel, &st)?;
                if let Some(lowers) = upper {
                    if self.xattrs.opaque
                        && (lowers.is_empty() || exists_in_lowers(lowers, rel, &mut self.cpath)?)
                    {
                        self.marker(rel, true, st.mode & 0o777, st.uid, st.gid, 0)?;
                    }
                }
                self.walk(sub, rel, mode)
            }
            _ => self.leaf(dir, name, rel, &entry),
        }
    }

    // ----- two trees compared -----

    /// Compares `old` (None: nothing there) with `new` below `rel`; `old_root` names
    /// the old tree for errors and xattr reads.
    pub fn compare(
        &mut self,
        old: Option<&Dir>,
        old_root: &Path,
        new: &Dir,
        rel: &mut Vec<u8>,
        pending: &mut Vec<Pending>,
    ) -> Result<()> {
        let root = self.root.clone();
        let new_names = self.read_names(new, rel, &root)?;
        let old_names = match old {
            Some(d) => self.read_names(d, rel, old_root)?,
            None => Names::default(),
        };
        let (mut i, mut j) = (0, 0);
        while i < new_names.len() || j < old_names.len() {
            let order = if i == new_names.len() {
                std::cmp::Ordering::Greater
            } else if j == old_names.len() {
                std::cmp::Ordering::Less
            } else {
                new_names.name(i).cmp(old_names.name(j))
            };
            let len = rel.len();
            if len > 0 {
                rel.push(b'/');
            }
            let result = match order {
                std::cmp::Ordering::Greater => {
                    rel.extend_from_slice(old_names.name(j));
                    j += 1;
                    self.deleted(rel, pending)
                }
                std::cmp::Ordering::Less => {
                    rel.extend_from_slice(new_names.name(i));
                    let (name, dtype) = (new_names.cname(i), new_names.dtype(i));
                    i += 1;
                    self.added_or_modified(None, new, name, dtype, rel, pending, ChangeKind::Added)
                }
                std::cmp::Ordering::Equal => {
                    rel.extend_from_slice(new_names.name(i));
                    let (name, dtype) = (new_names.cname(i), new_names.dtype(i));
                    i += 1;
                    j += 1;
                    let old = old.expect("names only come from an open old dir");
                    self.both(old, old_root, new, name, dtype, rel, pending)
                }
            };
            rel.truncate(len);
            result?;
        }
        Ok(())
    }

    /// Emits the unchanged ancestors that have not been emitted yet.
    fn flush_pending(&mut self, rel: &[u8], pending: &mut [Pending]) -> Result<()> {
        for p in pending.iter_mut().filter(|p| !p.emitted) {
            p.emitted = true;
            let path = &rel[..p.len];
            self.record(path, ChangeKind::Modified);
            if self.tar.is_some() {
                let saved = std::mem::replace(&mut self.xattrs.kept, std::mem::take(&mut p.xattrs));
                let result = self.dir_header(path, &p.stat);
                p.xattrs = std::mem::replace(&mut self.xattrs.kept, saved);
                result?;
            }
        }
        Ok(())
    }

    fn deleted(&mut self, rel: &[u8], pending: &mut [Pending]) -> Result<()> {
        self.flush_pending(rel, pending)?;
        self.record(rel, ChangeKind::Deleted);
        self.marker(rel, false, 0o600, 0, 0, 0)
    }

    /// An entry that is new (`old_dir` None) or changed: recorded, emitted, and when a
    /// directory, compared below.
    #[allow(clippy::too_many_arguments)]
    fn added_or_modified(
        &mut self,
        old_sub: Option<(&Dir, &Path)>,
        new: &Dir,
        name: &CStr,
        dtype: u8,
        rel: &mut Vec<u8>,
        pending: &mut [Pending],
        kind: ChangeKind,
    ) -> Result<()> {
        let full = self.tar.is_some();
        let Some(entry) = self.inspect(new, name, dtype, rel, full)? else {
            return Ok(());
        };
        self.flush_pending(rel, pending)?;
        self.record(rel, kind);
        match entry.opened {
            Opened::Dir(ref sub) => {
                self.dir_header(rel, &entry.stat)?;
                // It and its ancestors are out; below it, parents start afresh.
                let mut below = Vec::new();
                match old_sub {
                    Some((old, old_root)) => {
                        self.compare(Some(old), old_root, sub, rel, &mut below)
                    }
                    None => self.compare(None, Path::new(""), sub, rel, &mut below),
                }
            }
            _ => {
                if full {
                    self.leaf(new, name, rel, &entry)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// An entry in both trees: compared on type, mode, owner, device number, size and
    /// mtime (not for directories), symlink target and xattrs, as Docker does.
    #[allow(clippy::too_many_arguments)]
    fn both(
        &mut self,
        old: &Dir,
        old_root: &Path,
        new: &Dir,
        name: &CStr,
        dtype: u8,
        rel: &mut Vec<u8>,
        pending: &mut Vec<Pending>,
    ) -> Result<()> {
        let new_st = match new.stat_at(name) {
            Ok(st) => st,
            Err(e) if vanished(&e) => return self.deleted(rel, pending),
            Err(e) => return Err(Error::io(self.abs(rel), e)),
        };
        let old_st = match old.stat_at(name) {
            Ok(st) => Some(st),
            Err(e) if vanished(&e) => None,
            Err(e) => return Err(Error::io(abs(old_root, rel), e)),
        };
        let Some(old_st) = old_st else {
            return self.added_or_modified(None, new, name, dtype, rel, pending, ChangeKind::Added);
        };
        let changed = self.differs(old, old_root, &old_st, new, &new_st, name, rel)?;
        let both_dirs = old_st.is_dir() && new_st.is_dir();
        if changed {
            let old_sub = if both_dirs {
                Some(old.open_dir(name).at(abs(old_root, rel))?)
            } else {
                None
            };
            return self.added_or_modified(
                old_sub.as_ref().map(|d| (d, old_root)),
                new,
                name,
                dtype,
                rel,
                pending,
                ChangeKind::Modified,
            );
        }
        if !both_dirs {
            return Ok(());
        }
        let old_sub = old.open_dir(name).at(abs(old_root, rel))?;
        let new_sub = match new.open_dir(name) {
            Ok(d) => d,
            Err(e) if vanished(&e) => return self.deleted(rel, pending),
            Err(e) => return Err(Error::io(self.abs(rel), e)),
        };
        // `differs` left the new directory's xattrs loaded.
        let xattrs = std::mem::take(&mut self.xattrs.kept);
        pending.push(Pending {
            len: rel.len(),
            stat: new_st,
            xattrs,
            emitted: false,
        });
        let result = self.compare(Some(&old_sub), old_root, &new_sub, rel, pending);
        pending.pop();
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn differs(
        &mut self,
        old: &Dir,
        old_root: &Path,
        o: &Stat,
        new: &Dir,
        n: &Stat,
        name: &CStr,
        rel: &[u8],
    ) -> Result<bool> {
        if o.mode != n.mode || o.uid != n.uid || o.gid != n.gid || o.rdev != n.rdev {
            return Ok(true);
        }
        if !n.is_dir() && (o.size != n.size || !same_time(o, n)) {
            return Ok(true);
        }
        if n.kind() == libc::S_IFLNK {
            old.readlink_at(name, &mut self.old_target)
                .at(abs(old_root, rel))?;
            new.readlink_at(name, &mut self.target).at(self.abs(rel))?;
            if self.old_target != self.target {
                return Ok(true);
            }
        }
        if matches!(n.kind(), libc::S_IFSOCK) {
            return Ok(false);
        }
        build_cpath(&mut self.cpath, old_root, rel);
        self.old_xattrs
            .load(XattrSource::Path(fs::as_cstr(&self.cpath)))
            .at(abs(old_root, rel))?;
        build_cpath(&mut self.cpath, &self.root, rel);
        self.xattrs
            .load(XattrSource::Path(fs::as_cstr(&self.cpath)))
            .at(self.abs(rel))?;
        Ok(self.old_xattrs.kept != self.xattrs.kept)
    }

    // ----- changes of an overlay upper -----

    /// Records the changes below `dir` of an upper. `in_lower`: this directory exists
    /// in some lower (else nothing below it can).
    pub fn upper_changes(
        &mut self,
        dir: &Dir,
        rel: &mut Vec<u8>,
        lowers: &[PathBuf],
        in_lower: bool,
        opaque: bool,
    ) -> Result<()> {
        let root = self.root.clone();
        let names = self.read_names(dir, rel, &root)?;
        // Below an opaque directory, what the lowers had and the upper lacks is gone.
        let hidden = if opaque && in_lower {
            lower_names(lowers, rel, &mut self.dirents)?
                .into_iter()
                .filter(|n| !names.contains(n))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut hidden = hidden.into_iter().peekable();
        for i in 0..=names.len() {
            // Hidden names sort in among the upper's.
            while let Some(h) = hidden.next_if(|h| i == names.len() || h.as_slice() < names.name(i))
            {
                let len = rel.len();
                join(rel, &h);
                self.record(rel, ChangeKind::Deleted);
                rel.truncate(len);
            }
            if i == names.len() {
                break;
            }
            let len = rel.len();
            join(rel, names.name(i));
            let result = self.upper_change(dir, names.cname(i), rel, lowers, in_lower);
            rel.truncate(len);
            result?;
        }
        Ok(())
    }

    fn upper_change(
        &mut self,
        dir: &Dir,
        name: &CStr,
        rel: &mut Vec<u8>,
        lowers: &[PathBuf],
        in_lower: bool,
    ) -> Result<()> {
        let st = match dir.stat_at(name) {
            Ok(st) => st,
            Err(e) if vanished(&e) => return Ok(()),
            Err(e) => return Err(Error::io(self.abs(rel), e)),
        };
        let existed = in_lower && exists_in_lowers(lowers, rel, &mut self.cpath)?;
        if st.is_whiteout() {
            if existed {
                self.record(rel, ChangeKind::Deleted);
            }
            return Ok(());
        }
        let kind = if existed {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(rel, kind);
        if !st.is_dir() {
            return Ok(());
        }
        let sub = match dir.open_dir(name) {
            Ok(d) => d,
            Err(e) if vanished(&e) => return Ok(()),
            Err(e) => return Err(Error::io(self.abs(rel), e)),
        };
        let opaque = if existed {
            self.xattrs
                .load(XattrSource::Fd(sub.raw()))
                .at(self.abs(rel))?;
            self.xattrs.opaque
        } else {
            false
        };
        self.upper_changes(&sub, rel, lowers, existed, opaque)
    }
}

fn join(rel: &mut Vec<u8>, name: &[u8]) {
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
}

/// (parent with trailing slash or empty, base name) of a relative path.
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn abs(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// `<root>/<rel>` as a NUL-terminated string in `buf`.
fn build_cpath(buf: &mut Vec<u8>, root: &Path, rel: &[u8]) {
    buf.clear();
    buf.extend_from_slice(root.as_os_str().as_bytes());
    if !rel.is_empty() {
        buf.push(b'/');
        buf.extend_from_slice(rel);
    }
    buf.push(0);
}

/// Whether mtimes are equal; when either lacks sub-second precision (a tree that
/// went through a tar without PAX times), seconds alone decide, as Docker does.
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.mtime == b.mtime && (a.mtime_nsec == b.mtime_nsec || a.mtime_nsec == 0 || b.mtime_nsec == 0)
}

/// Whether `rel` exists in the lowers, looked up from the top one down: the first
/// lower that has it decides, and a whiteout there means it does not exist.
pub fn exists_in_lowers(lowers: &[PathBuf], rel: &[u8], buf: &mut Vec<u8>) -> Result<bool> {
    for lower in lowers {
        build_cpath(buf, lower, rel);
        match fs::lstat(fs::as_cstr(buf)) {
            Ok(st) => return Ok(!st.is_whiteout()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
            Err(e) => return Err(Error::io(abs(lower, rel), e)),
        }
    }
    Ok(false)
}

/// The names in directory `rel` across the lowers (whiteouts excluded).
fn lower_names(lowers: &[PathBuf], rel: &[u8], scratch: &mut Vec<u8>) -> Result<BTreeSet<Vec<u8>>> {
    let mut all = BTreeSet::new();
    let mut names = Names::default();
    for lower in lowers {
        let path = abs(lower, rel);
        let dir = match Dir::open(&path) {
            Ok(d) => d,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        dir.read_names(&mut names, scratch).at(&path)?;
        for i in 0..names.len() {
            let whiteout = match dir.stat_at(names.cname(i)) {
                Ok(st) => st.is_whiteout(),
                Err(e) if vanished(&e) => true,
                Err(e) => return Err(Error::io(path.join(OsStr::from_bytes(names.name(i))), e)),
            };
            if !whiteout {
                all.insert(names.name(i).to_vec());
            }
        }
    }
    Ok(all)
}
