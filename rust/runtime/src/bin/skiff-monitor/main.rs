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
//!               [--delete-on-exit] [--start] [--builtin-runtime | --exec-runtime]
//!               [--sync-until-exit] [--standby] [--cgroup-mounts FILE]
//! skiff-monitor --wait-args --sync-fd N [--spare-cgroup PARENT] [--nice N]
//!               [--cgroup-mounts FILE] [--fork-server]
//! ```
//!
//! `--cgroup-mounts FILE`: the cgroup lines of mountinfo as the caller read them
//! (skiffd, at its start), used instead of reading mountinfo, which lists every
//! running container's root, while they still describe this process's cgroup
//! hierarchies (skiff-runtime's cgroups::pin_mounts_from). With the builtin
//! runtime or `--wait-args` only (another runtime reads its own).
//!
//! With `--wait-args` the monitor is started ahead of need (skiffd keeps a few
//! ready): it daemonizes, then reads its real command line from `--sync-fd` (a
//! unix stream socket): the payload's length in decimal and a newline, then the
//! payload, every argument followed by a NUL byte; it then sets its nice value
//! to `--nice` (default 0: a caller may start it at a low priority, and give the
//! priority its containers are to have). With `--spare-cgroup`, while
//! it waits it makes the cgroup `PARENT/.spare-PID` (cgroup v1 only), which the
//! builtin runtime's create renames into place (see skiff-runtime's
//! cgroups::make_spare); unused, it is removed. `--sync-fd` itself is not among them: the same fd goes on serving as the
//! sync fd. End of file before the arguments (the caller gave up on it): it exits
//! 0 without doing anything. With `--fork-server` too, the process does not
//! daemonize and makes such monitors by forking itself, one per request on
//! `--sync-fd`, until that ends (forks.rs).
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
//!    When the runtime is skiff-runtime itself, `create`, `start` and `delete` run
//!    in this process instead, through skiff-runtime's library (runtime.rs): no
//!    process start-up per verb, and the container's init is the monitor's own
//!    child, its stdio the same, and no pid file is written unless `--pid-file`
//!    asks for one (the pid is on the sync line). That is when `--runtime` names
//!    the skiff-runtime
//!    beside this monitor's executable (the same file), or with
//!    `--builtin-runtime`; `--exec-runtime` always runs the binary. Any other
//!    runtime (runc, crun) runs as a child process, as above.
//!    With `--standby` (builtin runtime only; not with `--start` or `--terminal`)
//!    the container is made ahead of need: init waits, its namespaces, cgroup and
//!    mounts ready, for its process to come with the start, which the caller
//!    makes itself through init's sync socket (`start-socket` below). Such a
//!    monitor keeps its nice value (a caller makes it at a low priority, and gives
//!    it and init theirs at the start).
//! 5. Writes one line to `--sync-fd` and closes it: `{"pid": INIT, "monitor_pid":
//!    PID}` once the runtime succeeded, or `{"error": "MESSAGE"}` (the last error
//!    `msg` of the runtime's log, else its stderr, else its exit status; in
//!    process, the library's error, logged to the runtime log all the same). With
//!    `--sync-until-exit` a success keeps it open until init exits: the exit
//!    record (the exit file's line) then goes there too, and its end says
//!    "exited", before the exit file and the monitor's own clean-up.
//! 6. Serves (poll): output goes to the log and to attached clients; client input
//!    goes to the container's stdin.
//! 7. When init exits (SIGCHLD; every orphan is reaped, only init's status counts)
//!    it drains the output and makes the exit record `{"exit_code": N, "signal":
//!    S|null, "oom_killed": false, "finished_at": "RFC3339"}` (exit_code is 128+S
//!    when killed by signal S; 255 when the status could not be known): on the
//!    held `--sync-fd` first (then closed), then to `--exit-file` atomically
//!    (`FILE.tmp`, rename). It hangs up on clients, removes the socket, and only
//!    then cleans up: drops its hold on init's mount namespace (taken at create,
//!    so init's exit does not wait for the kernel to take the container's mounts
//!    apart) and, with `--delete-on-exit`, runs `RUNTIME [--root DIR] delete
//!    --force ID` (which spares the daemon that call); then exits 0. A caller
//!    that needs the runtime state and cgroups gone waits for the monitor's exit,
//!    not for the exit record.
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
//! - `start\n` — runs the runtime's `start` (once; not with `--start`, refused
//!   with `--standby`): answer
//!   `ok\n`, or `error MESSAGE\n` with the runtime's last error message. A caller
//!   attaches its clients first and then starts, so no output is missed, without
//!   running the runtime itself.
//! - `start-socket\n` — with `--standby`, instead of `start`: the answer `ok\n`
//!   carries init's sync socket (SCM_RIGHTS), and the caller starts the container
//!   itself: it gives the monitor and init their nice value, sends init `start`
//!   followed by the process as one message (`{"process": OCI_PROCESS,
//!   "hostname": NAME}`, up to 128 KiB; the process's `terminal` as the spec's),
//!   and reads init's answer (`ready`, or `E` and the error; nothing if init
//!   ended). The monitor lets go of the socket, and its own start is used up.
//!
//! Anything else is answered `error MESSAGE\n` and the connection closed.

