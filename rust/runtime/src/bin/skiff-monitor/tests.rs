//! Process-level tests: the monitor run for real, with fake runtimes (shell or
//! Python scripts that mimic `create`: they start the "container" in the
//! background with the stdio they were given, write its pid and exit, so that it
//! is reparented to the monitor).
//!
//! `cargo test` does not build the package's binaries when it has no integration
//! tests, so `target/debug/skiff-monitor` may be stale or missing. Instead the test
//! executable is itself the monitor: started with [`AS_MONITOR_ENV`] set, the
//! constructor below runs the monitor before the test harness starts, and exits.

use std::ffi::{CStr, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const AS_MONITOR_ENV: &str = "SKIFF_MONITOR_TEST_AS_MONITOR";

type InitArrayFn =
    extern "C" fn(libc::c_int, *const *const libc::c_char, *const *const libc::c_char);

#[used]
#[link_section = ".init_array"]
static AS_MONITOR: InitArrayFn = as_monitor;

extern "C" fn as_monitor(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    if std::env::var_os(AS_MONITOR_ENV).is_none() {
        return;
    }
    let args = (1..argc.max(1) as usize)
        // SAFETY: glibc passes main's argc/argv to constructors.
        .map(|i| unsafe { OsStr::from_bytes(CStr::from_ptr(*argv.add(i)).to_bytes()) })
        .map(OsStr::to_os_string)
        .collect();
    let code = crate::run(args);
    // SAFETY: nothing is left to flush or unwind.
    unsafe { libc::_exit(code) };
}

const TIMEOUT: Duration = Duration::from_secs(15);

/// A shell runtime: records its argv, starts `$dir/ctr.sh` in the background with
/// its own stdio, writes the pid file, exits 0.
const SH_RUNTIME: &str = r#"#!/bin/sh
dir=$(dirname "$0")
printf '%s\n' "$@" > "$dir/argv"
while [ $# -gt 0 ]; do
  case "$1" in
    --pid-file) pidfile=$2; shift 2;;
    --log) log=$2; shift 2;;
    --bundle|--root|--log-format|--console-socket) shift 2;;
    *) shift;;
  esac
done
exec 3<&0 # (dash gives a background job /dev/null for stdin, even with <&0)
sh "$dir/ctr.sh" <&3 3<&- &
echo $! > "$pidfile"
exit 0
"#;

/// A runtime that fails the way runc does: an error line in its JSON log.
const FAILING_RUNTIME: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log=$2; shift 2;;
    *) shift;;
  esac
done
printf '{"level":"info","msg":"starting","time":"2026-01-01T00:00:00Z"}\n' >> "$log"
printf '{"level":"error","msg":"boom \\"quoted\\"","time":"2026-01-01T00:00:00Z"}\n' >> "$log"
printf '{"level":"info","msg":"cleanup","time":"2026-01-01T00:00:00Z"}\n' >> "$log"
echo "noise on stderr" >&2
exit 1
"#;

/// A runtime with a terminal: makes a pty, sends the master to the console
/// socket (SCM_RIGHTS), starts the container on the slave.
const PY_TTY_RUNTIME: &str = r#"#!/usr/bin/env python3
import os, socket, subprocess, sys
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
master, slave = os.openpty()
s = socket.socket(socket.AF_UNIX)
s.connect(opt("--console-socket"))
socket.send_fds(s, [os.ttyname(slave).encode()], [master])
s.close()
d = os.path.dirname(os.path.abspath(__file__))
p = subprocess.Popen(["sh", os.path.join(d, "ctr.sh")], stdin=slave, stdout=slave,
                     stderr=slave, start_new_session=True, cwd=d)
with open(opt("--pid-file"), "w") as f:
    f.write(str(p.pid))
"#;

struct Fixture {
    dir: PathBuf,
    child: Option<Child>,
    pids: Vec<libc::pid_t>,
    /// The cgroup parent of a real container (builtin tests), removed at the end.
    cgroup_parent: Option<String>,
}

