//! The container's filesystem: mounts from config.json, default devices, pivot_root,
//! masked and read-only paths, and a read-only root.
//!
//! Planning is pure (option strings to flags, entries to a [`Plan`]) and tested
//! without root; [`Plan::execute`] then makes the syscalls, in the child, after the
//! mount namespace exists.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::spec::{Device, Mount};
use crate::sys::{self, path_cstr};

/// Mount option words: (name, clear?, flag). "rbind" and "bind" are handled apart.
const FLAG_OPTIONS: [(&str, bool, libc::c_ulong); 24] = [
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("lazytime", false, 1 << 25),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

const PROPAGATION_OPTIONS: [(&str, libc::c_ulong); 8] = [
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// Names the `features` command lists.
pub fn option_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = FLAG_OPTIONS.iter().map(|(n, _, _)| *n).collect();
    v.extend(PROPAGATION_OPTIONS.iter().map(|(n, _)| *n));
    v.extend(["bind", "rbind"]);
    v.sort_unstable();
    v
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub flags: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub bind: bool,
    pub recursive: bool,
    /// Words that are not flags: passed to the filesystem as data ("size=64m", "mode=755").
    pub data: Vec<String>,
}

pub fn parse_options(options: &[String]) -> Options {
    let mut o = Options::default();
    for opt in options {
        if let Some((_, clear, flag)) = FLAG_OPTIONS.iter().find(|(n, _, _)| n == opt) {
            if *clear {
                o.flags &= !flag;
            } else {
                o.flags |= flag;
            }
        } else if let Some((_, flag)) = PROPAGATION_OPTIONS.iter().find(|(n, _)| n == opt) {
            o.propagation.push(*flag);
        } else if opt == "bind" {
            o.bind = true;
        } else if opt == "rbind" {
            o.bind = true;
            o.recursive = true;
        } else if !opt.is_empty() {
            o.data.push(opt.clone());
        }
    }
    o
}

/// One mount to make, relative to the container's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub destination: String,
    pub fstype: String,
    pub source: String,
    pub options: Options,
}

impl Entry {
    pub fn from_spec(m: &Mount) -> Result<Self> {
        if !m.destination.starts_with('/') {
            return Err(Error::Config(format!(
                "mount destination {:?} is not absolute",
                m.destination
            )));
        }
        let options = parse_options(&m.options);
        let fstype = m.kind.clone().unwrap_or_default();
        let fstype = if fstype.is_empty() && options.bind {
            "bind".to_string()
        } else {
            fstype
        };
        if fstype.is_empty() {
            return Err(Error::Config(format!(
                "mount {:?} has no type",
                m.destination
            )));
        }
        Ok(Self {
            destination: m.destination.clone(),
            source: m.source.clone().unwrap_or_else(|| fstype.clone()),
            fstype,
            options,
        })
    }

    pub fn is_bind(&self) -> bool {
        self.options.bind || self.fstype == "bind"
    }
}

/// A v1 cgroup hierarchy to show inside the container: its name under
/// /sys/fs/cgroup, its controllers (mount data) and the container's own directory on
/// the host (bind-mounted when there is no cgroup namespace).
#[derive(Debug, Clone)]
pub struct CgroupV1Mount {
    pub name: String,
    pub options: String,
    pub host_dir: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct DefaultDevice {
    pub path: &'static str,
    pub major: u64,
    pub minor: u64,
}

pub const DEFAULT_DEVICES: [DefaultDevice; 6] = [
    DefaultDevice {
        path: "/dev/null",
        major: 1,
        minor: 3,
    },
    DefaultDevice {
        path: "/dev/zero",
        major: 1,
        minor: 5,
    },
    DefaultDevice {
        path: "/dev/full",
        major: 1,
        minor: 7,
    },
    DefaultDevice {
        path: "/dev/random",
        major: 1,
        minor: 8,
    },
    DefaultDevice {
        path: "/dev/urandom",
        major: 1,
        minor: 9,
    },
    DefaultDevice {
        path: "/dev/tty",
        major: 5,
        minor: 0,
    },
];

const DEV_LINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

/// Everything about the container's filesystem, resolved before fork.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    /// MS_* flags for "/" before the mounts (slave or private, recursive), and after
    /// pivot_root when the config asks for shared propagation.
    pub root_propagation: libc::c_ulong,
    pub final_propagation: Option<libc::c_ulong>,
    pub entries: Vec<Entry>,
    pub devices: Vec<Device>,
    /// Create the default devices (false when /dev is bind-mounted from the host).
    pub default_devices: bool,
    /// In a user namespace devices cannot be made: bind the host's instead.
    pub bind_devices: bool,
    pub no_pivot: bool,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub cgroup_ns: bool,
    pub cgroup_v2: bool,
    pub cgroup_v1: Vec<CgroupV1Mount>,
    pub cgroup2_host_dir: Option<PathBuf>,
}

