//! skiff-monitor: the small process skiffd leaves beside each container (like
//! podman's conmon, smaller). It is the subreaper of the container's init, owns
//! the container's stdio (pipes, or the pty master), writes the log in Docker's
//! json-file format, records the exit status, and outlives the daemon: skiffd can
//! be killed -9 and restarted while containers keep running and logging.
//!
//! ```text
//! skiff-monitor --id ID --bundle DIR --runtime PATH [--runtime-root DIR] --log FILE
//!               --exit-file FILE --socket PATH [--terminal] [--stdin]
//!               [--log-max-size BYTES] [--log-max-files N] [--sync-fd N]
//!               [--pid-file FILE] [--runtime-arg ARG]... [--no-daemonize]
//!               [--delete-on-exit] [--start]
//! ```
//!
//! What it does, in order:
//! 1. Unless `--no-daemonize`, forks; the parent exits at once (the sync fd is the
//!    only readiness signal), the child calls setsid, chdir("/"), and points its
//!    stdio at /dev/null. Relative paths are resolved before that.
//! 2. Becomes child subreaper, so the container's init is reparented to it.
//! 3. Listens on the attach socket (`--socket`, mode 0600).
//! 4. Runs `RUNTIME [--root DIR] --log <sockdir>/runtime.log --log-format json
//!    [ARG...] create --bundle DIR --pid-file FILE [--console-socket S] ID`, where
//!    FILE is `--pid-file` (default `<sockdir>/init.pid`). Without `--terminal`
//!    the runtime's fds 0/1/2 are the container's stdio: pipes for stdout and
//!    stderr, and a pipe for stdin with `--stdin` (else /dev/null). With
//!    `--terminal` the monitor listens on `<sockdir>/console.sock`, and the runtime
//!    sends the pty master there (SCM_RIGHTS, runc's protocol).
//!    With `--start` it then runs the runtime's `start` too (for a caller with
//!    nothing to attach before the process runs; a failed start deletes the
//!    container and is reported like a failed create).
//! 5. Writes one line to `--sync-fd` and closes it: `{"pid": INIT, "monitor_pid":
//!    PID}` once the runtime succeeded, or `{"error": "MESSAGE"}` (the last
//!    error `msg` of the runtime's log, else its stderr, else its exit status).
//! 6. Serves (poll): output goes to the log and to attached clients; client input
//!    goes to the container's stdin.
//! 7. When init exits (SIGCHLD; every orphan is reaped, only init's status counts)
//!    it drains the output, writes `--exit-file` atomically (`FILE.tmp`, rename):
//!    `{"exit_code": N, "signal": S|null, "oom_killed": false, "finished_at":
//!    "RFC3339"}` (exit_code is 128+S when killed by signal S; 255 when the status
//!    could not be known), hangs up on clients, removes the socket, exits 0.
//!    With `--delete-on-exit` it first runs `RUNTIME [--root DIR] delete --force ID`
//!    (before the exit file, so whoever reads the exit file finds the container's
//!    runtime state and cgroups gone), which spares the daemon that call.
//!
//! SIGTERM, SIGINT and SIGHUP are ignored: the daemon stops containers through
//! the runtime, never by killing monitors.
//!
//! # Attach socket protocol
//!
//! A client connects to `--socket` (several at once are fine) and sends one line:
//!
//! - `attach FLAGS\n` — FLAGS is a comma list of `stdin`, `stdout`, `stderr`,
//!   `stdin-once`. Answer `ok\n`, then the output of the requested streams from
//!   that moment on: without a tty framed as Docker's multiplexed stream (8-byte
//!   header `[1 stdout | 2 stderr, 0, 0, 0, length as big-endian u32]`, then the
//!   payload), with a tty raw. With `stdin`, the bytes the client sends after the
//!   line go to the container's stdin (pipe or pty); with `stdin-once` too, the
//!   client's half-close (EOF) closes the container's stdin. A client that cannot
//!   take output as fast as it comes (its socket buffer is full) is disconnected:
//!   the container is never blocked. The connection ends when the container exits.
//! - `resize ROWS COLS\n` — sets the pty size (TIOCSWINSZ). Answer `ok\n`, then
//!   the monitor hangs up.
//! - `close-stdin\n` — closes the container's stdin (after what is pending). With a
//!   pty only the monitor's handle is closed; the terminal stays. Answer `ok\n`.
//! - `start\n` — runs the runtime's `start` (once; not with `--start`): answer
//!   `ok\n`, or `error MESSAGE\n` with the runtime's last error message. A caller
//!   attaches its clients first and then starts, so no output is missed, without
//!   running the runtime itself.
//!
//! Anything else is answered `error MESSAGE\n` and the connection closed.

