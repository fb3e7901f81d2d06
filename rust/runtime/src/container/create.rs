//! `create`: set the container up and leave its init waiting for `start`.
//!
//! Everything that can be decided is decided here, before the clone: config
//! parsing, mount plans, capability masks, the compiled (cached) seccomp program.
//! The child only makes syscalls. Anything that fails removes what was made: the
//! child, its cgroup and the state directory.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::{self, Manager};
use crate::cli::{CreateOpts, Global};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::init::{self, Init};
use crate::mounts::{self, CgroupV1Mount};
use crate::namespaces;
use crate::process::ProcessPlan;
use crate::seccomp;
use crate::spec::{DeviceRule, Resources, Spec, State, OCI_VERSION};
use crate::state::{self, Container, Saved};
use crate::sys;
use crate::tty;

/// What `create` leaves for its caller (`run` keeps going with it).
pub struct Created {
    pub container: Container,
    pub sync: OwnedFd,
    pub spec: Spec,
}

pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let raw = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&raw).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Removes what a failed create made.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Box<dyn Manager>>,
    pid: i32,
}

impl Undo {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pid = 0;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: the pid is our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = sys::wait_child(self.pid);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

pub fn create(g: &Global, o: &CreateOpts, run_mode: bool) -> Result<Created> {
    if g.systemd_cgroup && !Path::new("/run/systemd/system").exists() {
        return Err(Error::Config(
            "--systemd-cgroup: systemd is not running on this host; use the cgroupfs driver".into(),
        ));
    }
    if o.id.starts_with('.') {
        return Err(Error::Usage(format!("invalid container id {:?}", o.id)));
    }
    let bundle = fs::canonicalize(&o.bundle).ctx(|| format!("bundle {}", o.bundle))?;
    let spec = load_spec(&bundle)?;
    let linux = spec.linux.clone().unwrap_or_default();
    let process = spec
        .process
        .clone()
        .ok_or_else(|| Error::Config("process is missing".into()))?;
    let root = spec
        .root
        .clone()
        .ok_or_else(|| Error::Config("root is missing".into()))?;
    let rootfs = bundle.join(&root.path);
    let rootfs = fs::canonicalize(&rootfs).ctx(|| format!("root.path {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        return Err(Error::Config(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }

    let ns = namespaces::plan(&linux.namespaces)?;
    if !ns.has(libc::CLONE_NEWNS) {
        return Err(Error::Config("a mount namespace is required".into()));
    }
    if (spec.hostname.as_deref().is_some_and(|h| !h.is_empty()) || spec.domainname.is_some())
        && !ns.has(libc::CLONE_NEWUTS)
    {
        return Err(Error::Config(
            "setting the hostname needs a private UTS namespace".into(),
        ));
    }
    if ns.creates(libc::CLONE_NEWUSER)
        && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty())
    {
        return Err(Error::Config(
            "a new user namespace needs uidMappings and gidMappings".into(),
        ));
    }
    let entries = spec
        .mounts
        .iter()
        .map(mounts::Entry::from_spec)
        .collect::<Result<Vec<_>>>()?;
    let (root_propagation, final_propagation) =
        mounts::propagation_flags(linux.rootfs_propagation.as_deref())?;
    let mut sysctl = Vec::new();
    for (k, v) in &linux.sysctl {
        if k.contains("..") || k.contains('/') && k.contains('.') {
            return Err(Error::Config(format!("invalid sysctl {k:?}")));
        }
        if k.starts_with("net.") && !ns.has(libc::CLONE_NEWNET) {
            return Err(Error::Config(format!(
                "sysctl {k:?} needs a private network namespace"
            )));
        }
        sysctl.push((
            PathBuf::from("/proc/sys").join(k.replace('.', "/")),
            v.clone(),
        ));
    }
    let seccomp = match &linux.seccomp {
        Some(profile) => Some(seccomp::compile_cached(
            profile,
            &Path::new(&g.root).join(".seccomp"),
        )?),
        None => None,
    };
    let process_plan = ProcessPlan::from_spec(&process, seccomp, o.preserve_fds)?;
    let hooks_spec = spec.hooks.clone().unwrap_or_default();

    // From here on, things exist on the host: undo them on failure.
    let dir = state::create_dir(&g.root, &o.id)?;
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: None,
        pid: 0,
    };

    let cgroup = cgroups::manager(linux.cgroups_path.as_deref(), &o.id)?;
    cgroup.create_from(o.spare_cgroup.as_deref())?;
    undo.cgroup = Some(cgroups::manager(linux.cgroups_path.as_deref(), &o.id)?);
    cgroup.apply(&with_default_devices(
        linux.resources.clone().unwrap_or_default(),
        &linux.devices,
    ))?;

    let needs_cgroup_mount = entries
        .iter()
        .any(|e| e.fstype == "cgroup" || e.fstype == "cgroup2");
    let mode = cgroups::detect()?;
    let mount_plan = mounts::Plan {
        rootfs: rootfs.clone(),
        readonly_root: root.readonly,
        root_propagation,
        final_propagation,
        default_devices: !entries
            .iter()
            .any(|e| e.destination == "/dev" && e.is_bind()),
        bind_devices: ns.has(libc::CLONE_NEWUSER),
        devices: linux.devices.clone(),
        entries,
        no_pivot: o.no_pivot,
        masked: linux.masked_paths.clone(),
        readonly: linux.readonly_paths.clone(),
        cgroup_ns: ns.has(libc::CLONE_NEWCGROUP),
        cgroup_v2: matches!(mode, cgroups::Mode::V2),
        cgroup_v1: if needs_cgroup_mount {
            v1_hierarchies(cgroup.path())
        } else {
            Vec::new()
        },
        cgroup2_host_dir: Some(
            PathBuf::from("/sys/fs/cgroup").join(cgroup.path().trim_start_matches('/')),
        ),
    };

    let console = o.console_socket.as_deref().map(tty::connect).transpose()?;
    let fifo = if run_mode || o.defer_process {
        None
    } else {
        Some(make_fifo(&dir)?)
    };
    let state = State {
        oci_version: OCI_VERSION.into(),
        id: o.id.clone(),
        status: "creating".into(),
        pid: 0,
        bundle: bundle.to_string_lossy().into_owned(),
        annotations: spec.annotations.clone(),
    };
    let init = Init {
        hostname: spec.hostname.clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname.clone(),
        sysctl,
        process: process_plan,
        console,
        fifo,
        session_keyring: if o.no_new_keyring {
            None
        } else {
            Some(sys::cstr(format!("_ses.{}", o.id))?)
        },
        parent_hooks: !hooks_spec.prestart.is_empty() || !hooks_spec.create_runtime.is_empty(),
        create_container: hooks_spec.create_container.clone(),
        start_container: hooks_spec.start_container.clone(),
        state: state.clone(),
        mounts: mount_plan,
        ns,
        stdio: o.stdio,
        defer_process: o.defer_process,
        early_seccomp: o.defer_process
            && hooks_spec.start_container.is_empty()
            && linux
                .seccomp
                .as_ref()
                .is_some_and(|p| seccomp::allows_all_of(p, crate::init::AFTER_PARK)),
    };

    // A pid namespace given by path is entered before the clone: setns(CLONE_NEWPID)
    // applies to children. Only for this clone: a caller that lives on (skiff-monitor)
    // gets its own back.
    let mut pid_ns = None;
    for (flag, fd, path) in &init.ns.join {
        if *flag == libc::CLONE_NEWPID {
            pid_ns.get_or_insert(PidNsRestore(sys::open(
                Path::new("/proc/self/ns/pid"),
                libc::O_RDONLY,
                0,
            )?));
            namespaces::setns(fd, *flag, path)?;
        }
    }
    let (parent_sync, child_sync) = sys::socketpair()?;
    let cgroup_fd = cgroup.v2_dir_fd();
    let cloned = clone_child(
        init.ns.clone_flags,
        cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
    );
    if let Ok((0, _)) = cloned {
        drop(parent_sync);
        // A panic must not unwind into the caller's code in this copy of its
        // process (skiff-monitor's event loop, say): leave.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            init::run(init, child_sync);
        }));
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(1) };
    }
    drop(pid_ns);
    let (pid, in_cgroup) = cloned?;
    undo.pid = pid;
    drop(child_sync);
    drop(init);

    if !in_cgroup {
        cgroup.add_task(pid)?;
    }
    if linux
        .namespaces
        .iter()
        .any(|n| n.kind == "user" && n.path.as_deref().unwrap_or("").is_empty())
    {
        namespaces::write_id_maps(pid, &linux.uid_mappings, &linux.gid_mappings)?;
    }
    sys::send_msg(&parent_sync, format!("go:{pid}").as_bytes())
        .map_err(|e| Error::sys("start init", e))?;
    loop {
        let msg = sys::recv_msg(&parent_sync).map_err(|e| Error::sys("read from init", e))?;
        match msg.as_slice() {
            b"ready" => break,
            b"hooks" => {
                let st = State {
                    pid,
                    ..state.clone()
                };
                hooks::run_all(&hooks_spec.prestart, &st)?;
                hooks::run_all(&hooks_spec.create_runtime, &st)?;
                sys::send_msg(&parent_sync, b"go").map_err(|e| Error::sys("sync with init", e))?;
            }
            [b'E', rest @ ..] => {
                return Err(Error::Init(String::from_utf8_lossy(rest).into_owned()))
            }
            [] => {
                let code = sys::wait_child(pid)?;
                undo.pid = 0;
                return Err(Error::Init(format!(
                    "init exited during setup with status {code}"
                )));
            }
            other => {
                return Err(Error::Init(format!(
                    "unexpected message {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        }
    }

    let container = Container {
        dir,
        saved: Saved {
            id: o.id.clone(),
            pid,
            pid_start: sys::pid_start_time(pid).unwrap_or(0),
            bundle: state.bundle.clone(),
            rootfs: rootfs.to_string_lossy().into_owned(),
            created: sys::rfc3339_now(),
            owner: "root".into(),
            annotations: spec.annotations.clone(),
            cgroups_path: cgroup.path().to_string(),
            hooks: spec.hooks.clone(),
            namespaces: linux
                .namespaces
                .iter()
                .map(|n| namespaces::proc_name(&n.kind).to_string())
                .collect(),
        },
    };
    container.save()?;
    if let Some(pid_file) = &o.pid_file {
        sys::write_atomic(Path::new(pid_file), pid.to_string().as_bytes())?;
    }
    undo.disarm();
    Ok(Created {
        container,
        sync: parent_sync,
        spec,
    })
}

/// Puts the caller back in its own pid namespace for children (setns to the
/// process's active pid namespace is always allowed).
struct PidNsRestore(OwnedFd);

impl Drop for PidNsRestore {
    fn drop(&mut self) {
        // SAFETY: a valid pid namespace fd.
        unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWPID) };
    }
}

/// The config's device rules, then (winning, as in runc) the devices every
/// container may use: mknod of anything, the default devices, ptys, tun, and the
/// config's own devices.
fn with_default_devices(mut r: Resources, devices: &[crate::spec::Device]) -> Resources {
    let rule = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| DeviceRule {
        allow: true,
        kind: Some(kind.into()),
        major,
        minor,
        access: Some(access.into()),
    };
    r.devices.push(rule("c", None, None, "m"));
    r.devices.push(rule("b", None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        r.devices.push(rule("c", Some(major), Some(minor), "rwm"));
    }
    r.devices.push(rule("c", Some(136), None, "rwm"));
    for d in devices {
        let kind = if d.kind == "u" { "c" } else { d.kind.as_str() };
        r.devices
            .push(rule(kind, Some(d.major), Some(d.minor), "rwm"));
    }
    r
}

/// The exec fifo, opened O_PATH so init can reopen it for writing after it has
/// dropped privileges (see init::wait_on_fifo).
fn make_fifo(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join(state::FIFO);
    let c = sys::path_cstr(&path)?;
    // SAFETY: c is a valid path.
    unsafe {
        if libc::mkfifo(c.as_ptr(), 0o622) != 0 {
            return Err(Error::last(format!("mkfifo {}", path.display())));
        }
        libc::chmod(c.as_ptr(), 0o622);
    }
    sys::open(&path, libc::O_PATH, 0)
}

/// The v1 hierarchies to show in the container: mount points from mountinfo.
fn v1_hierarchies(cgroups_path: &str) -> Vec<CgroupV1Mount> {
    // The cgroup mounts the set-up already has (mountinfo grows with every running
    // container's root mount, and the kernel formats it anew on each read).
    let Ok(mounts) = crate::cgroups::cgroup_mounts() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|m| m.fstype == "cgroup")
        .filter_map(|m| {
            let name = m.mount_point.strip_prefix("/sys/fs/cgroup/").ok()?;
            let options: Vec<&str> = m
                .super_opts
                .iter()
                .map(String::as_str)
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                .collect();
            Some(CgroupV1Mount {
                name: name.to_string_lossy().into_owned(),
                options: options.join(","),
                host_dir: m.mount_point.join(cgroups_path.trim_start_matches('/')),
            })
        })
        .collect()
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks the child with its new namespaces, born in its cgroup when the host has
/// cgroup v2 (clone3 + CLONE_INTO_CGROUP). Returns (pid, already in the cgroup).
fn clone_child(ns_flags: libc::c_int, cgroup_fd: Option<i32>) -> Result<(i32, bool)> {
    if let Some(fd) = cgroup_fd {
        let args = CloneArgs {
            flags: ns_flags as u32 as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd as u64,
            ..Default::default()
        };
        // SAFETY: clone3 without CLONE_VM behaves like fork; args is valid.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return Ok((pid as i32, true));
        }
        let err = std::io::Error::last_os_error();
        if !matches!(
            err.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL)
        ) {
            return Err(Error::sys("clone3", err));
        }
    }
    // SAFETY: a fork-like clone (no new stack, no CLONE_VM) in a single-threaded process.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (ns_flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(Error::last("clone"));
    }
    Ok((pid as i32, false))
}
