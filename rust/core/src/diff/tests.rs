//! Diff tests: real trees in temporary directories, layers read back with the `tar`
//! crate. Tests needing root (device nodes, trusted xattrs, chown) return early
//! for other users.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::compress;
use crate::digest::{oci_digest, Sha256Digester};
use crate::ErrorKind;

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary directory removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "skiff-diff-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Tmp(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn dir(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let times = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid C string and array of two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c(path).as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

fn write(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mknod(path: &Path, kind: u32, major: u32, minor: u32) {
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c(path).as_ptr(), kind | 0o644, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn mkfifo(path: &Path) {
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c(path).as_ptr(), 0o600) }, 0);
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    unsafe {
        libc::lsetxattr(
            c(path).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::lchown(c(path).as_ptr(), uid, gid) }, 0);
}

/// One entry read back from a layer.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    path: String,
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    dev: Option<(u32, u32)>,
}

fn writer(f: impl FnOnce(&mut Vec<u8>) -> Result<DiffStats>) -> (Vec<u8>, DiffStats) {
    let mut out = Vec::new();
    let stats = f(&mut out).unwrap();
    (out, stats)
}

/// Decompresses a layer, checks its digests and sizes against `stats`, and lists it.
fn read_layer(bytes: &[u8], stats: &DiffStats) -> Vec<Item> {
    let mut d = Sha256Digester::new();
    d.update(bytes);
    assert_eq!(stats.digest, oci_digest(&d.finalize()));
    assert_eq!(stats.size, bytes.len() as u64);
    let (_, mut dec) = compress::decoder(bytes).unwrap();
    let mut tar_bytes = Vec::new();
    dec.read_to_end(&mut tar_bytes).unwrap();
    let mut d = Sha256Digester::new();
    d.update(&tar_bytes);
    assert_eq!(stats.diff_id, oci_digest(&d.finalize()));
    assert_eq!(stats.uncompressed_size, tar_bytes.len() as u64);
    assert_eq!(tar_bytes.len() % 512, 0);
    assert!(tar_bytes.ends_with(&[0u8; 1024]));
    let items = list_tar(&tar_bytes);
    assert_eq!(stats.entries, items.len() as u64);
    items
}

fn list_tar(tar_bytes: &[u8]) -> Vec<Item> {
    let mut archive = ::tar::Archive::new(tar_bytes);
    let mut items = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let pax = match entry.pax_extensions().unwrap() {
            Some(exts) => exts
                .map(|e| {
                    let e = e.unwrap();
                    (e.key().unwrap().to_string(), e.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let h = entry.header().clone();
        let kind = h.entry_type().as_byte() as char;
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let dev = match kind {
            '3' | '4' => Some((
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            )),
            _ => None,
        };
        items.push(Item {
            path,
            kind,
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            data,
            pax,
            dev,
        });
    }
    items
}

fn paths(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.path.as_str()).collect()
}

fn find<'a>(items: &'a [Item], path: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.path == path)
        .unwrap_or_else(|| panic!("{path} not in {:?}", paths(items)))
}

fn opts(compression: Compression) -> DiffOptions {
    DiffOptions {
        compression,
        level: None,
    }
}

const LONG: &str = "a-very-long-directory-name-that-goes-on-and-on-and-on";

