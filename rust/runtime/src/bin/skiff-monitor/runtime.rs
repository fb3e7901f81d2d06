//! The runtime's verbs — `create`, `start`, `delete --force` — run one of two ways:
//!
//! - **exec**: a child process per verb, `RUNTIME [--root DIR] --log FILE
//!   --log-format json [ARG...] VERB ... ID`, for any OCI runtime with runc's
//!   command line (runc, crun, skiff-runtime). The error of a failed verb is the
//!   last error `msg` of the runtime's JSON log.
//! - **builtin**: skiff-runtime's library, called in this process, when the runtime
//!   is skiff-runtime itself: `--builtin-runtime`, or `--runtime` naming the
//!   skiff-runtime installed beside this monitor (the same file), unless
//!   `--exec-runtime`. No process start-up per verb; the container's init is cloned
//!   by the monitor itself, so it is the monitor's own child. The same command line
//!   is parsed by the library's own parser (so `--runtime-arg`s mean what they mean
//!   to skiff-runtime), and the library logs to the same runtime log; the error is
//!   the library's error itself.
//!
//! What makes the builtin path safe in a long-lived process (see create.rs and
//! init.rs in the library): init takes the stdio fds it is given (`CreateOpts::stdio`)
//! and starts with an empty signal mask (the monitor blocks SIGCHLD and others for
//! its signalfd) and SIGPIPE at its default (the monitor ignores it); every fd of the
//! monitor is close-on-exec, and init marks every fd from 3 up close-on-exec before
//! execve; a panic in the cloned child never unwinds into the monitor's code; a pid
//! namespace joined for the clone is left right after it; the library's caches of
//! /proc files are dropped after each verb, and its allocations go to a scratch
//! arena given back whole (mem.rs), so start-up leaves no fragmented heap behind.
//! The monitor is single-threaded, so the clone copies no other thread's half-done
//! state, and its log buffer is empty then.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use skiff_runtime::cli::{self, Command, CreateOpts, Global};
use skiff_runtime::container::{create, delete, start};

use crate::{json, mem, monitor, sys, Args};

pub struct Runtime {
    id: OsString,
    /// `<sockdir>/runtime.log`, in JSON.
    log: PathBuf,
    /// The command line up to the verb: `RUNTIME [--root DIR] --log FILE
    /// --log-format json [ARG...]` (the builtin path parses it).
    prefix: Vec<OsString>,
    builtin: Option<Builtin>,
}

struct Builtin {
    global: Global,
    /// The `create` to run (taken by [`Runtime::create`]).
    create: Option<CreateOpts>,
    /// Init's sync socket, kept from the create: `start` goes there (no exec fifo:
    /// nothing but this monitor starts the container); under `--standby` it goes
    /// to the caller (`take_start_socket`), who starts the container.
    sync: Option<OwnedFd>,
    /// The process comes with the start (`--standby`).
    deferred: bool,
    /// The spec has poststart hooks (run after the start).
    poststart: bool,
}

