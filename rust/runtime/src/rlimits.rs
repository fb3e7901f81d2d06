//! rlimits: names to resources, resolved before fork, applied in the child.

use crate::error::{Error, Result};
use crate::spec::Rlimit;

const TABLE: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
];

pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, _)| *n)
}

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
    pub name: &'static str,
}

pub fn resolve(rlimits: &[Rlimit]) -> Result<Vec<Limit>> {
    rlimits
        .iter()
        .map(|r| {
            let (name, resource) = TABLE
                .iter()
                .find(|(n, _)| *n == r.kind)
                .ok_or_else(|| Error::Config(format!("unknown rlimit {:?}", r.kind)))?;
            if r.soft > r.hard {
                return Err(Error::Config(format!(
                    "{name}: soft limit {} above hard limit {}",
                    r.soft, r.hard
                )));
            }
            Ok(Limit {
                resource: *resource,
                soft: r.soft,
                hard: r.hard,
                name,
            })
        })
        .collect()
}

pub fn apply(limits: &[Limit]) -> Result<()> {
    for l in limits {
        let rl = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: rl is a valid rlimit.
        if unsafe { libc::setrlimit(l.resource, &rl) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(Error::sys(
                format!(
                    "setrlimit {} soft={} hard={} (raising a hard limit needs CAP_SYS_RESOURCE)",
                    l.name, l.soft, l.hard
                ),
                err,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names() {
        let r = resolve(&[Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            hard: 10,
            soft: 5,
        }])
        .unwrap();
        assert_eq!(r[0].resource, libc::RLIMIT_NOFILE);
        assert!(resolve(&[Rlimit {
            kind: "RLIMIT_BOGUS".into(),
            hard: 1,
            soft: 1
        }])
        .is_err());
        assert!(resolve(&[Rlimit {
            kind: "RLIMIT_CORE".into(),
            hard: 1,
            soft: 2
        }])
        .is_err());
    }
}
