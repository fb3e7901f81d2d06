//! Capabilities: names to numbers, and setting all five sets.

use crate::error::{Error, Result};
use crate::spec::Capabilities;

/// Capability names in number order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap), read
/// once per process (a container's init has it from the runtime that cloned it).
pub fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        crate::sys::read_small("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NAMES.len() as u32 - 1)
    })
}

pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// A set as a 64-bit mask. Unknown names are an error (runc warns and skips names
/// the kernel lacks; names nobody knows are a config mistake).
pub fn mask(names: &[String]) -> Result<u64> {
    let mut m = 0u64;
    for name in names {
        let n =
            number(name).ok_or_else(|| Error::Config(format!("unknown capability {name:?}")))?;
        m |= 1 << n;
    }
    Ok(m)
}

/// The five sets, resolved before fork so that the child only makes syscalls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

impl CapSets {
    pub fn from_spec(c: &Capabilities) -> Result<Self> {
        let last = last_cap();
        let known = if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };
        Ok(Self {
            bounding: mask(&c.bounding)? & known,
            effective: mask(&c.effective)? & known,
            inheritable: mask(&c.inheritable)? & known,
            permitted: mask(&c.permitted)? & known,
            ambient: mask(&c.ambient)? & known,
        })
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops from the bounding set every capability not in `sets.bounding`.
pub fn apply_bounding(sets: &CapSets) -> Result<()> {
    let last = last_cap();
    for cap in 0..=last {
        if sets.bounding & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                let err = std::io::Error::last_os_error();
                // EINVAL: the kernel does not know it; nothing to drop.
                if err.raw_os_error() != Some(libc::EINVAL) {
                    return Err(Error::sys(
                        format!(
                            "drop {} from the bounding set",
                            NAMES.get(cap as usize).unwrap_or(&"?")
                        ),
                        err,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable, then raises the ambient ones.
pub fn apply_sets(sets: &CapSets) -> Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: sets.effective as u32,
            permitted: sets.permitted as u32,
            inheritable: sets.inheritable as u32,
        },
        CapData {
            effective: (sets.effective >> 32) as u32,
            permitted: (sets.permitted >> 32) as u32,
            inheritable: (sets.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data follow the kernel's v3 layout.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(Error::last("capset"));
    }
    // The kernel raises an ambient capability only if it is both permitted and
    // inheritable; configs (runc's own `spec`) often list ambient ones that are not
    // inheritable. Like runc, skip those rather than fail.
    let raisable = sets.ambient & sets.permitted & sets.inheritable;
    for cap in 0..64u32 {
        if raisable & (1 << cap) != 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            if r != 0 {
                return Err(Error::last(format!(
                    "raise ambient capability {}",
                    NAMES.get(cap as usize).unwrap_or(&"?")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_masks() {
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("net_raw"), Some(13));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(
            mask(&["CAP_CHOWN".into(), "CAP_KILL".into()]).unwrap(),
            0b100001
        );
        assert!(mask(&["CAP_NOPE".into()]).is_err());
    }
}