/// Whether `runtime` is the skiff-runtime beside this monitor's executable (the
/// same file): the library linked into the monitor is that runtime's.
pub fn is_ours(runtime: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if !runtime.as_os_str().as_bytes().contains(&b'/') {
        return false;
    }
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return false;
    };
    match (
        std::fs::metadata(exe.with_file_name("skiff-runtime")),
        std::fs::metadata(runtime),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Runtime {
    /// The runtime of `args`, builtin or not.
    pub fn new(args: &Args, builtin: bool) -> Result<Runtime, String> {
        let log = args.dir().join("runtime.log");
        let mut prefix: Vec<OsString> = vec![args.runtime.clone().into_os_string()];
        if let Some(root) = &args.runtime_root {
            prefix.extend([OsString::from("--root"), root.clone().into_os_string()]);
        }
        prefix.extend([
            OsString::from("--log"),
            log.clone().into_os_string(),
            OsString::from("--log-format"),
            OsString::from("json"),
        ]);
        prefix.extend(args.runtime_args.iter().cloned());
        let mut runtime = Runtime {
            id: args.id.clone(),
            log,
            prefix,
            builtin: None,
        };
        if builtin {
            // The library's parser reads the same command line as the binary would.
            let argv: Vec<String> = runtime
                .create_command(
                    &args.bundle,
                    args.pid_file.as_deref(),
                    args.console().as_deref(),
                )
                .into_iter()
                .skip(1)
                .map(|a| {
                    a.into_string()
                        .map_err(|a| format!("not UTF-8: {:?}", a.to_string_lossy()))
                })
                .collect::<Result<_, _>>()?;
            let (global, mut create) = match cli::parse(&argv) {
                Ok((g, Command::Create(o))) => (g, o),
                Ok(_) => return Err("the runtime arguments make no create command".into()),
                Err(e) => return Err(e.to_string()),
            };
            create.spare_cgroup = args.made_spare.clone();
            create.defer_process = args.standby;
            // Warnings and errors go to the runtime log, as the binary's would.
            skiff_runtime::log::init(&global);
            runtime.builtin = Some(Builtin {
                global,
                create: Some(create),
                sync: None,
                deferred: args.standby,
                poststart: false,
            });
        }
        Ok(runtime)
    }

    /// Creates the container (bundle, pid file and console socket as `args` says),
    /// with `stdio` as its init's 0, 1, 2; returns init's pid. (`captured` reads
    /// what a runtime process printed on its stderr.)
    pub fn create(
        &mut self,
        args: &Args,
        stdio: &[OwnedFd; 3],
        captured: &OwnedFd,
    ) -> Result<libc::pid_t, String> {
        let Some(b) = &mut self.builtin else {
            return self.exec_create(args, stdio, captured);
        };
        let mut opts = b.create.take().ok_or("create: done already")?;
        opts.stdio = Some([
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ]);
        let (sync, poststart) = (&mut b.sync, &mut b.poststart);
        mem::scratch(|| {
            // Run mode: no exec fifo (a file made and deleted per container).
            let created = create::create(&b.global, &opts, true);
            skiff_runtime::cgroups::forget_cached();
            // What create leaves (the spec...) is dropped here; the sync socket is
            // kept for the start.
            created
                .map(|c| {
                    *poststart = c
                        .container
                        .saved
                        .hooks
                        .as_ref()
                        .is_some_and(|h| !h.poststart.is_empty());
                    *sync = Some(c.sync);
                    c.container.saved.pid
                })
                .map_err(|e| logged(&e))
        })
    }

    fn exec_create(
        &self,
        args: &Args,
        stdio: &[OwnedFd; 3],
        captured: &OwnedFd,
    ) -> Result<libc::pid_t, String> {
        let pid_file = args.pid_file();
        let log_offset = log_len(&self.log);
        let argv = self.create_command(&args.bundle, Some(&pid_file), args.console().as_deref());
        let argv: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
        let runtime_pid = spawn(&argv, stdio)?;
        let status = wait(runtime_pid)?;
        if status != 0 {
            return Err(runtime_error(&self.log, log_offset, captured, status));
        }
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("pid file {}: {e}", pid_file.display()))?;
        match text.trim().parse() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("pid file {}: bad pid {text:?}", pid_file.display())),
        }
    }

    /// Runs `start`: the container's process runs once this returns Ok; else the
    /// runtime's error message. Not for a container made with `--standby` (the
    /// monitor refuses it): its caller starts it (see `take_start_socket`).
    pub fn start(&self) -> Result<(), String> {
        if let Some(b) = &self.builtin {
            let sync = b.sync.as_ref().ok_or("start: not created")?;
            return mem::scratch(|| {
                let r =
                    start::start_created(&b.global, &self.id.to_string_lossy(), sync, b.poststart);
                skiff_runtime::cgroups::forget_cached();
                r.map_err(|e| logged(&e))
            });
        }
        let offset = log_len(&self.log);
        match run_quiet(&self.command(&["start"]))? {
            0 => Ok(()),
            status => Err(last_log_msg(&self.log, offset)
                .unwrap_or_else(|| format!("runtime start exited with status {status}"))),
        }
    }

    /// With `--standby`: init's sync socket, given up to a caller that starts the
    /// container itself (sends `start` and the process, reads init's answer; see
    /// skiff-runtime's init.rs). None without `--standby` or once given.
    pub fn take_start_socket(&mut self) -> Option<OwnedFd> {
        self.builtin.as_mut().filter(|b| b.deferred)?.sync.take()
    }

    /// Runs `delete --force`; a failure is only logged (by the runtime).
    pub fn delete(&self) {
        if let Some(b) = &self.builtin {
            mem::scratch(|| {
                if let Err(e) = delete::delete(&b.global, &self.id.to_string_lossy(), true) {
                    logged(&e);
                }
                skiff_runtime::cgroups::forget_cached();
            });
            return;
        }
        let _ = run_quiet(&self.command(&["delete", "--force"]));
    }

    /// `RUNTIME [--root DIR] --log FILE --log-format json [ARG...] VERB... ID`.
    fn command(&self, verb: &[&str]) -> Vec<OsString> {
        let mut argv = self.prefix.clone();
        argv.extend(verb.iter().map(OsString::from));
        argv.push(self.id.clone());
        argv
    }

    /// `... create --bundle DIR [--pid-file FILE] [--console-socket S] ID`.
    fn create_command(
        &self,
        bundle: &Path,
        pid_file: Option<&Path>,
        console: Option<&Path>,
    ) -> Vec<OsString> {
        let mut argv = self.prefix.clone();
        argv.extend([
            OsString::from("create"),
            OsString::from("--bundle"),
            bundle.as_os_str().to_os_string(),
        ]);
        if let Some(p) = pid_file {
            argv.extend([OsString::from("--pid-file"), p.as_os_str().to_os_string()]);
        }
        if let Some(c) = console {
            argv.extend([OsString::from("--console-socket"), c.into()]);
        }
        argv.push(self.id.clone());
        argv
    }
}

