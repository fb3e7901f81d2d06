//! cgroups: one [`Manager`] per container, over cgroup v1 (pure or "hybrid") or
//! cgroup v2 (the unified hierarchy).
//!
//! The design follows youki's libcgroups (one manager trait; `v1/` and `v2/` each
//! have a manager and a file per controller) and runc's semantics for the values
//! written (runc's `fs` and `fs2` drivers).
//!
//! * [`detect`] reads `/proc/self/mountinfo` and says which layout the host uses:
//!   [`Mode::V2`] when `/sys/fs/cgroup` is a cgroup2 mount (or only cgroup2 is
//!   mounted), [`Mode::Hybrid`] when v1 controllers are mounted next to a cgroup2
//!   mount (usually the empty `/sys/fs/cgroup/unified`), [`Mode::V1`] otherwise.
//!   In hybrid mode every resource controller is driven through v1 and the
//!   unified hierarchy is ignored.
//! * v1 controllers are found from the super options of the `cgroup` mounts (so
//!   `cpu` and `cpuacct` may be one mount or two); the cgroup joins every mounted
//!   v1 hierarchy that carries a controller, plus `name=systemd`.
//! * [`manager`] resolves `linux.cgroupsPath` as runc does: an absolute path is
//!   taken under each hierarchy's root; a relative path is taken under the
//!   runtime's own cgroup (from `/proc/self/cgroup`) in each hierarchy; an absent
//!   path means [`DEFAULT_PARENT`]`/<id>` (absolute). systemd-style
//!   `slice:prefix:name` paths are refused (no systemd driver).
//!
//! Device rules are only applied when `resources.devices` is non-empty: the
//! caller (container creation) is expected to put the default rules there, as
//! runc does. An absent value in [`Resources`] leaves the cgroup's value alone.

pub mod devices;
pub mod v1;
pub mod v2;

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::spec::Resources;

/// The parent of containers that have no `linux.cgroupsPath`: their cgroup is
/// `/skiff-runtime/<id>` in every hierarchy.
pub const DEFAULT_PARENT: &str = "/skiff-runtime";

/// Where the cgroup hierarchies of this host are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// cgroup v1 controllers plus a (usually controller-less) cgroup2 mount.
    /// Driven like [`Mode::V1`].
    Hybrid,
    /// Only the unified hierarchy.
    V2,
}

/// Says which cgroup layout is in use (from the cgroup mounts: see
/// [`cgroup_mounts`]).
pub fn detect() -> Result<Mode> {
    let mounts = cgroup_mounts()?;
    mode_from_mounts(&mounts)
}

/// What the runtime's `features` command lists as supported controllers
/// (v1 and v2 names).
pub fn features_controllers() -> &'static [&'static str] {
    &[
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "io", "memory", "pids",
    ]
}

/// Usage numbers for the daemon's stats API. Each is `None` when the host (or the
/// cgroup) does not have it; limits are `None` when unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Bytes of memory in use (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage: Option<u64>,
    /// The memory limit in bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory_limit: Option<u64>,
    /// Peak memory use (v1 `memory.max_usage_in_bytes`, v2 `memory.peak` where
    /// the kernel has it).
    pub memory_max_usage: Option<u64>,
    /// CPU time used, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec).
    pub cpu_usage_ns: Option<u64>,
    /// Number of tasks (`pids.current`).
    pub pids_current: Option<u64>,
    /// The task limit (`pids.max`).
    pub pids_limit: Option<u64>,
}

/// One hierarchy a cgroup lives in, and the cgroup's directory there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The hierarchy's controllers as its mount options name them (`cpu`,
    /// `memory`, ... or `name=systemd`); empty for the unified (v2) hierarchy.
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// The cgroup's directory in it.
    pub dir: PathBuf,
}

/// One container's cgroup, in every hierarchy it lives in.
///
/// `create`, `apply` and `add_task` are separate steps: the runtime creates the
/// cgroup and applies the limits before the container's init joins it (or is
/// cloned into it with `CLONE_INTO_CGROUP` on v2, see [`Manager::v2_dir_fd`]).
/// On failure after `create`, call `destroy`.
pub trait Manager: std::fmt::Debug + Send + Sync {
    /// The (normalized) cgroupsPath: `/a/b` when absolute, `a/b` when relative.
    fn path(&self) -> &str;

