//! The event loop: one poll(2) over the container's output (pipes or the pty
//! master), the container's stdin, the attach socket and its clients, and the
//! signalfd that reports SIGCHLD.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::json;
use crate::logfile::{Lines, LogFile};
use crate::mem;
use crate::runtime::Runtime;
use crate::sys;

/// Attach clients served at once; more are turned away.
const MAX_CLIENTS: usize = 64;
/// How long output is still collected after init exited, for pipes that other
/// processes (outside a pid namespace) keep open.
const DRAIN_MS: i64 = 200;
/// The nice value of the clean-up after the exit is reported.
const CLEANUP_NICE: libc::c_int = 19;
/// The longest command line a client may send.
const CMD_MAX: usize = 128;

pub struct Output {
    pub fd: Option<OwnedFd>,
    /// 1 stdout, 2 stderr: the stream byte of Docker's multiplexed framing.
    pub stream: u8,
    pub lines: Lines,
}

/// How the container's end is watched.
pub enum Init {
    /// Our child (the usual case, as subreaper): reaped with waitpid.
    Child(libc::pid_t),
    /// Not our child (a runtime that did not leave it to us): a pidfd says when it
    /// is gone, but not how.
    Pidfd(OwnedFd),
    /// Already gone, and not our child: nothing to wait for.
    Gone,
}

pub struct Monitor {
    pub sigfd: OwnedFd,
    pub runtime: Runtime,
    /// Delete the container from the runtime after the output is drained and
    /// before the exit file (`--delete-on-exit`).
    pub delete_on_exit: bool,
    /// The `start` command may still run the runtime's `start` (not once it did,
    /// nor with `--start`).
    pub startable: bool,
    pub listener: OwnedFd,
    pub socket_path: PathBuf,
    pub exit_file: PathBuf,
    pub tty: bool,
    pub outputs: Vec<Output>,
    /// The write side of the container's stdin (pipe, or a dup of the pty master).
    pub stdin: Option<OwnedFd>,
    pub log: LogFile,
    pub init: Init,
    pub clients: Vec<Client>,
    pub stdin_pending: Vec<u8>,
    pub stdin_close: bool,
    /// Shrink (mem.rs) at the next quiet moment.
    pub shrink_soon: bool,
    /// The sync fd, with `--sync-until-exit`: at init's exit the exit record goes
    /// there, then it is closed (before the exit file is written).
    pub exit_notify: Option<OwnedFd>,
    /// Init's mount namespace, let go after the exit is reported.
    pub held_ns: Option<OwnedFd>,
    /// Made with `--standby`: started by whoever takes init's sync socket
    /// (`start-socket`), never with `start`.
    pub standby: bool,
}

pub struct Client {
    fd: OwnedFd,
    cmd: Vec<u8>,
    attached: Option<Attach>,
    dead: bool,
}

#[derive(Clone, Copy, Default)]
struct Attach {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    stdin_once: bool,
    /// The client half-closed: it only receives from now on.
    eof: bool,
}

#[derive(Clone, Copy)]
enum Tag {
    Client(usize),
    Listener,
    Output(usize),
    Stdin,
    Signal,
    Pidfd,
}

/// (exit code as Docker reports it, signal).
type Status = (i32, Option<i32>);

impl Monitor {
    /// Serves until init exits; then drains the output, writes the exit file and
    /// cleans up. Returns the monitor's exit code.
    pub fn run(mut self) -> i32 {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(16);
        let mut tags: Vec<Tag> = Vec::with_capacity(16);
        // Init may have exited before we knew its pid.
        let mut status = match self.init {
            Init::Gone => Some((255, None)),
            _ => self.reap(),
        };
        // Start-up is over: what it needed can go at the first quiet moment, as can
        // what a client's coming and going needed (see mem.rs).
        self.shrink_soon = true;
        mem::note_stack();
        let mut last_shrink = sys::monotonic_ms();
        while status.is_none() {
            pfds.clear();
            tags.clear();
            self.poll_set(&mut pfds, &mut tags);
            let timeout = if self.shrink_soon { 0 } else { mem::IDLE_MS };
            match sys::poll(&mut pfds, timeout) {
                Ok(0) => {
                    // Quiet: give back memory, then wait as long as it takes.
                    self.shrink_soon = false;
                    last_shrink = sys::monotonic_ms();
                    if mem::shrink_and_poll(&mut pfds) == 0 {
                        continue;
                    }
                }
                Ok(_) => {
                    if sys::monotonic_ms() - last_shrink > mem::BUSY_SHRINK_MS {
                        self.shrink_soon = true;
                    }
                }
                Err(_) => continue,
            }
            for (p, &tag) in pfds.iter().zip(tags.iter()) {
                if p.revents == 0 {
                    continue;
                }
                match tag {
                    Tag::Client(i) => self.client_ready(i, p.revents),
                    Tag::Listener => self.accept(),
                    Tag::Output(i) => {
                        self.read_output(i);
                    }
                    Tag::Stdin => self.flush_stdin(),
                    Tag::Signal => {
                        sys::drain_signalfd(self.sigfd.as_raw_fd());
                        status = self.reap();
                    }
                    Tag::Pidfd => status = Some((255, None)),
                }
            }
            let before = self.clients.len();
            self.clients.retain(|c| !c.dead);
            self.shrink_soon |= self.clients.len() != before;
            self.log.flush();
        }
        self.finish(status.unwrap_or((255, None)))
    }