mod forks;
mod json;
mod logfile;
mod mem;
mod monitor;
mod runtime;
mod sys;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use logfile::{Lines, LogFile};
use monitor::{Init, Monitor, Output};

#[global_allocator]
static ALLOC: mem::Alloc = mem::Alloc;

const USAGE: &str =
    "usage: skiff-monitor --id ID --bundle DIR --runtime PATH [--runtime-root DIR] \
--log FILE --exit-file FILE --socket PATH [--terminal] [--stdin] [--log-max-size BYTES] \
[--log-max-files N] [--sync-fd N] [--pid-file FILE] [--runtime-arg ARG]... [--no-daemonize] \
[--delete-on-exit] [--start] [--builtin-runtime | --exec-runtime] [--sync-until-exit] \
[--standby] [--cgroup-mounts FILE]\n       skiff-monitor --wait-args --sync-fd N \
[--spare-cgroup PARENT] [--nice N] [--cgroup-mounts FILE] [--fork-server]\n";

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
    builtin_runtime: bool,
    exec_runtime: bool,
    sync_until_exit: bool,
    wait_args: bool,
    /// `--fork-server` (with `--wait-args`): see forks.rs.
    fork_server: bool,
    standby: bool,
    spare_cgroup: Option<String>,
    cgroup_mounts: Option<PathBuf>,
    /// `--nice N`: the nice value to take when used (with `--wait-args`).
    nice: i32,
    /// Not an option: the spare cgroup made while waiting (see `--spare-cgroup`).
    made_spare: Option<String>,
    /// Not an option: [`Args::builtin`], once known (a readlink and two stats).
    builtin: std::cell::OnceCell<bool>,
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
                "--builtin-runtime" => flag(&mut a.builtin_runtime)?,
                "--exec-runtime" => flag(&mut a.exec_runtime)?,
                "--sync-until-exit" => flag(&mut a.sync_until_exit)?,
                "--wait-args" => flag(&mut a.wait_args)?,
                "--fork-server" => flag(&mut a.fork_server)?,
                "--standby" => flag(&mut a.standby)?,
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
                        "--cgroup-mounts" => a.cgroup_mounts = Some(value.into()),
                        "--spare-cgroup" => {
                            a.spare_cgroup = Some(value.to_string_lossy().into_owned())
                        }
                        "--nice" => {
                            a.nice = value
                                .to_str()
                                .and_then(|v| v.parse().ok())
                                .filter(|n| (-20..=19).contains(n))
                                .ok_or(format!("--nice: not a nice value: {value:?}"))?
                        }
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
        // Read after daemonizing, in "/" (a hint that cannot be read is not used).
        if let Some(p) = a.cgroup_mounts.as_mut().filter(|p| p.is_relative()) {
            if let Ok(cwd) = std::env::current_dir() {
                *p = cwd.join(&*p);
            }
        }
        if a.fork_server && !a.wait_args {
            return Err("--fork-server goes with --wait-args".into());
        }
        if a.wait_args {
            return match a.sync_fd {
                Some(_) => Ok(a),
                None => Err("--wait-args needs --sync-fd".into()),
            };
        }
        if a.spare_cgroup.is_some() {
            return Err("--spare-cgroup goes with --wait-args".into());
        }
        if a.nice != 0 {
            return Err("--nice goes with --wait-args".into());
        }
        if a.standby && (a.start || a.terminal) {
            return Err("--standby excludes --start and --terminal".into());
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
        if a.builtin_runtime && a.exec_runtime {
            return Err("--builtin-runtime and --exec-runtime exclude each other".into());
        }
        Ok(a)
    }

    /// The directory of the attach socket, where the monitor's other files go.
    fn dir(&self) -> &Path {
        self.socket.parent().unwrap_or(Path::new("/"))
    }

    /// `--pid-file`, by default `<sockdir>/init.pid`.
    fn pid_file(&self) -> PathBuf {
        self.pid_file
            .clone()
            .unwrap_or_else(|| self.dir().join("init.pid"))
    }

    /// The console socket (`<sockdir>/console.sock`) with `--terminal`.
    fn console(&self) -> Option<PathBuf> {
        self.terminal.then(|| self.dir().join("console.sock"))
    }

    /// Whether the runtime's verbs run in this process (see runtime.rs).
    fn builtin(&self) -> bool {
        *self.builtin.get_or_init(|| {
            !self.exec_runtime && (self.builtin_runtime || runtime::is_ours(&self.runtime))
        })
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
            send_sync(sync_hint, Err(&msg), false);
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
    if !args.no_daemonize && !args.fork_server {
        if let Err(e) = daemonize() {
            let msg = format!("cannot daemonize: {e}");
            send_sync(args.sync_fd, Err(&msg), false);
            return 1;
        }
    }
    // The cgroup mounts, once (outside the scratch arena): the mountinfo each verb
    // would read lists every running container's root (a pooled monitor reads it
    // while it waits).
    if args.wait_args || args.builtin() {
        let _ = match &args.cgroup_mounts {
            Some(hint) => skiff_runtime::cgroups::pin_mounts_from(hint),
            None => skiff_runtime::cgroups::pin_mounts(),
        };
    }
    if args.fork_server {
        match forks::serve(args.sync_fd.unwrap_or(-1), args.nice) {
            forks::Served::Exit(code) => return code,
            // A new waiting monitor, in the forked process: on as one.
            forks::Served::Monitor(fd, ahead) => {
                args.sync_fd = Some(fd);
                args.fork_server = false;
                if !ahead {
                    args.spare_cgroup = None;
                }
            }
        }
    }
    if args.wait_args {
        let fd = args.sync_fd.unwrap_or(-1);
        let made_spare = args.spare_cgroup.as_deref().and_then(|parent| {
            // SAFETY: getpid cannot fail.
            let pid = unsafe { libc::getpid() };
            let spare = format!("{}/.spare-{pid}", parent.trim_end_matches('/'));
            // Without one the container's create makes its cgroup as usual. Its
            // allocations go to the scratch arena (mem.rs), given back after the
            // create; only the path is copied out of it.
            let made = mem::scratch(|| {
                let made = skiff_runtime::cgroups::make_spare(&spare).ok().flatten();
                skiff_runtime::cgroups::forget_cached();
                made
            });
            made.map(|m| m.as_str().to_owned())
        });
        let parsed = match receive_args(fd) {
            // Not needed after all.
            Ok(None) => {
                remove_spare(made_spare.as_deref());
                return 0;
            }
            Err(e) => Err(format!("reading the arguments: {e}")),
            Ok(Some(mut argv)) => {
                argv.extend([OsString::from("--sync-fd"), OsString::from(fd.to_string())]);
                match Args::parse(argv) {
                    Ok(a) if a.wait_args => Err("--wait-args given twice".into()),
                    Ok(a) => {
                        // Started ahead of need at a low priority (so as not to slow
                        // the starts under way): this one is needed now, at the
                        // caller's own — unless it makes a container ahead of need
                        // too (--standby: the caller gives it its own at the start).
                        if !a.standby {
                            // SAFETY: setpriority only changes this process's nice value.
                            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) };
                        }
                        Ok(a)
                    }
                    parsed => parsed,
                }
            }
        };
        match parsed {
            Ok(a) => {
                args = a;
                args.made_spare = made_spare;
            }
            Err(msg) => {
                remove_spare(made_spare.as_deref());
                send_sync(Some(fd), Err(&msg), false);
                return 2;
            }
        }
    }
    match start(&args) {
        Ok((mut monitor, pid)) => {
            monitor.exit_notify = send_sync(args.sync_fd, Ok(pid), args.sync_until_exit);
            // The builtin create renamed the spare into place or removed it
            // (cgroups' create_from); another runtime left it.
            if !args.builtin() {
                remove_spare(args.made_spare.as_deref());
            }
            monitor.run()
        }
        Err(msg) => {
            remove_spare(args.made_spare.as_deref());
            eprintln!("skiff-monitor: {msg}");
            send_sync(args.sync_fd, Err(&msg), false);
            let _ = std::fs::remove_file(&args.socket);
            if args.terminal {
                let _ = std::fs::remove_file(args.dir().join("console.sock"));
            }
            1
        }
    }
}