    /// The cgroup's directory in each hierarchy it lives in (one entry on v2),
    /// e.g. to bind-mount them into the container.
    fn dirs(&self) -> Vec<Hierarchy>;

    /// Creates the cgroup (`mkdir -p`) in every hierarchy. v1: a new cpuset cgroup
    /// gets its parent's `cpuset.cpus`/`cpuset.mems`; v2: the parents'
    /// `cgroup.subtree_control` enable the available controllers.
    fn create(&self) -> Result<()>;

    /// `create`, taking the cgroup made ahead of need at `spare` (see
    /// [`make_spare`]) where it can: renamed into place when it shares the parent
    /// directory (v1), else removed.
    fn create_from(&self, spare: Option<&str>) -> Result<()> {
        if let Some(spare) = spare {
            remove_spare(spare);
        }
        self.create()
    }

    /// Writes the limits. Only the values present in `r` are written.
    fn apply(&self, r: &Resources) -> Result<()>;

    /// Moves a process (and its threads) into the cgroup.
    fn add_task(&self, pid: i32) -> Result<()>;

    /// On v2: an `O_RDONLY|O_DIRECTORY|O_CLOEXEC` descriptor of the cgroup's
    /// directory, for `clone3`'s `CLONE_INTO_CGROUP`. `None` on v1 and hybrid
    /// (or when the directory cannot be opened).
    fn v2_dir_fd(&self) -> Option<OwnedFd>;

    /// Freezes every process in the cgroup; returns once the kernel says frozen.
    fn freeze(&self) -> Result<()>;

    /// Thaws the cgroup.
    fn thaw(&self) -> Result<()>;

    /// Whether the cgroup is frozen.
    fn is_frozen(&self) -> Result<bool>;

    /// Every process in the cgroup and its descendants, sorted.
    fn pids(&self) -> Result<Vec<i32>>;

    /// Sends `signal` to every process in the cgroup (v2 with SIGKILL: `cgroup.kill`;
    /// otherwise freeze, signal each process, thaw).
    fn kill_all(&self, signal: i32) -> Result<()>;

    /// Removes the cgroup (and any cgroups below it) in every hierarchy, retrying
    /// for about a second while processes exit. A cgroup already gone is fine.
    fn destroy(&self) -> Result<()>;

    /// How many processes the kernel OOM killer killed in the cgroup (0 without a
    /// memory controller).
    fn oom_kills(&self) -> Result<u64>;

    /// Usage numbers.
    fn stats(&self) -> Result<Stats>;
}

/// The manager for a container: v1 (also in hybrid mode) or v2 after [`detect`],
/// for the container's `linux.cgroupsPath` (see the module documentation).
pub fn manager(cgroups_path: Option<&str>, id: &str) -> Result<Box<dyn Manager>> {
    let path = normalize_cgroups_path(cgroups_path, id)?;
    let mounts = cgroup_mounts()?;
    let mode = mode_from_mounts(&mounts)?;
    let own = parse_proc_cgroup(&read_own_cgroup()?);
    Ok(match mode {
        Mode::V1 | Mode::Hybrid => Box::new(v1::V1Manager::resolve(&path, &mounts, &own)?),
        Mode::V2 => Box::new(v2::V2Manager::resolve(&path, &mounts, &own)?),
    })
}

// ---------------------------------------------------------------------------
// A spare cgroup

/// Makes a cgroup ahead of need at `path` (absolute; skiff-monitor makes one while
/// it waits for its container), for a later [`Manager::create_from`]. On cgroup
/// v1 a new cgroup costs a directory with tens of control files in each of ~10
/// hierarchies; renaming a spare into place costs a rename each. Returns the
/// normalized path, or None on v2 (no rename there; one cheap directory anyway).
pub fn make_spare(path: &str) -> Result<Option<String>> {
    let path = normalize_cgroups_path(Some(path), "")?;
    let mounts = cgroup_mounts()?;
    if !matches!(mode_from_mounts(&mounts)?, Mode::V1 | Mode::Hybrid) {
        return Ok(None);
    }
    let own = parse_proc_cgroup(&read_own_cgroup()?);
    let m = v1::V1Manager::resolve(&path, &mounts, &own)?;
    if let Err(e) = m.create() {
        let _ = m.destroy();
        return Err(e);
    }
    Ok(Some(path))
}

