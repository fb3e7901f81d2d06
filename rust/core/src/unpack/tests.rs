//! Unpack against tars built in memory: the `tar` crate's Builder for ordinary layers,
//! headers written by hand for hostile ones.

use super::*;

use std::ffi::CString;
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::ErrorKind;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary directory removed on drop; `dest()` is a path inside it that does not
/// exist yet, `outside()` a sentinel path next to it that must never appear.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "skiff-unpack-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Tmp(path)
    }
    fn dest(&self) -> PathBuf {
        self.0.join("dest")
    }
    fn outside(&self) -> PathBuf {
        self.0.join("outside")
    }
    /// The sentinel's path relative to `/`, for members that try to reach it.
    fn outside_rel(&self) -> String {
        self.outside()
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        // Layers leave read-only directories, which only root can empty as they are.
        fn writable(dir: &Path) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    writable(&e.path());
                }
            }
        }
        writable(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tar written header by header.
#[derive(Default)]
struct Tb(Vec<u8>);

impl Tb {
    fn raw(&mut self, name: &[u8], kind: u8, link: &[u8], data: &[u8], mode: u32) -> &mut Self {
        self.raw_sized(name, kind, link, data, data.len() as u64, mode)
    }

    fn raw_sized(
        &mut self,
        name: &[u8],
        kind: u8,
        link: &[u8],
        data: &[u8],
        size: u64,
        mode: u32,
    ) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let len = self.0.len().div_ceil(512) * 512;
        self.0.resize(len, 0);
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), b'0', b"", data, mode)
    }
    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), b'5', b"", b"", mode)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'2', target.as_bytes(), b"", 0o777)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'1', target.as_bytes(), b"", 0o644)
    }

    /// A PAX header for the next member.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body + 1;
            while format!("{len}").len() + body != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(b"././@PaxHeader", b'x', b"", &data, 0o644)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0; 1024]);
        out
    }
}

fn compress(data: &[u8], kind: Compression) -> Vec<u8> {
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let shared = Arc::new(Mutex::new(Vec::new()));
    let mut enc = compress::encoder(Sink(shared.clone()), kind, None).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap();
    let out = shared.lock().unwrap().clone();
    out
}

fn sha(data: &[u8]) -> String {
    let mut d = Sha256Digester::new();
    d.update(data);
    digest::oci_digest(&d.finalize())
}

fn opts(whiteouts: Whiteouts) -> UnpackOptions {
    UnpackOptions {
        whiteouts,
        ..UnpackOptions::default()
    }
}

fn run(blob: &[u8], dest: &Path) -> Result<UnpackStats> {
    unpack(Cursor::new(blob), dest, &UnpackOptions::default())
}

fn err_kind(r: Result<UnpackStats>) -> (ErrorKind, String) {
    let e = r.unwrap_err();
    (e.kind(), e.to_string())
}

fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// An ordinary layer made by the tar crate's Builder: every kind, long names (GNU),
/// modes, times; digests of all three compressions.
fn builder_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_500_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    add("usr/", tar::EntryType::Directory, 0o755, b"", None);
    add("usr/bin/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "usr/bin/tool",
        tar::EntryType::Regular,
        0o4755,
        b"#!/bin/sh\necho hi\n",
        None,
    );
    add(
        "usr/bin/alias",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("tool"),
    );
    add(
        "usr/bin/hard",
        tar::EntryType::Link,
        0o755,
        b"",
        Some("usr/bin/tool"),
    );
    add("tmp/", tar::EntryType::Directory, 0o1777, b"", None);
    add("ro/", tar::EntryType::Directory, 0o555, b"", None);
    add(
        "ro/inside",
        tar::EntryType::Regular,
        0o444,
        b"read only",
        None,
    );
    add("fifo", tar::EntryType::Fifo, 0o600, b"", None);
    let long = format!("deep/{}/{}", "d".repeat(120), "f".repeat(200));
    add(&long, tar::EntryType::Regular, 0o640, b"long name", None);
    let big: Vec<u8> = (0..3 * COPY_BUF + 17).map(|i| (i % 251) as u8).collect();
    add("big", tar::EntryType::Regular, 0o644, &big, None);
    b.into_inner().unwrap()
}

