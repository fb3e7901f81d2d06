//! skiff-probe: a static test payload. Run as a container's process, it prints
//! what it sees (ids, capabilities, namespaces, mounts, cgroups, rlimits, ...)
//! as one JSON object on stdout. Anything it cannot read becomes `null` and an
//! entry in "errors"; it never panics on a missing file.

mod caps;
mod cgroup;
mod cli;
mod json;
mod procfs;
mod sys;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use cli::{Options, Sleep};
use json::Json;
use procfs::{describe, status_field};

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os().skip(1)) {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("skiff-probe: {msg}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if opts.sleep.is_some() {
        // Before printing, so a test that signals right after reading the output is safe.
        sys::install_signal_handlers();
    }

    let mut out = report(&opts).to_string();
    out.push('\n');
    let mut stdout = io::stdout().lock();
    let printed = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(e) = printed {
        eprintln!("skiff-probe: {}", describe("stdout", &e));
        return ExitCode::FAILURE;
    }

    match opts.sleep {
        Some(Sleep::For(duration)) => thread::sleep(duration),
        Some(Sleep::Forever) => loop {
            thread::sleep(Duration::from_secs(3600));
        },
        None => {}
    }
    match opts.exit_code {
        // Like a shell, the kernel keeps the low 8 bits of the status.
        Some(code) => std::process::exit(code),
        None => ExitCode::SUCCESS,
    }
}

/// Gathers everything into the report object (key order is part of the output format).
fn report(opts: &Options) -> Json {
    let mut errors = Vec::new();

    // Side effects requested on the command line come first.
    let written = write_files(&opts.writes, &mut errors);
    let stdin = opts.read_stdin.then(|| read_stdin(&mut errors)).flatten();

    // SAFETY: these id getters cannot fail.
    let (pid, ppid, uid, gid, euid, egid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
        )
    };
    let groups = sys::groups()
        .map_err(|e| errors.push(describe("getgroups", &e)))
        .ok();

    let status = procfs::read_text("/proc/self/status", &mut errors);
    let status = status.as_deref();
    let caps = caps::caps(status);
    let no_new_privs =
        sys::no_new_privs().or_else(|| status_field(status?, "NoNewPrivs").map(|v| v == "1"));
    // PR_GET_SECCOMP kills a process in strict mode: only ask when /proc is missing.
    let seccomp = match status {
        Some(text) => status_field(text, "Seccomp").and_then(|v| v.parse::<i64>().ok()),
        None => sys::seccomp_mode(),
    };
    let umask = match status.and_then(|text| status_field(text, "Umask")) {
        Some(v) => v.to_owned(),
        None => sys::umask(),
    };

    let (hostname, domainname) = match sys::uname() {
        Ok((host, domain)) => (Some(host), Some(domain)),
        Err(e) => {
            errors.push(describe("uname", &e));
            (None, None)
        }
    };
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| errors.push(describe("getcwd", &e)))
        .ok();
    let env = Json::obj(std::env::vars_os().map(|(k, v)| (lossy(&k), lossy(&v).into())));
    let args = Json::arr(std::env::args_os().map(|a| lossy(&a)));

    let namespaces = procfs::namespaces(&mut errors);
    let mounts = procfs::mounts(&mut errors);
    let cgroup_entries = procfs::cgroup_entries(&mut errors);
    let cgroup = Json::obj([
        (
            "entries",
            cgroup_entries
                .as_ref()
                .map(|entries| Json::arr(entries.iter().map(|e| e.to_json())))
                .into(),
        ),
        (
            "limits",
            cgroup::limits(cgroup_entries.as_deref().unwrap_or(&[])),
        ),
    ]);
    let rlimits = sys::rlimits(&mut errors);
    let oom_score_adj = procfs::oom_score_adj(&mut errors);
    let tty = Json::obj([
        ("stdin", sys::isatty(0).into()),
        ("stdout", sys::isatty(1).into()),
    ]);
    let sysctl = Json::obj(
        opts.sysctls
            .iter()
            .map(|name| (name.as_str(), procfs::sysctl(name, &mut errors).into())),
    );

    Json::obj([
        ("pid", pid.into()),
        ("ppid", ppid.into()),
        ("uid", uid.into()),
        ("gid", gid.into()),
        ("euid", euid.into()),
        ("egid", egid.into()),
        ("groups", groups.into()),
        ("caps", caps),
        ("no_new_privs", no_new_privs.into()),
        ("seccomp", seccomp.into()),
        ("umask", umask.into()),
        ("hostname", hostname.into()),
        ("domainname", domainname.into()),
        ("cwd", cwd.into()),
        ("env", env),
        ("args", args),
        ("namespaces", namespaces),
        ("mounts", mounts),
        ("cgroup", cgroup),
        ("rlimits", rlimits),
        ("oom_score_adj", oom_score_adj.into()),
        ("tty", tty),
        ("sysctl", sysctl),
        ("written", written.into()),
        ("stdin", stdin.into()),
        ("errors", errors.into()),
    ])
}

fn lossy(s: &OsString) -> String {
    s.to_string_lossy().into_owned()
}

/// Performs the `--write PATH CONTENT` requests; returns the last path written.
fn write_files(writes: &[(OsString, OsString)], errors: &mut Vec<String>) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let mut written = None;
    for (path, content) in writes {
        let shown = lossy(path);
        match fs::write(path, content.as_bytes()) {
            Ok(()) => written = Some(shown),
            Err(e) => errors.push(describe(&format!("write {shown}"), &e)),
        }
    }
    written
}

fn read_stdin(errors: &mut Vec<String>) -> Option<String> {
    let mut buf = Vec::new();
    match io::stdin().lock().read_to_end(&mut buf) {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(e) => {
            errors.push(describe("stdin", &e));
            None
        }
    }
}
