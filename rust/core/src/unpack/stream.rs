//! A streaming tar reader: 512-byte blocks, PAX (`x`) and GNU long name/link (`L`,
//! `K`) extension members folded into the member they describe.
//!
//! The fields of a header (octal or base-256 numbers, the ustar prefix, device numbers)
//! are decoded by the `tar` crate's [`tar::Header`]. The block loop is ours, because
//! the crate's `Entries`
//! - splits PAX records at every `\n`, so a binary xattr value holding a 0x0a byte (a
//!   `security.capability`, say) reads as malformed and is lost, while records are in
//!   fact length-prefixed and may hold any byte;
//! - in raw mode cannot honour a PAX `size` (Go writes files over 8 GiB that way);
//! - reads data after hard links, symlinks, directories and devices whose size field is
//!   not zero, where Go and GNU tar (and so Docker) read none: two parsers must not
//!   disagree on where the next member starts.

use std::io::{self, Read};
use std::ops::Range;

/// Extension members (PAX records, long names) larger than this are refused: they
/// would only be a way to make us allocate.
const MAX_EXTENSION: u64 = 16 << 20;

const BLOCK: usize = 512;

/// What went wrong while reading the archive.
pub(crate) enum TarError {
    /// Reading the stream failed (the source, or the decompressor).
    Io(io::Error),
    /// The archive itself is malformed.
    Format(String),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

fn format<T>(msg: impl Into<String>) -> Result<T, TarError> {
    Err(TarError::Format(msg.into()))
}

/// A timestamp: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Time {
    pub secs: i64,
    pub nanos: i64,
}

/// The member kinds unpack knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// The metadata of one member.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Time,
    pub atime: Option<Time>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Bytes of data that follow (regular files only; 0 for every other kind).
    pub size: u64,
}

pub(crate) struct TarReader<R> {
    r: R,
    block: [u8; BLOCK],
    /// Data of the current member not read yet, and the padding after it.
    remaining: u64,
    pad: u64,
    /// The current member's names, copied here whatever they came from.
    path: Vec<u8>,
    link: Vec<u8>,
    /// Raw PAX data of the current member and the records in it.
    pax: Vec<u8>,
    records: Vec<(Range<usize>, Range<usize>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    skip_buf: Vec<u8>,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        Self {
            r,
            block: [0; BLOCK],
            remaining: 0,
            pad: 0,
            path: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            pax: Vec::new(),
            records: Vec::new(),
            long_name: None,
            long_link: None,
            skip_buf: Vec::new(),
        }
    }

    /// The current member's name, raw.
    pub(crate) fn path(&self) -> &[u8] {
        &self.path
    }

    /// The current member's link target, raw (empty when it has none).
    pub(crate) fn link(&self) -> &[u8] {
        &self.link
    }