/// A tree with one of everything a non-root user can make; `reverse` creates it in
/// the opposite order. Every mtime is set explicitly (directories last).
fn build_tree(root: &Path, reverse: bool) {
    let steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| std::fs::create_dir_all(root.join("etc/conf.d")).unwrap()),
        Box::new(|| {
            write(
                &root.join("etc/passwd"),
                b"root:x:0:0::/root:/bin/sh\n",
                0o644,
            )
        }),
        Box::new(|| write(&root.join("etc/conf.d/a.conf"), b"a=1\n", 0o600)),
        Box::new(|| write(&root.join("etc.txt"), b"sorts after etc/", 0o644)),
        Box::new(|| write(&root.join("B-upper"), b"", 0o755)),
        Box::new(|| {
            std::fs::create_dir_all(root.join("bin")).unwrap();
            write(&root.join("bin/busybox"), &[0x7f; 3000], 0o4755);
        }),
        Box::new(|| symlink("busybox", root.join("bin/sh")).unwrap()),
        Box::new(|| std::fs::hard_link(root.join("bin/busybox"), root.join("bin/ls")).unwrap()),
        Box::new(|| mkfifo(&root.join("fifo"))),
        Box::new(|| {
            let deep = root.join(format!("{LONG}/{LONG}"));
            std::fs::create_dir_all(&deep).unwrap();
            write(&deep.join("file-with-a-long-name.txt"), b"deep", 0o644);
            symlink(
                deep.join("file-with-a-long-name.txt"),
                root.join("longlink"),
            )
            .unwrap();
        }),
        Box::new(|| {
            let _ = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
        }),
    ];
    let order: Vec<usize> = if reverse {
        // Parents and link targets still come first.
        vec![0, 10, 9, 8, 5, 7, 6, 4, 3, 2, 1]
    } else {
        (0..steps.len()).collect()
    };
    for i in order {
        steps[i]();
    }
    let deep = format!("{LONG}/{LONG}");
    for (i, rel) in [
        "etc/passwd",
        "etc/conf.d/a.conf",
        "etc.txt",
        "B-upper",
        "bin/busybox",
        "bin/sh",
        "fifo",
        "longlink",
        &format!("{deep}/file-with-a-long-name.txt"),
        &deep,
        LONG,
        "etc/conf.d",
        "etc",
        "bin",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(rel), 1_600_000_000 + i as i64, 0);
    }
}

#[test]
fn tree_layer_lists_everything_in_order() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    build_tree(&root, false);
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (bytes, stats) = writer(|out| write_tree(&root, out, opts(compression)));
        assert_eq!(compress::detect(&bytes), compression);
        let items = read_layer(&bytes, &stats);
        let deep = format!("{LONG}/{LONG}");
        assert_eq!(
            paths(&items),
            vec![
                "B-upper",
                &format!("{LONG}/"),
                &format!("{deep}/"),
                &format!("{deep}/file-with-a-long-name.txt"),
                "bin/",
                "bin/busybox",
                "bin/ls",
                "bin/sh",
                "etc/",
                "etc/conf.d/",
                "etc/conf.d/a.conf",
                "etc/passwd",
                "etc.txt",
                "fifo",
                "longlink",
            ]
        );
        let busybox = find(&items, "bin/busybox");
        assert_eq!((busybox.kind, busybox.mode), ('0', 0o4755));
        assert_eq!(busybox.data, vec![0x7f; 3000]);
        let ls = find(&items, "bin/ls");
        assert_eq!((ls.kind, ls.link.as_deref()), ('1', Some("bin/busybox")));
        assert!(ls.data.is_empty());
        let sh = find(&items, "bin/sh");
        assert_eq!((sh.kind, sh.link.as_deref()), ('2', Some("busybox")));
        assert_eq!(find(&items, "fifo").kind, '6');
        assert_eq!(find(&items, "etc/").kind, '5');
        assert_eq!(find(&items, "etc/conf.d/a.conf").mode, 0o600);
        assert_eq!(find(&items, "etc/passwd").mtime, 1_600_000_000);
        let long = find(&items, &format!("{deep}/file-with-a-long-name.txt"));
        assert_eq!(long.data, b"deep");
        assert!(long.pax.iter().any(|(k, _)| k == "path"));
        let link = find(&items, "longlink");
        assert_eq!(
            link.link.as_deref(),
            Some(
                root.join(format!("{deep}/file-with-a-long-name.txt"))
                    .to_str()
                    .unwrap()
            )
        );
        // Whole-second mtimes, short names, no xattrs: no PAX header at all.
        assert!(find(&items, "etc/passwd").pax.is_empty());
        for item in &items {
            assert_eq!(item.uid, u64::from(unsafe { libc::geteuid() }));
        }
    }
}