pub fn propagation_flags(name: Option<&str>) -> Result<(libc::c_ulong, Option<libc::c_ulong>)> {
    let rec_slave = libc::MS_SLAVE | libc::MS_REC;
    let rec_private = libc::MS_PRIVATE | libc::MS_REC;
    Ok(match name.unwrap_or("") {
        "" | "slave" | "rslave" => (rec_slave, None),
        "private" | "rprivate" => (rec_private, None),
        "shared" | "rshared" => (rec_private, Some(libc::MS_SHARED | libc::MS_REC)),
        "unbindable" | "runbindable" => (rec_private, Some(libc::MS_UNBINDABLE | libc::MS_REC)),
        other => {
            return Err(Error::Config(format!(
                "invalid rootfsPropagation {other:?}"
            )))
        }
    })
}

/// Resolves `unsafe_path` inside `root` the way the kernel would if `root` were
/// "/": symlinks are followed but never lead outside `root`, and ".." stops at it.
pub fn secure_join(root: &Path, unsafe_path: &str) -> Result<PathBuf> {
    resolve(root, unsafe_path, &Known::default())
}

/// What [`resolve`] keeps while one root is prepared.
///
/// `dirs`: directories (relative to the root) already found to be directories and
/// not symlinks, so each is looked at once instead of once per path through it
/// (/dev alone is on a dozen paths). The runtime never turns one into a symlink; a
/// mount covers what was below its target, so whatever is remembered below a target
/// is forgotten before the mount (see `mount_entry`).
///
/// `root`: the root opened (O_PATH), when it could be: paths are looked at
/// relative to it, so the kernel walks the path inside the root only, not the
/// host's path to it again for each (a sixth of a monitor's CPU time was in such
/// walks). Let go before anything is mounted on the root itself: it would go on
/// showing what that mount covers, while the mounts and files that follow go
/// into the new one.
#[derive(Default)]
struct Known {
    dirs: std::cell::RefCell<std::collections::HashSet<PathBuf>>,
    root: std::cell::RefCell<Option<OwnedFd>>,
}

impl Known {
    fn at(root: &Path) -> Known {
        let fd = sys::open(root, libc::O_PATH | libc::O_DIRECTORY, 0).ok();
        Known {
            root: std::cell::RefCell::new(fd),
            ..Known::default()
        }
    }

    /// Before a mount at `rel` (relative to the root): forgets what it covers.
    fn covered(&self, rel: &Path) {
        self.dirs
            .borrow_mut()
            .retain(|k| k.as_path() == rel || !k.starts_with(rel));
        if rel.as_os_str().is_empty() {
            self.root.borrow_mut().take();
        }
    }

    fn borrow(&self) -> std::cell::Ref<'_, std::collections::HashSet<PathBuf>> {
        self.dirs.borrow()
    }

    fn borrow_mut(&self) -> std::cell::RefMut<'_, std::collections::HashSet<PathBuf>> {
        self.dirs.borrow_mut()
    }

    /// `lstat` of `rel` (relative to the root): (is a symlink, is a directory).
    fn lstat(&self, root: &Path, rel: &Path) -> io::Result<(bool, bool)> {
        match &*self.root.borrow() {
            Some(fd) => sys::lstat_kind_at(fd, rel),
            None => fs::symlink_metadata(root.join(rel))
                .map(|m| (m.file_type().is_symlink(), m.is_dir())),
        }
    }

    fn read_link(&self, root: &Path, rel: &Path) -> io::Result<PathBuf> {
        match &*self.root.borrow() {
            Some(fd) => sys::read_link_at(fd, rel),
            None => fs::read_link(root.join(rel)),
        }
    }
}

