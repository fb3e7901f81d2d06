//! cgroup v2 devices: load the program from `devices_bpf` (`BPF_PROG_LOAD`),
//! attach it to the cgroup's directory (`BPF_PROG_ATTACH`, `BPF_CGROUP_DEVICE`,
//! `BPF_F_ALLOW_MULTI`), then detach the programs that were there before (an
//! update replaces the filter; with several programs attached, every one must
//! allow an access), as runc does.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices_bpf::{program, Insn};
use crate::error::{Context, Error, Result};
use crate::spec::DeviceRule;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

static LICENSE: &[u8] = b"Apache\0";

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i32> {
    // SAFETY: attr is a live, properly laid out bpf_attr prefix of the given size;
    // the kernel zero-extends it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

/// Loads the program; on failure, loads again with the verifier log for the error.
pub(crate) fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"skiff_devices");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd we own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
                // SAFETY: as above.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim();
            Err(Error::sys(
                if text.is_empty() {
                    "bpf(BPF_PROG_LOAD) of the device filter".to_string()
                } else {
                    format!("bpf(BPF_PROG_LOAD) of the device filter (verifier: {text})")
                },
                e,
            ))
        }
    }
}

/// The ids of the device programs attached to the cgroup (none if the kernel
/// cannot say).
fn attached(dir_fd: &OwnedFd) -> Vec<u32> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: dir_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return ids;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                ids = vec![0u32; (attr.prog_cnt as usize).max(ids.len() * 2)];
            }
            Err(_) => return Vec::new(),
        }
    }
}

fn attach_cmd(
    cmd: libc::c_long,
    dir_fd: &OwnedFd,
    prog_fd: &OwnedFd,
    flags: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    bpf(cmd, &mut attr).map(|_| ())
}

/// Compiles, loads and attaches the device filter for `rules` to the cgroup at
/// `dir`, replacing any filter attached before.
pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let insns = program(rules)?;
    let dir_fd = open_dir(dir)?;
    let old = attached(&dir_fd);
    let prog = load(&insns)?;
    attach_cmd(BPF_PROG_ATTACH, &dir_fd, &prog, BPF_F_ALLOW_MULTI).ctx(|| {
        format!(
            "bpf(BPF_PROG_ATTACH) of the device filter to {}",
            dir.display()
        )
    })?;
    for id in old {
        let mut attr = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            // SAFETY: a new fd we own.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("bpf(BPF_PROG_GET_FD_BY_ID {id}) of an old device filter"),
                    e,
                ))
            }
        };
        match attach_cmd(BPF_PROG_DETACH, &dir_fd, &fd, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!(
                        "bpf(BPF_PROG_DETACH) of old device filter {id} from {}",
                        dir.display()
                    ),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// Opens a cgroup directory `O_RDONLY|O_DIRECTORY|O_CLOEXEC`.
pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Config(format!("cgroup path {} contains NUL", dir.display())))?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::last(format!("cannot open {}", dir.display())));
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
