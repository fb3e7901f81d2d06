//! Removing whole directory trees (a removed container's directory, its writable
//! layer), without following symbolic links out of the tree.

use std::io::ErrorKind;
use std::path::Path;

use crate::error::{Error, Result};

/// Removes `path` and everything under it; a path already gone is fine. Symbolic
/// links are removed, never followed (std's `remove_dir_all` works through
/// `openat`/`unlinkat` with `O_NOFOLLOW`, so a link swapped in meanwhile cannot lead
/// it out of the tree).
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
        Ok(meta) if !meta.is_dir() => {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(path, e)),
                _ => Ok(()),
            };
        }
        Ok(_) => {}
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("skiff-tree-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn removes_a_tree_but_not_what_its_links_point_to() {
        let base = scratch("links");
        let outside = base.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"x").unwrap();
        let tree = base.join("tree");
        fs::create_dir_all(tree.join("a/b/c")).unwrap();
        fs::write(tree.join("a/b/c/f"), b"data").unwrap();
        symlink(&outside, tree.join("a/link-to-outside")).unwrap();
        symlink(outside.join("keep"), tree.join("file-link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"x");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_paths_files_and_links_at_the_top() {
        let base = scratch("top");
        remove_tree(&base.join("missing")).unwrap();
        fs::write(base.join("file"), b"x").unwrap();
        remove_tree(&base.join("file")).unwrap();
        assert!(!base.join("file").exists());
        let target = base.join("dir");
        fs::create_dir(&target).unwrap();
        symlink(&target, base.join("link")).unwrap();
        remove_tree(&base.join("link")).unwrap();
        assert!(target.is_dir() && fs::symlink_metadata(base.join("link")).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
