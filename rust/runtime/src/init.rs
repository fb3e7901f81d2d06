//! The container's init: what the cloned child does, from its first instruction to
//! execve. It never returns: it execs the user's process or exits after telling the
//! parent (over the sync socket) what failed.
//!
//! Sync protocol on a SOCK_SEQPACKET pair (one message each):
//!
//! ```text
//! parent -> child  "go:PID"  cgroup joined, id maps written: carry on (PID is
//!                            init's pid as the caller sees it, for hooks)
//! child -> parent  "hooks"   namespaces and mounts ready: run prestart/createRuntime
//! parent -> child  "go"
//! child -> parent  "ready"   everything set up; init now waits to be started
//! child -> parent  "E<msg>"  setup failed (the child then exits)
//! parent -> child  "start"   (run only) start now, without the exec fifo
//! ```
//!
//! A container made ahead of need (`CreateOpts::defer_process`) says "ready" once
//! its namespaces, cgroup and mounts are set up, before anything of its process is
//! applied, and waits for "start" followed by its process in JSON
//! (`{"process": {...}, "hostname": "..."}`; required: the spec's own process is the
//! one it was made with, for another container).
//! It then sets the hostname, applies that process (limits, seccomp unless it was
//! loaded before init waited, see [`AFTER_PARK`], identity, cwd), and answers
//! "ready" (or "E<msg>") right before execve.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::hooks;
use crate::mounts;
use crate::namespaces;
use crate::process::ProcessPlan;
use crate::spec::{Hook, State};
use crate::sys;
use crate::tty;

pub struct Init {
    pub ns: namespaces::Plan,
    pub mounts: mounts::Plan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(PathBuf, String)>,
    pub process: ProcessPlan,
    pub console: Option<OwnedFd>,
    /// The exec fifo (O_PATH), reopened for writing once set up; None under `run`.
    pub fifo: Option<OwnedFd>,
    /// Name of a new session keyring to join (None under --no-new-keyring).
    pub session_keyring: Option<std::ffi::CString>,
    pub parent_hooks: bool,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub state: State,
    /// The fds to make init's stdio first (see `CreateOpts::stdio`).
    pub stdio: Option<[RawFd; 3]>,
    /// The process comes with "start" (see the module's comment).
    pub defer_process: bool,
    /// With `defer_process`: the seccomp filter is loaded before init waits for
    /// its process, not after it came (see [`AFTER_PARK`]).
    pub early_seccomp: bool,
}

/// What init (and the libc and Rust runtime under it) may call between saying
/// "ready" as a container made ahead of need and execve: a seccomp profile that
/// lets all of them through (`seccomp::allows_all_of`) can be loaded before init
/// waits (compiling and loading it takes ~0.2-0.3 ms, then off a start's path).
/// Hooks run by init (startContainer) would add more: not with them. Names, not
/// numbers: a 32-bit host's own are listed too.
pub const AFTER_PARK: &[&str] = &[
    "read",
    "write",
    "close",
    "close_range",
    "recvfrom",
    "recvmsg",
    "sendto",
    "sendmsg",
    "sethostname",
    "setdomainname",
    "setsid",
    "ioctl",
    "prlimit64",
    "setrlimit",
    "getrlimit",
    "openat",
    "open",
    "getdents64",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "lseek",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "prctl",
    "seccomp",
    "setgroups",
    "setresgid",
    "setresuid",
    "setgid",
    "setuid",
    "capset",
    "capget",
    "umask",
    "chdir",
    "fchdir",
    "access",
    "faccessat",
    "faccessat2",
    "rt_sigaction",
    "rt_sigprocmask",
    "execve",
    "execveat",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "mprotect",
    "getrandom",
    "futex",
    "getpid",
    "gettid",
    "exit",
    "exit_group",
    // Not seen, but cheap to be sure of (a panic's abort, the C library's own).
    "tgkill",
    "kill",
    "rt_sigreturn",
    "sigaltstack",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "uname",
    "sched_yield",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "gettimeofday",
    "time",
    "poll",
    "ppoll",
    "pipe2",
    // Their names on 32-bit hosts (x86, arm), where init calls these instead.
    "mmap2",
    "fcntl64",
    "_llseek",
    "fstat64",
    "stat64",
    "lstat64",
    "fstatat64",
    "ugetrlimit",
    "setresuid32",
    "setresgid32",
    "setgroups32",
    "setuid32",
    "setgid32",
    "getuid32",
    "geteuid32",
    "getgid32",
    "getegid32",
    "getgroups32",
    "socketcall",
    "send",
    "recv",
    "sigreturn",
    "clock_gettime64",
    "clock_nanosleep_time64",
    "ppoll_time64",
];

/// What "start" carries to a container made ahead of need.
#[derive(serde::Deserialize)]
struct DeferredStart {
    process: crate::spec::Process,
    #[serde(default)]
    hostname: Option<String>,
}