mod json;
mod logfile;
mod mem;
mod monitor;
mod sys;
#[cfg(test)]
mod tests;

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use logfile::{Lines, LogFile};
use monitor::{Init, Monitor, Output};

const USAGE: &str =
    "usage: skiff-monitor --id ID --bundle DIR --runtime PATH [--runtime-root DIR] \
--log FILE --exit-file FILE --socket PATH [--terminal] [--stdin] [--log-max-size BYTES] \
[--log-max-files N] [--sync-fd N] [--pid-file FILE] [--runtime-arg ARG]... [--no-daemonize] \
[--delete-on-exit] [--start]\n";

fn main() {
    std::process::exit(run(std::env::args_os().skip(1).collect()));
}

#[derive(Default)]
struct Args {
    id: OsString,
    bundle: PathBuf,
    runtime: PathBuf,
    runtime_root: Option<PathBuf>,
    log: PathBuf,
    exit_file: PathBuf,
    socket: PathBuf,
    terminal: bool,
    stdin: bool,
    log_max_size: u64,
    log_max_files: u32,
    sync_fd: Option<RawFd>,
    pid_file: Option<PathBuf>,
    runtime_args: Vec<OsString>,
    no_daemonize: bool,
    delete_on_exit: bool,
    start: bool,
}

impl Args {
    fn parse(argv: Vec<OsString>) -> Result<Args, String> {
        let mut a = Args {
            log_max_files: 1,
            ..Args::default()
        };
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let bytes = arg.as_bytes();
            // --name=value or --name value
            let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
                Some(i) if bytes.starts_with(b"--") => (&bytes[..i], Some(&bytes[i + 1..])),
                _ => (bytes, None),
            };
            let name = String::from_utf8_lossy(name).into_owned();
            let flag = |v: &mut bool| {
                *v = true;
                inline.map_or(Ok(()), |_| Err(format!("{name} takes no value")))
            };
            match name.as_str() {
                "--terminal" => flag(&mut a.terminal)?,
                "--stdin" => flag(&mut a.stdin)?,
                "--no-daemonize" => flag(&mut a.no_daemonize)?,
                "--delete-on-exit" => flag(&mut a.delete_on_exit)?,
                "--start" => flag(&mut a.start)?,
                _ => {
                    let value = match inline {
                        Some(v) => OsStr::from_bytes(v).to_os_string(),
                        None => it.next().ok_or(format!("{name} needs a value"))?,
                    };
                    let number = |v: &OsStr| -> Result<u64, String> {
                        v.to_str()
                            .and_then(|s| s.parse().ok())
                            .ok_or(format!("{name}: not a number: {v:?}"))
                    };
                    match name.as_str() {
                        "--id" => a.id = value,
                        "--bundle" => a.bundle = value.into(),
                        "--runtime" => a.runtime = value.into(),
                        "--runtime-root" => a.runtime_root = Some(value.into()),
                        "--log" => a.log = value.into(),
                        "--exit-file" => a.exit_file = value.into(),
                        "--socket" => a.socket = value.into(),
                        "--pid-file" => a.pid_file = Some(value.into()),
                        "--runtime-arg" => a.runtime_args.push(value),
                        "--log-max-size" => a.log_max_size = number(&value)?,
                        "--log-max-files" => {
                            a.log_max_files = number(&value)?.clamp(1, 1 << 16) as u32
                        }
                        "--sync-fd" => {
                            let fd = number(&value)?;
                            a.sync_fd = Some(i32::try_from(fd).map_err(|_| "bad --sync-fd")?)
                        }
                        _ => return Err(format!("unknown option {name}")),
                    }
                }
            }
        }
        for (name, missing) in [
            ("--id", a.id.is_empty()),
            ("--bundle", a.bundle.as_os_str().is_empty()),
            ("--runtime", a.runtime.as_os_str().is_empty()),
            ("--log", a.log.as_os_str().is_empty()),
            ("--exit-file", a.exit_file.as_os_str().is_empty()),
            ("--socket", a.socket.as_os_str().is_empty()),
        ] {
            if missing {
                return Err(format!("{name} is required"));
            }
        }
        // The daemonized monitor lives in "/": resolve relative paths now.
        let cwd = std::env::current_dir();
        let abs = |p: &mut PathBuf| -> Result<(), String> {
            if p.is_relative() {
                let cwd = cwd.as_ref().map_err(|e| format!("getcwd: {e}"))?;
                *p = cwd.join(&*p);
            }
            Ok(())
        };
        for p in [&mut a.bundle, &mut a.log, &mut a.exit_file, &mut a.socket] {
            abs(p)?;
        }
        for p in [&mut a.runtime_root, &mut a.pid_file].into_iter().flatten() {
            abs(p)?;
        }
        if a.runtime.as_os_str().as_bytes().contains(&b'/') {
            abs(&mut a.runtime)?;
        }
        if a.socket.parent().is_none() {
            return Err("--socket must name a file".into());
        }
        Ok(a)
    }

    /// The directory of the attach socket, where the monitor's other files go.
    fn dir(&self) -> &Path {
        self.socket.parent().unwrap_or(Path::new("/"))
    }
}