fn resolve(root: &Path, unsafe_path: &str, known: &Known) -> Result<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<String> = components(unsafe_path);
    pending.reverse();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        if known.borrow().contains(&candidate) {
            resolved = candidate;
            continue;
        }
        match known.lstat(root, &candidate) {
            Ok((true, _)) => {
                links += 1;
                if links > 255 {
                    return Err(Error::Config(format!(
                        "too many symlinks resolving {unsafe_path:?}"
                    )));
                }
                let target = known
                    .read_link(root, &candidate)
                    .ctx(|| format!("readlink {}", root.join(&candidate).display()))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved = PathBuf::new();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            }
            Ok((false, is_dir)) => {
                if is_dir {
                    known.borrow_mut().insert(candidate.clone());
                }
                resolved = candidate;
            }
            Err(_) => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn components(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let source_c = source.map(sys::cstr).transpose()?;
    let fstype_c = fstype.map(sys::cstr).transpose()?;
    let data_c = data.filter(|d| !d.is_empty()).map(sys::cstr).transpose()?;
    let target_c = path_cstr(target)?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are valid C strings or null.
    let r = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    if r != 0 {
        return Err(Error::last(format!(
            "mount {} on {} (type {}, options {:?})",
            source.unwrap_or("none"),
            target.display(),
            fstype.unwrap_or("none"),
            data.unwrap_or("")
        )));
    }
    Ok(())
}

/// Creates `path` as a directory or an empty file (for binding a file onto it);
/// whatever is there already stays (a symlink is not followed). The parent
/// directories are made only when missing: one system call in the usual case.
fn make_target(path: &Path, dir: bool) -> Result<()> {
    // A file to bind onto usually exists (the init layer has /etc/hosts...): a
    // look is cheaper than a refused O_CREAT on an overlay. A directory is made
    // straight away (mkdir fails with EEXIST as cheaply as a look).
    if !dir && fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    let c = path_cstr(path)?;
    let attempt = || -> std::io::Result<()> {
        // SAFETY: c is a valid C string; the fd, if any, is closed at once.
        let r = unsafe {
            if dir {
                libc::mkdir(c.as_ptr(), 0o755)
            } else {
                // O_EXCL: never opens what is there (a device, a symlink).
                let fd = libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o666,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            }
        };
        match r {
            0.. => Ok(()),
            _ => match std::io::Error::last_os_error() {
                // There already (a directory, a file, a symlink, a device).
                e if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                e => Err(e),
            },
        }
    };
    match attempt() {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
            }
            attempt()
        }
        other => other,
    }
    .ctx(|| format!("create {}", path.display()))
}

/// Flags a bind mount keeps on remount (they cannot be cleared in a user namespace).
const REMOUNT_MASK: libc::c_ulong = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME;

fn bind(source: &Path, target: &Path, o: &Options) -> Result<()> {
    let meta = fs::metadata(source).ctx(|| format!("bind source {}", source.display()))?;
    bind_kind(source, target, o, meta.is_dir())
}

/// [`bind`] of a source known to be a directory (`dir`) or not.
fn bind_kind(source: &Path, target: &Path, o: &Options, dir: bool) -> Result<()> {
    make_target(target, dir)?;
    let rec = if o.recursive { libc::MS_REC } else { 0 };
    let src = source.to_string_lossy();
    mount(Some(&src), target, None, libc::MS_BIND | rec, None)?;
    remount_bind(target, o.flags & REMOUNT_MASK, rec)
}

/// Gives the bind mount at `target` the `extra` flags (of REMOUNT_MASK; a bind
/// takes none itself), keeping those the kernel locks.
fn remount_bind(target: &Path, extra: libc::c_ulong, rec: libc::c_ulong) -> Result<()> {
    if extra == 0 {
        return Ok(());
    }
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | rec | extra | locked_flags(target),
        None,
    )
}

