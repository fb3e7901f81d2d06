//! overlayfs mounts for container root filesystems: the image's snapshots as lower
//! layers (top first), the container's own upper and work dirs.
//!
//! The mount data must fit in one page: callers pass short paths for the lower
//! dirs (skiff.image.rootfs keeps short symlinks for that, as containers/storage
//! does) and this module refuses a data string that would not fit, naming the limit.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The kernel copies mount data into one page.
pub const MAX_DATA: usize = 4095;

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{} contains a NUL byte", p.display())))
}

/// The mount data for an overlay; commas and colons in paths cannot be expressed.
/// Checks the layer list and paths for an overlay mount.
pub fn validate(lowers: &[PathBuf], upper: Option<&Path>, work: Option<&Path>) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::InvalidArgument(
            "an overlay needs at least one lower dir".into(),
        ));
    }
    if upper.is_some() != work.is_some() {
        return Err(Error::InvalidArgument(
            "upperdir and workdir go together".into(),
        ));
    }
    if upper.is_none() && lowers.len() < 2 {
        return Err(Error::InvalidArgument(
            "a read-only overlay needs two or more lower dirs (bind-mount a single one)".into(),
        ));
    }
    for p in lowers.iter().map(PathBuf::as_path).chain(upper).chain(work) {
        let s = p.to_string_lossy();
        if s.contains([',', ':', '\\']) {
            return Err(Error::InvalidArgument(format!(
                "overlay path {s:?} contains ',', ':' or '\\'"
            )));
        }
    }
    Ok(())
}

/// The mount data for the classic mount(2) call; it must fit in a page.
pub fn overlay_data(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    extra: &[String],
) -> Result<String> {
    validate(lowers, upper, work)?;
    let lower: Vec<String> = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut data = format!("lowerdir={}", lower.join(":"));
    if let (Some(u), Some(w)) = (upper, work) {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    for opt in extra {
        data.push(',');
        data.push_str(opt);
    }
    if data.len() > MAX_DATA {
        return Err(Error::InvalidArgument(format!(
            "overlay mount data is {} bytes, over the kernel's {MAX_DATA}: too many layers ({})",
            data.len(),
            lowers.len()
        )));
    }
    Ok(data)
}

pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
    extra: &[String],
) -> Result<()> {
    validate(lowers, upper, work)?;
    // The new mount API (6.8+: `lowerdir+` adds one layer at a time) has no page
    // limit; older kernels get the classic mount data string.
    match fsconfig_mount(lowers, upper, work, target, extra) {
        Ok(()) => return Ok(()),
        Err(FsError::Unsupported) => {}
        Err(FsError::Failed(e)) => return Err(e),
    }
    let data = overlay_data(lowers, upper, work, extra)?;
    let data_c =
        CString::new(data).map_err(|_| Error::InvalidArgument("NUL in overlay options".into()))?;
    let target_c = cstring(target)?;
    // SAFETY: valid C strings; flags 0.
    let r = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target_c.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data_c.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(Error::io(target, std::io::Error::last_os_error()));
    }
    Ok(())
}

enum FsError {
    /// No new mount API or no `lowerdir+`: use the classic mount(2).
    Unsupported,
    Failed(Error),
}

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn fs_cstr(s: &[u8]) -> Result<CString, FsError> {
    CString::new(s)
        .map_err(|_| FsError::Failed(Error::InvalidArgument("NUL in an overlay path".into())))
}

fn last(path: &Path) -> FsError {
    FsError::Failed(Error::io(path, std::io::Error::last_os_error()))
}

