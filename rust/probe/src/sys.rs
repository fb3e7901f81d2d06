//! Thin wrappers around the libc calls the probe needs.

use std::ffi::CStr;
use std::io;

use crate::json::Json;

/// Supplementary group ids from getgroups(2).
pub fn groups() -> io::Result<Vec<u32>> {
    // SAFETY: a zero size only asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut list = vec![0 as libc::gid_t; n as usize];
    // SAFETY: the buffer holds `n` entries.
    let n = unsafe { libc::getgroups(n, list.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    list.truncate(n as usize);
    Ok(list)
}

/// (nodename, domainname) from uname(2).
pub fn uname() -> io::Result<(String, String)> {
    // SAFETY: utsname is plain data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let field = |raw: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates each field within its array.
        unsafe { CStr::from_ptr(raw.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((field(&uts.nodename), field(&uts.domainname)))
}

/// The "rlimits" object: name -> {"soft", "hard"} (numbers or "unlimited").
pub fn rlimits(errors: &mut Vec<String>) -> Json {
    let resources = [
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ];
    let value = |v: libc::rlim_t| -> Json {
        if v == libc::RLIM_INFINITY {
            "unlimited".into()
        } else {
            v.into()
        }
    };
    Json::obj(resources.into_iter().map(|(name, resource)| {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: rl is a valid out-pointer.
        let json = if unsafe { libc::getrlimit(resource, &mut rl) } == 0 {
            Json::obj([("soft", value(rl.rlim_cur)), ("hard", value(rl.rlim_max))])
        } else {
            errors.push(format!("getrlimit({name}): {}", io::Error::last_os_error()));
            Json::Null
        };
        (name, json)
    }))
}

/// prctl(PR_GET_NO_NEW_PRIVS).
pub fn no_new_privs() -> Option<bool> {
    // SAFETY: a query without pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    (r >= 0).then_some(r == 1)
}

/// prctl(PR_GET_SECCOMP): only used when /proc is missing, as strict mode kills the caller.
pub fn seccomp_mode() -> Option<i64> {
    // SAFETY: a query without pointers.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    (r >= 0).then_some(i64::from(r))
}

/// The current umask as an octal string, by setting and restoring it.
pub fn umask() -> String {
    // SAFETY: umask cannot fail; the old mask is put back at once.
    let old = unsafe { libc::umask(0o022) };
    unsafe { libc::umask(old) };
    format!("{:04o}", old)
}

pub fn isatty(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

extern "C" fn exit_on_term(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn exit_on_int(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(130) }
}

/// SIGTERM exits 0 and SIGINT exits 130. As PID 1 of a PID namespace the probe
/// would otherwise ignore both (the kernel drops default-action signals to init).
pub fn install_signal_handlers() {
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 2] =
        [(libc::SIGTERM, exit_on_term), (libc::SIGINT, exit_on_int)];
    for (signal, handler) in handlers {
        // SAFETY: a zeroed sigaction with a valid handler and empty mask.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}