    /// The current member's extended attributes (`SCHILY.xattr.<name>` records).
    pub(crate) fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.records.iter().filter_map(|(k, v)| {
            self.pax[k.clone()]
                .strip_prefix(b"SCHILY.xattr.")
                .map(|name| (name, &self.pax[v.clone()]))
        })
    }

    pub(crate) fn has_xattrs(&self) -> bool {
        self.xattrs().next().is_some()
    }

    /// Reads the current member's data; an early end of the stream is an error
    /// (`UnexpectedEof`), never a short file.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside a member's data",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// The stream after the last member (for draining the end-of-archive blocks).
    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        if self.skip_buf.is_empty() {
            self.skip_buf = vec![0; 64 * 1024];
        }
        while n > 0 {
            let want = self
                .skip_buf
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            let got = match self.r.read(&mut self.skip_buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream ends inside a member",
                    ))
                }
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads one header block; false at a clean end of stream.
    fn read_block(&mut self) -> Result<bool, TarError> {
        let mut got = 0;
        while got < BLOCK {
            match self.r.read(&mut self.block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return format("the stream ends inside a header"),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Reads the data of an extension member into a new buffer.
    fn read_extension(&mut self, size: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENSION {
            return format(format!("{what} of {size} bytes is too large"));
        }
        let mut data = vec![0; size as usize];
        self.r.read_exact(&mut data)?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Advances to the next member, skipping what is left of the current one. None at
    /// the end of the archive (a zero block, or the end of the stream at a header).
    pub(crate) fn next(&mut self) -> Result<Option<Member>, TarError> {
        self.skip(self.remaining + self.pad)?;
        self.remaining = 0;
        self.pad = 0;
        self.pax.clear();
        self.records.clear();
        self.long_name = None;
        self.long_link = None;
        let mut pending = false;
        loop {
            if !self.read_block()? {
                if pending {
                    return format(
                        "extension headers at the end of the archive describe no member",
                    );
                }
                return Ok(None);
            }
            if self.block.iter().all(|&b| b == 0) {
                if pending {
                    return format(
                        "extension headers at the end of the archive describe no member",
                    );
                }
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&self.block);
            check_checksum(header)?;
            let typeflag = self.block[156];
            let size = numeric(&self.block[124..136], || header.entry_size())?;
            match typeflag {
                b'x' => {
                    let data = self.read_extension(size, "a PAX header")?;
                    // Several PAX headers for one member: later records win.
                    let base = self.pax.len();
                    self.pax.extend_from_slice(&data);
                    parse_pax(&self.pax, base, &mut self.records)?;
                    pending = true;
                }
                b'g' => {
                    // Global PAX headers carry nothing unpack uses (Docker ignores them).
                    self.skip(size + padding(size))?;
                }
                b'L' => {
                    let mut data = self.read_extension(size, "a GNU long name")?;
                    truncate_at_nul(&mut data);
                    self.long_name = Some(data);
                    pending = true;
                }
                b'K' => {
                    let mut data = self.read_extension(size, "a GNU long link name")?;
                    truncate_at_nul(&mut data);
                    self.long_link = Some(data);
                    pending = true;
                }
                _ => return self.member(typeflag, size).map(Some),
            }
        }
    }

    fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        pax_lookup(&self.pax, &self.records, key)
    }

    fn member(&mut self, typeflag: u8, header_size: u64) -> Result<Member, TarError> {
        let header = tar::Header::from_byte_slice(&self.block);
        // Names: PAX, then GNU long names, then the header (with its ustar prefix).
        self.path.clear();
        match (
            pax_lookup(&self.pax, &self.records, b"path"),
            &self.long_name,
        ) {
            (Some(p), _) if !p.is_empty() => self.path.extend_from_slice(p),
            (_, Some(p)) => self.path.extend_from_slice(p),
            _ => self.path.extend_from_slice(&header.path_bytes()),
        }
        self.link.clear();
        match (
            pax_lookup(&self.pax, &self.records, b"linkpath"),
            &self.long_link,
        ) {
            (Some(p), _) if !p.is_empty() => self.link.extend_from_slice(p),
            (_, Some(p)) => self.link.extend_from_slice(p),
            _ => {
                if let Some(l) = header.link_name_bytes() {
                    self.link.extend_from_slice(&l);
                }
            }
        }

        let kind = match typeflag {
            // A pre-POSIX regular file whose name ends in `/` is a directory.
            b'\0' if self.path.ends_with(b"/") => Kind::Dir,
            b'0' | b'\0' | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            b'S' => return format("GNU sparse files are not supported"),
            other => {
                return format(format!(
                    "member {:?} has unsupported type {:?}",
                    String::from_utf8_lossy(&self.path),
                    char::from(other)
                ))
            }
        };
        if self
            .records
            .iter()
            .any(|(k, _)| self.pax[k.clone()].starts_with(b"GNU.sparse."))
        {
            return format("GNU sparse files (PAX) are not supported");
        }

        let mut size = header_size;
        let mut uid = numeric(&self.block[108..116], || header.uid())?;
        let mut gid = numeric(&self.block[116..124], || header.gid())?;
        let mut mtime = Time {
            secs: i64::try_from(numeric(&self.block[136..148], || header.mtime())?)
                .unwrap_or(i64::MAX),
            nanos: 0,
        };
        let mut atime = None;
        if !self.records.is_empty() {
            if let Some(v) = self.pax_value(b"size") {
                size = parse_decimal(v).ok_or_else(|| self.bad_record("size"))?;
            }
            if let Some(v) = self.pax_value(b"uid") {
                uid = parse_decimal(v).ok_or_else(|| self.bad_record("uid"))?;
            }
            if let Some(v) = self.pax_value(b"gid") {
                gid = parse_decimal(v).ok_or_else(|| self.bad_record("gid"))?;
            }
            if let Some(v) = self.pax_value(b"mtime") {
                mtime = parse_time(v).ok_or_else(|| self.bad_record("mtime"))?;
            }
            if let Some(v) = self.pax_value(b"atime") {
                atime = Some(parse_time(v).ok_or_else(|| self.bad_record("atime"))?);
            }
        }
        let mode = numeric(&self.block[100..108], || header.mode().map(u64::from))? as u32 & 0o7777;
        let (dev_major, dev_minor) = match kind {
            Kind::Char | Kind::Block => (
                numeric(&self.block[329..337], || {
                    header.device_major().map(|d| u64::from(d.unwrap_or(0)))
                })?,
                numeric(&self.block[337..345], || {
                    header.device_minor().map(|d| u64::from(d.unwrap_or(0)))
                })?,
            ),
            _ => (0, 0),
        };
        let (dev_major, dev_minor) = match (u32::try_from(dev_major), u32::try_from(dev_minor)) {
            (Ok(major), Ok(minor)) => (major, minor),
            _ => return format("device number out of range"),
        };
        // Links, directories, devices and fifos carry no data, whatever the size field
        // says (as Go's archive/tar and GNU tar read them).
        let data = match kind {
            Kind::File => size,
            _ => 0,
        };
        self.remaining = data;
        self.pad = padding(data);
        Ok(Member {
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime,
            dev_major,
            dev_minor,
            size: data,
        })
    }

    fn bad_record(&self, key: &str) -> TarError {
        TarError::Format(format!(
            "member {:?} has an invalid PAX {key} record",
            String::from_utf8_lossy(&self.path)
        ))
    }
}

/// The value of the last PAX record with `key` (later records win).
fn pax_lookup<'a>(
    pax: &'a [u8],
    records: &[(Range<usize>, Range<usize>)],
    key: &[u8],
) -> Option<&'a [u8]> {
    records
        .iter()
        .rev()
        .find(|(k, _)| &pax[k.clone()] == key)
        .map(|(_, v)| &pax[v.clone()])
}