/// Removes what is left of the spare cgroup (nothing once the create took it: it
/// did unless another runtime ran, or the create failed). In the scratch arena:
/// it may read /proc/self/mountinfo (when the mounts pinned no longer hold),
/// which grows with every running container.
fn remove_spare(spare: Option<&str>) {
    if let Some(spare) = spare {
        mem::scratch(|| {
            skiff_runtime::cgroups::remove_spare(spare);
            skiff_runtime::cgroups::forget_cached();
        });
    }
}

/// The command line sent on `fd` (see `--wait-args`); None at end of file first.
fn receive_args(fd: RawFd) -> io::Result<Option<Vec<OsString>>> {
    const MAX: usize = 64 << 10;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut want: Option<(usize, usize)> = None; // (header length, payload length)
    loop {
        if want.is_none() {
            if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let len: usize = std::str::from_utf8(&buf[..nl])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .filter(|&l| l <= MAX)
                    .ok_or_else(|| bad("bad length"))?;
                want = Some((nl + 1, len));
            } else if buf.len() > 32 {
                return Err(bad("bad length"));
            }
        }
        if let Some((head, len)) = want {
            if buf.len() >= head + len {
                let payload = &buf[head..head + len];
                let argv = payload
                    .split(|&b| b == 0)
                    .take(payload.iter().filter(|&&b| b == 0).count())
                    .map(|a| OsStr::from_bytes(a).to_os_string());
                return Ok(Some(argv.collect()));
            }
        }
        let n = sys::read(fd, &mut chunk)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short"));
        }
        buf.extend_from_slice(&chunk[..n]);
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
    detach();
    Ok(())
}

