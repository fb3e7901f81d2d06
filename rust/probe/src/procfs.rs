//! Readers and pure parsers for the /proc files the probe reports.

use std::fs;
use std::io;
use std::path::Path;

use crate::json::Json;

/// The namespaces listed under /proc/self/ns that the probe reports.
pub const NAMESPACES: &[&str] = &[
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "user",
    "uts",
];

/// Formats an I/O error as "context: message", without std's " (os error N)" suffix.
pub fn describe(context: &str, err: &io::Error) -> String {
    let msg = err.to_string();
    let msg = match msg.find(" (os error ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    format!("{context}: {msg}")
}

/// Reads a file as (lossy) UTF-8 text; on failure records the error and returns `None`.
pub fn read_text(path: impl AsRef<Path>, errors: &mut Vec<String>) -> Option<String> {
    let path = path.as_ref();
    match fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            errors.push(describe(&path.display().to_string(), &e));
            None
        }
    }
}

/// Returns the value of a `Key:\tvalue` line from /proc/<pid>/status, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Decodes the octal escapes (`\040` for a space, `\134` for a backslash, ...)
/// that the kernel uses in mountinfo paths. Invalid escapes are kept verbatim.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/mountinfo (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u64,
    pub parent: u64,
    pub major_minor: String,
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

/// Parses one mountinfo line:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent = fields.next()?.parse().ok()?;
    let major_minor = fields.next()?.to_owned();
    let root = unescape_octal(fields.next()?);
    let mount_point = unescape_octal(fields.next()?);
    let options = fields.next()?.to_owned();
    // Zero or more optional fields, terminated by a single "-".
    let mut optional = Vec::new();
    loop {
        match fields.next()? {
            "-" => break,
            field => optional.push(field.to_owned()),
        }
    }
    let fstype = fields.next()?.to_owned();
    let source = unescape_octal(fields.next().unwrap_or(""));
    let super_options = fields.next().unwrap_or("").to_owned();
    Some(MountInfo {
        id,
        parent,
        major_minor,
        root,
        mount_point,
        options,
        optional,
        fstype,
        source,
        super_options,
    })
}

impl MountInfo {
    pub fn to_json(&self) -> Json {
        Json::obj([
            ("id", self.id.into()),
            ("parent", self.parent.into()),
            ("major_minor", self.major_minor.as_str().into()),
            ("root", self.root.as_str().into()),
            ("mount_point", self.mount_point.as_str().into()),
            ("options", self.options.as_str().into()),
            (
                "optional",
                Json::arr(self.optional.iter().map(String::as_str)),
            ),
            ("fstype", self.fstype.as_str().into()),
            ("source", self.source.as_str().into()),
            ("super_options", self.super_options.as_str().into()),
        ])
    }
}

/// Reads /proc/self/mountinfo as a JSON array (null if unreadable).
pub fn mounts(errors: &mut Vec<String>) -> Json {
    let Some(text) = read_text("/proc/self/mountinfo", errors) else {
        return Json::Null;
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match parse_mountinfo_line(line) {
            Some(m) => out.push(m.to_json()),
            None => errors.push(format!("/proc/self/mountinfo: malformed line: {line}")),
        }
    }
    Json::Arr(out)
}

/// One line of /proc/self/cgroup: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub hierarchy: u64,
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_cgroup_line(line: &str) -> Option<CgroupEntry> {
    let mut parts = line.splitn(3, ':');
    let hierarchy = parts.next()?.parse().ok()?;
    let controllers = parts
        .next()?
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let path = parts.next()?.to_owned();
    Some(CgroupEntry {
        hierarchy,
        controllers,
        path,
    })
}

impl CgroupEntry {
    pub fn to_json(&self) -> Json {
        Json::obj([
            ("hierarchy", self.hierarchy.into()),
            (
                "controllers",
                Json::arr(self.controllers.iter().map(String::as_str)),
            ),
            ("path", self.path.as_str().into()),
        ])
    }
}

/// Reads /proc/self/cgroup; `None` if unreadable.
pub fn cgroup_entries(errors: &mut Vec<String>) -> Option<Vec<CgroupEntry>> {
    let text = read_text("/proc/self/cgroup", errors)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match parse_cgroup_line(line) {
            Some(entry) => out.push(entry),
            None => errors.push(format!("/proc/self/cgroup: malformed line: {line}")),
        }
    }
    Some(out)
}