impl Fixture {
    fn new(runtime: &str, ctr: &str) -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "skiff-monitor-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rt = dir.join("runtime");
        std::fs::write(&rt, runtime).unwrap();
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The container waits for the test to create `go` where the test says so.
        std::fs::write(dir.join("ctr.sh"), format!("cd {}\n{ctr}\n", dir.display())).unwrap();
        Fixture {
            dir,
            child: None,
            pids: Vec::new(),
            cgroup_parent: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts the monitor and returns its sync line.
    fn start(&mut self, extra: &[&str], daemonize: bool) -> String {
        let (line, r) = self.launch(extra, daemonize);
        // Then the end: a caller may read to it (skiffd does). Nothing the monitor
        // started (the runtime, the container's init) may hold the fd open.
        assert_eof(r.as_raw_fd());
        line
    }

    /// Starts the monitor; its sync line and the read end of the sync fd.
    fn launch(&mut self, extra: &[&str], daemonize: bool) -> (String, OwnedFd) {
        let (r, w) = pipe();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(AS_MONITOR_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let d = |n: &str| self.path(n).into_os_string();
        cmd.arg("--id").arg("c1");
        cmd.arg("--bundle").arg(&self.dir);
        cmd.arg("--runtime").arg(d("runtime"));
        cmd.arg("--log").arg(d("ctr.log"));
        cmd.arg("--exit-file").arg(d("exit.json"));
        cmd.arg("--socket").arg(d("attach.sock"));
        cmd.arg("--sync-fd").arg(w.as_raw_fd().to_string());
        if !daemonize {
            cmd.arg("--no-daemonize");
        }
        cmd.args(extra);
        let wfd = w.as_raw_fd();
        // SAFETY: only fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(wfd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop(w);
        if daemonize {
            // The first process leaves at once; the sync line says when it is ready.
            let st = child.wait().unwrap();
            assert!(st.success(), "{st:?}");
        } else {
            self.child = Some(child);
        }
        let line = read_line(r.as_raw_fd());
        for key in ["\"pid\": ", "\"monitor_pid\": "] {
            if let Some(p) = json_int(&line, key) {
                self.pids.push(p as libc::pid_t);
            }
        }
        (line, r)
    }

    /// Starts a monitor with `--wait-args` (not daemonized); the caller's end of
    /// its sync socket.
    fn launch_waiting(&mut self) -> UnixStream {
        self.launch_waiting_with(&[])
    }

    /// [`Fixture::launch_waiting`] with more options for the waiting monitor.
    fn launch_waiting_with(&mut self, extra: &[&str]) -> UnixStream {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(AS_MONITOR_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .args([
                "--wait-args",
                "--no-daemonize",
                "--sync-fd",
                &fd.to_string(),
            ])
            .args(extra);
        // SAFETY: only fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().unwrap());
        drop(theirs);
        ours.set_read_timeout(Some(TIMEOUT)).unwrap();
        ours
    }

    /// The usual command line for this fixture, in `--wait-args`' framing.
    fn framed_args(&self, extra: &[&str]) -> Vec<u8> {
        let d = |n: &str| self.path(n).to_string_lossy().into_owned();
        let mut argv: Vec<String> = vec!["--id".into(), "c1".into(), "--bundle".into()];
        argv.push(self.dir.to_string_lossy().into_owned());
        for (opt, file) in [
            ("--runtime", "runtime"),
            ("--log", "ctr.log"),
            ("--exit-file", "exit.json"),
            ("--socket", "attach.sock"),
        ] {
            argv.extend([opt.to_string(), d(file)]);
        }
        argv.extend(extra.iter().map(|e| e.to_string()));
        let mut payload = Vec::new();
        for a in &argv {
            payload.extend_from_slice(a.as_bytes());
            payload.push(0);
        }
        let mut msg = format!("{}\n", payload.len()).into_bytes();
        msg.extend_from_slice(&payload);
        msg
    }

    /// Waits for the (non-daemonized) monitor to exit; its exit code.
    fn wait(&mut self) -> i32 {
        let child = self.child.as_mut().unwrap();
        let t = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < TIMEOUT, "monitor did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_file(&self, name: &str) -> String {
        let t = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(self.path(name)) {
                return s;
            }
            assert!(t.elapsed() < TIMEOUT, "no {name}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn connect(&self, line: &str) -> UnixStream {
        let mut s = UnixStream::connect(self.path("attach.sock")).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        s
    }

    /// Connects and attaches; the answer must be `ok`.
    fn attach(&self, flags: &str) -> UnixStream {
        let mut s = self.connect(&format!("attach {flags}\n"));
        let mut ok = [0u8; 3];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"ok\n");
        s
    }

    fn go(&self) {
        std::fs::write(self.path("go"), "").unwrap();
    }

    fn log_entries(&self) -> Vec<(String, String)> {
        let log = std::fs::read(self.path("ctr.log")).unwrap();
        log.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let text = crate::json::string_field(l, "log").unwrap();
                let stream = crate::json::string_field(l, "stream").unwrap();
                let time = crate::json::string_field(l, "time").unwrap();
                assert_eq!(time.len(), 30, "{time}");
                assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
                (stream, text)
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed test may leave its monitor and container behind. (Only then: a
        // pid that exited normally may have been reused by now.)
        if std::thread::panicking() {
            for &pid in self.pids.iter().filter(|&&p| alive(p)) {
                // SAFETY: plain kill of processes this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(parent) = &self.cgroup_parent {
            remove_cgroup_parent(parent);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors, which become ours.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Reads up to the first newline (or EOF), with a timeout.
fn read_line(fd: RawFd) -> String {
    read_fd_until(fd, |out| out.contains(&b'\n'), "no sync line")
}

/// Everything until the end of `fd` (which must come soon).
fn read_to_end(fd: RawFd) -> String {
    read_fd_until(fd, |_| false, "no end of file")
}

/// Reads from `fd` until `enough` says so or the end of file, with a timeout.
fn read_fd_until(fd: RawFd, enough: impl Fn(&[u8]) -> bool, what: &str) -> String {
    let mut out = Vec::new();
    let t = Instant::now();
    loop {
        let ready = poll_in(fd, 100);
        let mut b = [0u8; 256];
        let n = crate::sys::read(fd, &mut b).unwrap_or(0);
        out.extend_from_slice(&b[..n]);
        if n == 0 && ready > 0 || enough(&out) {
            return String::from_utf8(out).unwrap();
        }
        assert!(t.elapsed() < TIMEOUT, "{what}");
    }
}

/// The fd reaches its end (soon).
/// poll(2) of `fd` for input: 1 when readable within `ms`, 0 when not.
fn poll_in(fd: RawFd, ms: i32) -> i32 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) }
}

fn assert_eof(fd: RawFd) {
    let ready = poll_in(fd, TIMEOUT.as_millis() as i32);
    assert_eq!(ready, 1, "no end of file");
    let mut b = [0u8; 64];
    assert_eq!(
        crate::sys::read(fd, &mut b).ok(),
        Some(0),
        "more after the line"
    );
}

/// The pid on a successful sync line (panics with the line otherwise).
fn sync_pid(line: &str) -> libc::pid_t {
    json_int(line, "\"pid\": ").unwrap_or_else(|| panic!("{line}")) as libc::pid_t
}

fn json_int(line: &str, key: &str) -> Option<i64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '-')?;
    rest[..end].parse().ok()
}

/// Reads Docker-multiplexed frames until EOF.
fn read_frames(s: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut h = [0u8; 8];
        if s.read_exact(&mut h).is_err() {
            return frames;
        }
        assert_eq!(&h[1..4], &[0, 0, 0]);
        let mut data = vec![0u8; u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize];
        // A dropped client may find its last frame cut short.
        if s.read_exact(&mut data).is_err() {
            return frames;
        }
        frames.push((h[0], data));
    }
}

/// Joins the payloads of one stream.
fn stream(frames: &[(u8, Vec<u8>)], id: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == id)
        .flat_map(|f| f.1.clone())
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// Running (not gone, not a zombie waiting for a parent that may never reap it).
fn alive(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
}

#[test]
fn logs_and_exit_status() {
    let mut f = Fixture::new(
        SH_RUNTIME,
        "echo out; echo err >&2; printf partial; sleep 0.2; exit 3",
    );
    let line = f.start(
        &["--runtime-root", "/run/x", "--runtime-arg", "--debug"],
        false,
    );
    let pid = sync_pid(&line);
    assert!(pid > 0 && line.ends_with("}\n"), "{line}");
    assert_eq!(f.wait(), 0);
    let mut entries = f.log_entries();
    // stdout and stderr are separate pipes: their relative order is not fixed.
    entries.sort();
    assert_eq!(
        entries,
        [
            ("stderr".into(), "err\n".into()),
            ("stdout".into(), "out\n".into()),
            ("stdout".into(), "partial".into()),
        ]
    );
    let exit = f.wait_file("exit.json");
    assert!(
        exit.starts_with(
            "{\"exit_code\": 3, \"signal\": null, \"oom_killed\": false, \"finished_at\": \"20"
        ),
        "{exit}"
    );
    assert!(!f.path("exit.json.tmp").exists());
    assert!(!f.path("attach.sock").exists());
    let argv = std::fs::read_to_string(f.path("argv")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    let d = f.dir.display().to_string();
    assert_eq!(
        argv,
        [
            "--root".to_string(),
            "/run/x".into(),
            "--log".into(),
            format!("{d}/runtime.log"),
            "--log-format".into(),
            "json".into(),
            "--debug".into(),
            "create".into(),
            "--bundle".into(),
            d.clone(),
            "--pid-file".into(),
            format!("{d}/init.pid"),
            "c1".into(),
        ]
    );
}

#[test]
fn killed_by_signal_and_orphans_reaped() {
    // An orphan that outlives nothing: reaped, its status ignored.
    let mut f = Fixture::new(SH_RUNTIME, "(sleep 0.1; exit 7) & sleep 0.3; kill -KILL $$");
    f.start(&[], false);
    assert_eq!(f.wait(), 0);
    let exit = f.wait_file("exit.json");
    assert!(
        exit.starts_with("{\"exit_code\": 137, \"signal\": 9,"),
        "{exit}"
    );
}

#[test]
fn attach_gets_multiplexed_frames() {
    let mut f = Fixture::new(
        SH_RUNTIME,
        "while [ ! -e go ]; do sleep 0.02; done; echo out; sleep 0.05; echo err >&2; sleep 0.05; printf 'x\\001y'",
    );
    f.start(&[], false);
    let mut both = f.attach("stdout,stderr");
    let mut only_err = f.attach("stderr");
    f.go();
    let frames = read_frames(&mut both);
    assert_eq!(stream(&frames, 1), "out\nx\u{1}y");
    assert_eq!(stream(&frames, 2), "err\n");
    assert_eq!(frames[0], (1, b"out\n".to_vec()));
    let frames = read_frames(&mut only_err);
    assert_eq!(frames, [(2, b"err\n".to_vec())]);
    assert_eq!(f.wait(), 0);
    let log = std::fs::read_to_string(f.path("ctr.log")).unwrap();
    assert!(
        log.contains(r#"{"log":"x\u0001y","stream":"stdout","time":""#),
        "{log}"
    );
}

#[test]
fn stdin_reaches_the_container_and_close_stdin_ends_it() {
    let mut f = Fixture::new(SH_RUNTIME, "cat; echo done");
    f.start(&["--stdin"], false);
    let mut a = f.attach("stdin,stdout,stderr");
    a.write_all(b"hello\n").unwrap();
    let mut got = [0u8; 14];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"\x01\0\0\0\0\0\0\x06hello\n");
    // No stdin-once: this half-close leaves the container's stdin open.
    a.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!f.path("exit.json").exists());
    let mut c = f.connect("close-stdin\n");
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    let frames = read_frames(&mut a);
    assert_eq!(stream(&frames, 1), "done\n");
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
    assert_eq!(
        f.log_entries(),
        [
            ("stdout".into(), "hello\n".into()),
            ("stdout".into(), "done\n".into())
        ]
    );
}

#[test]
fn stdin_once_half_close_closes_stdin() {
    let mut f = Fixture::new(SH_RUNTIME, "wc -c");
    f.start(&["--stdin"], false);
    let mut a = f.attach("stdin,stdout,stdin-once");
    a.write_all(&[b'z'; 100_000]).unwrap(); // more than a pipe holds
    a.shutdown(std::net::Shutdown::Write).unwrap();
    let frames = read_frames(&mut a);
    assert_eq!(stream(&frames, 1).trim(), "100000");
    assert_eq!(f.wait(), 0);
}

#[test]
fn runtime_failure_is_reported_on_the_sync_fd() {
    let mut f = Fixture::new(FAILING_RUNTIME, "true");
    let line = f.start(&[], false);
    assert_eq!(line, "{\"error\": \"boom \\\"quoted\\\"\"}\n");
    assert_eq!(f.wait(), 1);
    assert!(!f.path("attach.sock").exists());
    assert!(!f.path("exit.json").exists());
}

#[test]
fn runtime_failure_without_log_uses_stderr_or_status() {
    let mut f = Fixture::new("#!/bin/sh\necho 'no such bundle' >&2\nexit 2\n", "true");
    assert_eq!(f.start(&[], false), "{\"error\": \"no such bundle\"}\n");
    let mut f = Fixture::new("#!/bin/sh\nexit 4\n", "true");
    assert_eq!(
        f.start(&[], false),
        "{\"error\": \"runtime exited with status 4\"}\n"
    );
    let mut f = Fixture::new(SH_RUNTIME, "true");
    std::fs::remove_file(f.path("runtime")).unwrap();
    let line = f.start(&[], false);
    assert!(line.starts_with("{\"error\": \"cannot run "), "{line}");
    assert_eq!(f.wait(), 1);
}

#[test]
fn bad_command_line_is_reported_on_the_sync_fd() {
    let mut f = Fixture::new(SH_RUNTIME, "true");
    let line = f.start(&["--log-max-size", "lots"], false);
    assert!(
        line.starts_with("{\"error\": \"--log-max-size: not a number"),
        "{line}"
    );
    assert_eq!(f.wait(), 2);
}

#[test]
fn daemonized_monitor_outlives_its_parent() {
    let mut f = Fixture::new(
        SH_RUNTIME,
        "while [ ! -e go ]; do sleep 0.02; done; echo bye; exit 5",
    );
    let line = f.start(&[], true);
    let mpid = json_int(&line, "\"monitor_pid\": ").unwrap() as libc::pid_t;
    assert!(alive(mpid), "{line}");
    // Its own session, and cwd "/".
    // SAFETY: plain calls.
    let (sid, mine) = unsafe { (libc::getsid(mpid), libc::getsid(0)) };
    assert_eq!(sid, mpid);
    assert_ne!(sid, mine);
    assert_eq!(
        std::fs::read_link(format!("/proc/{mpid}/cwd")).unwrap(),
        Path::new("/")
    );
    // SIGTERM does not stop it.
    // SAFETY: plain kill of the monitor this test started.
    unsafe { libc::kill(mpid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(50));
    let mut a = f.attach("stdout");
    f.go();
    assert_eq!(read_frames(&mut a), [(1, b"bye\n".to_vec())]);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 5,"));
    let t = Instant::now();
    while alive(mpid) {
        assert!(t.elapsed() < TIMEOUT, "monitor still there");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn slow_client_is_dropped_and_never_blocks_the_container() {
    // 8 MiB without newlines: 16 KiB partial entries; the client never reads.
    let mut f = Fixture::new(
        SH_RUNTIME,
        "while [ ! -e go ]; do sleep 0.02; done; head -c 8388608 /dev/zero | tr '\\0' a; exit 0",
    );
    f.start(&[], false);
    let mut a = f.attach("stdout");
    f.go();
    assert_eq!(f.wait(), 0);
    let entries = f.log_entries();
    assert_eq!(entries.len(), 512);
    assert!(entries
        .iter()
        .all(|(s, t)| s == "stdout" && t.len() == 16384));
    // It got some, then was cut off before the end.
    let got = read_frames(&mut a).iter().map(|f| f.1.len()).sum::<usize>();
    assert!(got < 8 << 20, "{got}");
}

#[test]
fn log_rotation() {
    let mut f = Fixture::new(
        SH_RUNTIME,
        "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); done",
    );
    f.start(&["--log-max-size", "1000", "--log-max-files", "3"], false);
    assert_eq!(f.wait(), 0);
    let sizes: Vec<u64> = ["ctr.log", "ctr.log.1", "ctr.log.2"]
        .iter()
        .map(|n| std::fs::metadata(f.path(n)).unwrap().len())
        .collect();
    assert!(sizes.iter().all(|&s| s > 0 && s <= 1000), "{sizes:?}");
    assert!(!f.path("ctr.log.3").exists());
    let last = f.log_entries();
    assert_eq!(last.last().unwrap().1, "line-39\n");
}

#[test]
fn terminal_console_socket_resize_and_stdin() {
    if Command::new("python3").arg("-c").arg("").status().is_err() {
        eprintln!("skipped: no python3 for the pty runtime");
        return;
    }
    let mut f = Fixture::new(
        PY_TTY_RUNTIME,
        "while [ ! -e go ]; do sleep 0.02; done; stty size; echo hi-tty; read line; echo \"got:$line\"",
    );
    let line = f.start(&["--terminal", "--stdin"], false);
    assert!(line.starts_with("{\"pid\": "), "{line}");
    assert!(!f.path("console.sock").exists());
    let mut r = f.connect("resize 40 100\n");
    let mut answer = String::new();
    r.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    let mut a = f.attach("stdin,stdout");
    f.go();
    let mut seen = read_until(&mut a, "hi-tty");
    a.write_all(b"abc\n").unwrap();
    a.read_to_end(&mut seen).unwrap();
    let seen = String::from_utf8_lossy(&seen);
    // Raw bytes, no framing; the tty echoes and turns \n into \r\n.
    assert!(seen.starts_with("40 100\r\nhi-tty\r\n"), "{seen:?}");
    assert!(seen.contains("got:abc\r\n"), "{seen:?}");
    assert_eq!(f.wait(), 0);
    let entries = f.log_entries();
    assert!(entries.iter().all(|(s, _)| s == "stdout"));
    assert!(
        entries.contains(&("stdout".into(), "hi-tty\r\n".into())),
        "{entries:?}"
    );
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
}

#[test]
fn unknown_commands_are_refused() {
    let mut f = Fixture::new(SH_RUNTIME, "while [ ! -e go ]; do sleep 0.02; done");
    f.start(&[], false);
    for (line, want) in [
        ("bogus\n", "error unknown command\n"),
        ("attach stdout,sideways\n", "error unknown attach flag\n"),
        ("resize 1 2\n", "error no terminal\n"),
    ] {
        let mut c = f.connect(line);
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, want);
    }
    f.go();
    assert_eq!(f.wait(), 0);
}

#[test]
fn init_that_is_not_our_child_is_watched_through_a_pidfd() {
    // The "container" is the test's own child: the runtime only names it.
    let mut sleeper = Command::new("sleep").arg("0.3").spawn().unwrap();
    let runtime = format!(
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --pid-file ] && p=$2; shift; done\necho {} > \"$p\"\n",
        sleeper.id()
    );
    let mut f = Fixture::new(&runtime, "true");
    let line = f.start(&[], false);
    assert_eq!(json_int(&line, "\"pid\": "), Some(sleeper.id().into()));
    assert!(!f.path("exit.json").exists());
    sleeper.wait().unwrap();
    assert_eq!(f.wait(), 0);
    assert!(f
        .wait_file("exit.json")
        .starts_with("{\"exit_code\": 255, \"signal\": null,"));
}

/// A runtime that tells its verbs apart: `create` starts the container, which runs
/// only once `start` has made the `started` file (as a real container waits on its
/// exec fifo); each call's verb is appended to `calls` (a `delete` that finds the
/// exit file already written says so).
const VERB_RUNTIME: &str = r#"#!/bin/sh
dir=$(dirname "$0")
verb=
while [ $# -gt 0 ]; do
  case "$1" in
    --pid-file) pidfile=$2; shift 2;;
    --bundle|--root|--log|--log-format|--console-socket) shift 2;;
    create|start|delete) verb=$1; shift;;
    *) shift;;
  esac
