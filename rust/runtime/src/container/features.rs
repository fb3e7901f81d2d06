//! `features`: what this runtime supports, in the runtime spec's features.md shape.

use serde_json::json;

use crate::caps;
use crate::cgroups;
use crate::mounts;
use crate::namespaces;
use crate::seccomp;
use crate::spec::OCI_VERSION;

pub fn features() -> serde_json::Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mounts::option_names(),
        "linux": {
            "namespaces": namespaces::KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "capabilities": caps::NAMES.to_vec(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::action_names(),
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
                "archs": seccomp::arch_names(),
                "knownFlags": seccomp::flag_names(),
                "supportedFlags": seccomp::flag_names(),
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
            "cgroupControllers": cgroups::features_controllers(),
        },
        "annotations": { "io.github.skiff.runtime.version": env!("CARGO_PKG_VERSION") },
    })
}
