//! v1 devices: `a` to `devices.deny` (deny everything), then each rule in order
//! to `devices.allow` or `devices.deny` (`c 1:3 rwm`, `*` for a wildcard number).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cgroups::devices::normalize_all;
use crate::cgroups::write_file;
use crate::error::{Error, Result};
use crate::spec::DeviceRule;

pub(super) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let rules = normalize_all(rules)?;
    write_file(&dir.join("devices.deny"), "a")?;
    // One open per file, one write(2) per rule (the kernel takes one rule per
    // write): a kernfs open costs more than the write.
    let (mut allow, mut deny) = (
        RuleFile::new(dir, "devices.allow"),
        RuleFile::new(dir, "devices.deny"),
    );
    for rule in &rules {
        let file = if rule.allow { &mut allow } else { &mut deny };
        for line in rule.v1_lines() {
            file.write(&line)?;
        }
    }
    Ok(())
}

/// A devices.allow or devices.deny file, opened at its first rule.
struct RuleFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl RuleFile {
    fn new(dir: &Path, name: &str) -> RuleFile {
        RuleFile {
            path: dir.join(name),
            file: None,
        }
    }

    fn write(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        let err = |e| {
            Error::sys(
                format!("cannot write {line:?} to {}", self.path.display()),
                e,
            )
        };
        if self.file.is_none() {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(err)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        // One call: a rule cut in two would be two (bad) rules.
        match f.write(line.as_bytes()) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(_) => Err(err(io::Error::new(io::ErrorKind::WriteZero, "short write"))),
            Err(e) => Err(err(e)),
        }
    }
}