done
case "$verb" in
  create)
    (while [ ! -e "$dir/started" ]; do sleep 0.01; done; exec sh "$dir/ctr.sh") &
    echo $! > "$pidfile";;
  start) touch "$dir/started";;
  delete) if [ -e "$dir/exit.json" ]; then verb="delete-after-exit-file"; fi;;
esac
echo "$verb" >> "$dir/calls"
exit 0
"#;

#[test]
fn start_flag_starts_and_delete_on_exit_deletes_after_the_exit_is_reported() {
    let mut f = Fixture::new(VERB_RUNTIME, "echo ran; exit 4");
    let line = f.start(&["--start", "--delete-on-exit"], false);
    sync_pid(&line);
    assert_eq!(f.wait(), 0);
    let exit = f.wait_file("exit.json");
    assert!(exit.starts_with("{\"exit_code\": 4,"), "{exit}");
    let calls = std::fs::read_to_string(f.path("calls")).unwrap();
    // The exit is reported first (exit file, sync fd), the clean-up follows.
    assert_eq!(calls, "create\nstart\ndelete-after-exit-file\n");
    assert_eq!(f.log_entries(), [("stdout".into(), "ran\n".into())]);
}

#[test]
fn sync_until_exit_sends_the_exit_record_and_ends_before_the_clean_up() {
    // A delete that takes a while: the caller must not wait for it.
    let runtime = VERB_RUNTIME.replace("  delete) if", "  delete) sleep 1; if");
    let mut f = Fixture::new(&runtime, "while [ ! -e go ]; do sleep 0.02; done; exit 6");
    let (line, r) = f.launch(&["--start", "--delete-on-exit", "--sync-until-exit"], false);
    sync_pid(&line);
    assert_eq!(
        poll_in(r.as_raw_fd(), 300),
        0,
        "sync fd ended while running"
    );
    std::fs::write(f.path("go"), "").unwrap();
    // The exit record, then the end; the exit file says the same.
    let record = read_to_end(r.as_raw_fd());
    assert!(record.starts_with("{\"exit_code\": 6,"), "{record}");
    let calls = std::fs::read_to_string(f.path("calls")).unwrap();
    assert_eq!(calls, "create\nstart\n", "the clean-up came first");
    assert_eq!(f.wait_file("exit.json"), record);
    assert_eq!(f.wait(), 0);
    let calls = std::fs::read_to_string(f.path("calls")).unwrap();
    assert_eq!(calls, "create\nstart\ndelete-after-exit-file\n");
}