/// Sets the MS_RDONLY, MS_NOSUID, MS_NODEV and MS_NOEXEC of `flags` on the mount
/// at `target` and every mount below it, in one call (mount_setattr, Linux 5.12;
/// it only adds, so no flag the kernel locks is dropped). False where the kernel
/// lacks it: the caller remounts each.
fn set_attrs_recursive(target: &Path, flags: libc::c_ulong) -> Result<bool> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let mut set = 0u64;
    for (ms, attr) in [
        (libc::MS_RDONLY, 0x1u64), // MOUNT_ATTR_RDONLY
        (libc::MS_NOSUID, 0x2),    // MOUNT_ATTR_NOSUID
        (libc::MS_NODEV, 0x4),     // MOUNT_ATTR_NODEV
        (libc::MS_NOEXEC, 0x8),    // MOUNT_ATTR_NOEXEC
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let c = path_cstr(target)?;
    // SAFETY: c is a valid C string and attr a mount_attr of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        return Ok(false);
    }
    Err(Error::sys(
        format!("mount_setattr {}", target.display()),
        err,
    ))
}

/// Flags the kernel will not let a remount drop (nosuid, nodev, noexec, ro of the
/// underlying mount in a user namespace).
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = path_cstr(path) else { return 0 };
    // SAFETY: statvfs writes into st.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut f = 0;
    for (vfs, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
    ] {
        if st.f_flag & vfs != 0 {
            f |= ms;
        }
    }
    f
}

impl Plan {
    /// Everything up to and including pivot_root. Runs in the child, in its new
    /// mount namespace.
    pub fn prepare_root(&self) -> Result<()> {
        mount(None, Path::new("/"), None, self.root_propagation, None)?;
        let root = self.rootfs.to_string_lossy();
        // The root must be a mount point of its own for pivot_root.
        mount(
            Some(&root),
            &self.rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        let known = Known::at(&self.rootfs);
        for entry in &self.entries {
            self.mount_entry(entry, &known)?;
        }
        if self.default_devices {
            self.create_devices(&known)?;
        }
        for dev in &self.devices {
            self.create_device(dev, &known)?;
        }
        Ok(())
    }

    fn mount_entry(&self, e: &Entry, known: &Known) -> Result<()> {
        let target = resolve(&self.rootfs, &e.destination, known)?;
        // What was below the target is covered by the mount: forget it (a bind of a
        // volume may bring symlinks where directories were).
        if let Ok(rel) = target.strip_prefix(&self.rootfs) {
            known.covered(rel);
        }
        if e.fstype == "cgroup" || e.fstype == "cgroup2" {
            return self.mount_cgroup(e, &target);
        }
        if e.is_bind() {
            bind(Path::new(&e.source), &target, &e.options)?;
        } else {
            make_target(&target, true)?;
            let data = e.options.data.join(",");
            let r = mount(
                Some(&e.source),
                &target,
                Some(&e.fstype),
                e.options.flags,
                Some(&data),
            );
            if let Err(err) = r {
                // sysfs cannot be mounted without a network namespace of our own in
                // a user namespace: fall back to the host's, read-only (as runc).
                if e.fstype != "sysfs" {
                    return Err(err);
                }
                let o = Options {
                    recursive: true,
                    flags: libc::MS_RDONLY | e.options.flags,
                    ..Default::default()
                };
                bind(Path::new("/sys"), &target, &o)?;
            }
        }
        for prop in &e.options.propagation {
            mount(None, &target, None, *prop, None)?;
        }
        Ok(())
    }

    fn mount_cgroup(&self, e: &Entry, target: &Path) -> Result<()> {
        make_target(target, true)?;
        let flags = e.options.flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if self.cgroup_v2 {
            if self.cgroup_ns {
                return mount(Some("cgroup2"), target, Some("cgroup2"), flags, None);
            }
            let host = self
                .cgroup2_host_dir
                .clone()
                .unwrap_or_else(|| "/sys/fs/cgroup".into());
            let o = Options {
                recursive: true,
                flags: flags & REMOUNT_MASK,
                ..Default::default()
            };
            return bind(&host, target, &o);
        }
        // v1: a tmpfs holding one directory per hierarchy.
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )?;
        let mut binds = Vec::new();
        for h in &self.cgroup_v1 {
            let dir = target.join(&h.name);
            make_target(&dir, true)?;
            if self.cgroup_ns {
                mount(
                    Some("cgroup"),
                    &dir,
                    Some("cgroup"),
                    flags,
                    Some(&h.options),
                )?;
            } else {
                // Its flags come below, for all of them in one call.
                let src = h.host_dir.to_string_lossy();
                mount(Some(&src), &dir, None, libc::MS_BIND, None)?;
                binds.push(dir);
            }
        }
        // The flags of the tmpfs and every bind under it in one call (was a remount
        // and a statvfs each); else a remount of each bind, then of the tmpfs.
        let set_at_once = !binds.is_empty() && set_attrs_recursive(target, flags & REMOUNT_MASK)?;
        if !set_at_once {
            for dir in &binds {
                remount_bind(dir, flags & REMOUNT_MASK, 0)?;
            }
            if e.options.flags & libc::MS_RDONLY != 0 {
                mount(
                    None,
                    target,
                    None,
                    libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    Some("mode=755"),
                )?;
            }
        }
        Ok(())
    }