/// What a daemonized process does after its fork: a session of its own, in "/",
/// stdio on /dev/null.
pub(crate) fn detach() {
    // SAFETY: plain calls.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
    }
    null_stdio(&[0, 1, 2]);
}

/// Points the stdio descriptors `fds` at /dev/null.
pub(crate) fn null_stdio(fds: &[RawFd]) {
    // SAFETY: plain calls; the dup2s replace the given descriptors, the original
    // is closed after unless it is one of them.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for &fd in fds {
                libc::dup2(null, fd);
            }
            if !fds.contains(&null) {
                libc::close(null);
            }
        }
    }
}

/// Writes the one sync line and closes the fd, or with `keep` returns it.
fn send_sync(fd: Option<RawFd>, result: Result<libc::pid_t, &str>, keep: bool) -> Option<OwnedFd> {
    let fd = fd?;
    let mut b = Vec::with_capacity(64);
    match result {
        Ok(pid) => {
            b.extend_from_slice(b"{\"pid\": ");
            json::push_int(&mut b, pid.into());
            b.extend_from_slice(b", \"monitor_pid\": ");
            // SAFETY: getpid cannot fail.
            let me = unsafe { libc::getpid() };
            json::push_int(&mut b, me.into());
            // What tells this monitor from a later process with its pid: read here,
            // off the daemon's event loop (in the scratch arena: the monitor lives on).
            if let Some(start) = mem::scratch(|| skiff_runtime::sys::pid_start_time(me)) {
                b.extend_from_slice(b", \"monitor_start\": ");
                json::push_int(&mut b, i64::try_from(start).unwrap_or(0));
            }
        }
        Err(msg) => {
            b.extend_from_slice(b"{\"error\": ");
            json::push_str(&mut b, msg.as_bytes());
        }
    }
    b.extend_from_slice(b"}\n");
    let _ = sys::write_all(fd, &b);
    // SAFETY: the fd was inherited for the monitor alone; nothing else uses it.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    keep.then_some(owned)
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
    let listener = sys::listen_unix(&args.socket, 0o600)
        .map_err(|e| err(&format!("attach socket {}", args.socket.display()), e))?;
    let log = LogFile::open(&args.log, args.log_max_size, args.log_max_files)
        .map_err(|e| err(&format!("log {}", args.log.display()), e))?;

    if args.pid_file.is_some() || !args.builtin() {
        let _ = std::fs::remove_file(args.pid_file());
    }
    let console_path = args.console();
    if args.standby && !args.builtin() {
        return Err("--standby needs skiff-runtime's builtin runtime".into());
    }
    let mut runtime = runtime::Runtime::new(args, args.builtin())?;

    // The runtime's stdio, and our ends of it.
    let null = |flags| sys::open(Path::new("/dev/null"), flags, 0).map_err(|e| err("/dev/null", e));
    let (stdio, console, outputs, stdin, captured): (
        [OwnedFd; 3],
        Option<OwnedFd>,
        Vec<OwnedFd>,
        Option<OwnedFd>,
        OwnedFd,
    );
    if let Some(console_path) = &console_path {
        let l = sys::listen_unix(console_path, 0o600)
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

    let created = runtime.create(args, &stdio, &captured);
    drop(stdio);
    drop(captured);
    let master = console.and_then(|l| {
        let got = sys::accept(l.as_raw_fd())
            .ok()
            .flatten()
            .and_then(|c| sys::recv_fd(c.as_raw_fd()).ok().flatten());
        if let Some(path) = &console_path {
            let _ = std::fs::remove_file(path);
        }
        got
    });
    let pid = created?;
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
    // Before start: an init that is not our child could be gone right after.
    let init = watch_init(pid);
    // Held until the exit is reported: when init dies the kernel then has no mount
    // namespace to take apart before the reap (tens of mounts, ~1 ms).
    let held_ns = match init {
        Init::Child(p) => {
            sys::open(Path::new(&format!("/proc/{p}/ns/mnt")), libc::O_RDONLY, 0).ok()
        }
        _ => None,
    };
    if args.start {
        if let Err(msg) = runtime.start() {
            runtime.delete();
            return Err(msg);
        }
    }
    let monitor = Monitor {
        sigfd,
        runtime,
        delete_on_exit: args.delete_on_exit,
        startable: !args.start,
        listener,
        socket_path: args.socket.clone(),
        exit_file: args.exit_file.clone(),
        tty: args.terminal,
        outputs,
        stdin,
        log,
        init,
        clients: Vec::new(),
        stdin_pending: Vec::new(),
        stdin_close: false,
        shrink_soon: true,
        exit_notify: None,
        held_ns,
        standby: args.standby,
    };
    Ok((monitor, pid))
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
