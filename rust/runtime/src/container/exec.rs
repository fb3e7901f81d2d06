//! `exec`: run another process in a running container — in its namespaces and
//! cgroup, with its own process settings (`--process FILE`, or the config's process
//! with args and flags from the command line).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::cli::{ExecOpts, Global};
use crate::container::{create::load_spec, run};
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process::ProcessPlan;
use crate::seccomp;
use crate::spec::{Capabilities, Process};
use crate::state::{Container, Status};
use crate::sys;
use crate::tty;

fn build_process(c: &Container, o: &ExecOpts) -> Result<(Process, Option<crate::spec::Seccomp>)> {
    let spec = load_spec(Path::new(&c.saved.bundle))?;
    let seccomp = spec.linux.as_ref().and_then(|l| l.seccomp.clone());
    if let Some(file) = &o.process {
        let raw = std::fs::read(file).ctx(|| format!("read {file}"))?;
        let p: Process =
            serde_json::from_slice(&raw).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        return Ok((p, seccomp));
    }
    let mut p = spec.process.unwrap_or_default();
    p.args = o.args.clone();
    p.terminal = o.tty;
    p.env.extend(o.env.iter().cloned());
    if let Some(cwd) = &o.cwd {
        p.cwd = cwd.clone();
    }
    if let Some(user) = &o.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        p.user.uid = uid
            .parse()
            .map_err(|_| Error::Usage(format!("invalid --user {user:?}")))?;
        p.user.gid = gid
            .parse()
            .map_err(|_| Error::Usage(format!("invalid --user {user:?}")))?;
    }
    if !o.additional_gids.is_empty() {
        p.user.additional_gids = o.additional_gids.clone();
    }
    if !o.cap.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Capabilities::default);
        for cap in &o.cap {
            for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                set.push(cap.clone());
            }
        }
    }
    if o.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok((p, seccomp))
}

pub fn exec(g: &Global, o: &ExecOpts) -> Result<i32> {
    let c = Container::load(&g.root, &o.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        s => {
            return Err(Error::State(format!(
                "cannot exec in a {} container",
                s.as_str()
            )))
        }
    }
    let (process, profile) = build_process(&c, o)?;
    let seccomp = match &profile {
        Some(p) => Some(seccomp::compile_cached(
            p,
            &Path::new(&g.root).join(".seccomp"),
        )?),
        None => None,
    };
    let plan = ProcessPlan::from_spec(&process, seccomp, o.preserve_fds)?;
    let console = if plan.terminal {
        let path = o
            .console_socket
            .as_deref()
            .ok_or_else(|| Error::Usage("exec --tty needs --console-socket".into()))?;
        Some(tty::connect(path)?)
    } else {
        None
    };
    // Open init's namespaces now, in join order (user first, mount last).
    let mut joins: Vec<(libc::c_int, OwnedFd, String)> = Vec::new();
    for (kind, flag) in namespaces::KINDS {
        let name = namespaces::proc_name(kind);
        if !c.saved.namespaces.iter().any(|n| n == name) {
            continue;
        }
        let path = format!("/proc/{}/ns/{name}", c.saved.pid);
        let fd = sys::open(Path::new(&path), libc::O_RDONLY, 0)?;
        joins.push((flag, fd, path));
    }
    // The pid namespace applies to children: join it here, the rest in the child.
    for (flag, fd, path) in &joins {
        if *flag == libc::CLONE_NEWPID {
            namespaces::setns(fd, *flag, path)?;
        }
    }
    let cgroup = c.cgroup()?;
    let (parent, child) = sys::socketpair()?;
    // SAFETY: single-threaded fork; the child only makes syscalls and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last("fork"));
    }
    if pid == 0 {
        drop(parent);
        let code = match child_setup(&plan, &joins, console.as_ref(), &child) {
            Ok(exe) => {
                let err = plan.exec(&exe);
                eprintln!("skiff-runtime exec: {err}");
                127
            }
            Err(e) => {
                let _ = sys::send_msg(
                    &child,
                    format!("E{}", crate::init::child_message(&e)).as_bytes(),
                );
                1
            }
        };
        // SAFETY: leave the forked copy without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(child);
    drop(console);
    let undo = |e: Error| -> Error {
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = sys::wait_child(pid);
        e
    };
    cgroup.add_task(pid).map_err(undo)?;
    sys::send_msg(&parent, b"go").map_err(|e| undo(Error::sys("start exec", e)))?;
    let msg = sys::recv_msg(&parent).map_err(|e| undo(Error::sys("read from exec", e)))?;
    if let Some(rest) = msg.strip_prefix(b"E") {
        let _ = sys::wait_child(pid);
        return Err(Error::Init(String::from_utf8_lossy(rest).into_owned()));
    }
    if let Some(pid_file) = &o.pid_file {
        sys::write_atomic(Path::new(pid_file), pid.to_string().as_bytes())?;
    }
    if o.detach {
        return Ok(0);
    }
    run::wait_forwarding(pid)
}

fn child_setup(
    plan: &ProcessPlan,
    joins: &[(libc::c_int, OwnedFd, String)],
    console: Option<&OwnedFd>,
    sync: &OwnedFd,
) -> Result<std::ffi::CString> {
    let msg = sys::recv_msg(sync).map_err(|e| Error::sys("read from the runtime", e))?;
    if msg != b"go" {
        return Err(Error::Init("the runtime went away".into()));
    }
    for (flag, fd, path) in joins {
        if *flag != libc::CLONE_NEWPID {
            namespaces::setns(fd, *flag, path)?;
        }
    }
    if plan.terminal {
        let console =
            console.ok_or_else(|| Error::Usage("exec --tty needs --console-socket".into()))?;
        let (master, slave) = tty::open_pty(plan.console_size)?;
        tty::send_fd(console, master.as_raw_fd())?;
        drop(master);
        tty::take_slave(slave)?;
    }
    plan.apply_limits()?;
    plan.close_extra_fds();
    if !plan.no_new_privs {
        plan.load_seccomp()?;
    }
    plan.apply_identity(false)?;
    plan.chdir()?;
    let exe = plan.resolve_exe()?;
    if plan.no_new_privs {
        plan.load_seccomp()?;
    }
    // The sync socket is close-on-exec: a successful exec reads as EOF, "ready".
    sys::send_msg(sync, b"R").map_err(|e| Error::sys("sync", e))?;
    Ok(exe)
}