/// Removes what is left of a spare cgroup (nothing once renamed into place).
pub fn remove_spare(path: &str) {
    if let Ok(m) = manager(Some(path), "") {
        let _ = m.destroy();
    }
}

// ---------------------------------------------------------------------------
// cgroupsPath

/// Cleans a cgroupsPath: `None` becomes `DEFAULT_PARENT/<id>`; `.` and empty
/// components go, `..` cannot climb above the start; an absolute path keeps its
/// leading `/`. Paths that look systemd-style (`slice:prefix:name`) are refused,
/// as is a path naming the root (or, relative, the runtime's own cgroup).
pub(crate) fn normalize_cgroups_path(path: Option<&str>, id: &str) -> Result<String> {
    let raw = match path {
        Some(p) => p.to_string(),
        None => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(Error::Config(format!(
                    "container id {id:?} cannot name a cgroup"
                )));
            }
            format!("{DEFAULT_PARENT}/{id}")
        }
    };
    let absolute = raw.starts_with('/');
    if !absolute && raw.contains(':') {
        return Err(Error::Config(format!(
            "cgroupsPath {raw:?}: systemd cgroup driver not supported"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::Config(format!(
            "cgroupsPath {raw:?} does not name a cgroup of its own"
        )));
    }
    let joined = parts.join("/");
    Ok(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// `base` joined with a cgroup path (absolute or relative) below it.
pub(crate) fn join_below(base: &Path, cgroup: &str) -> PathBuf {
    base.join(cgroup.trim_start_matches('/'))
}

// ---------------------------------------------------------------------------
// /proc/self/mountinfo and /proc/self/cgroup

/// One line of `/proc/self/mountinfo`, the fields the cgroup code needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// The filesystem's device (field 3, major:minor).
    pub dev: (u32, u32),
    /// The mount's root within its filesystem (field 4).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

/// The process's mountinfo, whole (tests; see [`read_cgroup_mounts`]).
#[cfg(test)]
pub(crate) fn read_mountinfo() -> Result<String> {
    crate::sys::read_small("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo".to_string())
}

/// The cgroup and cgroup2 mounts: those pinned by [`pin_mounts`] while they are
/// all still in place, else from mountinfo (read once until [`forget_cached`]).
pub(crate) fn cgroup_mounts() -> Result<Vec<MountEntry>> {
    let mut slot = MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = &*slot {
        return Ok(m.clone());
    }
    let mounts = match PINNED.get().filter(|p| still_mounted(p)) {
        Some(pinned) => pinned.clone(),
        None => read_cgroup_mounts()?,
    };
    Ok(slot.insert(mounts).clone())
}

/// The cgroup and cgroup2 lines of mountinfo, read a line at a time: the whole
/// text (tens of KiB with many containers) would stay resident in a long-lived
/// caller's heap once freed.
fn read_cgroup_mounts() -> Result<Vec<MountEntry>> {
    use std::io::BufRead;
    let err = |e| Error::sys("read /proc/self/mountinfo", e);
    let f = fs::File::open("/proc/self/mountinfo").map_err(err)?;
    let mut reader = io::BufReader::with_capacity(4096, f);
    let mut line = String::new();
    let mut mounts = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(err)? == 0 {
            return Ok(mounts);
        }
        if line.contains(" - cgroup") {
            mounts.extend(parse_mountinfo(&line).into_iter().filter(is_cgroup_fs));
        }
    }
}

/// Reads the cgroup mounts once for the rest of the process's life (skiff-monitor,
/// while it waits to be used: the mountinfo it would read at each of its verbs
/// grows with every running container). Call it outside the monitor's scratch
/// arena. Before each use each is checked to be mounted still: the filesystem
/// mountinfo named is at its mount point (a stat each: the same device; without
/// a device, a cgroup filesystem, a statfs); if one is not, mountinfo is read
/// again.
pub fn pin_mounts() -> Result<()> {
    let mounts = read_cgroup_mounts()?;
    let _ = PINNED.set(mounts);
    Ok(())
}

/// Like [`pin_mounts`], from `hint` instead of mountinfo when it may: the cgroup
/// lines of mountinfo as a caller read them before (skiffd, once at its start),
/// used while every hierarchy of /proc/self/cgroup has a mount there (cgroup2 for
/// the `0::` line) and each still mounted where it was. Mountinfo lists every
/// running container's root: reading it was a monitor's largest single cost when
/// many containers start at once.
pub fn pin_mounts_from(hint: &Path) -> Result<()> {
    match hinted_mounts(hint) {
        Some(mounts) => {
            let _ = PINNED.set(mounts);
            Ok(())
        }
        None => pin_mounts(),
    }
}

/// The cgroup mounts of `hint` (mountinfo lines) if they still describe this
/// process's cgroup hierarchies (see [`pin_mounts_from`]).
fn hinted_mounts(hint: &Path) -> Option<Vec<MountEntry>> {
    let text = crate::sys::read_small(hint).ok()?;
    let mounts: Vec<MountEntry> = parse_mountinfo(&text)
        .into_iter()
        .filter(is_cgroup_fs)
        .collect();
    let own = crate::sys::read_small("/proc/self/cgroup").ok()?;
    (covers_hierarchies(&mounts, &own) && still_mounted(&mounts)).then_some(mounts)
}

/// Whether each hierarchy of `own_cgroup` (/proc/self/cgroup) has a mount among
/// `mounts`: one with all of its controllers (or its `name=`), cgroup2 for `0::`.
fn covers_hierarchies(mounts: &[MountEntry], own_cgroup: &str) -> bool {
    own_cgroup.lines().filter(|l| !l.is_empty()).all(|line| {
        let controllers = line.split(':').nth(1).unwrap_or("");
        if controllers.is_empty() {
            return mounts.iter().any(|m| m.fstype == "cgroup2");
        }
        mounts.iter().any(|m| {
            m.fstype == "cgroup"
                && controllers
                    .split(',')
                    .all(|c| m.super_opts.iter().any(|o| o == c))
        })
    })
}

fn is_cgroup_fs(m: &MountEntry) -> bool {
    m.fstype == "cgroup" || m.fstype == "cgroup2"
}

/// Whether each mount's filesystem (the same hierarchy) is still at its mount
/// point: the same device.
fn still_mounted(mounts: &[MountEntry]) -> bool {
    use std::os::unix::fs::MetadataExt;
    mounts.iter().all(|m| {
        let (major, minor) = m.dev;
        fs::metadata(&m.mount_point).is_ok_and(|st| st.dev() == libc::makedev(major, minor))
    })
}

fn read_own_cgroup() -> Result<String> {
    cached(&OWN_CGROUP, "/proc/self/cgroup")
}

type Cache = std::sync::Mutex<Option<String>>;

static OWN_CGROUP: Cache = Cache::new(None);
static MOUNTS: std::sync::Mutex<Option<Vec<MountEntry>>> = std::sync::Mutex::new(None);
static PINNED: std::sync::OnceLock<Vec<MountEntry>> = std::sync::OnceLock::new();

fn cached(cell: &'static Cache, path: &str) -> Result<String> {
    let mut slot = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(text) = &*slot {
        return Ok(text.clone());
    }
    let text = crate::sys::read_small(path).ctx(|| format!("read {path}"))?;
    Ok(slot.insert(text).clone())
}

/// Forgets what was read once (mountinfo, the process's own cgroup): for a caller
/// that lives on after a command (skiff-monitor), which would otherwise keep it
/// for as long as the container runs.
pub fn forget_cached() {
    *OWN_CGROUP.lock().unwrap_or_else(|e| e.into_inner()) = None;
    *MOUNTS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            if pre.len() < 6 {
                return None;
            }
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next();
            let super_opts = post
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect();
            let (major, minor) = pre[2].split_once(':')?;
            let dev = (major.parse().ok()?, minor.parse().ok()?);
            Some(MountEntry {
                dev,
                root: unescape_octal(pre[3]),
                mount_point: PathBuf::from(unescape_octal(pre[4])),
                fstype,
                super_opts,
            })
        })
        .collect()
}