/// Extracts the inode from a namespace link such as `net:[4026531840]`.
pub fn parse_ns_link(link: &str) -> Option<u64> {
    let start = link.find(":[")? + 2;
    let end = start + link[start..].find(']')?;
    link[start..end].parse().ok()
}

/// Reads every /proc/self/ns/<name> link into an object name -> inode (or null).
pub fn namespaces(errors: &mut Vec<String>) -> Json {
    Json::obj(NAMESPACES.iter().map(|name| {
        let path = format!("/proc/self/ns/{name}");
        let inode = match fs::read_link(&path) {
            Ok(target) => {
                let target = target.to_string_lossy();
                let inode = parse_ns_link(&target);
                if inode.is_none() {
                    errors.push(format!("{path}: unexpected link {target}"));
                }
                inode
            }
            Err(e) => {
                errors.push(describe(&path, &e));
                None
            }
        };
        (*name, inode.into())
    }))
}

/// Reads /proc/self/oom_score_adj as a number.
pub fn oom_score_adj(errors: &mut Vec<String>) -> Option<i64> {
    let text = read_text("/proc/self/oom_score_adj", errors)?;
    text.trim().parse().ok()
}

/// Reads /proc/sys/<name with dots as slashes>, trimmed.
pub fn sysctl(name: &str, errors: &mut Vec<String>) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    read_text(path, errors).map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_sequences() {
        assert_eq!(unescape_octal(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape_octal(r"a\011b\012c\134d"), "a\tb\nc\\d");
        // Incomplete or non-octal escapes are left as they are.
        assert_eq!(unescape_octal(r"x\04"), r"x\04");
        assert_eq!(unescape_octal(r"x\089y"), r"x\089y");
        assert_eq!(unescape_octal(r"end\"), r"end\");
        // Escaped UTF-8 bytes are reassembled.
        assert_eq!(unescape_octal(r"\303\251"), "é");
    }

    #[test]
    fn parses_mountinfo_with_optional_fields() {
        let line = r"36 35 98:0 /mnt1 /mnt\040two rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m.id, 36);
        assert_eq!(m.parent, 35);
        assert_eq!(m.major_minor, "98:0");
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mount_point, "/mnt two");
        assert_eq!(m.options, "rw,noatime");
        assert_eq!(m.optional, vec!["master:1", "shared:7"]);
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, "rw,errors=continue");
    }

    #[test]
    fn parses_mountinfo_without_optional_fields() {
        let m = parse_mountinfo_line("22 1 0:21 / /proc rw,nosuid - proc proc rw").unwrap();
        assert!(m.optional.is_empty());
        assert_eq!(m.fstype, "proc");
        assert_eq!(m.source, "proc");
        assert_eq!(m.super_options, "rw");
        assert!(parse_mountinfo_line("garbage").is_none());
        assert!(parse_mountinfo_line("1 2 0:1 / / rw no-separator").is_none());
    }

    #[test]
    fn parses_cgroup_lines() {
        let v2 = parse_cgroup_line("0::/user.slice/session-1.scope").unwrap();
        assert_eq!(v2.hierarchy, 0);
        assert!(v2.controllers.is_empty());
        assert_eq!(v2.path, "/user.slice/session-1.scope");

        let v1 = parse_cgroup_line("4:cpu,cpuacct:/docker/abc").unwrap();
        assert_eq!(v1.hierarchy, 4);
        assert_eq!(v1.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(v1.path, "/docker/abc");

        let named = parse_cgroup_line("1:name=systemd:/a:b").unwrap();
        assert_eq!(named.controllers, vec!["name=systemd"]);
        assert_eq!(named.path, "/a:b");

        assert!(parse_cgroup_line("x::/").is_none());
        assert!(parse_cgroup_line("0:").is_none());
    }

    #[test]
    fn parses_ns_links_and_status() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(
            parse_ns_link("pid_for_children:[4026531836]"),
            Some(4026531836)
        );
        assert_eq!(parse_ns_link("bogus"), None);

        let status = "Name:\tprobe\nUmask:\t0022\nSeccomp:\t2\nCapEff:\t000001ffffffffff\n";
        assert_eq!(status_field(status, "Umask"), Some("0022"));
        assert_eq!(status_field(status, "Seccomp"), Some("2"));
        assert_eq!(status_field(status, "CapEff"), Some("000001ffffffffff"));
        assert_eq!(status_field(status, "CapAmb"), None);
    }

    #[test]
    fn describe_strips_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe("x", &e), "x: No such file or directory");
    }
}