    fn poll_set(&self, pfds: &mut Vec<libc::pollfd>, tags: &mut Vec<Tag>) {
        let mut add = |fd: RawFd, events: libc::c_short, tag: Tag| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tags.push(tag);
        };
        let stdin_blocked = !self.stdin_pending.is_empty();
        for (i, c) in self.clients.iter().enumerate() {
            // Stop reading a stdin client while the container does not keep up.
            let read = match c.attached {
                None => true,
                Some(a) => !(a.eof || (a.stdin && stdin_blocked)),
            };
            add(
                c.fd.as_raw_fd(),
                if read { libc::POLLIN } else { 0 },
                Tag::Client(i),
            );
        }
        add(self.listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
        for (i, o) in self.outputs.iter().enumerate() {
            if let Some(fd) = &o.fd {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Output(i));
            }
        }
        if let (Some(fd), true) = (&self.stdin, stdin_blocked) {
            add(fd.as_raw_fd(), libc::POLLOUT, Tag::Stdin);
        }
        add(self.sigfd.as_raw_fd(), libc::POLLIN, Tag::Signal);
        if let Init::Pidfd(fd) = &self.init {
            add(fd.as_raw_fd(), libc::POLLIN, Tag::Pidfd);
        }
    }

    /// Reaps every child that exited (as subreaper we inherit orphans too); returns
    /// init's status once it is among them.
    fn reap(&mut self) -> Option<Status> {
        let mut found = None;
        while let Ok(Some((pid, st))) = sys::waitpid(-1, libc::WNOHANG) {
            if matches!(self.init, Init::Child(p) if p == pid) {
                found = Some(decode_status(st));
            }
        }
        found
    }

    fn accept(&mut self) {
        while let Ok(Some(fd)) = sys::accept(self.listener.as_raw_fd()) {
            if self.clients.len() >= MAX_CLIENTS {
                let _ = sys::sendv(fd.as_raw_fd(), &[b"error too many clients\n"]);
                continue;
            }
            // Room for bursts of output while the daemon is busy; the kernel caps it.
            let size: libc::c_int = 1 << 20;
            // SAFETY: SO_SNDBUF takes an int.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            self.shrink_soon = true;
            self.clients.push(Client {
                fd,
                cmd: Vec::new(),
                attached: None,
                dead: false,
            });
        }
    }

    fn client_ready(&mut self, i: usize, revents: libc::c_short) {
        if self.clients[i].dead {
            return;
        }
        let fd = self.clients[i].fd.as_raw_fd();
        if revents & libc::POLLIN == 0 {
            // POLLHUP/POLLERR: gone altogether.
            self.clients[i].dead = true;
            return;
        }
        let mut buf = [0u8; 4096];
        let n = match sys::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.clients[i].dead = true;
                return;
            }
        };
        let mut data = &buf[..n];
        if self.clients[i].attached.is_none() {
            if n == 0 {
                self.clients[i].dead = true;
                return;
            }
            let c = &mut self.clients[i];
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                c.cmd.extend_from_slice(data);
                if c.cmd.len() > CMD_MAX {
                    self.reply(i, b"error command too long\n");
                }
                return;
            };
            c.cmd.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            let cmd = std::mem::take(&mut c.cmd);
            self.command(i, &cmd);
        }
        let c = &self.clients[i];
        let (Some(a), false) = (c.attached, c.dead) else {
            return;
        };
        if n == 0 {
            let c = &mut self.clients[i];
            c.attached = Some(Attach { eof: true, ..a });
            if !a.stdout && !a.stderr {
                c.dead = true;
            }
            if a.stdin && a.stdin_once {
                self.close_stdin();
            }
        } else if a.stdin && !data.is_empty() {
            self.write_stdin(data);
        }
    }

    /// Answers a one-shot command and hangs up.
    fn reply(&mut self, i: usize, msg: &[u8]) {
        let c = &mut self.clients[i];
        let _ = sys::sendv(c.fd.as_raw_fd(), &[msg]);
        c.dead = true;
    }

    fn command(&mut self, i: usize, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(b"attach"), flags, None, None) => {
                let mut a = Attach::default();
                for f in flags.unwrap_or(b"").split(|&b| b == b',') {
                    match f {
                        b"stdin" => a.stdin = true,
                        b"stdout" => a.stdout = true,
                        b"stderr" => a.stderr = true,
                        b"stdin-once" => a.stdin_once = true,
                        b"" => {}
                        _ => return self.reply(i, b"error unknown attach flag\n"),
                    }
                }
                let c = &mut self.clients[i];
                if sys::sendv(c.fd.as_raw_fd(), &[b"ok\n"]).map_or(true, |n| n != 3) {
                    c.dead = true;
                }
                c.attached = Some(a);
            }
            (Some(b"resize"), Some(rows), Some(cols), None) => {
                let fd = self.outputs.first().and_then(|o| o.fd.as_ref());
                let msg: &[u8] = match (self.tty, fd, parse_u16(rows), parse_u16(cols)) {
                    (false, ..) | (_, None, ..) => b"error no terminal\n",
                    (true, Some(fd), Some(r), Some(c)) => {
                        match sys::set_winsize(fd.as_raw_fd(), r, c) {
                            Ok(()) => b"ok\n",
                            Err(_) => b"error resize failed\n",
                        }
                    }
                    _ => b"error bad size\n",
                };
                self.reply(i, msg);
            }
            (Some(b"close-stdin"), None, ..) => {
                self.close_stdin();
                self.reply(i, b"ok\n");
            }
            (Some(b"start"), None, ..) => {
                let msg = self.start();
                self.reply(i, &msg);
            }
            (Some(b"start-socket"), None, ..) => self.hand_over_start(i),
            _ => self.reply(i, b"error unknown command\n"),
        }
    }

    /// The `start` command: its answer.
    fn start(&mut self) -> Vec<u8> {
        // Refused without using up the start: a container made ahead of need never
        // runs the process it was made with (another container's).
        if self.standby {
            return b"error a standby container starts with start-socket\n".to_vec();
        }
        if !std::mem::replace(&mut self.startable, false) {
            return b"error already started\n".to_vec();
        }
        match self.runtime.start() {
            Ok(()) => b"ok\n".to_vec(),
            Err(e) => format!("error {}\n", e.replace('\n', " ")).into_bytes(),
        }
    }

    /// The `start-socket` command (`--standby` only): init's sync socket goes to
    /// the client with the answer `ok\n` (SCM_RIGHTS), which then starts the
    /// container itself: it gives the monitor and init their nice value, sends
    /// init `start` and the process, and reads init's answer. The monitor's own
    /// start is used up.
    fn hand_over_start(&mut self, i: usize) {
        if !self.standby {
            return self.reply(i, b"error not a standby container: start it with start\n");
        }
        if !self.startable {
            return self.reply(i, b"error already started\n");
        }
        let Some(sync) = self.runtime.take_start_socket() else {
            return self.reply(i, b"error init's sync socket is gone\n");
        };
        self.startable = false;
        let c = &mut self.clients[i];
        // (Far below a socket buffer: all or nothing.)
        let (fd, flags) = (c.fd.as_raw_fd(), libc::MSG_DONTWAIT);
        let _ = skiff_runtime::sys::send_with_fd(fd, b"ok\n", sync.as_raw_fd(), flags);
        c.dead = true;
    }

    /// Writes to the container's stdin without ever blocking; what does not fit
    /// waits in `stdin_pending` (and clients are not read until it is gone).
    fn write_stdin(&mut self, data: &[u8]) {
        let Some(fd) = &self.stdin else {
            return;
        };
        if !self.stdin_pending.is_empty() {
            self.stdin_pending.extend_from_slice(data);
            return;
        }
        match sys::write(fd.as_raw_fd(), data) {
            Ok(n) => self.stdin_pending.extend_from_slice(&data[n..]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.stdin_pending.extend_from_slice(data)
            }
            Err(_) => self.drop_stdin(), // EPIPE: nobody reads it any more
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            return;
        };
        match sys::write(fd.as_raw_fd(), &self.stdin_pending) {
            Ok(n) => {
                self.stdin_pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.drop_stdin(),
        }
        if self.stdin_pending.is_empty() && self.stdin_close {
            self.drop_stdin();
        }
    }

    /// Closes the container's stdin once what is pending went through (Docker's
    /// StdinOnce). With a pty only our handle goes: the terminal stays.
    fn close_stdin(&mut self) {
        if self.stdin_pending.is_empty() {
            self.drop_stdin();
        } else {
            self.stdin_close = true;
        }
    }

    fn drop_stdin(&mut self) {
        self.stdin = None;
        self.stdin_pending = Vec::new();
        self.stdin_close = false;
    }

    /// Reads once from output `i`: to the attached clients, then to the log.
    /// Returns false at end of file (or nothing to read).
    fn read_output(&mut self, i: usize) -> bool {
        let o = &mut self.outputs[i];
        let Some(fd) = &o.fd else {
            return false;
        };
        let (n, start) = match o.lines.read(fd.as_raw_fd()) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => (0, 0), // EIO from a pty master: the terminal is gone
        };
        let stream = o.stream;
        let name: &[u8] = if stream == 2 { b"stderr" } else { b"stdout" };
        let (s, ns) = sys::now();
        let time = json::rfc3339(s, ns);
        let log = &mut self.log;
        if n == 0 {
            o.fd = None;
            o.lines.finish(|line| log.entry(name, line, &time));
            return false;
        }
        let chunk = o.lines.chunk(start);
        let header = frame_header(stream, chunk.len());
        for c in self.clients.iter_mut().filter(|c| !c.dead) {
            let Some(a) = c.attached else { continue };
            if (stream == 1 && !a.stdout) || (stream == 2 && !a.stderr) {
                continue;
            }
            let parts: &[&[u8]] = if self.tty {
                &[chunk]
            } else {
                &[&header, chunk]
            };
            let want = parts.iter().map(|p| p.len()).sum::<usize>();
            // A client that cannot take it now is dropped: never block the container.
            if sys::sendv(c.fd.as_raw_fd(), parts).map_or(true, |n| n != want) {
                c.dead = true;
            }
        }
        o.lines.split(start, |line| log.entry(name, line, &time));
        true
    }

    /// Init is gone: collect the output still in flight, record the status, hang up.
    fn finish(mut self, (code, signal): Status) -> i32 {
        let deadline = sys::monotonic_ms() + DRAIN_MS;
        loop {
            for i in 0..self.outputs.len() {
                while self.read_output(i) && sys::monotonic_ms() < deadline {}
            }
            let mut pfds: Vec<libc::pollfd> = self
                .outputs
                .iter()
                .filter_map(|o| o.fd.as_ref())
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let left = deadline - sys::monotonic_ms();
            if pfds.is_empty() || left <= 0 || sys::poll(&mut pfds, left as i32).unwrap_or(0) == 0 {
                break;
            }
        }
        for o in self.outputs.iter_mut() {
            let name: &[u8] = if o.stream == 2 { b"stderr" } else { b"stdout" };
            let (s, ns) = sys::now();
            let time = json::rfc3339(s, ns);
            let log = &mut self.log;
            o.lines.finish(|line| log.entry(name, line, &time));
        }
        self.log.flush();
        let record = exit_record(code, signal);
        // The exit is known: tell the caller (the record on the held sync fd, then
        // its end), write the exit file (for a daemon that was not there to
        // hear it), hang up on clients (closing a unix socket does not discard
        // what the peer has yet to read), then clean up.
        if let Some(fd) = self.exit_notify.take() {
            let _ = sys::write_all(fd.as_raw_fd(), &record);
        }
        self.clients.clear();
        // What is left nobody waits for: at the lowest priority, so that the
        // processes just woken (the daemon, clients), often put on this CPU, go
        // first. (A restarted daemon finds the monitor alive until the exit file
        // is written, and waits for its end.)
        // SAFETY: setpriority only changes this process's nice value.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, CLEANUP_NICE) };
        let _ = write_exit_file(&self.exit_file, &record);
        let _ = std::fs::remove_file(&self.socket_path);
        self.held_ns = None;
        if self.delete_on_exit {
            self.runtime.delete();
        }
        0
    }
}