#[test]
fn waiting_monitor_reads_its_command_line_then_runs_the_container() {
    let mut f = Fixture::new(VERB_RUNTIME, "echo hi; exit 3");
    let mut sock = f.launch_waiting();
    // Started ahead of need: nothing happens until the arguments come, in pieces.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!f.path("calls").exists());
    let msg = f.framed_args(&["--start", "--delete-on-exit", "--sync-until-exit"]);
    let (a, b) = msg.split_at(msg.len() / 2);
    sock.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    sock.write_all(b).unwrap();
    // The sync line, then (held until init exits) the exit record, then the end:
    // the container may well be gone before anything is read.
    let all = read_to_end(sock.as_raw_fd());
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(json_int(lines[0], "\"pid\": ").is_some(), "{all}");
    assert!(lines[1].starts_with("{\"exit_code\": 3,"), "{all}");
    assert_eq!(f.wait(), 0);
    assert_eq!(f.wait_file("exit.json"), format!("{}\n", lines[1]));
    assert_eq!(f.log_entries(), [("stdout".into(), "hi\n".into())]);
}

#[test]
fn waiting_monitor_takes_the_nice_value_it_is_given_when_used() {
    let mut f = Fixture::new(VERB_RUNTIME, "while [ ! -e go ]; do sleep 0.02; done");
    let mut sock = f.launch_waiting_with(&["--nice", "7"]);
    let pid = f.child.as_ref().unwrap().id();
    sock.write_all(&f.framed_args(&["--start", "--sync-until-exit"]))
        .unwrap();
    let line = read_line(sock.as_raw_fd());
    sync_pid(&line);
    assert_eq!(nice_of(pid as libc::pid_t), 7);
    // Its start time comes with the sync line (what tells it from a later pid).
    let start = skiff_runtime::sys::pid_start_time(pid as i32).unwrap();
    assert_eq!(
        json_int(&line, "\"monitor_start\": "),
        Some(start as i64),
        "{line}"
    );
    std::fs::write(f.path("go"), "").unwrap();
    assert_eq!(f.wait(), 0);
    // Out of range: refused.
    let mut f = Fixture::new(VERB_RUNTIME, "true");
    let _sock = f.launch_waiting_with(&["--nice", "40"]);
    assert_eq!(f.wait(), 2);
}

