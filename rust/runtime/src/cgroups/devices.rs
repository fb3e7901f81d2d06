//! Device rules (`linux.resources.devices`), checked and normalized once for both
//! cgroup versions: v1 writes them to `devices.allow`/`devices.deny`, v2 compiles
//! them to an eBPF program (`v2/devices_bpf.rs`).
//!
//! Semantics (the same on both versions, as far as v1 allows): rules are read in
//! order and the last rule that matches an access decides; nothing matching means
//! deny. An allow rule matches when it grants every access asked for; a deny rule
//! matches when it forbids any of them (the kernel's v1 rules). A type `a` rule
//! with wildcard numbers and all of `rwm` resets everything (allow all or deny
//! all); a type `a` rule with numbers or partial access stands for the same rule
//! on both `c` and `b`.

use crate::error::{Error, Result};
use crate::spec::DeviceRule;

/// Access bits, as the kernel's BPF device context numbers them.
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
pub const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKind {
    All,
    Char,
    Block,
}

/// A checked device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: DevKind,
    /// `None` is the wildcard.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits, never 0.
    pub access: u32,
}

impl Rule {
    /// Whether the rule matches every device and every access.
    pub fn matches_everything(&self) -> bool {
        self.kind == DevKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }

    /// The access string, in `rwm` order.
    pub fn access_string(&self) -> String {
        let mut s = String::new();
        if self.access & ACC_READ != 0 {
            s.push('r');
        }
        if self.access & ACC_WRITE != 0 {
            s.push('w');
        }
        if self.access & ACC_MKNOD != 0 {
            s.push('m');
        }
        s
    }

    /// The lines a v1 `devices.allow`/`devices.deny` file takes for this rule:
    /// `a` alone for a full reset, one `c 1:3 rwm` line otherwise (two, `c` and
    /// `b`, for a type `a` rule with numbers or partial access).
    pub fn v1_lines(&self) -> Vec<String> {
        if self.matches_everything() {
            return vec!["a".to_string()];
        }
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let body = format!(
            "{}:{} {}",
            num(self.major),
            num(self.minor),
            self.access_string()
        );
        match self.kind {
            DevKind::Char => vec![format!("c {body}")],
            DevKind::Block => vec![format!("b {body}")],
            DevKind::All => vec![format!("c {body}"), format!("b {body}")],
        }
    }
}

/// A device number from the spec: absent or negative is the wildcard; it must fit
/// the 32 bits the kernel (and the eBPF immediates) take.
fn number(rule: &DeviceRule, what: &str, n: Option<i64>) -> Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) if n <= i32::MAX as i64 => Ok(Some(n as u32)),
        Some(n) => Err(Error::Config(format!(
            "device rule {rule:?}: {what} number {n} is out of range"
        ))),
    }
}

/// Checks and normalizes one rule.
pub fn normalize(rule: &DeviceRule) -> Result<Rule> {
    let kind = match rule.kind.as_deref() {
        None | Some("a") => DevKind::All,
        Some("c") | Some("u") => DevKind::Char,
        Some("b") => DevKind::Block,
        Some(other) => {
            return Err(Error::Config(format!(
                "device rule type {other:?} is not one of a, b, c"
            )))
        }
    };
    let access = match rule.access.as_deref() {
        None | Some("") => ACC_ALL,
        Some(s) => {
            let mut bits = 0;
            for c in s.chars() {
                bits |= match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => {
                        return Err(Error::Config(format!(
                            "device rule access {s:?}: {c:?} is not one of r, w, m"
                        )))
                    }
                };
            }
            bits
        }
    };
    Ok(Rule {
        allow: rule.allow,
        kind,
        major: number(rule, "major", rule.major)?,
        minor: number(rule, "minor", rule.minor)?,
        access,
    })
}

/// Checks and normalizes every rule, in order.
pub fn normalize_all(rules: &[DeviceRule]) -> Result<Vec<Rule>> {
    rules.iter().map(normalize).collect()
}

#[cfg(test)]
pub(crate) fn rule(
    allow: bool,
    kind: &str,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind: if kind.is_empty() {
            None
        } else {
            Some(kind.to_string())
        },
        major,
        minor,
        access: if access.is_empty() {
            None
        } else {
            Some(access.to_string())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &DeviceRule) -> Vec<String> {
        normalize(r).unwrap().v1_lines()
    }

    #[test]
    fn v1_formatting() {
        assert_eq!(
            lines(&rule(true, "c", Some(1), Some(3), "rwm")),
            vec!["c 1:3 rwm"]
        );
        assert_eq!(
            lines(&rule(true, "c", Some(1), Some(3), "mwr")),
            vec!["c 1:3 rwm"]
        );
        assert_eq!(
            lines(&rule(false, "b", Some(8), None, "w")),
            vec!["b 8:* w"]
        );
        assert_eq!(lines(&rule(true, "c", None, None, "m")), vec!["c *:* m"]);
        assert_eq!(
            lines(&rule(true, "c", Some(-1), Some(-1), "")),
            vec!["c *:* rwm"]
        );
        assert_eq!(lines(&rule(false, "", None, None, "")), vec!["a"]);
        assert_eq!(lines(&rule(false, "a", None, None, "rwm")), vec!["a"]);
        assert_eq!(
            lines(&rule(true, "a", Some(5), Some(1), "rw")),
            vec!["c 5:1 rw", "b 5:1 rw"]
        );
        assert_eq!(
            lines(&rule(true, "a", None, None, "m")),
            vec!["c *:* m", "b *:* m"]
        );
    }

    #[test]
    fn invalid_rules() {
        assert!(normalize(&rule(true, "p", None, None, "")).is_err());
        assert!(normalize(&rule(true, "c", None, None, "rx")).is_err());
        assert!(normalize(&rule(true, "c", Some(1 << 40), None, "r")).is_err());
    }
}