/// Docker's multiplexed-stream header: [stream, 0, 0, 0, length (big-endian u32)].
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

fn parse_u16(s: &[u8]) -> Option<u16> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A wait status as (exit code, signal); killed by a signal is 128 + signal.
pub fn decode_status(st: i32) -> Status {
    if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(st), None)
    }
}

/// The exit record, one line: `{"exit_code": N, "signal": S|null, "oom_killed":
/// false, "finished_at": "…"}`.
pub fn exit_record(code: i32, signal: Option<i32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(b"{\"exit_code\": ");
    json::push_int(&mut b, code.into());
    b.extend_from_slice(b", \"signal\": ");
    match signal {
        Some(s) => json::push_int(&mut b, s.into()),
        None => b.extend_from_slice(b"null"),
    }
    b.extend_from_slice(b", \"oom_killed\": false, \"finished_at\": \"");
    let (s, ns) = sys::now();
    b.extend_from_slice(&json::rfc3339(s, ns));
    b.extend_from_slice(b"\"}\n");
    b
}

/// Writes `record` to `<path>.tmp`, then renames it over `path`.
pub fn write_exit_file(path: &std::path::Path, record: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let fd = sys::open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)?;
    // No fsync: the file matters to a daemon that restarts, not across a reboot
    // (which the container does not survive either).
    sys::write_all(fd.as_raw_fd(), record)?;
    drop(fd);
    std::fs::rename(&tmp, path)
}