#[test]
fn same_tree_same_bytes_whatever_the_creation_order() {
    let tmp = Tmp::new();
    let a = tmp.dir("a");
    let b = tmp.dir("b");
    build_tree(&a, false);
    build_tree(&b, true);
    // Absolute symlink targets differ between the two roots; make them equal.
    for root in [&a, &b] {
        std::fs::remove_file(root.join("longlink")).unwrap();
        symlink("/some/where", root.join("longlink")).unwrap();
        set_mtime(&root.join("longlink"), 1_600_000_007, 0);
    }
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (first, s1) = writer(|out| write_tree(&a, out, opts(compression)));
        let (again, s2) = writer(|out| write_tree(&a, out, opts(compression)));
        let (other, s3) = writer(|out| write_tree(&b, out, opts(compression)));
        assert_eq!(first, again);
        assert_eq!(first, other, "{compression:?}");
        assert_eq!(s1, s2);
        assert_eq!(s1, s3);
    }
}

#[test]
fn subsecond_mtimes_are_truncated_and_large_files() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i % 251) as u8).collect();
    write(&root.join("big"), &big, 0o644);
    write(&root.join("small"), b"x", 0o644);
    set_mtime(&root.join("big"), 1_700_000_000, 250_000_000);
    set_mtime(&root.join("small"), 1_700_000_000, 0);
    let (bytes, stats) = writer(|out| write_tree(&root, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    let b = find(&items, "big");
    assert_eq!(b.data, big);
    assert_eq!(b.mtime, 1_700_000_000);
    assert!(b.pax.is_empty(), "no sub-second PAX mtime: {:?}", b.pax);
    assert!(find(&items, "small").pax.is_empty());
}

#[test]
fn empty_tree_is_just_the_end_marker() {
    let tmp = Tmp::new();
    let root = tmp.dir("empty");
    let (bytes, stats) = writer(|out| write_tree(&root, out, opts(Compression::None)));
    assert_eq!(bytes, vec![0u8; 1024]);
    assert_eq!(stats.entries, 0);
    assert_eq!(stats.digest, stats.diff_id);
}

#[test]
fn xattrs_are_pax_records_without_overlay_ones() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    write(&root.join("f"), b"data", 0o644);
    if !setxattr(&root.join("f"), "user.b", b"2") {
        eprintln!("no user xattrs on this file system; skipping");
        return;
    }
    assert!(setxattr(&root.join("f"), "user.a", b"\x00\xffbinary"));
    assert!(setxattr(&root.join("f"), "user.overlay.origin", b"x"));
    set_mtime(&root.join("f"), 1_600_000_000, 0);
    let (bytes, stats) = writer(|out| write_tree(&root, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    let f = find(&items, "f");
    let xattrs: Vec<_> = f
        .pax
        .iter()
        .filter(|(k, _)| k.starts_with("SCHILY.xattr."))
        .cloned()
        .collect();
    assert_eq!(
        xattrs,
        vec![
            (
                "SCHILY.xattr.user.a".to_string(),
                b"\x00\xffbinary".to_vec()
            ),
            ("SCHILY.xattr.user.b".to_string(), b"2".to_vec()),
        ]
    );
    if is_root() {
        assert!(setxattr(&root.join("f"), "trusted.overlay.impure", b"y"));
        assert!(setxattr(
            &root.join("f"),
            "security.capability",
            &[1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ));
        let (bytes, stats) = writer(|out| write_tree(&root, out, DiffOptions::default()));
        let items = read_layer(&bytes, &stats);
        let keys: Vec<_> = find(&items, "f")
            .pax
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(
            keys,
            vec![
                "SCHILY.xattr.security.capability",
                "SCHILY.xattr.user.a",
                "SCHILY.xattr.user.b"
            ]
        );
    }
}

#[test]
fn devices_and_large_ids_as_root() {
    if !is_root() {
        return;
    }
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    mknod(&root.join("null"), libc::S_IFCHR, 1, 3);
    mknod(&root.join("sda"), libc::S_IFBLK, 8, 0);
    mknod(&root.join("zero0"), libc::S_IFCHR, 0, 0);
    write(&root.join("owned"), b"", 0o644);
    chown(&root.join("owned"), 3_000_000, 1000);
    let (bytes, stats) = writer(|out| write_tree(&root, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    assert_eq!(find(&items, "null").dev, Some((1, 3)));
    assert_eq!(find(&items, "sda").kind, '4');
    assert_eq!(find(&items, "sda").dev, Some((8, 0)));
    // In a plain tree a 0/0 device is just a device.
    assert_eq!(find(&items, "zero0").kind, '3');
    let owned = find(&items, "owned");
    assert!(owned
        .pax
        .contains(&("uid".to_string(), b"3000000".to_vec())));
    assert_eq!(owned.gid, 1000);
}

/// An upper dir as overlayfs leaves it: whiteouts (0/0 devices, shared by hard
/// link as recent kernels do), an opaque directory, overlay xattrs.
fn build_upper(upper: &Path) {
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    write(&upper.join("etc/passwd"), b"changed\n", 0o644);
    mknod(&upper.join("etc/shadow"), libc::S_IFCHR, 0, 0);
    std::fs::hard_link(upper.join("etc/shadow"), upper.join("gone")).unwrap();
    std::fs::create_dir_all(upper.join("var/cache")).unwrap();
    write(&upper.join("var/cache/new"), b"n", 0o644);
    assert!(setxattr(
        &upper.join("var/cache"),
        "trusted.overlay.opaque",
        b"y"
    ));
    assert!(setxattr(&upper.join("var"), "trusted.overlay.impure", b"y"));
    assert!(setxattr(
        &upper.join("etc"),
        "trusted.overlay.origin",
        b"\x00\xfb"
    ));
    std::fs::create_dir_all(upper.join("opt")).unwrap();
    assert!(setxattr(&upper.join("opt"), "user.overlay.opaque", b"y"));
    std::fs::create_dir_all(upper.join("notopaque")).unwrap();
    assert!(setxattr(
        &upper.join("notopaque"),
        "trusted.overlay.opaque",
        b"x"
    ));
    for rel in [
        "etc/passwd",
        "var/cache/new",
        "etc",
        "var/cache",
        "var",
        "opt",
        "notopaque",
    ] {
        set_mtime(&upper.join(rel), 1_650_000_000, 0);
    }
}

#[test]
fn upper_whiteouts_and_opaque_dirs() {
    if !is_root() {
        return;
    }
    let tmp = Tmp::new();
    let upper = tmp.dir("upper");
    build_upper(&upper);
    let (bytes, stats) = writer(|out| write_upper(&upper, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    assert_eq!(
        paths(&items),
        vec![
            "etc/",
            "etc/passwd",
            "etc/.wh.shadow",
            ".wh.gone",
            "notopaque/",
            "opt/",
            "opt/.wh..wh..opq",
            "var/",
            "var/cache/",
            "var/cache/.wh..wh..opq",
            "var/cache/new",
        ]
    );
    for wh in [
        "etc/.wh.shadow",
        ".wh.gone",
        "opt/.wh..wh..opq",
        "var/cache/.wh..wh..opq",
    ] {
        let item = find(&items, wh);
        assert_eq!((item.kind, item.data.len()), ('0', 0), "{wh}");
    }
    assert_eq!(find(&items, "etc/.wh.shadow").mode, 0o600);
    assert_eq!(find(&items, "var/cache/.wh..wh..opq").mode, 0o755);
    // No overlay xattr anywhere.
    for item in &items {
        assert!(
            item.pax.iter().all(|(k, _)| !k.contains("overlay")),
            "{}: {:?}",
            item.path,
            item.pax
        );
    }
    // The same upper as a plain tree keeps the devices.
    let (bytes, stats) = writer(|out| write_tree(&upper, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    assert_eq!(find(&items, "etc/shadow").kind, '3');
    assert_eq!(find(&items, "gone").kind, '1');
    assert!(!paths(&items).contains(&"var/cache/.wh..wh..opq"));
}

#[test]
fn upper_with_lowers_drops_whiteouts_that_hide_nothing() {
    if !is_root() {
        return;
    }
    let tmp = Tmp::new();
    let upper = tmp.dir("upper");
    build_upper(&upper);
    let lower = tmp.dir("lower");
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    write(&lower.join("etc/shadow"), b"", 0o600);
    std::fs::create_dir_all(lower.join("var/cache")).unwrap();
    let (bytes, stats) = writer(|out| {
        write_upper_with_lowers(
            &upper,
            std::slice::from_ref(&lower),
            out,
            DiffOptions::default(),
        )
    });
    let items = read_layer(&bytes, &stats);
    let p = paths(&items);
    assert!(p.contains(&"etc/.wh.shadow"));
    assert!(p.contains(&"var/cache/.wh..wh..opq"));
    assert!(!p.contains(&".wh.gone"), "{p:?}");
    assert!(!p.contains(&"opt/.wh..wh..opq"), "{p:?}");
}

#[test]
fn upper_with_redirect_or_metacopy_is_refused() {
    if !is_root() {
        return;
    }
    for attr in ["trusted.overlay.redirect", "trusted.overlay.metacopy"] {
        let tmp = Tmp::new();
        let upper = tmp.dir("upper");
        std::fs::create_dir_all(upper.join("moved")).unwrap();
        assert!(setxattr(&upper.join("moved"), attr, b"/orig"));
        let err = write_upper(&upper, Vec::new(), DiffOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
}

#[test]
fn upper_changes_against_lowers() {
    if !is_root() {
        return;
    }
    let tmp = Tmp::new();
    let upper = tmp.dir("upper");
    build_upper(&upper);
    let top = tmp.dir("top");
    let bottom = tmp.dir("bottom");
    std::fs::create_dir_all(bottom.join("etc")).unwrap();
    write(&bottom.join("etc/passwd"), b"", 0o644);
    write(&bottom.join("etc/shadow"), b"", 0o644);
    write(&bottom.join("gone"), b"", 0o644);
    std::fs::create_dir_all(bottom.join("var/cache/old/deeper")).unwrap();
    write(&bottom.join("var/cache/new"), b"", 0o644);
    write(&bottom.join("var/cache/zzz"), b"", 0o644);
    std::fs::create_dir_all(top.join("var/cache")).unwrap();
    write(&top.join("var/cache/aaa"), b"", 0o644);
    // The top lower deleted `gone` already.
    mknod(&top.join("gone"), libc::S_IFCHR, 0, 0);
    let got = upper_changes(&upper, &[top.clone(), bottom.clone()]).unwrap();
    let got: Vec<(&str, ChangeKind)> = got.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    use ChangeKind::*;
    assert_eq!(
        got,
        vec![
            ("/etc", Modified),
            ("/etc/passwd", Modified),
            ("/etc/shadow", Deleted),
            ("/notopaque", Added),
            ("/opt", Added),
            ("/var", Modified),
            ("/var/cache", Modified),
            ("/var/cache/aaa", Deleted),
            ("/var/cache/new", Modified),
            ("/var/cache/old", Deleted),
            ("/var/cache/zzz", Deleted),
        ]
    );
    assert_eq!(Modified.code(), 0);
    assert_eq!(Added.code(), 1);
    assert_eq!(Deleted.code(), 2);
}

/// Two trees with the same content and mtimes.
fn twin_trees(tmp: &Tmp) -> (PathBuf, PathBuf) {
    let old = tmp.dir("old");
    let new = tmp.dir("new");
    for root in [&old, &new] {
        std::fs::create_dir_all(root.join("etc/ssl")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/big/sub")).unwrap();
        std::fs::create_dir_all(root.join("same")).unwrap();
        std::fs::create_dir_all(root.join("dir2file")).unwrap();
        write(&root.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o644);
        write(&root.join("etc/ssl/cert"), b"CERT", 0o644);
        write(&root.join("etc/motd"), b"hello", 0o644);
        write(&root.join("etc/mode"), b"m", 0o644);
        write(&root.join("usr/lib/big/sub/f"), b"f", 0o644);
        write(&root.join("same/file"), b"s", 0o644);
        write(&root.join("file2dir"), b"x", 0o644);
        symlink("target-a", root.join("etc/link")).unwrap();
        for rel in [
            "etc/hosts",
            "etc/ssl/cert",
            "etc/motd",
            "etc/mode",
            "usr/lib/big/sub/f",
            "same/file",
            "file2dir",
            "etc/link",
            "etc/ssl",
            "etc",
            "usr/lib/big/sub",
            "usr/lib/big",
            "usr/lib",
            "usr",
            "same",
            "dir2file",
        ] {
            set_mtime(&root.join(rel), 1_600_000_000, 123_000_000);
        }
    }
    (old, new)
}

#[test]
fn changes_between_trees() {
    let tmp = Tmp::new();
    let (old, new) = twin_trees(&tmp);
    assert!(changes(&old, &new).unwrap().is_empty());
    let (bytes, stats) = writer(|out| write_changes(&old, &new, out, opts(Compression::None)));
    assert!(read_layer(&bytes, &stats).is_empty());

    // Same size, new mtime: modified (contents are not compared).
    write(&new.join("etc/motd"), b"HELLO", 0o644);
    std::fs::set_permissions(new.join("etc/mode"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(new.join("etc/link")).unwrap();
    symlink("target-b", new.join("etc/link")).unwrap();
    set_mtime(&new.join("etc/link"), 1_600_000_000, 123_000_000);
    write(&new.join("etc/ssl/added"), b"new", 0o644);
    std::fs::remove_dir_all(new.join("usr/lib/big")).unwrap();
    std::fs::remove_file(new.join("file2dir")).unwrap();
    std::fs::create_dir(new.join("file2dir")).unwrap();
    write(&new.join("file2dir/inside"), b"i", 0o644);
    std::fs::remove_dir_all(new.join("dir2file")).unwrap();
    write(&new.join("dir2file"), b"now a file", 0o644);
    // Contents changed but size and mtime restored: not seen, as in Docker.
    write(&new.join("etc/hosts"), b"127.0.0.1 localhosT\n", 0o644);
    set_mtime(&new.join("etc/hosts"), 1_600_000_000, 123_000_000);
    // Sub-second precision lost on one side only: still the same time.
    set_mtime(&new.join("same/file"), 1_600_000_000, 0);
    // Directory mtimes changed by the edits are not a change by themselves.
    set_mtime(&new.join("usr/lib"), 1_600_000_000, 123_000_000);
    set_mtime(&new.join("usr"), 1_600_000_000, 123_000_000);

    use ChangeKind::*;
    let got = changes(&old, &new).unwrap();
    let got: Vec<(&str, ChangeKind)> = got.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    let expected = vec![
        ("/dir2file", Modified),
        ("/etc", Modified),
        ("/etc/link", Modified),
        ("/etc/mode", Modified),
        ("/etc/motd", Modified),
        ("/etc/ssl", Modified),
        ("/etc/ssl/added", Added),
        ("/file2dir", Modified),
        ("/file2dir/inside", Added),
        ("/usr", Modified),
        ("/usr/lib", Modified),
        ("/usr/lib/big", Deleted),
    ];
    assert_eq!(got, expected);

    let (bytes, stats) = writer(|out| write_changes(&old, &new, out, DiffOptions::default()));
    let items = read_layer(&bytes, &stats);
    assert_eq!(
        paths(&items),
        vec![
            "dir2file",
            "etc/",
            "etc/link",
            "etc/mode",
            "etc/motd",
            "etc/ssl/",
            "etc/ssl/added",
            "file2dir/",
            "file2dir/inside",
            "usr/",
            "usr/lib/",
            "usr/lib/.wh.big",
        ]
    );
    assert_eq!(find(&items, "etc/link").link.as_deref(), Some("target-b"));
    assert_eq!(find(&items, "etc/motd").data, b"HELLO");
    assert_eq!(find(&items, "dir2file").data, b"now a file");
    assert_eq!(find(&items, "usr/lib/.wh.big").kind, '0');
}

#[test]
fn changes_see_xattrs_and_owners() {
    let tmp = Tmp::new();
    let (old, new) = twin_trees(&tmp);
    if !setxattr(&new.join("etc/motd"), "user.x", b"1") {
        return;
    }
    let got = changes(&old, &new).unwrap();
    assert_eq!(
        got.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        vec!["/etc", "/etc/motd"]
    );
    if is_root() {
        chown(&new.join("same/file"), 1, 1);
        let got = changes(&old, &new).unwrap();
        assert!(got.contains(&Change {
            path: "/same/file".into(),
            kind: ChangeKind::Modified
        }));
    }
}

#[test]
fn to_file_renames_only_complete_layers() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    build_tree(&root, false);
    let out = tmp.dir("out");
    let dest = out.join("layer.tgz");
    let stats = write_tree_to_file(&root, &dest, DiffOptions::default()).unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    read_layer(&bytes, &stats);
    let (again, _) = writer(|o| write_tree(&root, o, DiffOptions::default()));
    assert_eq!(bytes, again);

    let missing = tmp.path().join("missing");
    let bad = out.join("bad.tgz");
    let err = write_tree_to_file(&missing, &bad, DiffOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("missing"), "{err}");
    let err = write_changes_to_file(&root, &missing, &bad, DiffOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let err = write_upper_to_file(&missing, &[], &bad, DiffOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["layer.tgz"]);
}

#[test]
fn a_failing_walk_leaves_no_file() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    let noise: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&root.join("a-big-file"), &noise, 0o644);
    let dest = tmp.path().join("layer");
    let err = if is_root() {
        // Root reads everything: fail on an overlay feature the diff refuses instead,
        // after megabytes went out.
        std::fs::create_dir(root.join("z-moved")).unwrap();
        assert!(setxattr(
            &root.join("z-moved"),
            "trusted.overlay.redirect",
            b"/x"
        ));
        let err = write_upper_to_file(&root, &[], &dest, DiffOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        err
    } else {
        write(&root.join("z-secret"), b"s", 0o000);
        let err = write_tree_to_file(&root, &dest, DiffOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        err
    };
    assert!(err.to_string().contains("z-"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["root"]);
}

#[test]
fn levels_are_checked() {
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    for (compression, level) in [
        (Compression::Gzip, 10),
        (Compression::Gzip, -1),
        (Compression::Zstd, 23),
    ] {
        let err = write_tree(
            &root,
            Vec::new(),
            DiffOptions {
                compression,
                level: Some(level),
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    build_tree(&root, false);
    let (fast, s1) = writer(|o| {
        write_tree(
            &root,
            o,
            DiffOptions {
                compression: Compression::Gzip,
                level: Some(1),
            },
        )
    });
    let (slow, s9) = writer(|o| {
        write_tree(
            &root,
            o,
            DiffOptions {
                compression: Compression::Gzip,
                level: Some(9),
            },
        )
    });
    assert_eq!(s1.diff_id, s9.diff_id);
    assert_eq!(read_layer(&fast, &s1), read_layer(&slow, &s9));
}

/// A writer that fails after some bytes: the error names the output and the
/// compressor and walker both stop.
#[test]
fn output_errors_are_reported() {
    struct Failing(usize);
    impl std::io::Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let tmp = Tmp::new();
    let root = tmp.dir("root");
    let noise: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&root.join("big"), &noise, 0o644);
    for compression in [Compression::Gzip, Compression::None] {
        let err = write_tree(&root, Failing(100_000), opts(compression)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(err.to_string().contains("layer output"), "{err}");
    }
}
