//! Capability sets: read from /proc/self/status, or via capget/prctl when /proc is missing.

use crate::json::Json;
use crate::procfs::status_field;

/// Linux capability names, indexed by capability number (0..=40).
pub const CAP_NAMES: &[&str] = &[
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

/// The five sets in report order: (JSON key, /proc/self/status key).
const SETS: [(&str, &str); 5] = [
    ("inheritable", "CapInh"),
    ("permitted", "CapPrm"),
    ("effective", "CapEff"),
    ("bounding", "CapBnd"),
    ("ambient", "CapAmb"),
];

/// Names of the bits set in `mask`; unknown bits become `CAP_<n>`.
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAP_NAMES.get(bit) {
            Some(name) => (*name).to_owned(),
            None => format!("CAP_{bit}"),
        })
        .collect()
}

/// Decodes a hex mask as found in /proc/self/status (e.g. `000001ffffffffff`).
pub fn decode_hex(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// `{"hex": "...", "names": [...]}` for a mask.
pub fn set_json(mask: u64) -> Json {
    Json::obj([
        ("hex", format!("{mask:016x}").into()),
        ("names", cap_names(mask).into()),
    ])
}

/// The "caps" object: from the status text when available, else from syscalls.
pub fn caps(status: Option<&str>) -> Json {
    let masks: [Option<u64>; 5] = match status {
        Some(text) => SETS.map(|(_, key)| status_field(text, key).and_then(decode_hex)),
        None => from_syscalls(),
    };
    Json::obj(
        SETS.iter()
            .zip(masks)
            .map(|((name, _), mask)| (*name, mask.map(set_json).into())),
    )
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Fallback without /proc: capget(2) for inh/prm/eff, prctl(2) for bounding/ambient.
fn from_syscalls() -> [Option<u64>; 5] {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array are what capget expects for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    let join = |f: fn(&CapData) -> u32| {
        (rc == 0).then(|| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32))
    };
    [
        join(|d| d.inheritable),
        join(|d| d.permitted),
        join(|d| d.effective),
        probe_bits(|bit| unsafe { libc::prctl(libc::PR_CAPBSET_READ, bit, 0, 0, 0) }),
        probe_bits(|bit| unsafe {
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET, bit, 0, 0)
        }),
    ]
}

/// Asks `query(bit)` for each bit until the kernel rejects the number;
/// `None` if even bit 0 fails (e.g. prctl filtered by seccomp).
fn probe_bits(query: impl Fn(libc::c_ulong) -> libc::c_int) -> Option<u64> {
    let mut mask = 0u64;
    for bit in 0..64 {
        match query(bit) {
            r if r < 0 => return (bit > 0).then_some(mask),
            0 => {}
            _ => mask |= 1 << bit,
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_all_known_caps() {
        assert_eq!(CAP_NAMES.len(), 41);
        assert_eq!(CAP_NAMES[21], "CAP_SYS_ADMIN");
        assert_eq!(CAP_NAMES[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn decodes_masks() {
        assert_eq!(cap_names(0), Vec::<String>::new());
        assert_eq!(cap_names(0b1), vec!["CAP_CHOWN"]);
        // Docker's default set.
        let docker = decode_hex("00000000a80425fb").unwrap();
        assert_eq!(
            cap_names(docker),
            vec![
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_CHROOT",
                "CAP_MKNOD",
                "CAP_AUDIT_WRITE",
                "CAP_SETFCAP",
            ]
        );
        let full = cap_names(decode_hex("000001ffffffffff").unwrap());
        assert_eq!(full.len(), 41);
        assert_eq!(full.last().unwrap(), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(cap_names(1 << 41 | 1 << 63), vec!["CAP_41", "CAP_63"]);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn caps_from_status_text() {
        let status = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000003\n\
                      CapEff:\t0000000000000001\nCapBnd:\t000001ffffffffff\n";
        let json = caps(Some(status)).to_string();
        assert!(json.starts_with(r#"{"inheritable":{"hex":"0000000000000000","names":[]},"#));
        assert!(json.contains(
            r#""permitted":{"hex":"0000000000000003","names":["CAP_CHOWN","CAP_DAC_OVERRIDE"]}"#
        ));
        assert!(json.ends_with(r#""ambient":null}"#));
    }

    #[test]
    fn syscall_fallback_reads_something() {
        let [inh, prm, eff, bnd, _amb] = from_syscalls();
        assert!(inh.is_some() && prm.is_some() && eff.is_some() && bnd.is_some());
    }
}