fn field_error<T>(e: io::Error) -> Result<T, TarError> {
    format(format!("invalid header field: {e}"))
}

/// A numeric header field: blank (all NULs or spaces) reads as 0, as Go and GNU tar
/// read it; anything else is decoded by the `tar` crate (octal or base-256).
fn numeric(field: &[u8], parse: impl FnOnce() -> io::Result<u64>) -> Result<u64, TarError> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        return Ok(0);
    }
    parse().or_else(field_error)
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn truncate_at_nul(data: &mut Vec<u8>) {
    if let Some(i) = data.iter().position(|&b| b == 0) {
        data.truncate(i);
    }
}

fn check_checksum(header: &tar::Header) -> Result<(), TarError> {
    let bytes = header.as_bytes();
    let stored = header.cksum().or_else(field_error)?;
    let mut unsigned: u32 = 8 * u32::from(b' ');
    let mut signed: i32 = 8 * i32::from(b' ');
    for (i, &b) in bytes.iter().enumerate() {
        if !(148..156).contains(&i) {
            unsigned += u32::from(b);
            signed += i32::from(b as i8);
        }
    }
    // Some old writers summed signed chars; Go accepts both as well.
    if stored == unsigned || stored as i32 == signed {
        Ok(())
    } else {
        format("header checksum mismatch (not a tar archive, or a corrupt one)")
    }
}

/// Parses the PAX records in `data[start..]` (`"<len> <key>=<value>\n"`, the length
/// counting the whole record) into key and value ranges of `data`.
fn parse_pax(
    data: &[u8],
    start: usize,
    out: &mut Vec<(Range<usize>, Range<usize>)>,
) -> Result<(), TarError> {
    let mut pos = start;
    while pos < data.len() {
        // Some writers pad the record block with NULs.
        if data[pos] == 0 {
            break;
        }
        let bad = || TarError::Format("malformed PAX record".into());
        let space = data[pos..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(bad)?
            + pos;
        let len = parse_decimal(&data[pos..space]).ok_or_else(bad)? as usize;
        let end = pos.checked_add(len).ok_or_else(bad)?;
        if len == 0 || end > data.len() || end <= space + 1 || data[end - 1] != b'\n' {
            return Err(bad());
        }
        let kv = space + 1..end - 1;
        let eq = data[kv.clone()]
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(bad)?
            + kv.start;
        out.push((kv.start..eq, eq + 1..kv.end));
        pos = end;
    }
    Ok(())
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time: `[-]<seconds>[.<fraction>]`.
pub(crate) fn parse_time(v: &[u8]) -> Option<Time> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let secs = i64::try_from(parse_decimal(int)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(match (neg, nanos) {
        (false, _) => Time { secs, nanos },
        (true, 0) => Time {
            secs: -secs,
            nanos: 0,
        },
        (true, n) => Time {
            secs: -secs - 1,
            nanos: 1_000_000_000 - n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_time(s.as_bytes());
        assert_eq!(t("12"), Some(Time { secs: 12, nanos: 0 }));
        assert_eq!(
            t("1700000000.123456789123"),
            Some(Time {
                secs: 1_700_000_000,
                nanos: 123_456_789
            })
        );
        assert_eq!(
            t("1.5"),
            Some(Time {
                secs: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            t("-1.25"),
            Some(Time {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(t("x"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("1.x"), None);
    }

    #[test]
    fn pax_records_may_hold_newlines_and_equals() {
        let rec = |k: &[u8], v: &[u8]| {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while format!("{len}").len() + body_len != len {
                len += 1;
            }
            let mut r = format!("{len} ").into_bytes();
            r.extend_from_slice(k);
            r.push(b'=');
            r.extend_from_slice(v);
            r.push(b'\n');
            r
        };
        let mut data = rec(b"SCHILY.xattr.user.a", b"x\ny=z\n");
        data.extend(rec(b"path", b"p"));
        let mut out = Vec::new();
        parse_pax(&data, 0, &mut out).ok().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(&data[out[0].1.clone()], b"x\ny=z\n");
        assert_eq!(&data[out[1].0.clone()], b"path");
        out.clear();
        assert!(parse_pax(b"99 path=x\n", 0, &mut out).is_err());
        assert!(parse_pax(b"5 a=b\n", 0, &mut out).is_err());
    }
}
