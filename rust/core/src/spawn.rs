//! Starting a helper process that outlives its parent's interest in it (a
//! container's monitor): by `posix_spawn` (a vfork-style clone, no page-table copy
//! of a big parent), in a process group of its own (a Ctrl-C to the daemon's
//! terminal does not reach it), from `/`, with stdin on /dev/null, stdout on a
//! given descriptor (how the child answers its parent) and stderr appended to a
//! file. Nothing else is inherited but what the caller left without close-on-exec.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Starts `argv` as described above; returns its pid. The caller reaps it.
pub fn spawn_detached(argv: &[OsString], stdout: OwnedFd, stderr: &Path) -> Result<u32> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::InvalidArgument("spawn: empty argv".into()))?;
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .map_err(|e| Error::io(stderr, e))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(err));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().map_err(|e| Error::io(program, e))?;
    Ok(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pipe() -> (std::fs::File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: a two-int array for pipe2.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors we own.
        unsafe {
            (
                std::fs::File::from(<OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0])),
                <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn answers_on_stdout_errors_to_the_file_in_its_own_group_from_root() {
        let dir = std::env::temp_dir().join(format!("skiff-spawn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let errfile = dir.join("err");
        let (mut r, w) = pipe();
        let argv: Vec<OsString> = [
            "/bin/sh",
            "-c",
            "echo $(pwd) $(ps -o pgid= $$); echo oops >&2",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let pid = spawn_detached(&argv, w, &errfile).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(
            unsafe { libc::waitpid(pid as i32, &mut status, 0) },
            pid as i32
        );
        let mut words = out.split_whitespace();
        assert_eq!(words.next(), Some("/"));
        assert_eq!(
            words.next(),
            Some(pid.to_string().as_str()),
            "own process group"
        );
        assert_eq!(std::fs::read_to_string(&errfile).unwrap(), "oops\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let (_r, w) = pipe();
        let err = spawn_detached(
            &[OsString::from("/nonexistent/prog")],
            w,
            Path::new("/dev/null"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
    }
}