/// Runs in the child. Never returns.
pub fn run(mut init: Init, sync: OwnedFd) -> ! {
    // The parent may be a long-lived process that blocks signals for a signalfd
    // (skiff-monitor): its mask is not the container's. (Ignored signals are reset
    // right before execve, see ProcessPlan::exec.)
    // SAFETY: an empty set is valid; sigprocmask only changes this process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let stdio = match init.stdio {
        Some(fds) => take_stdio(fds).map(|()| close_callers_fds(&init, &sync)),
        None => Ok(()),
    };
    let code = match stdio.and_then(|()| setup_and_wait(&mut init, &sync)) {
        Ok(exe) => {
            let err = init.process.exec(&exe);
            eprintln!("skiff-runtime: {err}");
            if err_is(&err, libc::ENOENT) {
                127
            } else {
                126
            }
        }
        Err(err) => {
            let _ = sys::send_msg(&sync, format!("E{}", child_message(&err)).as_bytes());
            1
        }
    };
    // SAFETY: leave without running destructors or atexit handlers of the parent's
    // copy of the address space.
    unsafe { libc::_exit(code) }
}

/// Makes `fds` this process's 0, 1 and 2 (dup2 clears close-on-exec on them).
fn take_stdio(fds: [RawFd; 3]) -> Result<()> {
    let mut src = fds;
    for fd in src.iter_mut() {
        if *fd < 3 {
            // One of 0..2 itself: copied out of the way first, so that an earlier
            // dup2 cannot replace it. (The copy is close-on-exec.)
            // SAFETY: fcntl on an fd we were given.
            *fd = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
            if *fd < 0 {
                return Err(Error::last("dup the container's stdio"));
            }
        }
    }
    for (target, &fd) in src.iter().enumerate() {
        // SAFETY: plain dup2 onto the stdio descriptors.
        if unsafe { libc::dup2(fd, target as RawFd) } < 0 {
            return Err(Error::last("dup the container's stdio"));
        }
    }
    Ok(())
}

/// Closes every fd from 3 up but init's own (and the `preserve_fds` ones). A
/// caller that runs `create` in its own process (skiff-monitor) has fds of its own:
/// close-on-exec, but open in init until it execs, which may be long after (init
/// waits for `start`). A pipe the caller's caller reads to its end must not stay
/// open here meanwhile.
fn close_callers_fds(init: &Init, sync: &OwnedFd) {
    let mut keep: Vec<RawFd> = vec![sync.as_raw_fd()];
    keep.extend(init.console.iter().chain(&init.fifo).map(|f| f.as_raw_fd()));
    keep.extend(init.ns.join.iter().map(|(_, f, _)| f.as_raw_fd()));
    keep.extend((3..).take(init.process.preserve_fds as usize));
    keep.sort_unstable();
    let mut from: RawFd = 3;
    for k in keep.into_iter().filter(|&k| k >= 3) {
        if k > from {
            sys::close_range(from, k - 1);
        }
        from = from.max(k + 1);
    }
    sys::close_range(from, RawFd::MAX);
}

/// What the parent wraps in its own `Error::Init`: without a second prefix.
pub fn child_message(err: &Error) -> String {
    match err {
        Error::Init(m) => m.clone(),
        other => other.to_string(),
    }
}

fn err_is(err: &Error, errno: i32) -> bool {
    matches!(err, Error::Sys { source, .. } if source.raw_os_error() == Some(errno))
}

fn expect(sync: &OwnedFd, what: &[u8]) -> Result<()> {
    let msg = sys::recv_msg(sync).map_err(|e| Error::sys("read from the runtime", e))?;
    if msg != what {
        return Err(Error::Init(format!(
            "expected {:?} from the runtime, got {:?}",
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(&msg)
        )));
    }
    Ok(())
}