#[test]
fn fork_server_makes_waiting_monitors_until_its_input_ends() {
    let mut f = Fixture::new(VERB_RUNTIME, "echo hi; exit 3");
    // A hint that cannot be read (mountinfo is read instead) marks this test's
    // processes: the monitors forked have the server's command line.
    let marker = f.path("no-such-hint").to_string_lossy().into_owned();
    let mut server =
        f.launch_waiting_with(&["--fork-server", "--nice", "7", "--cgroup-mounts", &marker]);
    let server_pid = f.child.as_ref().unwrap().id() as libc::pid_t;
    // A request it does not know is answered, and the server goes on.
    server.write_all(b"x").unwrap();
    assert_eq!(read_line(server.as_raw_fd()), "-unknown request 0x78\n");
    let mut seen = vec![server_pid];
    for (request, nice) in [(b"b", 19), (b"n", 7)] {
        server.write_all(request).unwrap();
        assert_eq!(poll_in(server.as_raw_fd(), TIMEOUT.as_millis() as i32), 1);
        // (The answer's line, `+`, comes with the descriptor in one message.)
        let sock = crate::sys::recv_fd(server.as_raw_fd())
            .unwrap()
            .expect("no descriptor");
        // The new monitor: of a session of its own, nobody's child here, waiting
        // at the priority asked for; it runs a container like any waiting monitor.
        let waiting = new_process_with(&marker, &seen);
        seen.push(waiting);
        assert_eq!(nice_of(waiting), nice);
        // (It may be a moment before it is on its own: poll.)
        let t = Instant::now();
        // SAFETY: getsid only asks.
        while unsafe { libc::getsid(waiting) } != waiting {
            assert!(t.elapsed() < TIMEOUT, "not in a session of its own");
            std::thread::sleep(Duration::from_millis(5));
        }
        let parent = ppid(waiting).expect("the monitor is gone");
        assert_ne!(parent, server_pid);
        crate::sys::write_all(
            sock.as_raw_fd(),
            &f.framed_args(&["--start", "--sync-until-exit"]),
        )
        .unwrap();
        let all = read_to_end(sock.as_raw_fd());
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 2, "{all}");
        assert_eq!(
            json_int(lines[0], "\"monitor_pid\": "),
            Some(waiting.into()),
            "{all}"
        );
        assert!(lines[1].starts_with("{\"exit_code\": 3,"), "{all}");
        assert_eq!(f.wait_file("exit.json"), format!("{}\n", lines[1]));
        std::fs::remove_file(f.path("exit.json")).unwrap();
    }
    assert_eq!(nice_of(server_pid), 7);
    drop(server);
    assert_eq!(f.wait(), 0);
}