/// The cgroup v1 controllers the kernel knows (what may appear in a `cgroup`
/// mount's super options besides flags such as `rw`, `noprefix`, `xattr`).
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// The controllers (and `name=` of a named hierarchy) a v1 `cgroup` mount carries.
pub(crate) fn v1_mount_controllers(m: &MountEntry) -> Vec<String> {
    m.super_opts
        .iter()
        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
        .cloned()
        .collect()
}

fn has_v1_controller(m: &MountEntry) -> bool {
    m.fstype == "cgroup"
        && m.super_opts
            .iter()
            .any(|o| V1_CONTROLLERS.contains(&o.as_str()) && o != "debug")
}

pub(crate) fn mode_from_mounts(mounts: &[MountEntry]) -> Result<Mode> {
    let v2_at_canonical = mounts
        .iter()
        .any(|m| m.fstype == "cgroup2" && m.mount_point == Path::new("/sys/fs/cgroup"));
    let has_v1 = mounts.iter().any(has_v1_controller);
    let has_v2 = mounts.iter().any(|m| m.fstype == "cgroup2");
    match (v2_at_canonical, has_v1, has_v2) {
        (true, _, _) => Ok(Mode::V2),
        (false, true, true) => Ok(Mode::Hybrid),
        (false, true, false) => Ok(Mode::V1),
        (false, false, true) => Ok(Mode::V2),
        (false, false, false) => Err(Error::sys(
            "cgroups: no cgroup or cgroup2 filesystem in /proc/self/mountinfo",
            io::Error::from(io::ErrorKind::NotFound),
        )),
    }
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcCgroup {
    pub id: String,
    /// Empty for the unified hierarchy (`0::/path`).
    pub controllers: Vec<String>,
    pub path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let id = it.next()?.to_string();
            let controllers = it
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = it.next()?.to_string();
            Some(ProcCgroup {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The directory of the cgroup at `own_path` (as `/proc/self/cgroup` shows it) in a
/// hierarchy mounted at `mount_point` from `mount_root`.
pub(crate) fn own_dir(mount_point: &Path, mount_root: &str, own_path: &str) -> PathBuf {
    let root = mount_root.trim_end_matches('/');
    let rel = if root.is_empty() {
        own_path
    } else {
        match own_path.strip_prefix(root) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => own_path,
        }
    };
    join_below(mount_point, rel)
}

// ---------------------------------------------------------------------------
// File helpers

/// Writes `value` to a cgroup file (opened `O_WRONLY|O_TRUNC`, never created).
/// The error names the file and the value.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let res = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (controller not available?)"
        } else {
            ""
        };
        Error::sys(
            format!("cannot write {value:?} to {}{hint}", path.display()),
            e,
        )
    })
}