/// The library's error as the binary would report it: logged (the runtime log's
/// last error line), and its message.
fn logged(e: &skiff_runtime::Error) -> String {
    skiff_runtime::log::error(e);
    e.to_string()
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// Waits for child `pid`; its wait status.
fn wait(pid: libc::pid_t) -> Result<i32, String> {
    loop {
        match sys::waitpid(pid, 0) {
            Ok(Some((_, st))) => return Ok(st),
            Ok(None) => continue,
            Err(e) => return Err(format!("waiting for the runtime: {e}")),
        }
    }
}

/// Runs `argv` with /dev/null as stdio and waits for it; its exit status.
fn run_quiet(argv: &[OsString]) -> Result<i32, String> {
    let null = |flags| sys::open(Path::new("/dev/null"), flags, 0).map_err(|e| e.to_string());
    let stdio = [
        null(libc::O_RDONLY)?,
        null(libc::O_WRONLY)?,
        null(libc::O_WRONLY)?,
    ];
    let argv: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
    let pid = spawn(&argv, &stdio)?;
    wait(pid)
}

/// Forks and execs the runtime with `stdio` as its fds 0, 1, 2, its signal mask and
/// dispositions reset. Exec failures come back through a close-on-exec pipe.
fn spawn(argv: &[&OsStr], stdio: &[OwnedFd; 3]) -> Result<libc::pid_t, String> {
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| "NUL in an argument".to_string()))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let fds = [
        stdio[0].as_raw_fd(),
        stdio[1].as_raw_fd(),
        stdio[2].as_raw_fd(),
    ];
    let search = !argv[0].as_bytes().contains(&b'/');
    let (err_r, err_w) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the process is single-threaded; the child only makes async-signal-safe
    // calls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            for (target, &fd) in fds.iter().enumerate() {
                libc::dup2(fd, target as RawFd); // clears close-on-exec on the copy
            }
            if search {
                libc::execvp(ptrs[0], ptrs.as_ptr());
            } else {
                libc::execv(ptrs[0], ptrs.as_ptr());
            }
            let e = sys::errno().to_ne_bytes();
            libc::write(err_w.as_raw_fd(), e.as_ptr().cast(), e.len());
            libc::_exit(127);
        }
    }
    drop(err_w);
    let mut e = [0u8; 4];
    if sys::read(err_r.as_raw_fd(), &mut e).unwrap_or(0) == 4 {
        let _ = sys::waitpid(pid, 0);
        let e = io::Error::from_raw_os_error(i32::from_ne_bytes(e));
        return Err(format!("cannot run {}: {e}", argv[0].to_string_lossy()));
    }
    Ok(pid)
}

/// Why `create` failed: the last error `msg` the runtime logged (since `offset`),
/// else the last line of what it printed, else how it ended.
fn runtime_error(log: &Path, offset: u64, captured: &OwnedFd, status: i32) -> String {
    if let Some(msg) = last_log_msg(log, offset) {
        return msg;
    }
    let _ = sys::set_nonblock(captured.as_raw_fd());
    let mut buf = vec![0u8; 8192];
    let n = sys::read(captured.as_raw_fd(), &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    if let Some(line) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        return line.to_string();
    }
    match monitor::decode_status(status) {
        (_, Some(sig)) => format!("runtime killed by signal {sig}"),
        (code, None) => format!("runtime exited with status {code}"),
    }
}

/// The `msg` of the last error-level line of a JSON runtime log (or of the last
/// line with a `msg` at all), reading at most the last 64 KiB after `offset`.
fn last_log_msg(log: &Path, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    let from = offset.max(len.saturating_sub(64 * 1024));
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut data = Vec::new();
    f.take(64 * 1024).read_to_end(&mut data).ok()?;
    let mut any = None;
    for line in data.split(|&b| b == b'\n').rev() {
        let Some(msg) = json::string_field(line, "msg") else {
            continue;
        };
        let level = json::string_field(line, "level");
        if matches!(level.as_deref(), Some("error" | "fatal" | "panic")) {
            return Some(msg);
        }
        any.get_or_insert(msg);
    }
    any
}