/// A process, not among `seen`, whose command line has `marker`.
fn new_process_with(marker: &str, seen: &[libc::pid_t]) -> libc::pid_t {
    let t = Instant::now();
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            let Ok(argv) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if !seen.contains(&pid) && argv.split(|&b| b == 0).any(|a| a == marker.as_bytes()) {
                return pid;
            }
        }
        assert!(t.elapsed() < TIMEOUT, "no new process with {marker}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn nice_of(pid: libc::pid_t) -> i32 {
    stat_field(pid, 19).unwrap().parse().unwrap()
}

#[test]
fn waiting_monitor_leaves_quietly_when_the_caller_hangs_up() {
    let mut f = Fixture::new(VERB_RUNTIME, "true");
    let sock = f.launch_waiting();
    drop(sock);
    assert_eq!(f.wait(), 0);
    assert!(!f.path("calls").exists());
}

#[test]
fn waiting_monitor_reports_a_bad_command_line() {
    let mut f = Fixture::new(VERB_RUNTIME, "true");
    let mut sock = f.launch_waiting();
    sock.write_all(b"12\n--bogus\0abc\0").unwrap();
    let line = read_line(sock.as_raw_fd());
    assert!(
        line.contains("\"error\": \"unknown option --bogus\""),
        "{line}"
    );
    assert_eq!(f.wait(), 2);
    let mut sock = f.launch_waiting();
    sock.write_all(b"nonsense\n").unwrap();
    let line = read_line(sock.as_raw_fd());
    assert!(line.contains("bad length"), "{line}");
    assert_eq!(f.wait(), 2);
}

#[test]
fn without_start_flag_the_container_waits_for_the_caller() {
    let mut f = Fixture::new(VERB_RUNTIME, "echo ran");
    f.start(&[], false);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!f.path("exit.json").exists());
    assert_eq!(
        std::fs::read_to_string(f.path("calls")).unwrap(),
        "create\n"
    );
    std::fs::write(f.path("started"), "").unwrap(); // what `runtime start` would do
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
}

#[test]
fn start_command_after_attach_loses_no_output() {
    let mut f = Fixture::new(VERB_RUNTIME, "echo first; exit 2");
    f.start(&["--delete-on-exit"], false);
    let mut out = f.attach("stdout,stderr");
    let mut s = f.connect("start\n");
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    let frames = read_frames(&mut out);
    assert_eq!(stream(&frames, 1), "first\n");
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 2,"));
    let calls = std::fs::read_to_string(f.path("calls")).unwrap();
    assert_eq!(calls, "create\nstart\ndelete-after-exit-file\n");
}

#[test]
fn start_command_reports_the_runtimes_error_once() {
    // A runtime whose start fails the way runc does: an error line in its log.
    let runtime = VERB_RUNTIME.replace(
        "  start) touch \"$dir/started\";;",
        "  start) printf '{\"level\":\"error\",\"msg\":\"no start\"}\\n' >> \"$dir/runtime.log\"; exit 1;;",
    );
    let mut f = Fixture::new(&runtime, "echo never");
    f.start(&[], false);
    let mut answer = String::new();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "error no start\n");
    answer.clear();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "error already started\n");
    // Nothing ran: end the test's container by hand.
    std::fs::write(f.path("started"), "").unwrap();
    assert_eq!(f.wait(), 0);
}

// ---------------------------------------------------------------------------
// The runtime built in (runtime.rs): skiff-runtime's library creating, starting
// and deleting real containers (namespaces, cgroups, a busybox root) inside the
// monitor. As root, with busybox, else skipped. `--runtime` names the shell
// runtime, which records its argv when run: these tests check it never is.

fn busybox() -> Option<&'static Path> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
}