/// Reads a cgroup file.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    crate::sys::read_small(path).ctx(|| format!("cannot read {}", path.display()))
}

/// Reads a cgroup file; `None` when it does not exist.
pub(crate) fn read_file_opt(path: &Path) -> Result<Option<String>> {
    match crate::sys::read_small(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::sys(format!("cannot read {}", path.display()), e)),
    }
}

/// A file holding one unsigned number (or `max`, read as `None`).
pub(crate) fn parse_u64_or_max(path: &Path, text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse::<u64>().map(Some).map_err(|_| {
        Error::sys(
            format!("{}: unexpected content {t:?}", path.display()),
            io::Error::from(io::ErrorKind::InvalidData),
        )
    })
}

/// Reads a one-number file; `None` when it is absent, unparsable or `max`.
pub(crate) fn read_u64_opt(path: &Path) -> Option<u64> {
    let text = crate::sys::read_small(path).ok()?;
    parse_u64_or_max(path, &text).ok().flatten()
}

/// The value of `key` in a flat-keyed file (`key value` per line).
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        if it.next()? == key {
            it.next()?.parse().ok()
        } else {
            None
        }
    })
}

/// The `pids.max` value for an OCI pids limit: 0 or less is "max" (v1 and v2).
pub(crate) fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// `mkdir -p` (mode 0755).
pub(crate) fn mkdir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).ctx(|| format!("cannot create cgroup {}", dir.display()))
}