/// The whole monitor; returns its exit code. (Also the entry point of the tests'
/// copy, see tests.rs.)
pub fn run(argv: Vec<OsString>) -> i32 {
    mem::init();
    let sync_hint = sync_fd_hint(&argv);
    sys::close_inherited(sync_hint);
    open_std_fds();
    let mut args = match Args::parse(argv) {
        Ok(a) => a,
        Err(msg) => {
            eprint!("skiff-monitor: {msg}\n{USAGE}");
            send_sync(sync_hint, Err(&msg));
            return 2;
        }
    };
    if let Some(fd) = args.sync_fd {
        if sys::set_cloexec(fd, true).is_err() {
            eprintln!("skiff-monitor: --sync-fd {fd} is not open");
            return 2;
        }
        // Out of the way of the stdio descriptors, which daemonizing replaces.
        if fd < 3 {
            args.sync_fd = sys::dup_cloexec(fd)
                .ok()
                .map(std::os::fd::IntoRawFd::into_raw_fd);
        }
    }
    if !args.no_daemonize {
        if let Err(e) = daemonize() {
            let msg = format!("cannot daemonize: {e}");
            send_sync(args.sync_fd, Err(&msg));
            return 1;
        }
    }
    match start(&args) {
        Ok((monitor, pid)) => {
            send_sync(args.sync_fd, Ok(pid));
            monitor.run()
        }
        Err(msg) => {
            eprintln!("skiff-monitor: {msg}");
            send_sync(args.sync_fd, Err(&msg));
            let _ = std::fs::remove_file(&args.socket);
            if args.terminal {
                let _ = std::fs::remove_file(args.dir().join("console.sock"));
            }
            1
        }
    }
}

/// `--sync-fd`'s value, found before the full parse so that even a bad command line
/// is reported there.
fn sync_fd_hint(argv: &[OsString]) -> Option<RawFd> {
    let mut it = argv.iter().map(|a| a.as_bytes());
    while let Some(a) = it.next() {
        let v = match a.strip_prefix(b"--sync-fd") {
            Some(b"") => it.next()?,
            Some(rest) => rest.strip_prefix(b"=")?,
            None => continue,
        };
        return std::str::from_utf8(v).ok()?.parse().ok();
    }
    None
}

/// Makes sure fds 0, 1 and 2 are open, so no pipe or socket lands there.
fn open_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            // SAFETY: open returns the lowest free descriptor: this one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