fn fsconfig_mount(
    lowers: &[PathBuf],
    upper: Option<&Path>,
    work: Option<&Path>,
    target: &Path,
    extra: &[String],
) -> Result<(), FsError> {
    // SAFETY: raw syscalls with valid C strings and fds owned here.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC);
        if fs < 0 {
            return Err(FsError::Unsupported);
        }
        let fs = Fd(fs as i32);
        let set = |key: &CString, value: &CString| -> i64 {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        let lower_key = fs_cstr(b"lowerdir+")?;
        for (i, lower) in lowers.iter().enumerate() {
            if set(&lower_key, &fs_cstr(lower.as_os_str().as_bytes())?) < 0 {
                if i == 0 {
                    return Err(FsError::Unsupported); // a kernel before lowerdir+
                }
                return Err(last(lower));
            }
        }
        if let (Some(u), Some(w)) = (upper, work) {
            for (key, p) in [("upperdir", u), ("workdir", w)] {
                if set(
                    &fs_cstr(key.as_bytes())?,
                    &fs_cstr(p.as_os_str().as_bytes())?,
                ) < 0
                {
                    return Err(last(p));
                }
            }
        }
        for opt in extra {
            let (k, v) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
            let key = fs_cstr(k.as_bytes())?;
            let r = if v.is_empty() {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.0,
                    FSCONFIG_SET_FLAG,
                    key.as_ptr(),
                    std::ptr::null::<libc::c_char>(),
                    0,
                )
            } else {
                set(&key, &fs_cstr(v.as_bytes())?)
            };
            if r < 0 {
                return Err(FsError::Failed(Error::InvalidArgument(format!(
                    "overlay option {opt:?}: {}",
                    std::io::Error::last_os_error()
                ))));
            }
        }
        let none = std::ptr::null::<libc::c_char>();
        if libc::syscall(libc::SYS_fsconfig, fs.0, FSCONFIG_CMD_CREATE, none, none, 0) < 0 {
            return Err(last(target));
        }
        let mnt = libc::syscall(libc::SYS_fsmount, fs.0, FSMOUNT_CLOEXEC, 0);
        if mnt < 0 {
            return Err(last(target));
        }
        let mnt = Fd(mnt as i32);
        let target_c = cstring(target).map_err(FsError::Failed)?;
        let r = libc::syscall(
            libc::SYS_move_mount,
            mnt.0,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        if r < 0 {
            return Err(last(target));
        }
    }
    Ok(())
}

/// Bind-mounts `source` on `target`, read-only when asked (a second, remounting
/// call: the kernel ignores MS_RDONLY on the first).
pub fn bind_mount(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    let source_c = cstring(source)?;
    let target_c = cstring(target)?;
    // SAFETY: valid C strings.
    unsafe {
        if libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return Err(Error::io(target, std::io::Error::last_os_error()));
        }
        if readonly {
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
            if libc::mount(
                std::ptr::null(),
                target_c.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                let err = std::io::Error::last_os_error();
                libc::umount2(target_c.as_ptr(), libc::MNT_DETACH);
                return Err(Error::io(target, err));
            }
        }
    }
    Ok(())
}

/// Unmounts `target`; `detach` makes it lazy (MNT_DETACH). Not mounted is fine.
pub fn unmount(target: &Path, detach: bool) -> Result<()> {
    let target_c = cstring(target)?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: valid C string.
    if unsafe { libc::umount2(target_c.as_ptr(), flags) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(Error::io(target, err));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_strings() {
        let l = vec![PathBuf::from("/l/a"), PathBuf::from("/l/b")];
        assert_eq!(
            overlay_data(
                &l,
                Some(Path::new("/u")),
                Some(Path::new("/w")),
                &["index=off".into()]
            )
            .unwrap(),
            "lowerdir=/l/a:/l/b,upperdir=/u,workdir=/w,index=off"
        );
        assert_eq!(
            overlay_data(&l, None, None, &[]).unwrap(),
            "lowerdir=/l/a:/l/b"
        );
        assert!(overlay_data(&l[..1], None, None, &[]).is_err());
        assert!(overlay_data(&[], Some(Path::new("/u")), Some(Path::new("/w")), &[]).is_err());
        assert!(overlay_data(
            &[PathBuf::from("/a:b")],
            Some(Path::new("/u")),
            Some(Path::new("/w")),
            &[]
        )
        .is_err());
        let many: Vec<PathBuf> = (0..300)
            .map(|i| PathBuf::from(format!("/var/lib/skiff/l/{i:016}")))
            .collect();
        let err =
            overlay_data(&many, Some(Path::new("/u")), Some(Path::new("/w")), &[]).unwrap_err();
        assert!(err.to_string().contains("too many layers"));
    }
}
