//! What the runtime keeps per container under `--root` (default /run/skiff-runtime):
//!
//! ```text
//! <root>/<id>/state.json   the saved state below (written atomically)
//! <root>/<id>/exec.fifo    exists from create until start: init blocks opening it
//! ```
//!
//! The status is derived, never stored: stopped when init is gone (or its pid was
//! reused: the start time differs), created while the fifo exists, paused while the
//! cgroup is frozen, running otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::spec::{Hooks, State, OCI_VERSION};
use crate::sys;

pub const FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// Start time of init in clock ticks, to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroups_path: String,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Namespaces of init that `exec` joins: /proc/<pid>/ns names.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

pub struct Container {
    pub dir: PathBuf,
    pub saved: Saved,
}

pub fn dir(root: &str, id: &str) -> PathBuf {
    Path::new(root).join(id)
}

/// Makes the state directory of a new container; an existing one is a conflict.
pub fn create_dir(root: &str, id: &str) -> Result<PathBuf> {
    let root_path = Path::new(root);
    if !root_path.exists() {
        fs::create_dir_all(root_path).ctx(|| format!("mkdir {root}"))?;
        let _ = fs::set_permissions(
            root_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
    }
    let d = dir(root, id);
    match fs::create_dir(&d) {
        Ok(()) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::State(format!(
            "container with id {id:?} already exists"
        ))),
        Err(e) => Err(Error::sys(format!("mkdir {}", d.display()), e)),
    }
}

impl Container {
    pub fn load(root: &str, id: &str) -> Result<Self> {
        let d = dir(root, id);
        let raw = match fs::read(d.join("state.json")) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::sys(format!("read state of {id}"), e)),
        };
        let saved: Saved = serde_json::from_slice(&raw)
            .map_err(|e| Error::State(format!("corrupt state of {id}: {e}")))?;
        Ok(Self { dir: d, saved })
    }

    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec(&self.saved).map_err(|e| Error::State(e.to_string()))?;
        sys::write_atomic(&self.dir.join("state.json"), &data)
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(FIFO)
    }

    /// Whether init is still the process we started.
    pub fn init_alive(&self) -> bool {
        self.saved.pid > 0 && sys::pid_start_time(self.saved.pid) == Some(self.saved.pid_start)
    }

    pub fn cgroup(&self) -> Result<Box<dyn cgroups::Manager>> {
        cgroups::manager(Some(&self.saved.cgroups_path), &self.saved.id)
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if self.cgroup().and_then(|c| c.is_frozen()).unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self) -> State {
        let status = self.status();
        State {
            oci_version: OCI_VERSION.into(),
            id: self.saved.id.clone(),
            status: status.as_str().into(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.saved.pid
            },
            bundle: self.saved.bundle.clone(),
            annotations: self.saved.annotations.clone(),
        }
    }

    /// The `state` command's JSON: the OCI state plus runc's rootfs, created, owner.
    pub fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.oci_state()).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("rootfs".into(), self.saved.rootfs.clone().into());
            obj.insert("created".into(), self.saved.created.clone().into());
            obj.insert("owner".into(), self.saved.owner.clone().into());
            obj.entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            // Whether the kernel's OOM killer struck in the container's cgroup.
            let oom = self.cgroup().and_then(|c| c.oom_kills()).unwrap_or(0);
            obj.insert("oomKilled".into(), (oom > 0).into());
        }
        v
    }

    pub fn remove_dir(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::sys(format!("remove {}", self.dir.display()), e)),
        }
    }
}

/// Every container under `root`, sorted by id; unreadable entries are skipped.
pub fn list(root: &str) -> Vec<Container> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Container> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Container::load(root, &e.file_name().to_string_lossy()).ok())
        .collect();
    out.sort_by(|a, b| a.saved.id.cmp(&b.saved.id));
    out
}
