//! Namespaces: the config's list turned into clone flags (new ones) and fds to
//! join (ones given by path), plus uid/gid maps.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::{IdMapping, Namespace};
use crate::sys;

/// Namespace types in the order they are joined: user first (it grants the rights
/// to join the others), mount last (paths are resolved before it changes).
pub const KINDS: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("network", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("time", 0x80), // CLONE_NEWTIME
    ("mount", libc::CLONE_NEWNS),
];

/// /proc/PID/ns/ file name of each kind.
pub fn proc_name(kind: &str) -> &'static str {
    match kind {
        "user" => "user",
        "cgroup" => "cgroup",
        "ipc" => "ipc",
        "uts" => "uts",
        "network" => "net",
        "pid" => "pid",
        "time" => "time",
        _ => "mnt",
    }
}

fn flag(kind: &str) -> Result<libc::c_int> {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, f)| *f)
        .ok_or_else(|| Error::Config(format!("unknown namespace type {kind:?}")))
}

/// What to do about namespaces, decided before fork.
#[derive(Debug, Default)]
pub struct Plan {
    /// Flags for clone: the namespaces to create.
    pub clone_flags: libc::c_int,
    /// Namespaces to join, in join order: (flag, fd, path).
    pub join: Vec<(libc::c_int, OwnedFd, String)>,
}

impl Plan {
    pub fn creates(&self, flag: libc::c_int) -> bool {
        self.clone_flags & flag != 0
    }

    pub fn joins(&self, flag: libc::c_int) -> bool {
        self.join.iter().any(|(f, _, _)| *f == flag)
    }

    pub fn has(&self, flag: libc::c_int) -> bool {
        self.creates(flag) || self.joins(flag)
    }
}

pub fn plan(namespaces: &[Namespace]) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut seen = 0;
    for (kind, _) in KINDS {
        for ns in namespaces.iter().filter(|n| n.kind == kind) {
            let f = flag(&ns.kind)?;
            if seen & f != 0 {
                return Err(Error::Config(format!("namespace {kind:?} listed twice")));
            }
            seen |= f;
            match ns.path.as_deref() {
                Some(p) if !p.is_empty() => {
                    let fd = sys::open(Path::new(p), libc::O_RDONLY, 0)?;
                    plan.join.push((f, fd, p.to_string()));
                }
                _ => plan.clone_flags |= f,
            }
        }
    }
    for ns in namespaces {
        flag(&ns.kind)?;
    }
    Ok(plan)
}

pub fn setns(fd: &OwnedFd, flag: libc::c_int, path: &str) -> Result<()> {
    // SAFETY: fd is a valid namespace fd.
    if unsafe { libc::setns(fd.as_raw_fd(), flag) } != 0 {
        return Err(Error::last(format!("join namespace {path}")));
    }
    Ok(())
}

/// "0 1000 65536\n..." for /proc/PID/uid_map.
pub fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Writes the uid and gid maps of a child in a new user namespace.
pub fn write_id_maps(pid: i32, uid: &[IdMapping], gid: &[IdMapping]) -> Result<()> {
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::Config(
            "a new user namespace needs uidMappings and gidMappings".into(),
        ));
    }
    // Without CAP_SETGID in the parent namespace gid maps need setgroups denied;
    // as root we keep setgroups so the container can set its supplementary groups.
    sys::write_file(format!("/proc/{pid}/uid_map"), &map_text(uid))?;
    sys::write_file(format!("/proc/{pid}/gid_map"), &map_text(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_namespaces_become_clone_flags() {
        let ns = |k: &str| Namespace {
            kind: k.into(),
            path: None,
        };
        let p = plan(&[ns("pid"), ns("mount"), ns("network")]).unwrap();
        assert_eq!(
            p.clone_flags,
            libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET
        );
        assert!(p.join.is_empty());
        assert!(plan(&[ns("pid"), ns("pid")]).is_err());
        assert!(plan(&[ns("bogus")]).is_err());
    }

    #[test]
    fn paths_are_joined_user_first() {
        let p = plan(&[
            Namespace {
                kind: "network".into(),
                path: Some("/proc/self/ns/net".into()),
            },
            Namespace {
                kind: "user".into(),
                path: Some("/proc/self/ns/user".into()),
            },
        ])
        .unwrap();
        assert_eq!(p.join[0].0, libc::CLONE_NEWUSER);
        assert_eq!(p.join[1].0, libc::CLONE_NEWNET);
        assert!(plan(&[Namespace {
            kind: "ipc".into(),
            path: Some("/nonexistent".into())
        }])
        .is_err());
    }

    #[test]
    fn maps() {
        let m = [IdMapping {
            container_id: 0,
            host_id: 100000,
            size: 65536,
        }];
        assert_eq!(map_text(&m), "0 100000 65536\n");
    }
}
