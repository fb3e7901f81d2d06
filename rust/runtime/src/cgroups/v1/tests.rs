//! v1 tests: path resolution against a fake mountinfo, and real cgroups on this
//! host when it runs v1 or hybrid and the tests run as root.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::cgroups::devices::rule;
use crate::cgroups::testutil::{exit_zero, is_root, probe_devices, unique_name, Child};
use crate::cgroups::{self, parse_mountinfo, parse_proc_cgroup, Mode};
use crate::spec::{BlockIo, Cpu, Memory, Pids, ThrottleDevice};

const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
37 31 0:33 / /mnt/again rw,relatime - cgroup cgroup rw,net_prio,net_cls
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/other rw,relatime - cgroup cgroup rw,name=other
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const PROC_CGROUP: &str = "\
9:name=systemd:/user.slice
5:net_cls,net_prio:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/inner
0::/
";

#[test]
fn resolve_paths() {
    let mounts = parse_mountinfo(MOUNTINFO);
    let own = parse_proc_cgroup(PROC_CGROUP);
    let m = V1Manager::resolve("/skiff-runtime/c1", &mounts, &own).unwrap();
    // One entry per hierarchy (the net_cls,net_prio bind mount once), no
    // unknown named hierarchy, no cgroup2.
    let dirs: Vec<&Path> = m.hierarchies().iter().map(|h| h.dir.as_path()).collect();
    assert_eq!(
        dirs,
        vec![
            Path::new("/sys/fs/cgroup/cpu/skiff-runtime/c1"),
            Path::new("/sys/fs/cgroup/cpuacct/skiff-runtime/c1"),
            Path::new("/sys/fs/cgroup/memory/skiff-runtime/c1"),
            Path::new("/sys/fs/cgroup/net_cls,net_prio/skiff-runtime/c1"),
            Path::new("/sys/fs/cgroup/systemd/skiff-runtime/c1"),
        ]
    );
    assert_eq!(
        m.dir("cpuacct"),
        Some(Path::new("/sys/fs/cgroup/cpuacct/skiff-runtime/c1"))
    );
    assert_eq!(m.path(), "/skiff-runtime/c1");

    let m = V1Manager::resolve("box/c2", &mounts, &own).unwrap();
    assert_eq!(
        m.dir("memory"),
        Some(Path::new("/sys/fs/cgroup/memory/process_api/abc/box/c2"))
    );
    assert_eq!(
        m.dir("cpu"),
        Some(Path::new("/sys/fs/cgroup/cpu/inner/box/c2"))
    );
    assert_eq!(
        m.dir("cpuacct"),
        Some(Path::new("/sys/fs/cgroup/cpuacct/box/c2"))
    );
    assert_eq!(
        m.dir("name=systemd"),
        Some(Path::new("/sys/fs/cgroup/systemd/user.slice/box/c2"))
    );
    assert_eq!(m.dir("pids"), None);

    // Resources for a controller that is not mounted: a clear error.
    let r = Resources {
        pids: Some(Pids { limit: 10 }),
        ..Default::default()
    };
    let e = m.apply(&r).unwrap_err().to_string();
    assert!(e.contains("pids controller"), "{e}");
    let r = Resources {
        unified: [("memory.high".to_string(), "1".to_string())].into(),
        ..Default::default()
    };
    assert!(m.apply(&r).is_err());
}

fn v1_host() -> bool {
    if !is_root() {
        eprintln!("skipped: not root");
        return false;
    }
    match cgroups::detect() {
        Ok(Mode::V1) | Ok(Mode::Hybrid) => true,
        _ => {
            eprintln!("skipped: not a cgroup v1 host");
            false
        }
    }
}