/// The pids in `dir/cgroup.procs` and in every cgroup below `dir`, sorted. A
/// missing `dir` yields none.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    fn walk(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
        let Some(text) = read_file_opt(&dir.join("cgroup.procs"))? else {
            return Ok(());
        };
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::sys(format!("cannot list {}", dir.display()), e)),
        };
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&entry.path(), out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// How long `destroy` keeps retrying `rmdir` on EBUSY.
const RMDIR_PATIENCE: Duration = Duration::from_secs(1);

/// Removes a cgroup directory, the cgroups below it first. Missing is fine;
/// EBUSY (processes still exiting) is retried for about a second.
pub(crate) fn remove_cgroup_tree(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_cgroup_tree(&entry.path())?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::sys(format!("cannot list {}", dir.display()), e)),
    }
    let deadline = Instant::now() + RMDIR_PATIENCE;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                return Err(Error::sys(
                    format!("cannot remove cgroup {}", dir.display()),
                    e,
                ))
            }
        }
    }
}

/// Sends `signal` to each pid; a process already gone is fine.
pub(crate) fn signal_pids(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        if pid <= 0 {
            continue;
        }
        // SAFETY: kill(2) with a positive pid and a signal number has no memory effects.
        if unsafe { libc::kill(pid, signal) } == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::sys(format!("kill({pid}, {signal})"), e));
            }
        }
    }
    Ok(())
}

/// runc's `signalAllProcesses`: freeze (best effort), signal every process, thaw.
pub(crate) fn freeze_signal_thaw(m: &dyn Manager, signal: i32) -> Result<()> {
    let frozen = m.freeze().is_ok();
    let res = m.pids().and_then(|pids| signal_pids(&pids, signal));
    if frozen {
        let thawed = m.thaw();
        res?;
        thawed
    } else {
        res
    }
}

