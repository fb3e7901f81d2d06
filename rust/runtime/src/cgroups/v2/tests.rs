//! v2 tests: the manager against a fake tree in a temp dir (files laid out like a
//! cgroup2 hierarchy; a missing file stands for a controller not enabled), and,
//! as root, the parts that need no controllers (directories, processes, freezer,
//! cgroup.kill, the eBPF device filter) on a real cgroup2 mount if there is one.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::cgroups::devices::rule;
use crate::cgroups::testutil::{exit_zero, is_root, probe_devices, unique_name, Child, TempDir};
use crate::cgroups::{self, parse_mountinfo, parse_proc_cgroup};
use crate::spec::{BlockIo, Cpu, Memory, Pids, ThrottleDevice, WeightDevice};

fn put(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn get(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The files of a cgroup with every controller enabled (empty, as writes replace).
const LEAF_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.freeze",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "memory.high",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.max",
];

#[test]
fn create_enables_controllers() {
    let t = TempDir::new();
    let root = t.path();
    put(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(&root.join("cgroup.subtree_control"), "");
    // Level "a" narrows what it can hand down; level "a/b" has no controllers file
    // (keeps a's); the leaf "a/b/c" gets nothing enabled.
    put(&root.join("a/cgroup.controllers"), "cpu memory pids\n");
    put(&root.join("a/cgroup.subtree_control"), "");
    put(&root.join("a/b/cgroup.subtree_control"), "");
    let m = V2Manager::new("/a/b/c", root, root.join("a/b/c"));
    assert_eq!(
        m.ancestors(),
        vec![root.to_path_buf(), root.join("a"), root.join("a/b")]
    );
    m.create().unwrap();
    assert!(root.join("a/b/c").is_dir());
    assert_eq!(
        get(&root.join("cgroup.subtree_control")),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    );
    assert_eq!(
        get(&root.join("a/cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        get(&root.join("a/b/cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert!(!root.join("a/b/c/cgroup.subtree_control").exists());
    assert_eq!(m.path(), "/a/b/c");
}

fn fake_leaf(root: &Path) -> V2Manager {
    put(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    put(&root.join("cgroup.subtree_control"), "");
    let dir = root.join("skiff/c1");
    for f in LEAF_FILES {
        put(&dir.join(f), "");
    }
    V2Manager::new("/skiff/c1", root, dir)
}

#[test]
fn apply_writes_files() {
    let t = TempDir::new();
    let m = fake_leaf(t.path());
    let d = m.dir().to_path_buf();
    let r = Resources {
        memory: Some(Memory {
            limit: Some(64 << 20),
            reservation: Some(32 << 20),
            swap: Some(96 << 20),
            swappiness: Some(10),           // no v2 file: ignored
            disable_oom_killer: Some(true), // likewise
        }),
        cpu: Some(Cpu {
            shares: Some(1024),
            quota: Some(50_000),
            period: Some(100_000),
            cpus: Some("0-1".to_string()),
            mems: Some("0".to_string()),
            ..Default::default()
        }),
        pids: Some(Pids { limit: 0 }),
        block_io: Some(BlockIo {
            weight: Some(500),
            weight_device: vec![WeightDevice {
                major: 8,
                minor: 0,
                weight: Some(300),
                leaf_weight: None,
            }],
            throttle_read_bps_device: vec![ThrottleDevice {
                major: 8,
                minor: 0,
                rate: 1 << 20,
            }],
            throttle_write_bps_device: vec![ThrottleDevice {
                major: 8,
                minor: 0,
                rate: 2 << 20,
            }],
            ..Default::default()
        }),
        unified: [("memory.high".to_string(), "50000000".to_string())].into(),
        ..Default::default()
    };
    m.create().unwrap();
    m.apply(&r).unwrap();
    assert_eq!(get(&d.join("memory.max")), "67108864");
    assert_eq!(get(&d.join("memory.low")), "33554432");
    assert_eq!(get(&d.join("memory.swap.max")), (32u64 << 20).to_string());
    assert_eq!(get(&d.join("cpu.weight")), "39");
    assert_eq!(get(&d.join("cpu.max")), "50000 100000");
    assert_eq!(get(&d.join("cpuset.cpus")), "0-1");
    assert_eq!(get(&d.join("cpuset.mems")), "0");
    assert_eq!(get(&d.join("pids.max")), "max");
    assert_eq!(get(&d.join("io.weight")), "4950");
    assert_eq!(get(&d.join("io.max")), "8:0 rbps=1048576 wbps=2097152");
    assert_eq!(get(&d.join("memory.high")), "50000000");
    assert_eq!(
        get(&t.path().join("cgroup.subtree_control")),
        "+cpuset +cpu +io +memory +pids"
    );

    // Unlimited: "max" everywhere.
    let r = Resources {
        memory: Some(Memory {
            limit: Some(-1),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            quota: Some(-1),
            period: Some(100_000),
            ..Default::default()
        }),
        pids: Some(Pids { limit: 42 }),
        ..Default::default()
    };
    m.apply(&r).unwrap();
    assert_eq!(get(&d.join("memory.max")), "max");
    assert_eq!(get(&d.join("memory.swap.max")), "max");
    assert_eq!(get(&d.join("cpu.max")), "max 100000");
    assert_eq!(get(&d.join("pids.max")), "42");
}

#[test]
fn apply_prefers_bfq() {
    let t = TempDir::new();
    let m = fake_leaf(t.path());
    let d = m.dir().to_path_buf();
    put(&d.join("io.bfq.weight"), "");
    let r = Resources {
        block_io: Some(BlockIo {
            weight: Some(500),
            ..Default::default()
        }),
        ..Default::default()
    };
    m.apply(&r).unwrap();
    assert_eq!(get(&d.join("io.bfq.weight")), "500");
    assert_eq!(get(&d.join("io.weight")), "");
}

#[test]
fn apply_errors() {
    let t = TempDir::new();
    let m = fake_leaf(t.path());
    let d = m.dir().to_path_buf();
    // A controller that is not enabled: its file is missing; the error names the
    // file and the value.
    fs::remove_file(d.join("pids.max")).unwrap();
    let e = m
        .apply(&Resources {
            pids: Some(Pids { limit: 7 }),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("pids.max") && e.contains("\"7\""), "{e}");
    // Unified keys must name a file of the cgroup.
    for key in ["../escape", "nodot", "hugetlb.2MB.max"] {
        let r = Resources {
            unified: [(key.to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        assert!(m.apply(&r).is_err(), "{key}");
    }
    // Realtime has no v2 interface.
    let r = Resources {
        cpu: Some(Cpu {
            realtime_runtime: Some(1000),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(m.apply(&r).is_err());
    // Swap without a memory limit.
    let r = Resources {
        memory: Some(Memory {
            swap: Some(1 << 30),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(m.apply(&r).is_err());
}

#[test]
fn stats_and_oom_kills_from_files() {
    let t = TempDir::new();
    let m = fake_leaf(t.path());
    let d = m.dir().to_path_buf();
    assert_eq!(
        m.oom_kills().unwrap(),
        0,
        "no memory.events: no memory controller"
    );
    put(&d.join("memory.current"), "12345\n");
    put(&d.join("memory.max"), "max\n");
    put(&d.join("memory.peak"), "23456\n");
    put(
        &d.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    put(&d.join("pids.current"), "3\n");
    put(&d.join("pids.max"), "100\n");
    put(
        &d.join("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
    );
    put(&d.join("cgroup.procs"), "10\n7\n");
    put(&d.join("sub/cgroup.procs"), "8\n");
    let s = m.stats().unwrap();
    assert_eq!(
        s,
        Stats {
            memory_usage: Some(12345),
            memory_limit: None,
            memory_max_usage: Some(23456),
            cpu_usage_ns: Some(1_500_000),
            pids_current: Some(3),
            pids_limit: Some(100),
        }
    );
    assert_eq!(m.oom_kills().unwrap(), 2);
    assert_eq!(m.pids().unwrap(), vec![7, 8, 10]);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"cpu_usage_ns\":1500000"), "{json}");
}

#[test]
fn resolve_paths() {
    let mounts = parse_mountinfo(
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
         31 23 0:26 / /other rw - cgroup2 cgroup2 rw\n",
    );
    let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
    let m = V2Manager::resolve("/skiff-runtime/c1", &mounts, &own).unwrap();
    assert_eq!(m.dir(), Path::new("/sys/fs/cgroup/skiff-runtime/c1"));
    assert_eq!(m.root, Path::new("/sys/fs/cgroup"));
    let m = V2Manager::resolve("c2", &mounts, &own).unwrap();
    assert_eq!(
        m.dir(),
        Path::new("/sys/fs/cgroup/user.slice/session-1.scope/c2")
    );
    assert_eq!(
        m.ancestors().first().map(PathBuf::as_path),
        Some(Path::new("/sys/fs/cgroup"))
    );
}

/// A real cgroup2 mount we may use, if root: /sys/fs/cgroup on pure v2, the
/// (controller-less) unified mount on hybrid.
fn real_cgroup2() -> Option<PathBuf> {
    if !is_root() {
        eprintln!("skipped: not root");
        return None;
    }
    let mounts = parse_mountinfo(&cgroups::read_mountinfo().ok()?);
    let m = mounts
        .iter()
        .filter(|m| m.fstype == "cgroup2")
        .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"))
        .or_else(|| mounts.iter().find(|m| m.fstype == "cgroup2"));
    if m.is_none() {
        eprintln!("skipped: no cgroup2 mount");
    }
    m.map(|m| m.mount_point.clone())
}

/// Removes a test's top cgroup (and everything below it) on drop.
struct TreeGuard(PathBuf);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Ok(pids) = cgroups::procs_recursive(&self.0) {
            for pid in pids {
                // SAFETY: killing a test child left in the test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = fs::write(self.0.join("cgroup.freeze"), "0");
        let _ = cgroups::remove_cgroup_tree(&self.0);
    }
}

#[test]
fn real_v2_processes_freezer_kill_and_devices() {
    let Some(mount) = real_cgroup2() else {
        return;
    };
    // The test's own top cgroup stands in for the hierarchy's root, so create()
    // enables controllers only there, never in the host's root.
    let top = mount.join(unique_name());
    fs::create_dir(&top).unwrap();
    let _guard = TreeGuard(top.clone());
    let m = V2Manager::new("/ctr", &top, top.join("ctr"));
    m.create().unwrap();
    assert!(m.dir().is_dir());
    assert_eq!(m.dirs().len(), 1);
    assert_eq!(m.dirs()[0].dir, top.join("ctr"));
    let fd = m.v2_dir_fd().expect("a v2 cgroup fd");
    drop(fd);

    // The eBPF device filter, for real: /dev/null allowed, /dev/zero denied.
    let r = Resources {
        devices: vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(1), Some(5), "rwm"),
            rule(false, "c", Some(1), Some(5), "r"),
        ],
        ..Default::default()
    };
    m.apply(&r).unwrap();
    let mut child = Child::spawn(probe_devices);
    m.add_task(child.pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![child.pid]);
    assert!(!m.is_frozen().unwrap());
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());
    child.go();
    let status = child.wait();
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        1,
        "/dev/null allowed, /dev/zero denied"
    );

    // Applying again replaces the filter (the old one is detached): now both open.
    let r = Resources {
        devices: vec![rule(true, "a", None, None, "rwm")],
        ..Default::default()
    };
    m.apply(&r).unwrap();
    let mut child = Child::spawn(probe_devices);
    m.add_task(child.pid).unwrap();
    child.go();
    let status = child.wait();
    assert_eq!(
        libc::WEXITSTATUS(status),
        3,
        "both devices allowed after the update"
    );

    // kill_all with SIGKILL (cgroup.kill where the kernel has it).
    let mut sleeper = Child::spawn(exit_zero);
    m.add_task(sleeper.pid).unwrap();
    m.kill_all(libc::SIGKILL).unwrap();
    let status = sleeper.wait();
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );

    // kill_all with another signal: freeze, signal, thaw.
    let mut sleeper = Child::spawn(exit_zero);
    m.add_task(sleeper.pid).unwrap();
    m.kill_all(libc::SIGTERM).unwrap();
    let status = sleeper.wait();
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM,
        "status {status:#x}"
    );
    assert!(!m.is_frozen().unwrap());

    assert!(m.stats().unwrap().cpu_usage_ns.is_some());
    m.destroy().unwrap();
    assert!(!m.dir().exists());
}