#[test]
fn builder_layer_round_trip_every_compression() {
    let tar = builder_layer();
    for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let tmp = Tmp::new();
        let blob = compress(&tar, kind);
        let stats = run(&blob, &tmp.dest()).unwrap();
        assert_eq!(stats.compression, kind);
        assert_eq!(stats.digest, sha(&blob));
        assert_eq!(stats.compressed_size, blob.len() as u64);
        assert_eq!(stats.diff_id, sha(&tar));
        assert_eq!(stats.size, tar.len() as u64);
        assert_eq!(stats.entries, 11);

        let d = tmp.dest();
        let tool = fs::metadata(d.join("usr/bin/tool")).unwrap();
        assert_eq!(
            fs::read(d.join("usr/bin/tool")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(tool.mtime(), 1_500_000_000);
        assert_eq!(tool.nlink(), 2);
        let hard = fs::metadata(d.join("usr/bin/hard")).unwrap();
        assert_eq!(hard.ino(), tool.ino());
        assert_eq!(
            fs::read_link(d.join("usr/bin/alias")).unwrap(),
            Path::new("tool")
        );
        let tmpdir = fs::metadata(d.join("tmp")).unwrap();
        assert_eq!(tmpdir.mode() & 0o7777, 0o1777);
        let ro = fs::metadata(d.join("ro")).unwrap();
        assert_eq!(ro.mode() & 0o7777, 0o555);
        assert_eq!(ro.mtime(), 1_500_000_000, "directory mtimes are set last");
        assert_eq!(fs::read(d.join("ro/inside")).unwrap(), b"read only");
        assert!(fs::symlink_metadata(d.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let long = d.join(format!("deep/{}/{}", "d".repeat(120), "f".repeat(200)));
        assert_eq!(fs::read(long).unwrap(), b"long name");
        assert_eq!(fs::metadata(d.join("deep")).unwrap().mode() & 0o7777, 0o755);
        let big = fs::read(d.join("big")).unwrap();
        assert_eq!(big.len(), 3 * COPY_BUF + 17);
        assert!(big.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        // Let the read-only directory go.
        fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn expected_digests_are_checked_and_failure_removes_dest() {
    let tar = builder_layer();
    let blob = compress(&tar, Compression::Gzip);
    let tmp = Tmp::new();
    let good = UnpackOptions {
        expected_digest: Some(sha(&blob)),
        expected_diff_id: Some(sha(&tar)),
        ..UnpackOptions::default()
    };
    unpack(Cursor::new(&blob), &tmp.dest(), &good).unwrap();

    let wrong = format!("sha256:{}", "0".repeat(64));
    for (digest, diff_id) in [(Some(wrong.clone()), None), (None, Some(wrong.clone()))] {
        let dest = tmp.0.join("bad");
        let o = UnpackOptions {
            expected_digest: digest,
            expected_diff_id: diff_id,
            ..UnpackOptions::default()
        };
        let e = unpack(Cursor::new(&blob), &dest, &o).unwrap_err();
        match &e {
            Error::DigestMismatch { expected, actual } => {
                assert_eq!(expected, &wrong);
                assert!(*actual == sha(&blob) || *actual == sha(&tar));
            }
            other => panic!("expected a digest mismatch, got {other}"),
        }
        assert!(!dest.exists(), "dest is removed on failure");
    }
    // A malformed expected digest is refused before anything is written.
    let o = UnpackOptions {
        expected_digest: Some("sha256:abc".into()),
        ..UnpackOptions::default()
    };
    let dest = tmp.0.join("never");
    let (kind, _) = err_kind(unpack(Cursor::new(&blob), &dest, &o));
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(!dest.exists());
}

#[test]
fn failure_in_an_existing_empty_dest_empties_it() {
    let tmp = Tmp::new();
    fs::create_dir(tmp.dest()).unwrap();
    let tar = Tb::default()
        .file("a", b"x", 0o644)
        .file("../evil", b"x", 0o644)
        .finish();
    let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(msg.contains("../evil"), "{msg}");
    assert!(tmp.dest().is_dir());
    assert_eq!(fs::read_dir(tmp.dest()).unwrap().count(), 0);
}

#[test]
fn failure_over_a_tree_removes_only_new_paths() {
    let tmp = Tmp::new();
    let lower = Tb::default()
        .dir("etc", 0o755)
        .file("etc/keep", b"lower", 0o644)
        .finish();
    run(&lower, &tmp.dest()).unwrap();
    let upper = Tb::default()
        .dir("etc", 0o755)
        .file("etc/new", b"new", 0o644)
        .dir("newdir", 0o755)
        .file("newdir/f", b"f", 0o644)
        .finish();
    let o = UnpackOptions {
        expected_diff_id: Some(format!("sha256:{}", "1".repeat(64))),
        whiteouts: Whiteouts::Apply,
        ..UnpackOptions::default()
    };
    let (kind, _) = err_kind(unpack(Cursor::new(&upper), &tmp.dest(), &o));
    assert_eq!(kind, ErrorKind::DigestMismatch);
    assert_eq!(fs::read(tmp.dest().join("etc/keep")).unwrap(), b"lower");
    assert!(!tmp.dest().join("etc/new").exists());
    assert!(!tmp.dest().join("newdir").exists());
}

#[test]
fn truncated_and_corrupt_streams() {
    let tar = builder_layer();
    let gz = compress(&tar, Compression::Gzip);
    let zst = compress(&tar, Compression::Zstd);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip cut short", gz[..gz.len() / 2].to_vec()),
        ("gzip without its trailer", gz[..gz.len() - 4].to_vec()),
        ("zstd cut short", zst[..zst.len() / 2].to_vec()),
        ("tar cut inside data", tar[..2048 + 100].to_vec()),
        ("tar cut inside a header", tar[..700].to_vec()),
        ("not a tar", vec![b'x'; 4096]),
        ("gzip of garbage", compress(&[7u8; 5000], Compression::Gzip)),
    ];
    for (what, blob) in cases {
        let tmp = Tmp::new();
        let (kind, msg) = err_kind(run(&blob, &tmp.dest()));
        assert_eq!(kind, ErrorKind::InvalidArgument, "{what}: {msg}");
        assert!(msg.contains("truncated or corrupt layer"), "{what}: {msg}");
        assert!(!tmp.dest().exists(), "{what}: dest left behind");
    }
}

#[test]
fn trailing_blocks_are_hashed() {
    // Writers often leave more than two zero blocks (a full record of 10 KiB).
    let mut tar = Tb::default().file("f", b"data", 0o644).finish();
    tar.extend_from_slice(&[0; 8192]);
    let blob = compress(&tar, Compression::Gzip);
    let tmp = Tmp::new();
    let stats = run(&blob, &tmp.dest()).unwrap();
    assert_eq!(stats.diff_id, sha(&tar));
    assert_eq!(stats.size, tar.len() as u64);
    assert_eq!(stats.digest, sha(&blob));
    // Two gzip members back to back are one stream.
    let half = tar.len() / 2;
    let mut two = compress(&tar[..half], Compression::Gzip);
    two.extend(compress(&tar[half..], Compression::Gzip));
    let tmp = Tmp::new();
    let stats = run(&two, &tmp.dest()).unwrap();
    assert_eq!(stats.diff_id, sha(&tar));
    assert_eq!(stats.digest, sha(&two));
}

#[test]
fn dotdot_escapes_are_refused_and_absolute_paths_stripped() {
    for name in ["../evil", "a/../../evil", "/../evil", "./../evil"] {
        let tmp = Tmp::new();
        let tar = Tb::default().file(name, b"x", 0o644).finish();
        let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
        assert_eq!(kind, ErrorKind::InvalidArgument, "{name}");
        assert!(msg.contains(name), "{msg}");
        assert!(!tmp.0.join("evil").exists());
        assert!(!tmp.dest().exists());
    }
    let tmp = Tmp::new();
    let tar = Tb::default()
        .file("/abs/ok", b"abs", 0o644)
        .file("x/../y", b"y", 0o644)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert_eq!(fs::read(tmp.dest().join("abs/ok")).unwrap(), b"abs");
    assert_eq!(fs::read(tmp.dest().join("y")).unwrap(), b"y");
    assert!(!tmp.dest().join("x").exists());
}

#[test]
fn symlink_to_root_resolves_inside_dest() {
    // (a) link -> / then link/<path of the sentinel>: lands in dest, never outside.
    let tmp = Tmp::new();
    let rel = tmp.outside_rel();
    let tar = Tb::default()
        .symlink("link", "/")
        .file(&format!("link/{rel}"), b"pwned", 0o644)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert!(!tmp.outside().exists());
    assert_eq!(fs::read(tmp.dest().join(&rel)).unwrap(), b"pwned");

    // (b) link -> ../../.. (past the root) then link/x.
    let tmp = Tmp::new();
    let ups = "../".repeat(20);
    let tar = Tb::default()
        .dir("a", 0o755)
        .symlink("a/link", &ups)
        .file("a/link/x", b"x", 0o644)
        .file(&format!("a/link/{}", tmp.outside_rel()), b"x", 0o644)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert!(!tmp.outside().exists());
    assert!(tmp.dest().join("x").is_file());

    // A directory symlink to the real parent of dest (absolute path): inside the root
    // it names a directory the layer made, or one that is missing (refused).
    let tmp = Tmp::new();
    let rel = tmp
        .0
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let tar = Tb::default()
        .dir(&rel, 0o755)
        .symlink("d", tmp.0.to_str().unwrap())
        .file("d/outside", b"x", 0o644)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert!(!tmp.outside().exists());
    assert!(tmp.dest().join(&rel).join("outside").is_file());
    let tmp = Tmp::new();
    let tar = Tb::default()
        .symlink("d", tmp.0.to_str().unwrap())
        .file("d/outside", b"x", 0o644)
        .finish();
    let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(
        msg.contains("symbolic link to a missing directory"),
        "{msg}"
    );
    assert!(!tmp.outside().exists());
    assert!(!tmp.dest().exists());
}

#[test]
fn hardlinks_cannot_escape() {
    // (c) a hard link to ../../etc/passwd.
    let tmp = Tmp::new();
    let tar = Tb::default()
        .hardlink("passwd", "../../etc/passwd")
        .finish();
    let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(msg.contains("../../etc/passwd"), "{msg}");
    assert!(!tmp.dest().exists());

    // Through a symlink to /: resolves inside the root, where there is no such file.
    let tmp = Tmp::new();
    let tar = Tb::default()
        .symlink("root", "/")
        .hardlink("passwd", "root/etc/passwd")
        .finish();
    let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(msg.contains("does not exist in this layer"), "{msg}");
    assert!(!tmp.dest().exists());

    // An absolute target names a path in the layer.
    let tmp = Tmp::new();
    let tar = Tb::default()
        .file("etc/passwd", b"root:x:0:0", 0o644)
        .hardlink("copy", "/etc/passwd")
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert_eq!(fs::read(tmp.dest().join("copy")).unwrap(), b"root:x:0:0");

    // A hard link to a symlink links the symlink itself.
    let tmp = Tmp::new();
    let tar = Tb::default()
        .symlink("s", "/etc/shadow")
        .hardlink("s2", "s")
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert_eq!(
        fs::read_link(tmp.dest().join("s2")).unwrap(),
        Path::new("/etc/shadow")
    );
}

#[test]
fn a_file_replaces_a_symlink_instead_of_following_it() {
    // (d) a symlink to the sentinel, then a file member of the same name.
    let tmp = Tmp::new();
    let target = tmp.outside();
    let tar = Tb::default()
        .symlink("f", target.to_str().unwrap())
        .file("f", b"content", 0o644)
        .symlink("g", target.to_str().unwrap())
        .dir("g", 0o755)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    assert!(!tmp.outside().exists());
    let meta = fs::symlink_metadata(tmp.dest().join("f")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(tmp.dest().join("f")).unwrap(), b"content");
    assert!(fs::symlink_metadata(tmp.dest().join("g")).unwrap().is_dir());
}

#[test]
fn without_openat2_symlinks_in_parents_are_refused() {
    let tmp = Tmp::new();
    let tar = Tb::default()
        .symlink("link", "/")
        .file(&format!("link/{}", tmp.outside_rel()), b"x", 0o644)
        .finish();
    let r = unpack_with(
        Cursor::new(&tar),
        Path::new("-"),
        &tmp.dest(),
        &UnpackOptions::default(),
        false,
    );
    let (kind, msg) = err_kind(r);
    assert_eq!(kind, ErrorKind::InvalidArgument);
    assert!(msg.contains("symbolic link"), "{msg}");
    assert!(!tmp.outside().exists());
    assert!(!tmp.dest().exists());
    // Ordinary layers go through the fallback walk fine.
    let tmp = Tmp::new();
    let r = unpack_with(
        Cursor::new(builder_layer()),
        Path::new("-"),
        &tmp.dest(),
        &UnpackOptions::default(),
        false,
    );
    r.unwrap();
    assert!(tmp.dest().join("usr/bin/tool").is_file());
    fs::set_permissions(tmp.dest().join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn existing_entries_are_replaced_like_tar() {
    let tmp = Tmp::new();
    let tar = Tb::default()
        .file("f", b"one", 0o644)
        .file("f", b"two", 0o600)
        .dir("d", 0o755)
        .file("d/kept", b"k", 0o644)
        .dir("d", 0o700)
        .dir("n", 0o755)
        .file("n/inner", b"i", 0o644)
        .file("n", b"now a file", 0o644)
        .file("e", b"file first", 0o644)
        .dir("e", 0o755)
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    let d = tmp.dest();
    assert_eq!(fs::read(d.join("f")).unwrap(), b"two");
    assert_eq!(fs::metadata(d.join("f")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::read(d.join("d/kept")).unwrap(), b"k");
    assert_eq!(fs::metadata(d.join("d")).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::read(d.join("n")).unwrap(), b"now a file");
    assert!(d.join("e").is_dir());
}

#[test]
fn implied_parents_root_entry_and_pax_metadata() {
    let tmp = Tmp::new();
    let value: &[u8] = b"bin\nary=\0value";
    let long = format!("{}/{}", "p".repeat(150), "q".repeat(150));
    let tar = Tb::default()
        .dir("./", 0o750)
        .pax(&[
            ("mtime", b"1600000000.123456789"),
            ("atime", b"1600000001.5"),
            ("SCHILY.xattr.user.skiff", value),
        ])
        .file("a/b/c", b"deep", 0o640)
        .pax(&[("path", long.as_bytes())])
        .file("short-name-ignored", b"pax path", 0o644)
        .pax(&[("linkpath", long.as_bytes())])
        .hardlink("linked", "ignored")
        .finish();
    run(&tar, &tmp.dest()).unwrap();
    let d = tmp.dest();
    let c = fs::metadata(d.join("a/b/c")).unwrap();
    assert_eq!(c.mtime(), 1_600_000_000);
    assert_eq!(c.mtime_nsec(), 123_456_789);
    assert_eq!(c.atime(), 1_600_000_001);
    assert_eq!(c.atime_nsec(), 500_000_000);
    assert_eq!(c.mode() & 0o7777, 0o640);
    assert_eq!(
        lgetxattr(&d.join("a/b/c"), "user.skiff").as_deref(),
        Some(value)
    );
    for implied in ["a", "a/b"] {
        assert_eq!(
            fs::metadata(d.join(implied)).unwrap().mode() & 0o7777,
            0o755
        );
    }
    assert_eq!(fs::read(d.join(&long)).unwrap(), b"pax path");
    assert_eq!(fs::read(d.join("linked")).unwrap(), b"pax path");
    assert!(!d.join("short-name-ignored").exists());
    // "./" applies to dest itself, at the end.
    let root = fs::metadata(&d).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o750);
    assert_eq!(root.mtime(), 1_600_000_000);
}

#[test]
fn header_only_types_carry_no_data_and_pax_size_wins() {
    let tmp = Tmp::new();
    let mut tb = Tb::default();
    tb.file("target", b"t", 0o644);
    // A hard link whose size field says 600: like Go and GNU tar, read no data.
    tb.raw_sized(b"link", b'1', b"target", b"", 600, 0o644);
    // A PAX size overrides the header's (Go writes 0 there for files over 8 GiB).
    tb.pax(&[("size", b"5")]);
    tb.raw_sized(b"sized", b'0', b"", b"12345", 0, 0o644);
    tb.file("after", b"after", 0o644);
    let tar = tb.finish();
    let stats = run(&tar, &tmp.dest()).unwrap();
    assert_eq!(stats.entries, 4);
    assert_eq!(fs::read(tmp.dest().join("link")).unwrap(), b"t");
    assert_eq!(fs::read(tmp.dest().join("sized")).unwrap(), b"12345");
    assert_eq!(fs::read(tmp.dest().join("after")).unwrap(), b"after");
}

#[test]
fn oversize_names_and_odd_members_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "component over 255",
            Tb::default()
                .pax(&[("path", "x".repeat(256).as_bytes())])
                .file("p", b"", 0o644)
                .finish(),
        ),
        (
            "path over PATH_MAX",
            Tb::default()
                .pax(&[("path", ["y"; 2100].join("/").as_bytes())])
                .file("p", b"", 0o644)
                .finish(),
        ),
        (
            "NUL in a PAX path",
            Tb::default()
                .pax(&[("path", b"a\0b")])
                .file("p", b"", 0o644)
                .finish(),
        ),
        (
            "GNU sparse",
            Tb::default().raw(b"s", b'S', b"", b"", 0o644).finish(),
        ),
        (
            "unknown type",
            Tb::default().raw(b"v", b'V', b"", b"", 0o644).finish(),
        ),
        (
            "hard link to a missing file",
            Tb::default().hardlink("l", "nowhere").finish(),
        ),
        (
            "non-directory root",
            Tb::default().file("./", b"", 0o644).finish(),
        ),
        (
            "parent is a file",
            Tb::default()
                .file("f", b"", 0o644)
                .file("f/g", b"", 0o644)
                .finish(),
        ),
        (
            "symlink loop in a parent",
            Tb::default()
                .symlink("l1", "l2")
                .symlink("l2", "l1")
                .file("l1/x", b"", 0o644)
                .finish(),
        ),
    ];
    for (what, tar) in cases {
        let tmp = Tmp::new();
        let (kind, msg) = err_kind(run(&tar, &tmp.dest()));
        assert_eq!(kind, ErrorKind::InvalidArgument, "{what}: {msg}");
        assert!(!tmp.dest().exists(), "{what}");
    }
}

fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let lower = Tb::default()
        .dir("etc", 0o755)
        .file("etc/a", b"a", 0o644)
        .file("gone", b"g", 0o644)
        .dir("gonedir", 0o755)
        .file("gonedir/x", b"x", 0o644)
        .dir("opq", 0o755)
        .file("opq/old", b"old", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/old2", b"old2", 0o644)
        .dir("opq2", 0o755)
        .file("opq2/old", b"old", 0o644)
        .finish();
    let upper = Tb::default()
        .file(".wh.gone", b"", 0o644)
        .file(".wh.gonedir", b"", 0o644)
        .dir("etc", 0o755)
        .file("etc/.wh.missing", b"", 0o644)
        .file("etc/b", b"b", 0o644)
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/new", b"new", 0o644)
        // The marker after the directory's new contents.
        .dir("opq2", 0o755)
        .file("opq2/new", b"new", 0o644)
        .file("opq2/.wh..wh..opq", b"", 0o644)
        .file(".wh..wh.plnk", b"", 0o644)
        .finish();
    (lower, upper)
}

#[test]
fn whiteouts_apply_mode() {
    let (lower, upper) = whiteout_layers();
    let tmp = Tmp::new();
    let o = opts(Whiteouts::Apply);
    unpack(Cursor::new(&lower), &tmp.dest(), &o).unwrap();
    unpack(Cursor::new(&upper), &tmp.dest(), &o).unwrap();
    let d = tmp.dest();
    assert!(!d.join("gone").exists());
    assert!(!d.join("gonedir").exists());
    assert_eq!(fs::read(d.join("etc/a")).unwrap(), b"a");
    assert_eq!(fs::read(d.join("etc/b")).unwrap(), b"b");
    assert!(!d.join("opq/old").exists());
    assert!(!d.join("opq/sub/old2").exists());
    assert_eq!(fs::read(d.join("opq/sub/new")).unwrap(), b"new");
    assert!(!d.join("opq2/old").exists());
    assert_eq!(fs::read(d.join("opq2/new")).unwrap(), b"new");
    let names: Vec<_> = walk(&d)
        .into_iter()
        .filter(|n| n.contains(".wh."))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn whiteouts_overlay_mode() {
    let (_, upper) = whiteout_layers();
    let tmp = Tmp::new();
    let r = unpack(Cursor::new(&upper), &tmp.dest(), &opts(Whiteouts::Overlay));
    if !is_root() {
        // trusted.* xattrs need CAP_SYS_ADMIN: a clear error, nothing left.
        let e = r.unwrap_err();
        assert!(e.to_string().contains("trusted.overlay.opaque"), "{e}");
        assert!(!tmp.dest().exists());
        return;
    }
    r.unwrap();
    let d = tmp.dest();
    for name in ["gone", "gonedir", "etc/missing"] {
        let m = fs::symlink_metadata(d.join(name)).unwrap();
        assert!(m.file_type().is_char_device(), "{name}");
        assert_eq!(m.rdev(), 0);
    }
    for dir in ["opq", "opq2"] {
        assert_eq!(
            lgetxattr(&d.join(dir), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
    assert_eq!(lgetxattr(&d.join("etc"), "trusted.overlay.opaque"), None);
    assert_eq!(fs::read(d.join("opq/sub/new")).unwrap(), b"new");
    let names: Vec<_> = walk(&d)
        .into_iter()
        .filter(|n| n.contains(".wh."))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn readers_files_and_pipes() {
    let tar = builder_layer();
    let blob = compress(&tar, Compression::Zstd);
    let tmp = Tmp::new();
    let path = tmp.0.join("blob");
    fs::write(&path, &blob).unwrap();
    let stats = unpack_file(&path, &tmp.dest(), &UnpackOptions::default()).unwrap();
    assert_eq!(stats.digest, sha(&blob));
    fs::set_permissions(tmp.dest().join("ro"), fs::Permissions::from_mode(0o755)).unwrap();

    let mut fds = [0; 2];
    // SAFETY: a fresh pipe; both ends are owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds from pipe2.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let feeder = {
        let blob = blob.clone();
        std::thread::spawn(move || {
            let mut w = File::from(w);
            for chunk in blob.chunks(4093) {
                w.write_all(chunk).unwrap();
            }
        })
    };
    let dest = tmp.0.join("piped");
    let stats = unpack_fd(r, &dest, &UnpackOptions::default()).unwrap();
    feeder.join().unwrap();
    assert_eq!(stats.digest, sha(&blob));
    assert_eq!(stats.diff_id, sha(&tar));
    assert!(dest.join("usr/bin/tool").is_file());
    fs::set_permissions(dest.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();

    let missing = unpack_file(
        &tmp.0.join("nope"),
        &tmp.0.join("d2"),
        &UnpackOptions::default(),
    );
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::Io);
}

use std::os::fd::FromRawFd;

#[test]
fn owners_devices_and_capabilities_as_root() {
    if !is_root() {
        return;
    }
    // A v2 file capability whose value holds a 0x0a byte (cap_linux_immutable and
    // cap_net_broadcast): PAX records carry any byte.
    let cap: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut tb = Tb::default();
    tb.dir("dev", 0o755);
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..8].copy_from_slice(b"dev/null");
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_cksum();
    tb.0.extend_from_slice(h.as_bytes());
    let owned = |tb: &mut Tb, name: &[u8], kind: u8, link: &[u8], data: &[u8], mode| {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1);
        h.set_cksum();
        tb.0.extend_from_slice(h.as_bytes());
        tb.0.extend_from_slice(data);
        tb.pad();
    };
    tb.pax(&[("SCHILY.xattr.security.capability", &cap)]);
    owned(&mut tb, b"suid", b'0', b"", b"bin", 0o4755);
    owned(&mut tb, b"home", b'5', b"", b"", 0o2750);
    owned(&mut tb, b"sym", b'2', b"suid", b"", 0o777);
    tb.pax(&[("uid", b"100000"), ("gid", b"100001")]);
    owned(&mut tb, b"big-ids", b'0', b"", b"", 0o600);
    let tar = tb.finish();

    let tmp = Tmp::new();
    run(&tar, &tmp.dest()).unwrap();
    let d = tmp.dest();
    let null = fs::symlink_metadata(d.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let suid = fs::metadata(d.join("suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid()), (1234, 5678));
    assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid survives the chown");
    assert_eq!(
        lgetxattr(&d.join("suid"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    let home = fs::metadata(d.join("home")).unwrap();
    assert_eq!(
        (home.uid(), home.gid(), home.mode() & 0o7777),
        (1234, 5678, 0o2750)
    );
    let sym = fs::symlink_metadata(d.join("sym")).unwrap();
    assert_eq!((sym.uid(), sym.gid()), (1234, 5678));
    let big = fs::metadata(d.join("big-ids")).unwrap();
    assert_eq!((big.uid(), big.gid()), (100_000, 100_001));

    // Without same_owner, files belong to the caller.
    let tmp2 = Tmp::new();
    let o = UnpackOptions {
        same_owner: false,
        ..UnpackOptions::default()
    };
    unpack(Cursor::new(&tar), &tmp2.dest(), &o).unwrap();
    assert_eq!(fs::metadata(tmp2.dest().join("suid")).unwrap().uid(), 0);
}

#[test]
fn many_small_files() {
    let mut tb = Tb::default();
    for d in 0..20 {
        tb.dir(&format!("d{d}"), 0o755);
        for f in 0..500 {
            tb.file(&format!("d{d}/f{f}"), &[b'x'; 1024], 0o644);
        }
    }
    let tar = tb.finish();
    let tmp = Tmp::new();
    let stats = run(&tar, &tmp.dest()).unwrap();
    assert_eq!(stats.entries, 20 + 20 * 500);
    assert_eq!(
        fs::read(tmp.dest().join("d19/f499")).unwrap(),
        vec![b'x'; 1024]
    );
}

/// Everything a layer decides about a tree, one line per path, sorted.
fn describe(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                let data = fs::read(&p).unwrap();
                format!("{} bytes {:032x}", data.len(), digest::xxh3_128(&data))
            } else {
                String::new()
            };
            // Overlay whiteouts are made now, with the time of now.
            let mtime = if m.file_type().is_char_device() {
                0
            } else {
                m.mtime()
            };
            out.push(format!(
                "{rel} {:o} {}:{} mtime {mtime} nlink {} {what}",
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.nlink() },
            ));
            if m.is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

fn with_workers(workers: usize, whiteouts: Whiteouts) -> UnpackOptions {
    UnpackOptions {
        file_workers: workers,
        whiteouts,
        ..UnpackOptions::default()
    }
}

/// Small files are written on worker threads; a layer whose members replace, link to,
/// alias (through a symlink) and remove files that may still be pending gives the same
/// tree as a member-by-member unpack.
#[test]
fn files_written_in_parallel_give_the_sequential_tree() {
    let mut tb = Tb::default();
    tb.dir("a", 0o755);
    for i in 0..200 {
        tb.file(&format!("a/f{i}"), format!("file {i}").as_bytes(), 0o644);
    }
    // Interleaved directories (several workers at once), and a file too big for a job.
    for d in 0..6 {
        tb.dir(&format!("d{d}"), 0o750);
    }
    for i in 0..300 {
        tb.file(
            &format!("d{}/g{i}", i % 6),
            &[b'a' + (i % 26) as u8; 700],
            0o600,
        );
    }
    tb.file(
        "big",
        &vec![7u8; (files::MAX_JOB_FILE as usize) + 4096],
        0o644,
    );
    tb.file("a/f5", b"replaced", 0o640) // a name used before
        .hardlink("a/h", "a/f7") // a link to a file that may still be pending
        .symlink("l", "a")
        .file("l/g1", b"through the link", 0o644)
        .file("a/g1", b"the same entry, by its own name", 0o644)
        .file("x", b"a file first", 0o644)
        .dir("x", 0o711) // a directory replaces it
        .file("x/y", b"inside", 0o644)
        .file("a/f9", b"nine again", 0o755)
        .hardlink("a/f9-link", "a/f9")
        .file("w1", b"whited out", 0o644)
        .file(".wh.w1", b"", 0o644)
        .file("s", b"special bits", 0o4755);
    let tar = tb.finish();
    for whiteouts in [Whiteouts::Overlay, Whiteouts::Apply] {
        if whiteouts == Whiteouts::Overlay && !is_root() {
            continue; // whiteouts are 0/0 character devices
        }
        let mut trees = Vec::new();
        for workers in [0, 1, 3] {
            let tmp = Tmp::new();
            let stats = unpack(
                Cursor::new(&tar),
                &tmp.dest(),
                &with_workers(workers, whiteouts),
            )
            .unwrap();
            assert_eq!(stats.entries, 1 + 200 + 6 + 300 + 1 + 13);
            let d = tmp.dest();
            assert_eq!(fs::read(d.join("a/f5")).unwrap(), b"replaced");
            assert_eq!(fs::read(d.join("a/h")).unwrap(), b"file 7");
            assert_eq!(
                fs::read(d.join("a/g1")).unwrap(),
                b"the same entry, by its own name"
            );
            assert_eq!(fs::read(d.join("x/y")).unwrap(), b"inside");
            assert_eq!(fs::read(d.join("a/f9-link")).unwrap(), b"nine again");
            assert_eq!(fs::metadata(d.join("s")).unwrap().mode() & 0o7777, 0o4755);
            trees.push(describe(&d));
        }
        for other in &trees[1..] {
            let differ: Vec<_> = trees[0].iter().zip(other).filter(|(a, b)| a != b).collect();
            assert!(differ.is_empty(), "{whiteouts:?}: {differ:?}");
            assert_eq!(trees[0].len(), other.len());
        }
    }
}

/// A member under a name that an earlier (possibly still pending) file took fails the
/// way a member-by-member unpack fails, and leaves nothing behind.
#[test]
fn a_path_through_a_pending_file_fails_like_sequential() {
    let mut tb = Tb::default();
    for i in 0..100 {
        tb.file(&format!("f{i}"), b"x", 0o644);
    }
    tb.file("p", b"a file", 0o644)
        .file("p/q", b"under it", 0o644);
    let tar = tb.finish();
    let mut messages = Vec::new();
    for workers in [0, 2] {
        let tmp = Tmp::new();
        let r = unpack(
            Cursor::new(&tar),
            &tmp.dest(),
            &with_workers(workers, Whiteouts::Overlay),
        );
        let (kind, msg) = err_kind(r);
        assert_eq!(kind, ErrorKind::InvalidArgument, "{msg}");
        assert!(!tmp.dest().exists());
        messages.push(msg);
    }
    assert_eq!(messages[0], messages[1]);
    assert!(
        messages[0].contains("is not a directory"),
        "{}",
        messages[0]
    );
}

/// As root, files the tar gives to root are not chowned (they are root's already), yet
/// end up with the tar's owner when the directory would give them another group, and
/// keep their set-user-ID bit and capabilities.
#[test]
fn owners_are_right_when_chown_is_left_out() {
    if !is_root() {
        return;
    }
    let cap: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut tb = Tb::default();
    tb.file("plain", b"p", 0o644)
        .file("suid", b"s", 0o4755)
        .file("sgid", b"g", 0o2755)
        .pax(&[("SCHILY.xattr.security.capability", &cap)])
        .file("capped", b"c", 0o755)
        .dir("sub", 0o2775)
        .file("sub/inner", b"i", 0o644);
    let tar = tb.finish();
    for workers in [0, 2] {
        let tmp = Tmp::new();
        // An empty destination that hands its group (not root's) to what is made in it.
        fs::create_dir(tmp.dest()).unwrap();
        std::os::unix::fs::chown(tmp.dest(), Some(0), Some(4321)).unwrap();
        fs::set_permissions(tmp.dest(), fs::Permissions::from_mode(0o2775)).unwrap();
        unpack(
            Cursor::new(&tar),
            &tmp.dest(),
            &with_workers(workers, Whiteouts::Overlay),
        )
        .unwrap();
        let d = tmp.dest();
        for (name, mode) in [
            ("plain", 0o644),
            ("suid", 0o4755),
            ("sgid", 0o2755),
            ("capped", 0o755),
            ("sub/inner", 0o644),
        ] {
            let m = fs::metadata(d.join(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{name} with {workers} workers");
            assert_eq!(m.mode() & 0o7777, mode, "{name} with {workers} workers");
        }
        assert_eq!(
            lgetxattr(&d.join("capped"), "security.capability").as_deref(),
            Some(&cap[..])
        );
        let sub = fs::metadata(d.join("sub")).unwrap();
        assert_eq!((sub.gid(), sub.mode() & 0o7777), (0, 0o2775));
    }
}