fn daemonize() -> io::Result<()> {
    // SAFETY: single-threaded; the parent leaves at once with _exit.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain calls; the dup2s replace the stdio descriptors.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Writes the one sync line and closes the fd.
fn send_sync(fd: Option<RawFd>, result: Result<libc::pid_t, &str>) {
    let Some(fd) = fd else { return };
    let mut b = Vec::with_capacity(64);
    match result {
        Ok(pid) => {
            b.extend_from_slice(b"{\"pid\": ");
            json::push_int(&mut b, pid.into());
            b.extend_from_slice(b", \"monitor_pid\": ");
            // SAFETY: getpid cannot fail.
            json::push_int(&mut b, unsafe { libc::getpid() }.into());
        }
        Err(msg) => {
            b.extend_from_slice(b"{\"error\": ");
            json::push_str(&mut b, msg.as_bytes());
        }
    }
    b.extend_from_slice(b"}\n");
    let _ = sys::write_all(fd, &b);
    // SAFETY: the fd was inherited for this one line; nothing else uses it.
    unsafe { libc::close(fd) };
}

/// Everything up to a created container: returns the monitor, ready to serve,
/// and init's pid; or the error to report.
fn start(args: &Args) -> Result<(Monitor, libc::pid_t), String> {
    let err = |what: &str, e: io::Error| format!("{what}: {e}");
    // SIGCHLD comes through the signalfd; the others are swallowed there.
    let sigfd = sys::signalfd(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| err("signalfd", e))?;
    // SAFETY: plain signal and prctl calls.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(err("PR_SET_CHILD_SUBREAPER", io::Error::last_os_error()));
        }
    }
    let dir = args.dir();
    let listener = sys::listen_unix(&args.socket, 0o600)
        .map_err(|e| err(&format!("attach socket {}", args.socket.display()), e))?;
    let log = LogFile::open(&args.log, args.log_max_size, args.log_max_files)
        .map_err(|e| err(&format!("log {}", args.log.display()), e))?;

    let pid_file = args
        .pid_file
        .clone()
        .unwrap_or_else(|| dir.join("init.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let runtime_log = dir.join("runtime.log");
    let log_offset = std::fs::metadata(&runtime_log).map_or(0, |m| m.len());
    let console_path = dir.join("console.sock");

    // The runtime's stdio, and our ends of it.
    let null = |flags| sys::open(Path::new("/dev/null"), flags, 0).map_err(|e| err("/dev/null", e));
    let (stdio, console, outputs, stdin, captured): (
        [OwnedFd; 3],
        Option<OwnedFd>,
        Vec<OwnedFd>,
        Option<OwnedFd>,
        OwnedFd,
    );
    if args.terminal {
        let l = sys::listen_unix(&console_path, 0o600)
            .map_err(|e| err(&format!("console socket {}", console_path.display()), e))?;
        let (r, w) = sys::pipe().map_err(|e| err("pipe", e))?;
        stdio = [
            null(libc::O_RDONLY)?,
            w.try_clone().map_err(|e| err("dup", e))?,
            w,
        ];
        (console, outputs, stdin, captured) = (Some(l), Vec::new(), None, r);
    } else {
        let (out_r, out_w) = sys::pipe().map_err(|e| err("pipe", e))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| err("pipe", e))?;
        let (in_r, in_w) = if args.stdin {
            let (r, w) = sys::pipe().map_err(|e| err("pipe", e))?;
            (r, Some(w))
        } else {
            (null(libc::O_RDONLY)?, None)
        };
        let err_dup = err_r.try_clone().map_err(|e| err("dup", e))?;
        stdio = [in_r, out_w, err_w];
        (console, outputs, stdin, captured) = (None, vec![out_r, err_r], in_w, err_dup);
    }

    let mut argv: Vec<&OsStr> = vec![args.runtime.as_os_str()];
    if let Some(root) = &args.runtime_root {
        argv.extend([OsStr::new("--root"), root.as_os_str()]);
    }
    argv.extend([
        OsStr::new("--log"),
        runtime_log.as_os_str(),
        OsStr::new("--log-format"),
        OsStr::new("json"),
    ]);
    argv.extend(args.runtime_args.iter().map(OsString::as_os_str));
    argv.extend([
        OsStr::new("create"),
        OsStr::new("--bundle"),
        args.bundle.as_os_str(),
        OsStr::new("--pid-file"),
        pid_file.as_os_str(),
    ]);
    if console.is_some() {
        argv.extend([OsStr::new("--console-socket"), console_path.as_os_str()]);
    }
    argv.push(&args.id);

    let runtime_pid = spawn(&argv, &stdio)?;
    drop(stdio);
    let status = loop {
        match sys::waitpid(runtime_pid, 0) {
            Ok(Some((_, st))) => break st,
            Ok(None) => continue,
            Err(e) => return Err(err("waiting for the runtime", e)),
        }
    };
    let master = console.and_then(|l| {
        let got = sys::accept(l.as_raw_fd())
            .ok()
            .flatten()
            .and_then(|c| sys::recv_fd(c.as_raw_fd()).ok().flatten());
        let _ = std::fs::remove_file(&console_path);
        got
    });
    if status != 0 {
        return Err(runtime_error(&runtime_log, log_offset, &captured, status));
    }
    drop(captured);
    let text = std::fs::read_to_string(&pid_file)
        .map_err(|e| err(&format!("pid file {}", pid_file.display()), e))?;
    let pid: libc::pid_t = match text.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("pid file {}: bad pid {text:?}", pid_file.display())),
    };
    let (outputs, stdin) = match (args.terminal, master) {
        (true, None) => return Err("the runtime sent no pty master to the console socket".into()),
        (true, Some(m)) => {
            let s = if args.stdin {
                Some(sys::dup_cloexec(m.as_raw_fd()).map_err(|e| err("dup", e))?)
            } else {
                None
            };
            (vec![m], s)
        }
        (false, _) => (outputs, stdin),
    };
    for fd in outputs.iter().chain(stdin.iter()) {
        sys::set_nonblock(fd.as_raw_fd()).map_err(|e| err("O_NONBLOCK", e))?;
    }
    let outputs = outputs
        .into_iter()
        .zip([1, 2])
        .map(|(fd, stream)| Output {
            fd: Some(fd),
            stream,
            lines: Lines::new(),
        })
        .collect();
    let on_exit = args
        .delete_on_exit
        .then(|| runtime_command(args, &runtime_log, &["delete", "--force"]));
    let start_cmd = (!args.start).then(|| {
        let offset = std::fs::metadata(&runtime_log).map_or(0, |m| m.len());
        let argv = runtime_command(args, &runtime_log, &["start"]);
        (argv, runtime_log.clone(), offset)
    });
    let monitor = Monitor {
        sigfd,
        on_exit,
        start_cmd,
        listener,
        socket_path: args.socket.clone(),
        exit_file: args.exit_file.clone(),
        tty: args.terminal,
        outputs,
        stdin,
        log,
        init: watch_init(pid),
        clients: Vec::new(),
        stdin_pending: Vec::new(),
        stdin_close: false,
        shrink_soon: true,
    };
    if args.start {
        let status = run_quiet(&runtime_command(args, &runtime_log, &["start"]))?;
        if status != 0 {
            let msg = last_log_msg(&runtime_log, log_offset)
                .unwrap_or_else(|| format!("runtime start exited with status {status}"));
            let _ = run_quiet(&runtime_command(args, &runtime_log, &["delete", "--force"]));
            return Err(msg);
        }
    }
    Ok((monitor, pid))
}