fn setup_and_wait(init: &mut Init, sync: &OwnedFd) -> Result<std::ffi::CString> {
    let msg = sys::recv_msg(sync).map_err(|e| Error::sys("read from the runtime", e))?;
    let pid: i32 = std::str::from_utf8(&msg)
        .ok()
        .and_then(|m| m.strip_prefix("go:"))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| Error::Init("bad first message from the runtime".into()))?;
    let mut state = init.state.clone();
    state.pid = pid;
    for (flag, fd, path) in &init.ns.join {
        if *flag != libc::CLONE_NEWPID {
            namespaces::setns(fd, *flag, path)?;
        }
    }
    if init.ns.creates(libc::CLONE_NEWUSER) {
        // SAFETY: plain syscalls.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(Error::last("become root in the user namespace"));
            }
        }
    }
    if let Some(name) = &init.session_keyring {
        // The container's own session keyring, so it cannot see the host's keys.
        // SAFETY: keyctl with a valid C string.
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                1, /* KEYCTL_JOIN_SESSION_KEYRING */
                name.as_ptr(),
            )
        };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return Err(Error::last("join a new session keyring"));
        }
    }
    if let Some(h) = &init.hostname {
        set_hostname(h)?;
    }
    if let Some(d) = &init.domainname {
        // SAFETY: d is valid for its length.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::last(format!("setdomainname {d:?}")));
        }
    }

    init.mounts.prepare_root()?;
    if init.parent_hooks {
        sys::send_msg(sync, b"hooks").map_err(|e| Error::sys("sync with the runtime", e))?;
        expect(sync, b"go")?;
    }
    hooks::run_all(&init.create_container, &state)?;
    init.mounts.enter_root()?;
    for (path, value) in &init.sysctl {
        sys::write_file(path, value)?;
    }
    init.mounts.finish()?;
    if init.defer_process {
        if init.early_seccomp {
            // Its profile lets through all that is left to do (AFTER_PARK); the
            // process that comes keeps the spec's filter either way.
            init.process.load_seccomp()?;
            init.process.seccomp = None;
        }
        sys::send_msg(sync, b"ready").map_err(|e| Error::sys("sync with the runtime", e))?;
        take_deferred_process(init, sync)?;
    }

    let p = &init.process;
    if p.terminal {
        let console = init
            .console
            .as_ref()
            .ok_or_else(|| Error::Config("process.terminal needs --console-socket".into()))?;
        let (master, slave) = tty::open_pty(p.console_size)?;
        tty::send_fd(console, master.as_raw_fd())?;
        drop(master);
        tty::take_slave(slave)?;
    } else {
        // SAFETY: setsid has no memory effects.
        unsafe { libc::setsid() };
    }
    p.apply_limits()?;
    p.close_extra_fds();
    if !p.no_new_privs {
        p.load_seccomp()?;
    }
    p.apply_identity(false)?;
    p.chdir()?;
    let exe = p.resolve_exe()?;

    sys::send_msg(sync, b"ready").map_err(|e| Error::sys("sync with the runtime", e))?;
    match &init.fifo {
        Some(fifo) => wait_on_fifo(fifo)?,
        // Started already (it is what the process came with). The runtime that
        // waits for "ready" was likely woken on this CPU: it answers its caller
        // first, not after the execve below (half a millisecond or more).
        // SAFETY: sched_yield has no memory effects.
        None if init.defer_process => unsafe {
            libc::sched_yield();
        },
        None => expect(sync, b"start")?,
    }
    state.status = "running".into();
    hooks::run_all(&init.start_container, &state)?;
    if p.no_new_privs {
        p.load_seccomp()?;
    }
    Ok(exe)
}

fn set_hostname(h: &str) -> Result<()> {
    // SAFETY: h is valid for its length.
    if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
        return Err(Error::last(format!("sethostname {h:?}")));
    }
    Ok(())
}

/// Waits for "start" and makes what came with it init's process (and hostname).
fn take_deferred_process(init: &mut Init, sync: &OwnedFd) -> Result<()> {
    let msg = sys::recv_msg_max(sync, DEFERRED_MAX)
        .map_err(|e| Error::sys("read from the runtime", e))?;
    let payload = msg
        .strip_prefix(b"start")
        .ok_or_else(|| Error::Init("expected \"start\" from the runtime".into()))?;
    if payload.is_empty() {
        // The spec's process is the one it was made with, for another container.
        return Err(Error::Config("the process to start is missing".into()));
    }
    let start: DeferredStart = serde_json::from_slice(payload)
        .map_err(|e| Error::Config(format!("the process to start: {e}")))?;
    if start.process.terminal != init.process.terminal {
        return Err(Error::Config(
            "the process to start cannot change process.terminal".into(),
        ));
    }
    if let Some(h) = start.hostname.as_deref().filter(|h| !h.is_empty()) {
        if init.hostname.is_none() {
            return Err(Error::Config(
                "setting the hostname needs a private UTS namespace".into(),
            ));
        }
        set_hostname(h)?;
    }
    let seccomp = init.process.seccomp.take();
    let preserve = init.process.preserve_fds;
    init.process = ProcessPlan::from_spec(&start.process, seccomp, preserve)?;
    Ok(())
}

/// The largest "start" message a container made ahead of need takes.
const DEFERRED_MAX: usize = 128 << 10;

/// Blocks until `start` opens the fifo for reading, then writes one byte.
fn wait_on_fifo(fifo: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let c = sys::cstr(&path)?;
    // SAFETY: c is a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last("open the exec fifo"));
    }
    // SAFETY: fd is open; the buffer is valid.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    unsafe { libc::close(fd) };
    if n != 1 {
        return Err(Error::last("write to the exec fifo"));
    }
    Ok(())
}
