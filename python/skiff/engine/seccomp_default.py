"""Skiff's default seccomp profile: it denies (EPERM) what Docker's default profile
denies, written as a deny list rather than Docker's allow list.

Docker allows a long list and denies the rest; the rest that matters is a short list
of syscalls that reach past the container (kernel modules, clocks, keyrings, mounts,
namespaces, kexec, BPF, ...). Like Docker's profile, a syscall a capability needs is
allowed when the container has that capability (``--cap-add SYS_ADMIN`` lets
``mount`` through, as the kernel then checks the capability itself). ``clone3`` gets
ENOSYS, as in Docker's profile, so that libc falls back to ``clone``, whose namespace
flags can be checked.
"""

from __future__ import annotations

from typing import Any

EPERM = 1
ENOSYS = 38

#: Denied whatever the capabilities.
ALWAYS = [
    "add_key",
    "keyctl",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
]

#: capability -> what it unlocks.
BY_CAPABILITY: dict[str, list[str]] = {
    "CAP_SYS_ADMIN": [
        "mount",
        "umount",
        "umount2",
        "unshare",
        "setns",
        "pivot_root",
        "swapon",
        "swapoff",
        "name_to_handle_at",
        "quotactl",
        "quotactl_fd",
        "fanotify_init",
        "lookup_dcookie",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "perf_event_open",
        "bpf",
    ],
    "CAP_SYS_MODULE": ["init_module", "finit_module", "delete_module"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_TIME": [
        "settimeofday",
        "stime",
        "clock_settime",
        "clock_settime64",
        "clock_adjtime",
        "clock_adjtime64",
    ],
    "CAP_SYS_PTRACE": ["kcmp", "process_madvise", "pidfd_getfd"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "move_pages"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYSLOG": ["syslog"],
}

#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: clone with any of
#: them is denied without CAP_SYS_ADMIN.
CLONE_NS_FLAGS = [
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
]

ARCHES = [
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
]


def default_profile(caps: list[str]) -> dict[str, Any]:
    """The profile for a container with capabilities ``caps``."""
    have = set(caps)
    denied = list(ALWAYS)
    for cap, names in BY_CAPABILITY.items():
        if cap not in have:
            denied += names
    if "CAP_BPF" in have and "CAP_SYS_ADMIN" not in have:
        denied.remove("bpf")
    if "CAP_PERFMON" in have and "CAP_SYS_ADMIN" not in have:
        denied.remove("perf_event_open")
    syscalls: list[dict[str, Any]] = [
        {"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    if "CAP_SYS_ADMIN" not in have:
        for flag in CLONE_NS_FLAGS:
            syscalls.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    "args": [
                        {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
                    ],
                }
            )
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": list(ARCHES), "syscalls": syscalls}
