//! The cgroup v1 manager (also used in hybrid mode): the container's cgroup is a
//! directory in each mounted v1 hierarchy; each controller's values go to the
//! hierarchy that carries that controller (found from the mount options, so
//! `cpu` and `cpuacct` may share a directory or not).

mod blkio;
mod cpu;
mod cpuset;
mod devices;
mod freezer;
mod memory;
mod pids;

use std::os::fd::OwnedFd;
use std::path::Path;

pub use super::Hierarchy;
use super::{join_below, own_dir, v1_mount_controllers, Manager, MountEntry, ProcCgroup, Stats};
use crate::error::{Error, Result};
use crate::spec::Resources;

#[derive(Debug)]
pub struct V1Manager {
    path: String,
    hierarchies: Vec<Hierarchy>,
}

impl V1Manager {
    /// A manager over explicit directories (tests, or a caller that resolved them).
    pub fn new(path: impl Into<String>, hierarchies: Vec<Hierarchy>) -> V1Manager {
        V1Manager {
            path: path.into(),
            hierarchies,
        }
    }

    /// Resolves a normalized cgroupsPath in every v1 hierarchy of `mounts` that
    /// carries a controller (or is `name=systemd`), relative ones under the
    /// process's own cgroup from `own` (`/proc/self/cgroup`).
    pub(crate) fn resolve(
        path: &str,
        mounts: &[MountEntry],
        own: &[ProcCgroup],
    ) -> Result<V1Manager> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
            let controllers = v1_mount_controllers(m);
            let wanted = controllers
                .iter()
                .any(|c| (!c.starts_with("name=") && c != "debug") || c == "name=systemd");
            if !wanted
                || hierarchies
                    .iter()
                    .any(|h| same_set(&h.controllers, &controllers))
            {
                continue;
            }
            let dir = if path.starts_with('/') {
                join_below(&m.mount_point, path)
            } else {
                let own_path = own
                    .iter()
                    .find(|p| same_set(&p.controllers, &controllers))
                    .map_or("/", |p| p.path.as_str());
                own_dir(&m.mount_point, &m.root, own_path).join(path)
            };
            hierarchies.push(Hierarchy {
                controllers,
                mount_point: m.mount_point.clone(),
                dir,
            });
        }
        if hierarchies.is_empty() {
            return Err(Error::Config(
                "no cgroup v1 hierarchy is mounted".to_string(),
            ));
        }
        Ok(V1Manager::new(path, hierarchies))
    }

    /// The hierarchies the cgroup lives in.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The hierarchy carrying `controller`, if mounted.
    pub fn hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The cgroup's directory for `controller`, if that controller is mounted.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchy(controller).map(|h| h.dir.as_path())
    }

    fn require(&self, controller: &str, what: &str) -> Result<&Path> {
        self.dir(controller).ok_or_else(|| {
            Error::Config(format!(
                "{what} needs the cgroup v1 {controller} controller, which is not mounted"
            ))
        })
    }

    /// The directory used to list processes.
    fn procs_dir(&self) -> &Path {
        ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|c| self.dir(c))
            .unwrap_or(&self.hierarchies[0].dir)
    }
}

/// Renames the spare cgroup (see `make_spare`) in `h` to the container's, when it
/// sits in the same parent directory; else removes it (false: make the directory).
/// One rename in the usual case: cgroupfs refuses to rename onto an existing name.
fn adopt(h: &Hierarchy, spare: &str) -> bool {
    let from = join_below(&h.mount_point, spare);
    if from.parent() == h.dir.parent() {
        match std::fs::rename(&from, &h.dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(_) => {}
        }
    }
    let _ = std::fs::remove_dir(&from);
    false
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

impl Manager for V1Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn dirs(&self) -> Vec<Hierarchy> {
        self.hierarchies.clone()
    }

    fn create(&self) -> Result<()> {
        self.create_from(None)
    }

    fn create_from(&self, spare: Option<&str>) -> Result<()> {
        for h in &self.hierarchies {
            if spare.is_some_and(|spare| adopt(h, spare)) {
                continue;
            }
            super::mkdir_all(&h.dir)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                cpuset::init(&h.mount_point, &h.dir)?;
            }
        }
        Ok(())
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        if !r.unified.is_empty() {
            return Err(Error::Config(
                "linux.resources.unified needs cgroup v2; this host uses cgroup v1".to_string(),
            ));
        }
        // runc's order: cpuset, devices, memory, cpu, pids, blkio.
        if let Some(c) = &r.cpu {
            if cpuset::needed(c) {
                cpuset::apply(self.require("cpuset", "cpu.cpus/cpu.mems")?, c)?;
            }
        }
        if !r.devices.is_empty() {
            devices::apply(self.require("devices", "device rules")?, &r.devices)?;
        }
        if let Some(m) = &r.memory {
            if memory::needed(m) {
                memory::apply(self.require("memory", "a memory limit")?, m)?;
            }
        }
        if let Some(c) = &r.cpu {
            if cpu::needed(c) {
                cpu::apply(self.require("cpu", "a cpu limit")?, c)?;
            }
        }
        if let Some(p) = &r.pids {
            pids::apply(self.require("pids", "a pids limit")?, p)?;
        }
        if let Some(b) = &r.block_io {
            if blkio::needed(b) {
                blkio::apply(self.require("blkio", "a block I/O limit")?, b)?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            super::write_file(&h.dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        None
    }

    fn freeze(&self) -> Result<()> {
        freezer::freeze(self.freezer_dir()?)
    }

    fn thaw(&self) -> Result<()> {
        freezer::thaw(self.freezer_dir()?)
    }

    fn is_frozen(&self) -> Result<bool> {
        match self.dir("freezer") {
            Some(dir) => freezer::is_frozen(dir),
            None => Ok(false),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        super::procs_recursive(self.procs_dir())
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        super::freeze_signal_thaw(self, signal)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for h in &self.hierarchies {
            if let Err(e) = super::remove_cgroup_tree(&h.dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn oom_kills(&self) -> Result<u64> {
        match self.dir("memory") {
            Some(dir) => memory::oom_kills(dir),
            None => Ok(0),
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(dir) = self.dir("memory") {
            memory::stats(dir, &mut s);
        }
        if let Some(dir) = self.dir("cpuacct") {
            s.cpu_usage_ns = super::read_u64_opt(&dir.join("cpuacct.usage"));
        }
        if let Some(dir) = self.dir("pids") {
            pids::stats(dir, &mut s);
        }
        Ok(s)
    }
}

impl V1Manager {
    fn freezer_dir(&self) -> Result<&Path> {
        self.dir("freezer").ok_or_else(|| {
            Error::sys(
                "the cgroup v1 freezer controller is not mounted",
                std::io::Error::from_raw_os_error(libc::ENOTSUP),
            )
        })
    }
}

#[cfg(test)]
mod tests;