/// Every cgroup hierarchy's directory for `relative` (v2: one; v1: one per
/// mounted hierarchy).
fn cgroup_dirs(relative: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(relative)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(relative)));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// rmdir a cgroup parent (and its empty children) everywhere, retrying briefly
/// while the kernel lets go of just-emptied children.
fn remove_cgroup_parent(parent: &str) {
    let t = Instant::now();
    loop {
        let dirs = cgroup_dirs(parent);
        if dirs.is_empty() || t.elapsed() > Duration::from_secs(5) {
            return;
        }
        for d in dirs {
            if let Ok(children) = std::fs::read_dir(&d) {
                for c in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(&d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fixture whose directory is also an OCI bundle: busybox as the root
/// filesystem, `config.json` running `args`, its cgroup under a parent of its own.
/// None (the test skips) when not root or without busybox.
fn bundle_fixture(args: &[&str], terminal: bool) -> Option<Fixture> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: real containers need root");
        return None;
    }
    let Some(bb) = busybox() else {
        eprintln!("skipped: no busybox for the container's root");
        return None;
    };
    let mut f = Fixture::new(SH_RUNTIME, "true");
    let rootfs = f.path("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(bb, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "grep", "ls", "sleep", "tty", "cat", "cut", "hostname", "id",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let parent = format!(
        "skiff-monitor-test-{}-{}",
        std::process::id(),
        f.dir.file_name().unwrap().to_string_lossy()
    );
    let mount = |dest: &str, kind: &str, options: &[&str]| serde_json::json!({"destination": dest, "type": kind, "source": kind, "options": options});
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "hostname": "builtin",
        "mounts": [
            mount("/proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount("/dev", "tmpfs", &["nosuid", "mode=755"]),
            mount("/dev/pts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "cgroupsPath": format!("/{parent}/c1"),
        },
    });
    std::fs::write(f.path("config.json"), config.to_string()).unwrap();
    f.cgroup_parent = Some(parent);
    Some(f)
}

/// The options of a monitor with the runtime built in, its state under `rt`.
fn builtin_args(f: &Fixture, extra: &[&'static str]) -> Vec<String> {
    let mut v = vec![
        "--builtin-runtime".to_string(),
        "--runtime-root".into(),
        f.path("rt").display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

impl Fixture {
    fn start_builtin(&mut self, extra: &[&'static str]) -> String {
        let args = builtin_args(self, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.start(&args, false)
    }

    /// The runtime's state and the container's cgroup are gone; the shell runtime
    /// never ran.
    fn assert_deleted(&self) {
        assert!(!self.path("rt/c1").exists(), "runtime state left");
        let parent = self.cgroup_parent.as_deref().unwrap();
        let left: Vec<PathBuf> = cgroup_dirs(&format!("{parent}/c1"));
        assert!(left.is_empty(), "cgroups left: {left:?}");
        assert!(!self.path("argv").exists(), "the runtime binary ran");
    }
}

/// (pid, parent pid) from /proc/PID/stat.
fn ppid(pid: libc::pid_t) -> Option<libc::pid_t> {
    stat_field(pid, 4)?.parse().ok()
}

/// Field `n` (1-based, as proc(5) counts) of /proc/PID/stat; None when gone.
fn stat_field(pid: libc::pid_t, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit(") ").next()?.split(' ').nth(n - 3)?.to_string())
}

#[test]
fn builtin_runtime_creates_starts_and_deletes_in_process() {
    let Some(mut f) = bundle_fixture(&["sh", "-c", "echo out; echo err >&2; exit 3"], false) else {
        return;
    };
    let line = f.start_builtin(&["--start", "--delete-on-exit"]);
    sync_pid(&line);
    assert_eq!(f.wait(), 0);
    let exit = f.wait_file("exit.json");
    assert!(
        exit.starts_with("{\"exit_code\": 3, \"signal\": null,"),
        "{exit}"
    );
    let mut entries = f.log_entries();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("stderr".into(), "err\n".into()),
            ("stdout".into(), "out\n".into())
        ]
    );
    f.assert_deleted();
    assert!(!f.path("runtime.log").exists());
}

#[test]
fn builtin_init_is_the_monitors_child_with_clean_stdio_and_signals() {
    let script = "while [ ! -e /go ]; do sleep 0.02; done; \
                  grep -E 'Sig(Blk|Ign)' /proc/self/status; ls /proc/$$/fd; exit 5";
    let Some(mut f) = bundle_fixture(&["sh", "-c", script], false) else {
        return;
    };
    let line = f.start_builtin(&["--delete-on-exit"]);
    let pid = sync_pid(&line);
    let monitor = f.child.as_ref().unwrap().id() as libc::pid_t;
    assert_eq!(ppid(pid), Some(monitor));
    assert!(f.path("rt/c1/state.json").exists());
    // Started by the monitor alone, over init's sync socket: no exec fifo.
    assert!(!f.path("rt/c1/exec.fifo").exists());
    // Waiting for start, init holds its stdio and its sync socket: none of the
    // monitor's fds.
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            let kind = target.split(':').next().unwrap_or("").to_string();
            match e.file_name().to_string_lossy().parse::<i32>().unwrap() {
                fd @ 0..=2 => format!("{fd}"),
                _ => kind,
            }
        })
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2", "socket"]);
    let mut out = f.attach("stdout,stderr");
    let mut answer = String::new();
    // Init's sync socket is handed over only by a container made with --standby.
    f.connect("start-socket\n")
        .read_to_string(&mut answer)
        .unwrap();
    assert_eq!(
        answer,
        "error not a standby container: start it with start\n"
    );
    answer.clear();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    answer.clear();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "error already started\n");
    std::fs::write(f.path("rootfs/go"), "").unwrap();
    let frames = read_frames(&mut out);
    // Nothing blocked, SIGPIPE not ignored (the monitor blocks SIGCHLD and others
    // for its signalfd, and ignores SIGPIPE), and only the container's stdio open.
    let out = stream(&frames, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], "SigBlk:\t0000000000000000");
    let ignored = u64::from_str_radix(lines[1].strip_prefix("SigIgn:\t").unwrap(), 16).unwrap();
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
    assert_eq!(lines[2..], ["0", "1", "2"]);
    assert_eq!(stream(&frames, 2), "");
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 5,"));
    f.assert_deleted();
}

#[test]
fn builtin_terminal_gets_the_pty_master() {
    let Some(mut f) = bundle_fixture(&["sh", "-c", "tty; read line; echo got:$line"], true) else {
        return;
    };
    let line = f.start_builtin(&["--terminal", "--stdin", "--delete-on-exit"]);
    assert!(line.starts_with("{\"pid\": "), "{line}");
    assert!(!f.path("console.sock").exists());
    let mut a = f.attach("stdin,stdout");
    let mut answer = String::new();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    let mut seen = read_until(&mut a, "/dev/pts/0");
    a.write_all(b"abc\n").unwrap();
    a.read_to_end(&mut seen).unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("got:abc\r\n"), "{seen:?}");
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
    f.assert_deleted();
}

#[test]
fn builtin_create_failure_is_the_librarys_error() {
    let Some(mut f) = bundle_fixture(&["/nonexistent"], false) else {
        return;
    };
    let line = f.start_builtin(&["--start", "--delete-on-exit"]);
    assert_eq!(
        line,
        "{\"error\": \"container init: exec: \\\"/nonexistent\\\": stat /nonexistent: \
         no such file or directory\"}\n"
    );
    assert_eq!(f.wait(), 1);
    assert!(!f.path("attach.sock").exists());
    assert!(!f.path("exit.json").exists());
    // Logged where the runtime binary would have logged it.
    let log = std::fs::read_to_string(f.path("runtime.log")).unwrap();
    assert!(log.contains("\"level\":\"error\""), "{log}");
    f.assert_deleted();
}