/// `RUNTIME [--root DIR] --log FILE --log-format json [ARG...] VERB... ID`.
fn runtime_command(args: &Args, log: &Path, verb: &[&str]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![args.runtime.clone().into_os_string()];
    if let Some(root) = &args.runtime_root {
        argv.extend([OsString::from("--root"), root.clone().into_os_string()]);
    }
    argv.extend([
        OsString::from("--log"),
        log.as_os_str().to_os_string(),
        OsString::from("--log-format"),
        OsString::from("json"),
    ]);
    argv.extend(args.runtime_args.iter().cloned());
    argv.extend(verb.iter().map(OsString::from));
    argv.push(args.id.clone());
    argv
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
    loop {
        match sys::waitpid(pid, 0) {
            Ok(Some((_, st))) => return Ok(st),
            Ok(None) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
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

/// How to learn that init ended: as our child normally; through a pidfd when the
/// runtime did not leave it to us.
fn watch_init(pid: libc::pid_t) -> Init {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    match parent_of(pid) {
        Some(ppid) if ppid == me => Init::Child(pid),
        Some(_) => sys::pidfd_open(pid).map_or(Init::Gone, Init::Pidfd),
        None => Init::Gone,
    }
}

/// The parent pid from /proc/PID/stat (None when there is no such process).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let mut path = b"/proc/".to_vec();
    json::push_int(&mut path, pid.into());
    path.extend_from_slice(b"/stat");
    let stat = std::fs::read(OsStr::from_bytes(&path)).ok()?;
    let after = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let mut fields = after.split(|&b| b == b' ').filter(|f| !f.is_empty());
    fields.next()?; // state
    std::str::from_utf8(fields.next()?).ok()?.parse().ok()
}
