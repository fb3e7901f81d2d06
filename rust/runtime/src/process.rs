//! The container process's own attributes — identity, capabilities, limits, cwd,
//! environment — resolved before fork and applied in the child right before execve.
//! Shared by init (create) and exec.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::caps::{self, CapSets};
use crate::error::{Error, Result};
use crate::rlimits::{self, Limit};
use crate::seccomp;
use crate::spec::{ConsoleSize, Process};
use crate::sys;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_var: String,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: u32,
    pub caps: Option<CapSets>,
    pub rlimits: Vec<Limit>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<ConsoleSize>,
    pub seccomp: Option<seccomp::Program>,
    pub preserve_fds: u32,
}

impl ProcessPlan {
    pub fn from_spec(
        p: &Process,
        seccomp: Option<seccomp::Program>,
        preserve_fds: u32,
    ) -> Result<Self> {
        if p.args.is_empty() {
            return Err(Error::Config("process.args must not be empty".into()));
        }
        if !p.cwd.starts_with('/') {
            return Err(Error::Config(format!(
                "process.cwd {:?} must be absolute",
                p.cwd
            )));
        }
        let args = p.args.iter().map(sys::cstr).collect::<Result<Vec<_>>>()?;
        let env = p.env.iter().map(sys::cstr).collect::<Result<Vec<_>>>()?;
        let path_var = p
            .env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        Ok(Self {
            args,
            env,
            path_var,
            cwd: sys::cstr(&p.cwd)?,
            uid: p.user.uid,
            gid: p.user.gid,
            groups: p.user.additional_gids.clone(),
            umask: p.user.umask.unwrap_or(0o022),
            caps: p
                .capabilities
                .as_ref()
                .map(CapSets::from_spec)
                .transpose()?,
            rlimits: rlimits::resolve(&p.rlimits)?,
            no_new_privs: p.no_new_privileges,
            oom_score_adj: p.oom_score_adj,
            terminal: p.terminal,
            console_size: p.console_size,
            seccomp,
            preserve_fds,
        })
    }

    /// oom_score_adj and rlimits: set while still privileged.
    pub fn apply_limits(&self) -> Result<()> {
        if let Some(adj) = self.oom_score_adj {
            sys::write_file("/proc/self/oom_score_adj", &adj.to_string())?;
        }
        rlimits::apply(&self.rlimits)
    }

    /// Marks every fd from 3 + preserve_fds on close-on-exec.
    pub fn close_extra_fds(&self) {
        let first = 3 + self.preserve_fds;
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                4, /* CLOSE_RANGE_CLOEXEC */
            )
        };
        if r != 0 {
            // Old kernels: walk the fds.
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                for fd in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
                    if fd >= first as i32 {
                        // SAFETY: fcntl on a possibly-closed fd is harmless.
                        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                    }
                }
            }
        }
    }

    /// User, groups and capabilities: bounding set first (needs CAP_SETPCAP), then
    /// the ids with capabilities kept across the switch, then the other sets.
    pub fn apply_identity(&self, in_user_ns_without_setgroups: bool) -> Result<()> {
        if let Some(c) = &self.caps {
            caps::apply_bounding(c)?;
        }
        // SAFETY: plain syscalls with integer arguments or valid buffers.
        unsafe {
            if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
                return Err(Error::last("keep capabilities"));
            }
            if !in_user_ns_without_setgroups
                && libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
            {
                return Err(Error::last(format!("setgroups {:?}", self.groups)));
            }
            if libc::setresgid(self.gid, self.gid, self.gid) != 0 {
                return Err(Error::last(format!("setgid {}", self.gid)));
            }
            if libc::setresuid(self.uid, self.uid, self.uid) != 0 {
                return Err(Error::last(format!("setuid {}", self.uid)));
            }
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
        }
        if let Some(c) = &self.caps {
            caps::apply_sets(c)?;
        }
        if self.no_new_privs {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(Error::last("set no_new_privs"));
            }
        }
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(self.umask) };
        Ok(())
    }

    pub fn chdir(&self) -> Result<()> {
        // SAFETY: cwd is a valid C string.
        if unsafe { libc::chdir(self.cwd.as_ptr()) } != 0 {
            return Err(Error::last(format!("chdir to cwd {:?}", self.cwd)));
        }
        Ok(())
    }

    /// The executable, found through the process's PATH like execvp, and checked
    /// executable by the (already switched) user. Errors read like runc's.
    pub fn resolve_exe(&self) -> Result<CString> {
        let name = self.args[0].as_bytes();
        let check = |p: &Path| -> Option<CString> {
            let c = sys::path_cstr(p).ok()?;
            let meta = std::fs::metadata(p).ok()?;
            // SAFETY: c is a valid C string.
            (meta.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0).then_some(c)
        };
        if name.contains(&b'/') {
            let p = Path::new(std::ffi::OsStr::from_bytes(name));
            return match std::fs::metadata(p) {
                Err(_) => Err(Error::Init(format!(
                    "exec: {:?}: stat {}: no such file or directory",
                    p.display().to_string(),
                    p.display()
                ))),
                Ok(_) => check(p).ok_or_else(|| {
                    Error::Init(format!(
                        "exec: {:?}: permission denied",
                        p.display().to_string()
                    ))
                }),
            };
        }
        for dir in self.path_var.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            if let Some(c) = check(&Path::new(dir).join(std::ffi::OsStr::from_bytes(name))) {
                return Ok(c);
            }
        }
        Err(Error::Init(format!(
            "exec: {:?}: executable file not found in $PATH",
            String::from_utf8_lossy(name)
        )))
    }

    /// execve; only returns on failure.
    pub fn exec(&self, path: &CString) -> Error {
        let mut argv: Vec<*const libc::c_char> = self.args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        // An ignored signal stays ignored across execve, and Rust programs (the
        // runtime, skiff-monitor) ignore SIGPIPE: the process gets the default.
        // SAFETY: signal with a valid disposition; execve with null-terminated
        // arrays of valid C strings.
        unsafe {
            let old = libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let err = Error::last(format!("exec {:?}", path));
            libc::signal(libc::SIGPIPE, old);
            err
        }
    }

    pub fn load_seccomp(&self) -> Result<()> {
        match &self.seccomp {
            Some(p) => seccomp::load(p),
            None => Ok(()),
        }
    }
}