#[test]
fn builtin_joined_pid_namespace_is_left_after_create() {
    // A's init waits (created, not started) in a new pid namespace; B joins it.
    let Some(mut a) = bundle_fixture(&["sh", "-c", "exit 0"], false) else {
        return;
    };
    let line = a.start_builtin(&["--delete-on-exit"]);
    let a_pid = sync_pid(&line);
    let mut b = bundle_fixture(
        &["sh", "-c", "while [ ! -e /go ]; do sleep 0.02; done"],
        false,
    )
    .unwrap();
    let config = std::fs::read_to_string(b.path("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["linux"]["namespaces"][0]["path"] = format!("/proc/{a_pid}/ns/pid").into();
    std::fs::write(b.path("config.json"), config.to_string()).unwrap();
    let line = b.start_builtin(&["--start", "--delete-on-exit"]);
    let b_pid = sync_pid(&line);
    let ns = |pid: libc::pid_t, name: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap()
    };
    assert_eq!(ns(b_pid, "pid"), ns(a_pid, "pid"));
    // The monitor joined A's namespace for the clone only.
    let monitor = b.child.as_ref().unwrap().id() as libc::pid_t;
    assert_eq!(ns(monitor, "pid_for_children"), ns(monitor, "pid"));
    assert_ne!(ns(monitor, "pid"), ns(a_pid, "pid"));
    std::fs::write(b.path("rootfs/go"), "").unwrap();
    assert_eq!(b.wait(), 0);
    assert!(b.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
    b.assert_deleted();
    let mut answer = String::new();
    a.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
    assert_eq!(a.wait(), 0);
    assert!(a.wait_file("exit.json").starts_with("{\"exit_code\": 0,"));
    a.assert_deleted();
}

#[test]
fn builtin_standby_container_takes_its_process_with_the_start() {
    let Some(mut f) = bundle_fixture(&["sh", "-c", "echo template; exit 9"], false) else {
        return;
    };
    let line = f.start_builtin(&["--standby", "--delete-on-exit"]);
    let pid = sync_pid(&line);
    assert_eq!(
        ppid(pid),
        Some(f.child.as_ref().unwrap().id() as libc::pid_t)
    );
    // Parked before its process: no exec fifo (the monitor holds the sync socket).
    assert!(f.path("rt/c1/state.json").exists());
    assert!(!f.path("rt/c1/exec.fifo").exists());
    let mut out = f.attach("stdout,stderr");
    // Never the process it was made with (another container's); refused without
    // using up the start.
    let mut answer = String::new();
    f.connect("start\n").read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "error a standby container starts with start-socket\n"
    );
    let process = serde_json::json!({
        "process": {
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", "echo $FOO; hostname; pwd; id -u; exit 4"],
            "env": ["PATH=/bin", "FOO=late"],
            "cwd": "/tmp",
        },
        "hostname": "given",
    });
    let sync = take_start_socket(&f);
    // The socket is given once: the monitor's start is used up.
    let mut answer = String::new();
    f.connect("start-socket\n")
        .read_to_string(&mut answer)
        .unwrap();
    assert_eq!(answer, "error already started\n");
    start_standby(&sync, process.to_string().as_bytes()).unwrap();
    let frames = read_frames(&mut out);
    assert_eq!(stream(&frames, 1), "late\ngiven\n/tmp\n1000\n");
    assert_eq!(f.wait(), 0);
    assert!(f.wait_file("exit.json").starts_with("{\"exit_code\": 4,"));
    f.assert_deleted();
}

#[test]
fn builtin_standby_start_with_a_bad_process_fails_and_cleans_up() {
    let Some(mut f) = bundle_fixture(&["sh", "-c", "exit 0"], false) else {
        return;
    };
    let line = f.start_builtin(&["--standby", "--delete-on-exit"]);
    sync_pid(&line);
    let process =
        r#"{"process": {"args": ["/nonexistent"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#;
    let sync = take_start_socket(&f);
    let err = start_standby(&sync, process.as_bytes()).unwrap_err();
    assert!(err.contains("/nonexistent"), "{err}");
    assert_eq!(f.wait(), 0);
    f.assert_deleted();
    // Not with a terminal, nor without the builtin runtime.
    let Some(mut f) = bundle_fixture(&["sh"], true) else {
        return;
    };
    let line = f.start_builtin(&["--standby", "--terminal"]);
    assert!(line.contains("--standby excludes"), "{line}");
    assert_eq!(f.wait(), 2);
}

/// Reads from `a` until what came so far contains `needle` (panics on EOF first).
fn read_until(a: &mut impl Read, needle: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let mut b = [0u8; 1024];
        let n = a.read(&mut b).unwrap();
        assert!(n > 0, "{:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&b[..n]);
    }
    seen
}

/// Starts a container made with `--standby` through init's sync socket, as skiffd
/// does (skiff.engine.monitor.start_standby): "start" and the process (JSON) in
/// one message; init answers "ready", or "E" and its error (then exits).
fn start_standby(sync: &OwnedFd, process: &[u8]) -> Result<(), String> {
    let msg = [b"start".as_slice(), process].concat();
    skiff_runtime::sys::send_msg(sync, &msg).map_err(|e| format!("start init: {e}"))?;
    let answer = skiff_runtime::sys::recv_msg(sync).map_err(|e| format!("read from init: {e}"))?;
    match answer.as_slice() {
        b"ready" => Ok(()),
        [b'E', rest @ ..] => Err(String::from_utf8_lossy(rest).into_owned()),
        other => Err(format!(
            "init answered {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// Init's sync socket of a container made with `--standby` (`start-socket`).
fn take_start_socket(f: &Fixture) -> OwnedFd {
    let s = f.connect("start-socket\n");
    assert_eq!(poll_in(s.as_raw_fd(), 10_000), 1);
    crate::sys::recv_fd(s.as_raw_fd())
        .unwrap()
        .expect("init's sync socket")
}
