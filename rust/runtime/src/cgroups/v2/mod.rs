//! The cgroup v2 manager: one directory in the unified hierarchy. `create` enables
//! the available controllers in every ancestor's `cgroup.subtree_control` (from
//! the hierarchy's root down), as runc does; `apply` writes the controllers'
//! files and attaches the device filter (eBPF).
//!
//! The manager takes the hierarchy's root and the cgroup's directory as
//! parameters ([`V2Manager::new`]), so it can be pointed at any tree.

mod cpu;
mod cpuset;
mod devices;
pub mod devices_bpf;
mod freezer;
mod io;
mod memory;
mod pids;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::{join_below, own_dir, Hierarchy, Manager, MountEntry, ProcCgroup, Stats};
use crate::error::{Error, Result};
use crate::spec::Resources;

#[derive(Debug)]
pub struct V2Manager {
    path: String,
    /// The root of the unified hierarchy (its mount point).
    root: PathBuf,
    /// The cgroup's directory.
    dir: PathBuf,
}

impl V2Manager {
    /// A manager for the cgroup at `dir` in the hierarchy rooted at `root`
    /// (`dir` should be below `root`; controllers are enabled from `root` down).
    pub fn new(
        path: impl Into<String>,
        root: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
    ) -> V2Manager {
        V2Manager {
            path: path.into(),
            root: root.into(),
            dir: dir.into(),
        }
    }

    /// Resolves a normalized cgroupsPath in the unified hierarchy of `mounts`
    /// (the one at /sys/fs/cgroup if there are several); relative paths go under
    /// the process's own cgroup (`0::/...` in `own`).
    pub(crate) fn resolve(
        path: &str,
        mounts: &[MountEntry],
        own: &[ProcCgroup],
    ) -> Result<V2Manager> {
        let cg2: Vec<&MountEntry> = mounts.iter().filter(|m| m.fstype == "cgroup2").collect();
        let m = cg2
            .iter()
            .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"))
            .or(cg2.first())
            .ok_or_else(|| Error::Config("no cgroup2 filesystem is mounted".to_string()))?;
        let dir = if path.starts_with('/') {
            join_below(&m.mount_point, path)
        } else {
            let own_path = own
                .iter()
                .find(|p| p.id == "0" && p.controllers.is_empty())
                .map_or("/", |p| p.path.as_str());
            own_dir(&m.mount_point, &m.root, own_path).join(path)
        };
        Ok(V2Manager::new(path, m.mount_point.clone(), dir))
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directories from the root down to the cgroup's parent.
    fn ancestors(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut cur = self.dir.parent();
        while let Some(p) = cur {
            if !p.starts_with(&self.root) {
                break;
            }
            out.push(p.to_path_buf());
            if p == self.root {
                break;
            }
            cur = p.parent();
        }
        out.reverse();
        out
    }
}

/// Enables `controllers` in `dir/cgroup.subtree_control`: all at once, else one by
/// one, ignoring refusals (a controller that cannot be enabled shows up later as
/// a missing file when a limit needs it, which `apply` reports).
fn enable_controllers(dir: &Path, controllers: &[String]) {
    if controllers.is_empty() {
        return;
    }
    let file = dir.join("cgroup.subtree_control");
    let all: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
    if super::write_file(&file, &all.join(" ")).is_err() {
        for c in &all {
            let _ = super::write_file(&file, c);
        }
    }
}

fn controllers_of(dir: &Path) -> Result<Option<Vec<String>>> {
    Ok(super::read_file_opt(&dir.join("cgroup.controllers"))?
        .map(|t| t.split_whitespace().map(str::to_string).collect()))
}

impl Manager for V2Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn dirs(&self) -> Vec<Hierarchy> {
        vec![Hierarchy {
            controllers: Vec::new(),
            mount_point: self.root.clone(),
            dir: self.dir.clone(),
        }]
    }

    fn create(&self) -> Result<()> {
        let mut available: Vec<String> = Vec::new();
        for dir in self.ancestors() {
            super::mkdir_all(&dir)?;
            // A level's own cgroup.controllers says what it can hand down; where
            // there is none (not a real cgroupfs), keep what the level above had.
            if let Some(c) = controllers_of(&dir)? {
                available = c;
            }
            enable_controllers(&dir, &available);
        }
        super::mkdir_all(&self.dir)
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        let dir = &self.dir;
        if let Some(c) = &r.cpu {
            if cpuset::needed(c) {
                cpuset::apply(dir, c)?;
            }
        }
        if !r.devices.is_empty() {
            devices::apply(dir, &r.devices)?;
        }
        if let Some(m) = &r.memory {
            if memory::needed(m) {
                memory::apply(dir, m)?;
            }
        }
        if let Some(c) = &r.cpu {
            if cpu::needed(c) {
                cpu::apply(dir, c)?;
            }
        }
        if let Some(p) = &r.pids {
            pids::apply(dir, p)?;
        }
        if let Some(b) = &r.block_io {
            if io::needed(b) {
                io::apply(dir, b)?;
            }
        }
        for (key, value) in &r.unified {
            apply_unified(dir, key, value)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        super::write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        devices::open_dir(&self.dir).ok()
    }

    fn freeze(&self) -> Result<()> {
        freezer::freeze(&self.dir)
    }

    fn thaw(&self) -> Result<()> {
        freezer::thaw(&self.dir)
    }

    fn is_frozen(&self) -> Result<bool> {
        freezer::is_frozen(&self.dir)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        super::procs_recursive(&self.dir)
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        let kill = self.dir.join("cgroup.kill");
        if signal == libc::SIGKILL && kill.exists() {
            return super::write_file(&kill, "1");
        }
        super::freeze_signal_thaw(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        super::remove_cgroup_tree(&self.dir)
    }

    fn oom_kills(&self) -> Result<u64> {
        memory::oom_kills(&self.dir)
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        memory::stats(&self.dir, &mut s);
        cpu::stats(&self.dir, &mut s);
        pids::stats(&self.dir, &mut s);
        Ok(s)
    }
}

/// One `linux.resources.unified` entry: the key names a file of the cgroup
/// (`memory.high`, `io.latency`, ...), written as is.
fn apply_unified(dir: &Path, key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(Error::Config(format!(
            "linux.resources.unified: {key:?} does not name a cgroup file"
        )));
    }
    let file = dir.join(key);
    if !file.exists() {
        let controller = key.split('.').next().unwrap_or(key);
        return Err(Error::Config(format!(
            "linux.resources.unified: {} does not exist (is the {controller} controller enabled?)",
            file.display()
        )));
    }
    super::write_file(&file, value)
}

#[cfg(test)]
mod tests;