/// Polls `done` every millisecond until it says true or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for the cgroup tests: temp dirs and forked children, all cleaned
    //! up by guards.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A name unique to this process and call: `skiff-test-<pid>-<n>`.
    pub fn unique_name() -> String {
        format!(
            "skiff-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        )
    }

    pub fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// A temporary directory, removed (recursively) on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            let p = std::env::temp_dir().join(unique_name());
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A forked child that waits on a pipe. `go()` lets it run `action` (async-
    /// signal-safe code only) and exit with its result; dropping the guard kills
    /// and reaps it if still there.
    pub struct Child {
        pub pid: i32,
        go_fd: i32,
        reaped: bool,
    }

    impl Child {
        /// Forks a child that waits for `go()`, then exits with `action()`.
        /// Without `go()` it blocks until killed.
        pub fn spawn(action: fn() -> i32) -> Child {
            let mut fds = [0i32; 2];
            // SAFETY: fds is a valid 2-int array.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: the child only calls async-signal-safe functions (read, close,
            // open inside `action`, _exit).
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                unsafe {
                    libc::close(fds[1]);
                    let mut b = 0u8;
                    loop {
                        let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
                        if n == 1 {
                            libc::_exit(action());
                        }
                        if n == 0 {
                            // The parent went away without go(): wait to be killed.
                            loop {
                                libc::pause();
                            }
                        }
                    }
                }
            }
            // SAFETY: closing our copy of the read end.
            unsafe { libc::close(fds[0]) };
            Child {
                pid,
                go_fd: fds[1],
                reaped: false,
            }
        }

        /// Lets the child run its action.
        pub fn go(&self) {
            let b = 1u8;
            // SAFETY: writing one byte from a valid buffer.
            let n = unsafe { libc::write(self.go_fd, (&b as *const u8).cast(), 1) };
            assert_eq!(n, 1);
        }

        /// Waits for the child; returns the raw wait status.
        pub fn wait(&mut self) -> i32 {
            let mut status = 0;
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            assert_eq!(r, self.pid, "waitpid");
            self.reaped = true;
            status
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            // SAFETY: signalling and reaping our own child; closing our fd.
            unsafe {
                if !self.reaped {
                    libc::kill(self.pid, libc::SIGKILL);
                    let mut status = 0;
                    libc::waitpid(self.pid, &mut status, 0);
                }
                libc::close(self.go_fd);
            }
        }
    }

    /// The child's action that exits at once with 0.
    pub fn exit_zero() -> i32 {
        0
    }

    /// Opens /dev/null (read-write) and /dev/zero (read): exit code bit 0 set when
    /// /dev/null opened, bit 1 when /dev/zero opened.
    pub fn probe_devices() -> i32 {
        let mut code = 0;
        // SAFETY: open/close with NUL-terminated literals are async-signal-safe.
        unsafe {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if fd >= 0 {
                code |= 1;
                libc::close(fd);
            }
            let fd = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                code |= 2;
                libc::close(fd);
            }
        }
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hint_covers_the_hierarchies_it_has_mounts_for() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO);
        let own = "5:memory:/a\n4:cpuset:/\n3:cpuacct:/\n2:cpu:/\n1:name=systemd:/x\n0::/x\n";
        assert!(covers_hierarchies(&m, own));
        // A hierarchy mounted since (freezer), or a controller pair on one mount.
        assert!(!covers_hierarchies(&m, &format!("6:freezer:/\n{own}")));
        assert!(!covers_hierarchies(&m, "2:cpu,cpuacct:/\n"));
        // No cgroup2 mount for the 0:: line.
        let v1: Vec<MountEntry> = m.iter().filter(|e| e.fstype == "cgroup").cloned().collect();
        assert!(!covers_hierarchies(&v1, own));
        assert!(covers_hierarchies(&v1, "2:cpu:/\n"));
    }

    #[test]
    fn hinted_mounts_are_used_only_while_they_still_hold() {
        let dir = testutil::TempDir::new();
        let hint = dir.path().join("cgroup-mounts");
        let real = read_cgroup_mounts().unwrap();
        if real.is_empty() {
            return; // no cgroup mounts here
        }
        let lines: Vec<String> = read_mountinfo()
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - cgroup"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&hint, lines.concat()).unwrap();
        assert_eq!(hinted_mounts(&hint), Some(real.clone()));
        // Not there, a hierarchy missing, or a mount that is no cgroup filesystem.
        assert_eq!(hinted_mounts(&dir.path().join("none")), None);
        if lines.len() > 1 {
            fs::write(&hint, lines[1..].concat()).unwrap();
            assert_eq!(hinted_mounts(&hint), None);
        }
        let moved = lines[0].replacen(
            &format!(" {} ", real[0].mount_point.display()),
            &format!(" {} ", dir.path().display()),
            1,
        );
        fs::write(&hint, [moved].concat() + &lines[1..].concat()).unwrap();
        assert_eq!(hinted_mounts(&hint), None);
    }

    #[test]
    fn detect_modes() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mode_from_mounts(&m).unwrap(), Mode::Hybrid);
        assert_eq!(m[2].super_opts, vec!["rw", "cpu"]);
        assert_eq!(v1_mount_controllers(&m[6]), vec!["name=systemd"]);

        let v1: String = HYBRID_MOUNTINFO
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(mode_from_mounts(&parse_mountinfo(&v1)).unwrap(), Mode::V1);

        let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(mode_from_mounts(&parse_mountinfo(v2)).unwrap(), Mode::V2);

        // cgroup2 at /sys/fs/cgroup wins even if some v1 hierarchy is mounted too.
        let v2_plus = format!("{v2}50 30 0:40 / /mnt/net_cls rw - cgroup cgroup rw,net_cls\n");
        assert_eq!(
            mode_from_mounts(&parse_mountinfo(&v2_plus)).unwrap(),
            Mode::V2
        );

        assert!(
            mode_from_mounts(&parse_mountinfo("23 1 0:22 / /sys rw - sysfs sysfs rw\n")).is_err()
        );
    }

    #[test]
    fn detect_on_this_host() {
        // Whatever the host is, detection must succeed where cgroups are mounted.
        if Path::new("/proc/self/mountinfo").exists() && Path::new("/sys/fs/cgroup").exists() {
            detect().unwrap();
        }
    }

    #[test]
    fn pinned_mounts_are_used_only_while_still_cgroup_filesystems() {
        let entry = |point: &str, fstype: &str| MountEntry {
            dev: (0, 0),
            root: "/".into(),
            mount_point: PathBuf::from(point),
            fstype: fstype.into(),
            super_opts: Vec::new(),
        };
        // Not the filesystem mountinfo named (any more): mountinfo is read again.
        assert!(!still_mounted(&[entry("/proc", "cgroup")]));
        assert!(!still_mounted(&[entry("/nonexistent", "cgroup2")]));
        // What this host has mounted is.
        if let Ok(mut mounts) = read_cgroup_mounts() {
            assert!(mounts.iter().all(|m| m.fstype.starts_with("cgroup")));
            assert!(still_mounted(&mounts));
            // Two hierarchies swapped between mount points (cgroup filesystems
            // both) are not.
            if mounts.len() > 1 && mounts[0].dev != mounts[1].dev {
                let (a, b) = (mounts[0].mount_point.clone(), mounts[1].mount_point.clone());
                mounts[0].mount_point = b;
                mounts[1].mount_point = a;
                assert!(!still_mounted(&mounts));
            }
        }
    }

    #[test]
    fn mountinfo_unescapes() {
        let m =
            parse_mountinfo("1 2 0:3 /a\\040b /mnt/with\\040space rw - cgroup cgroup rw,memory\n");
        assert_eq!(m[0].root, "/a b");
        assert_eq!(m[0].mount_point, Path::new("/mnt/with space"));
    }

    #[test]
    fn proc_cgroup_and_own_dir() {
        let own = parse_proc_cgroup(
            "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n",
        );
        assert_eq!(own[1].controllers, vec!["memory"]);
        assert_eq!(own[1].path, "/process_api/abc");
        assert_eq!(own[2].controllers, vec!["cpu", "cpuacct"]);
        assert!(own[3].controllers.is_empty());
        assert_eq!(
            own_dir(Path::new("/sys/fs/cgroup/memory"), "/", "/process_api/abc"),
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        // A bind mount of a sub-cgroup (container without cgroupns).
        assert_eq!(
            own_dir(
                Path::new("/sys/fs/cgroup/memory"),
                "/docker/c1",
                "/docker/c1/sub"
            ),
            Path::new("/sys/fs/cgroup/memory/sub")
        );
    }

    #[test]
    fn cgroups_path_rules() {
        assert_eq!(
            normalize_cgroups_path(None, "abc").unwrap(),
            "/skiff-runtime/abc"
        );
        assert_eq!(normalize_cgroups_path(Some("/a/b/"), "x").unwrap(), "/a/b");
        assert_eq!(normalize_cgroups_path(Some("a//./b"), "x").unwrap(), "a/b");
        assert_eq!(
            normalize_cgroups_path(Some("/../../etc/x"), "x").unwrap(),
            "/etc/x"
        );
        assert_eq!(normalize_cgroups_path(Some("../../x"), "x").unwrap(), "x");
        assert_eq!(normalize_cgroups_path(Some("/a:b"), "x").unwrap(), "/a:b");
        let e = normalize_cgroups_path(Some("system.slice:skiff:abc"), "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("systemd cgroup driver not supported"),
            "{e}"
        );
        assert!(normalize_cgroups_path(Some("/"), "x").is_err());
        assert!(normalize_cgroups_path(Some(".."), "x").is_err());
        assert!(normalize_cgroups_path(None, "a/b").is_err());
    }

    #[test]
    fn write_file_errors_name_file_and_value() {
        let e = write_file(Path::new("/nonexistent-dir/memory.max"), "1234").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/nonexistent-dir/memory.max") && s.contains("\"1234\""),
            "{s}"
        );
    }

    #[test]
    fn pids_max_values() {
        assert_eq!(pids_max(100), "100");
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
    }

    #[test]
    fn flat_keyed_values() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(flat_keyed(t, "oom_kill"), Some(3));
        assert_eq!(flat_keyed(t, "oom"), None);
    }
}