    fn create_devices(&self, known: &Known) -> Result<()> {
        for d in &DEFAULT_DEVICES {
            let dev = Device {
                kind: "c".into(),
                path: d.path.into(),
                major: d.major as i64,
                minor: d.minor as i64,
                file_mode: Some(0o666),
                uid: Some(0),
                gid: Some(0),
            };
            self.create_device(&dev, known)?;
        }
        let dev_dir = resolve(&self.rootfs, "/dev", known)?;
        for (target, link) in DEV_LINKS {
            let path = resolve(&self.rootfs, link, known)?;
            if fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(target, &path)
                .ctx(|| format!("symlink {}", path.display()))?;
        }
        if Path::new("/proc/kcore").exists() {
            let core = dev_dir.join("core");
            if fs::symlink_metadata(&core).is_err() {
                std::os::unix::fs::symlink("/proc/kcore", &core)
                    .ctx(|| format!("symlink {}", core.display()))?;
            }
        }
        Ok(())
    }

    fn create_device(&self, d: &Device, known: &Known) -> Result<()> {
        let target = resolve(&self.rootfs, &d.path, known)?;
        let kind = match d.kind.as_str() {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            other => {
                return Err(Error::Config(format!(
                    "device {}: invalid type {other:?}",
                    d.path
                )))
            }
        };
        if self.bind_devices {
            let o = Options::default();
            return bind(Path::new(&d.path), &target, &o);
        }
        if let Some(parent) = target.parent() {
            if !parent
                .strip_prefix(&self.rootfs)
                .is_ok_and(|rel| known.borrow().contains(rel))
            {
                fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
            }
        }
        if let Ok(meta) = fs::symlink_metadata(&target) {
            let same = (meta.file_type().is_char_device() || meta.file_type().is_block_device())
                && meta.rdev() == libc::makedev(d.major as u32, d.minor as u32);
            if same {
                return Ok(());
            }
            fs::remove_file(&target).ctx(|| format!("replace {}", target.display()))?;
        }
        let c = path_cstr(&target)?;
        let mode = kind | d.file_mode.unwrap_or(0o666);
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        // SAFETY: c is a valid path.
        if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
            return Err(Error::last(format!("mknod {}", d.path)));
        }
        // mknod is subject to the umask: set the mode exactly.
        // SAFETY: c is a valid path.
        unsafe {
            libc::chmod(c.as_ptr(), d.file_mode.unwrap_or(0o666) & 0o7777);
            if libc::chown(c.as_ptr(), d.uid.unwrap_or(0), d.gid.unwrap_or(0)) != 0 {
                return Err(Error::last(format!("chown {}", d.path)));
            }
        }
        Ok(())
    }

    /// Makes the prepared root the process's root.
    pub fn enter_root(&self) -> Result<()> {
        let root = path_cstr(&self.rootfs)?;
        // SAFETY: plain syscalls on valid C strings.
        unsafe {
            if libc::chdir(root.as_ptr()) != 0 {
                return Err(Error::last(format!("chdir {}", self.rootfs.display())));
            }
            if self.no_pivot {
                mount(Some("."), Path::new("/"), None, libc::MS_MOVE, None)?;
                if libc::chroot(c".".as_ptr()) != 0 {
                    return Err(Error::last("chroot"));
                }
            } else {
                let old = sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
                if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
                    return Err(Error::last(format!("pivot_root {}", self.rootfs.display())));
                }
                use std::os::fd::AsRawFd;
                if libc::fchdir(old.as_raw_fd()) != 0 {
                    return Err(Error::last("fchdir to the old root"));
                }
                // Keep unmounting the old root from spreading to the host.
                mount(
                    None,
                    Path::new("."),
                    None,
                    libc::MS_SLAVE | libc::MS_REC,
                    None,
                )?;
                if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
                    return Err(Error::last("unmount the old root"));
                }
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                return Err(Error::last("chdir /"));
            }
        }
        if let Some(flags) = self.final_propagation {
            mount(None, Path::new("/"), None, flags, None)?;
        }
        Ok(())
    }

    /// After pivot_root: read-only paths, masked paths, then a read-only root.
    pub fn finish(&self) -> Result<()> {
        for p in &self.readonly {
            let path = Path::new(p);
            if fs::symlink_metadata(path).is_err() {
                continue;
            }
            mount(Some(p), path, None, libc::MS_BIND | libc::MS_REC, None)?;
            let flags = libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_REC
                | locked_flags(path);
            mount(
                None,
                path,
                None,
                flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            )?;
        }
        for p in &self.masked {
            let path = Path::new(p);
            match fs::metadata(path) {
                Err(_) => continue,
                Ok(m) if m.is_dir() => {
                    mount(Some("tmpfs"), path, Some("tmpfs"), libc::MS_RDONLY, None)?
                }
                Ok(_) => mount(Some("/dev/null"), path, None, libc::MS_BIND, None)?,
            }
        }
        if self.readonly_root {
            let flags =
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(Path::new("/"));
            mount(None, Path::new("/"), None, flags, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> Options {
        parse_options(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn option_words() {
        let o = opts(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = opts(&["rbind", "ro", "rslave"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, libc::MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(opts(&["ro", "rw"]).flags, 0);
        assert_eq!(opts(&["nosuid", "suid"]).flags, 0);
    }

    #[test]
    fn entries() {
        let m = Mount {
            destination: "/data".into(),
            kind: None,
            source: Some("/srv".into()),
            options: vec!["bind".into()],
        };
        let e = Entry::from_spec(&m).unwrap();
        assert!(e.is_bind());
        let m = Mount {
            destination: "rel".into(),
            kind: Some("tmpfs".into()),
            ..Default::default()
        };
        assert!(Entry::from_spec(&m).is_err());
        let m = Mount {
            destination: "/x".into(),
            ..Default::default()
        };
        assert!(Entry::from_spec(&m).is_err());
        let m = Mount {
            destination: "/proc".into(),
            kind: Some("proc".into()),
            ..Default::default()
        };
        assert_eq!(Entry::from_spec(&m).unwrap().source, "proc");
    }

    #[test]
    fn propagation() {
        assert_eq!(
            propagation_flags(None).unwrap().0,
            libc::MS_SLAVE | libc::MS_REC
        );
        assert_eq!(
            propagation_flags(Some("rshared")).unwrap().1,
            Some(libc::MS_SHARED | libc::MS_REC)
        );
        assert!(propagation_flags(Some("bogus")).is_err());
    }

    #[test]
    fn secure_join_stays_inside() {
        let root = std::env::temp_dir().join(format!("skiff-sj-{}", std::process::id()));
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            secure_join(&root, "/abs/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(&root, "/up/x").unwrap(), root.join("etc/x"));
        assert_eq!(secure_join(&root, "/../../etc").unwrap(), root.join("etc"));
        assert_eq!(
            secure_join(&root, "/new/dir").unwrap(),
            root.join("new/dir")
        );
        assert!(secure_join(&root, "/loop").is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn resolving_with_known_directories_agrees_with_secure_join() {
        let root = std::env::temp_dir().join(format!("skiff-rk-{}", std::process::id()));
        fs::create_dir_all(root.join("dev/pts")).unwrap();
        fs::create_dir_all(root.join("usr/etc")).unwrap();
        std::os::unix::fs::symlink("/usr/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../dev", root.join("usr/devlink")).unwrap();
        std::os::unix::fs::symlink("/../../../../usr", root.join("up")).unwrap();
        let paths = [
            "/dev/pts",
            "/dev/shm",
            "/etc/hosts",
            "/usr/devlink/pts/0",
            "/dev/../etc/x",
            "/new/a",
            "/up/etc/y",
        ];
        // Looking at paths through the host's path to the root, and relative to
        // the root opened.
        assert!(Known::at(&root).root.borrow().is_some());
        for known in [Known::default(), Known::at(&root)] {
            for _ in 0..2 {
                for p in paths {
                    assert_eq!(
                        resolve(&root, p, &known).unwrap(),
                        secure_join(&root, p).unwrap(),
                        "{p}"
                    );
                }
            }
            // Only directories that are not symlinks are remembered.
            let k = known.borrow();
            assert!(k.contains(Path::new("dev")) && k.contains(Path::new("usr/etc")));
            assert!(!k.contains(Path::new("etc")) && !k.contains(Path::new("new")));
        }
        assert_eq!(
            secure_join(&root, "/up/etc/y").unwrap(),
            root.join("usr/etc/y")
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_mount_forgets_what_was_remembered_below_its_target() {
        // A volume bound at /a may put a symlink where a/b was a directory: a/b
        // must be looked at again for a later mount at /a/b/c/d.
        let root = std::env::temp_dir().join(format!("skiff-fk-{}", std::process::id()));
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        let known = Known::at(&root);
        resolve(&root, "/a/b/c", &known).unwrap();
        assert!(known.borrow().contains(Path::new("a/b")));
        let plan = Plan {
            rootfs: root.clone(),
            readonly_root: false,
            root_propagation: 0,
            final_propagation: None,
            entries: Vec::new(),
            devices: Vec::new(),
            default_devices: false,
            bind_devices: false,
            no_pivot: false,
            masked: Vec::new(),
            readonly: Vec::new(),
            cgroup_ns: false,
            cgroup_v2: false,
            cgroup_v1: Vec::new(),
            cgroup2_host_dir: None,
        };
        // A bind whose source is missing fails before mounting anything; what was
        // remembered below its target is gone all the same.
        let missing_bind = |destination: &str| {
            Entry::from_spec(&Mount {
                destination: destination.into(),
                source: Some(root.join("missing").to_string_lossy().into_owned()),
                kind: Some("none".into()),
                options: vec!["bind".into()],
            })
            .unwrap()
        };
        assert!(plan.mount_entry(&missing_bind("/a"), &known).is_err());
        let k = known.borrow();
        assert!(k.contains(Path::new("a")) && !k.contains(Path::new("a/b")));
        assert!(!k.contains(Path::new("a/b/c")));
        drop(k);
        // A mount on the root itself: everything is forgotten, and the root opened
        // too (it would go on showing what the mount covers).
        assert!(known.root.borrow().is_some());
        assert!(plan.mount_entry(&missing_bind("/"), &known).is_err());
        assert!(known.borrow().is_empty() && known.root.borrow().is_none());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn make_target_makes_what_is_missing_and_leaves_what_is_there() {
        let root = std::env::temp_dir().join(format!("skiff-mt-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        make_target(&root.join("a/b/c"), true).unwrap();
        assert!(root.join("a/b/c").is_dir());
        make_target(&root.join("x/y/file"), false).unwrap();
        assert!(root.join("x/y/file").is_file());
        fs::write(root.join("x/y/file"), "kept").unwrap();
        make_target(&root.join("x/y/file"), false).unwrap();
        assert_eq!(fs::read_to_string(root.join("x/y/file")).unwrap(), "kept");
        // A symlink is left alone, never followed (its target is not made).
        let outside = root.with_extension("outside");
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        make_target(&root.join("link"), false).unwrap();
        make_target(&root.join("link"), true).unwrap();
        assert!(!outside.exists());
        assert!(fs::symlink_metadata(root.join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_dir_all(&root).unwrap();
    }
}