/// Destroys the cgroup when the test ends, however it ends.
struct CgroupGuard(Box<dyn Manager>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Ok(pids) = self.0.pids() {
            let _ = self.0.thaw();
            for pid in pids {
                // SAFETY: killing a test child left in the test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = self.0.destroy();
    }
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// A whole disk's major:minor from /sys/block (not loop/ram/zram), if any.
fn a_disk() -> Option<(i64, i64)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    names.sort();
    let dev = fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn real_v1_lifecycle() {
    if !v1_host() {
        return;
    }
    let path = format!("/{}", unique_name());
    let guard = CgroupGuard(cgroups::manager(Some(&path), "unused").unwrap());
    let m = &*guard.0;
    assert_eq!(m.path(), path);
    assert!(m.v2_dir_fd().is_none());
    m.create().unwrap();
    // Reach the concrete type for the directories.
    let mounts = parse_mountinfo(&cgroups::read_mountinfo().unwrap());
    let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").unwrap());
    let v1 = V1Manager::resolve(&path, &mounts, &own).unwrap();
    assert_eq!(m.dirs(), v1.hierarchies().to_vec());
    let dirs: Vec<PathBuf> = m.dirs().iter().map(|h| h.dir.clone()).collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(d.is_dir(), "{} was not created", d.display());
    }
    let dir = |c: &str| v1.dir(c).map(Path::to_path_buf);

    if let Some(d) = dir("cpuset") {
        assert!(
            !read(&d, "cpuset.cpus").is_empty(),
            "cpuset.cpus copied from the parent"
        );
        assert!(
            !read(&d, "cpuset.mems").is_empty(),
            "cpuset.mems copied from the parent"
        );
    }

    let memsw = dir("memory").is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    let disk = a_disk();
    let r = Resources {
        devices: vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", None, None, "m"),
        ],
        memory: Some(Memory {
            limit: Some(64 << 20),
            reservation: Some(32 << 20),
            swap: memsw.then_some(128 << 20),
            swappiness: Some(10),
            disable_oom_killer: Some(true),
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(100_000),
            realtime_runtime: Some(10_000),
            realtime_period: Some(1_000_000),
            cpus: Some("0".to_string()),
            mems: Some("0".to_string()),
        }),
        pids: Some(Pids { limit: 100 }),
        block_io: Some(BlockIo {
            weight: Some(500),
            throttle_read_bps_device: disk
                .map(|(major, minor)| ThrottleDevice {
                    major,
                    minor,
                    rate: 1 << 20,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        unified: Default::default(),
    };
    m.apply(&r).unwrap();

    let d = dir("memory").unwrap();
    assert_eq!(read(&d, "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(
        read(&d, "memory.soft_limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    if memsw {
        assert_eq!(
            read(&d, "memory.memsw.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
    }
    assert_eq!(read(&d, "memory.swappiness"), "10");
    assert!(read(&d, "memory.oom_control").contains("oom_kill_disable 1"));
    let d = dir("cpu").unwrap();
    assert_eq!(read(&d, "cpu.shares"), "512");
    assert_eq!(read(&d, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&d, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&d, "cpu.rt_period_us"), "1000000");
    assert_eq!(read(&d, "cpu.rt_runtime_us"), "10000");
    let d = dir("cpuset").unwrap();
    assert_eq!(read(&d, "cpuset.cpus"), "0");
    assert_eq!(read(&d, "cpuset.mems"), "0");
    let d = dir("pids").unwrap();
    assert_eq!(read(&d, "pids.max"), "100");
    let d = dir("blkio").unwrap();
    let (weight_file, _) = blkio::weight_files(&d);
    assert_eq!(read(&d, weight_file), "500");
    if let Some((major, minor)) = disk {
        assert_eq!(
            read(&d, "blkio.throttle.read_bps_device"),
            format!("{major}:{minor} 1048576")
        );
    }
    let d = dir("devices").unwrap();
    assert_eq!(read(&d, "devices.list"), "c 1:3 rwm\nc *:* m");

    // Raise the memory limits afterwards (the memsw-first ordering).
    let raise = Resources {
        memory: Some(Memory {
            limit: Some(256 << 20),
            swap: memsw.then_some(512 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    m.apply(&raise).unwrap();
    let d = dir("memory").unwrap();
    assert_eq!(
        read(&d, "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    // ... and lower them again.
    let lower = Resources {
        memory: Some(Memory {
            limit: Some(48 << 20),
            swap: memsw.then_some(64 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    m.apply(&lower).unwrap();
    assert_eq!(read(&d, "memory.limit_in_bytes"), (48u64 << 20).to_string());

    // A process in the cgroup: listed, frozen, thawed, and held to the device rules.
    let mut child = Child::spawn(probe_devices);
    m.add_task(child.pid).unwrap();
    for d in &dirs {
        assert!(
            read(d, "cgroup.procs")
                .lines()
                .any(|l| l == child.pid.to_string()),
            "{} lacks the child",
            d.display()
        );
    }
    assert_eq!(m.pids().unwrap(), vec![child.pid]);
    assert!(!m.is_frozen().unwrap());
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    assert_eq!(read(&dir("freezer").unwrap(), "freezer.state"), "FROZEN");
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

    // kill_all: freeze, SIGKILL, thaw.
    let mut sleeper = Child::spawn(exit_zero);
    m.add_task(sleeper.pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![sleeper.pid]);
    m.kill_all(libc::SIGKILL).unwrap();
    let status = sleeper.wait();
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
    assert!(!m.is_frozen().unwrap());

    let stats = m.stats().unwrap();
    assert_eq!(stats.memory_limit, Some(48 << 20));
    assert_eq!(stats.pids_limit, Some(100));
    assert!(stats.memory_usage.is_some() && stats.memory_max_usage.is_some());
    assert!(stats.cpu_usage_ns.is_some());
    assert_eq!(stats.pids_current, Some(0));
    assert_eq!(m.oom_kills().unwrap(), 0);

    m.destroy().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} was not removed", d.display());
    }
    // Destroying again is fine.
    m.destroy().unwrap();
}

#[test]
fn real_v1_nested_and_relative() {
    if !v1_host() {
        return;
    }
    let name = unique_name();
    // A cgroup with a sub-cgroup holding a process: pids() and destroy() recurse.
    let top = format!("/{name}");
    let guard = CgroupGuard(cgroups::manager(Some(&top), "unused").unwrap());
    let sub = CgroupGuard(cgroups::manager(Some(&format!("{top}/sub")), "unused").unwrap());
    guard.0.create().unwrap();
    sub.0.create().unwrap();
    let child = Child::spawn(exit_zero);
    sub.0.add_task(child.pid).unwrap();
    assert_eq!(guard.0.pids().unwrap(), vec![child.pid]);
    guard.0.freeze().unwrap();
    assert!(
        sub.0.is_frozen().unwrap(),
        "a child cgroup of a frozen one is frozen"
    );
    guard.0.kill_all(libc::SIGKILL).unwrap();
    drop(child); // reaps it
    guard.0.destroy().unwrap();
    let mounts = parse_mountinfo(&cgroups::read_mountinfo().unwrap());
    let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").unwrap());
    let v1 = V1Manager::resolve(&top, &mounts, &own).unwrap();
    for h in v1.hierarchies() {
        assert!(!h.dir.exists(), "{} was not removed", h.dir.display());
    }

    // A relative path lands under this process's own cgroup, per hierarchy.
    let rel = format!("{name}-rel");
    let guard = CgroupGuard(cgroups::manager(Some(&rel), "unused").unwrap());
    guard.0.create().unwrap();
    let v1 = V1Manager::resolve(&rel, &mounts, &own).unwrap();
    for h in v1.hierarchies() {
        let line = own
            .iter()
            .find(|p| same_set(&p.controllers, &h.controllers))
            .expect("own cgroup line");
        let expect = cgroups::join_below(&h.mount_point, &line.path).join(&rel);
        assert_eq!(h.dir, expect);
        assert!(h.dir.is_dir());
    }
    guard.0.destroy().unwrap();
    for h in v1.hierarchies() {
        assert!(!h.dir.exists());
    }
}

#[test]
fn real_v1_errors_name_file_and_value() {
    if !v1_host() {
        return;
    }
    let path = format!("/{}", unique_name());
    let guard = CgroupGuard(cgroups::manager(Some(&path), "unused").unwrap());
    guard.0.create().unwrap();
    let r = Resources {
        cpu: Some(Cpu {
            cpus: Some("9999".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = guard.0.apply(&r).unwrap_err().to_string();
    assert!(e.contains("cpuset.cpus") && e.contains("\"9999\""), "{e}");
    let r = Resources {
        memory: Some(Memory {
            limit: Some(100 << 20),
            swap: Some(50 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(guard.0.apply(&r).is_err());
}

/// The directories of cgroup `path` in every v1 hierarchy.
fn v1_dirs(path: &str) -> Vec<PathBuf> {
    let mounts = parse_mountinfo(&cgroups::read_mountinfo().unwrap());
    let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").unwrap());
    let v1 = V1Manager::resolve(path, &mounts, &own).unwrap();
    v1.hierarchies().iter().map(|h| h.dir.clone()).collect()
}

/// Cgroup `path` exists in every v1 hierarchy.
fn made(path: &str) -> bool {
    v1_dirs(path).iter().all(|d| d.is_dir())
}

/// Cgroup `path` exists in none.
fn gone(path: &str) -> bool {
    v1_dirs(path).iter().all(|d| !d.exists())
}

#[test]
fn real_v1_spare_is_renamed_into_place_or_removed() {
    if !v1_host() {
        return;
    }
    let top = format!("/{}", unique_name());
    let _top = CgroupGuard(cgroups::manager(Some(&top), "unused").unwrap());
    let spare = cgroups::make_spare(&format!("{top}/.spare-1"))
        .unwrap()
        .expect("a spare on v1");
    assert!(made(&spare));

    // Same parent: renamed into place, cpuset values and all.
    let c1 = format!("{top}/c1");
    let g1 = CgroupGuard(cgroups::manager(Some(&c1), "unused").unwrap());
    g1.0.create_from(Some(&spare)).unwrap();
    assert!(gone(&spare), "spare left behind");
    assert!(made(&c1));
    if let Some(h) =
        g1.0.dirs()
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "cpuset"))
    {
        assert!(!read(&h.dir, "cpuset.cpus").is_empty());
    }
    // Renamed away: removing it is a no-op.
    cgroups::remove_spare(&spare);
    assert!(made(&c1));

    // Another parent: the spare is removed, the cgroup made as usual.
    let spare = cgroups::make_spare(&format!("{top}/.spare-2"))
        .unwrap()
        .unwrap();
    let c2 = format!("{top}/sub/c2");
    let _sub = CgroupGuard(cgroups::manager(Some(&format!("{top}/sub")), "unused").unwrap());
    let g2 = CgroupGuard(cgroups::manager(Some(&c2), "unused").unwrap());
    g2.0.create_from(Some(&spare)).unwrap();
    assert!(gone(&spare), "spare left behind");
    assert!(made(&c2));

    // The container's cgroup is there already (a restart): the spare goes.
    let spare = cgroups::make_spare(&format!("{top}/.spare-4"))
        .unwrap()
        .unwrap();
    g1.0.create_from(Some(&spare)).unwrap();
    assert!(gone(&spare), "spare left behind");
    assert!(made(&c1));

    // Unused: remove_spare takes it away.
    let spare = cgroups::make_spare(&format!("{top}/.spare-3"))
        .unwrap()
        .unwrap();
    cgroups::remove_spare(&spare);
    assert!(gone(&spare));
    drop(g2);
    drop(g1);
}
