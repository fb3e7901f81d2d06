//! Member names to safe relative paths.
//!
//! Lexical only, like Docker (`filepath.Clean` then a breakout check): leading `/` are
//! dropped, `.` and empty components vanish, `..` pops the previous component and is
//! an error when it would climb above the root. Symlinks are dealt with at the syscall
//! level (`openat2(RESOLVE_IN_ROOT)`), never here.

/// The longest path the kernel takes (PATH_MAX, counting the NUL).
pub(crate) const PATH_MAX: usize = libc::PATH_MAX as usize;
/// The longest name of one directory entry.
pub(crate) const NAME_MAX: usize = 255;

/// Writes the normalized form of `name` into `out`: components joined by `/`, no
/// leading or trailing `/`, empty for the root itself. On error `out` is unspecified
/// and the reason names what is wrong.
pub(crate) fn normalize(name: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    if name.contains(&0) {
        return Err("contains a NUL byte");
    }
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => match out.iter().rposition(|&b| b == b'/') {
                Some(i) => out.truncate(i),
                None if !out.is_empty() => out.clear(),
                None => return Err("climbs above the layer root with `..`"),
            },
            _ => {
                if comp.len() > NAME_MAX {
                    return Err("has a path component longer than 255 bytes");
                }
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    if out.len() >= PATH_MAX {
        return Err("is longer than PATH_MAX");
    }
    Ok(())
}

/// Where the last component of a normalized path starts, and where its parent ends.
pub(crate) fn split(path: &[u8]) -> (usize, usize) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (i, i + 1),
        None => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(name: &str) -> Result<String, &'static str> {
        let mut out = Vec::new();
        normalize(name.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn cleans_like_docker() {
        assert_eq!(norm("a/b/c").unwrap(), "a/b/c");
        assert_eq!(norm("./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(norm("/abs/ok").unwrap(), "abs/ok");
        assert_eq!(norm("///x").unwrap(), "x");
        assert_eq!(norm("a/../b").unwrap(), "b");
        assert_eq!(norm("a/b/../../c").unwrap(), "c");
        assert_eq!(norm("./").unwrap(), "");
        assert_eq!(norm("/").unwrap(), "");
        assert_eq!(norm("a/..").unwrap(), "");
    }

    #[test]
    fn refuses_escapes_and_oversize() {
        assert!(norm("..").is_err());
        assert!(norm("../evil").is_err());
        assert!(norm("a/../../evil").is_err());
        assert!(norm("/../evil").is_err());
        assert!(norm("./..").is_err());
        assert!(norm(&"x".repeat(256)).is_err());
        assert!(norm(&"x".repeat(255)).is_ok());
        assert!(norm(&["y"; 2100].join("/")).is_err());
        let mut out = Vec::new();
        assert!(normalize(b"a\0b", &mut out).is_err());
    }

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(split(b"a/b/c"), (3, 4));
        assert_eq!(split(b"c"), (0, 0));
    }
}
