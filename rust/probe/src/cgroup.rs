//! Best-effort cgroup limits from /sys/fs/cgroup (v2 unified or v1 per-controller).

use std::fs;
use std::path::Path;

use crate::json::Json;
use crate::procfs::CgroupEntry;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// cgroup v2 files, read from the unified hierarchy.
const V2_FILES: &[&str] = &[
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "pids.max",
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus",
    "cpuset.mems",
];

/// cgroup v1 files, by controller (mounted at /sys/fs/cgroup/<controller>).
const V1_FILES: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.memsw.limit_in_bytes",
        ],
    ),
    ("pids", &["pids.max"]),
    (
        "cpu",
        &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
    ),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
];

/// Reads `<mount>/<own cgroup path>/<file>`, falling back to `<mount>/<file>`
/// (inside a cgroup namespace, or when only our own cgroup is mounted).
fn read_limit(mount: &Path, own_path: Option<&str>, file: &str) -> Option<String> {
    let rel = own_path.unwrap_or("").trim_start_matches('/');
    let nested = (!rel.is_empty()).then(|| mount.join(rel).join(file));
    nested
        .into_iter()
        .chain([mount.join(file)])
        .find_map(|path| fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
}

/// The "limits" object: file name -> trimmed content; missing files are omitted.
pub fn limits(entries: &[CgroupEntry]) -> Json {
    limits_at(Path::new(CGROUP_ROOT), entries)
}

/// [`limits`] for a cgroup filesystem mounted at `root`.
fn limits_at(root: &Path, entries: &[CgroupEntry]) -> Json {
    let mut out: Vec<(String, Json)> = Vec::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            if !out.iter().any(|(k, _)| k == key) {
                out.push((key.to_owned(), v.into()));
            }
        }
    };
    if root.join("cgroup.controllers").exists() {
        // Unified hierarchy: our cgroup is the "0::<path>" entry.
        let own = entries
            .iter()
            .find(|e| e.hierarchy == 0 && e.controllers.is_empty())
            .map(|e| e.path.as_str());
        for file in V2_FILES {
            add(file, read_limit(root, own, file));
        }
    } else {
        for (controller, files) in V1_FILES {
            let own = entries
                .iter()
                .find(|e| e.controllers.iter().any(|c| c == controller))
                .map(|e| e.path.as_str());
            let mount = root.join(controller);
            for file in *files {
                add(file, read_limit(&mount, own, file));
            }
        }
    }
    Json::Obj(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::parse_cgroup_line;
    use std::path::PathBuf;

    /// A scratch directory populated with `(relative path, content)` files.
    fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("skiff-probe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (rel, content) in files {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn entries(lines: &[&str]) -> Vec<CgroupEntry> {
        lines
            .iter()
            .map(|l| parse_cgroup_line(l).unwrap())
            .collect()
    }

    #[test]
    fn v2_prefers_own_cgroup_then_falls_back_to_root() {
        let root = scratch(
            "v2",
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                ("memory.max", "max\n"),
                ("pids.max", "99\n"),
                ("box/ctr/memory.max", "1048576\n"),
                ("box/ctr/cpu.max", "50000 100000\n"),
            ],
        );
        let own = limits_at(&root, &entries(&["0::/box/ctr"])).to_string();
        assert_eq!(
            own,
            r#"{"memory.max":"1048576","pids.max":"99","cpu.max":"50000 100000"}"#
        );
        // Inside a cgroup namespace the own cgroup is the mount root.
        let ns = limits_at(&root, &entries(&["0::/"])).to_string();
        assert_eq!(ns, r#"{"memory.max":"max","pids.max":"99"}"#);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_reads_per_controller_mounts() {
        let root = scratch(
            "v1",
            &[
                ("memory/docker/abc/memory.limit_in_bytes", "268435456\n"),
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                ("cpu/cpu.shares", "512\n"),
                ("pids/pids.max", "max\n"),
            ],
        );
        let json = limits_at(
            &root,
            &entries(&["4:memory:/docker/abc", "2:cpu,cpuacct:/docker/abc", "0::/"]),
        )
        .to_string();
        assert_eq!(
            json,
            r#"{"memory.limit_in_bytes":"268435456","pids.max":"max","cpu.shares":"512"}"#
        );
        assert_eq!(limits_at(&root.join("missing"), &[]).to_string(), "{}");
        fs::remove_dir_all(root).unwrap();
    }
}
