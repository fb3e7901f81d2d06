//! A deterministic tar writer that hashes as it goes.
//!
//! Entries are ustar headers; a PAX extended header goes before one only when a
//! field does not fit ustar (a name or link target over 100 bytes, a uid/gid, size or
//! mtime out of octal range; mtimes are whole seconds, as Docker writes them), or when
//! there are xattrs (`SCHILY.xattr.<name>`). Records are sorted by key, uname/gname are empty,
//! and nothing depends on the clock, so equal input gives equal bytes. The PAX header
//! itself is named like Go's `archive/tar` (`<dir>/PaxHeaders.0/<base>`), which is
//! what most layers in the wild carry.
//!
//! Output is assembled in 1 MiB buffers; each time one fills, it is hashed (the diff
//! id) and handed to the compressor threads (`compressor.rs`), which compress it, hash
//! the compressed bytes (the digest) and write them out. Walking the tree and
//! compressing overlap; gzip is compressed on several threads.

use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::compress::Compression;
use crate::digest::{oci_digest, Sha256Digester};
use crate::error::{Error, IoContext, Result};

use super::compressor::{self, Block, Msg, WINDOW};
use super::fs;
use super::DiffStats;

pub const BLOCK: usize = 512;
/// The buffer handed to compression in one go: every one but the last is full, so
/// block boundaries depend on the tar bytes alone.
const CHUNK: usize = compressor::BLOCK_SIZE;

pub const REG: u8 = b'0';
pub const LINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCKDEV: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
const PAX: u8 = b'x';

/// One entry's header fields.
pub struct Header<'a> {
    /// The entry name, relative, `/`-separated; directories end with `/`.
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Whole seconds: sub-second parts are dropped, as Docker does.
    pub mtime: i64,
    pub link: &'a [u8],
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

const OCTAL8_MAX: u64 = 0o7777777;
const OCTAL12_MAX: u64 = 0o77777777777;

/// Writes `v` as zero-padded octal filling all but the last byte, which is NUL.
fn octal(field: &mut [u8], mut v: u64) {
    let n = field.len() - 1;
    field[n] = 0;
    for b in field[..n].iter_mut().rev() {
        *b = b'0' + (v & 7) as u8;
        v >>= 3;
    }
}

/// A numeric field: octal when it fits, else GNU base-256 (used only for device
/// numbers, which PAX has no key for).
fn numeric(field: &mut [u8], v: u64) {
    let max = (1u64 << (3 * (field.len() - 1))) - 1;
    if v <= max {
        octal(field, v);
    } else {
        field.fill(0);
        let bytes = v.to_be_bytes();
        let n = field.len();
        let take = 8.min(n - 1);
        field[n - take..].copy_from_slice(&bytes[8 - take..]);
        field[0] = 0x80;
    }
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where len counts itself.
fn pax_record(out: &mut Vec<u8>, key: &[&[u8]], value: &[u8]) {
    let base = key.iter().map(|k| k.len()).sum::<usize>() + value.len() + 3;
    let mut len = base + digits(base);
    while base + digits(len) != len {
        len = base + digits(len);
    }
    let _ = write!(out, "{len} ");
    for k in key {
        out.extend_from_slice(k);
    }
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// PAX time: seconds, and a fraction without trailing zeros when there is one.
/// The name Go's archive/tar gives a PAX header: `<dir>/PaxHeaders.0/<base>`, ASCII
/// only, at most 100 bytes, no trailing slash.
fn pax_header_name(name: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    out.extend(dir.iter().copied().filter(|b| b.is_ascii()));
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend(base.iter().copied().filter(|b| b.is_ascii()));
    out.truncate(100);
    while out.last() == Some(&b'/') {
        out.pop();
    }
}

/// Fills a ustar header block.
#[allow(clippy::too_many_arguments)]
fn ustar(
    block: &mut [u8; BLOCK],
    name: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &[u8],
    dev: Option<(u32, u32)>,
) {
    block.fill(0);
    block[..name.len()].copy_from_slice(name);
    octal(&mut block[100..108], u64::from(mode));
    octal(&mut block[108..116], uid);
    octal(&mut block[116..124], gid);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], mtime);
    block[156] = typeflag;
    block[157..157 + link.len()].copy_from_slice(link);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    let (major, minor) = dev.unwrap_or((0, 0));
    numeric(&mut block[329..337], u64::from(major));
    numeric(&mut block[337..345], u64::from(minor));
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    octal(&mut block[148..155], u64::from(sum));
    block[155] = b' ';
}

/// Where finished buffers go: straight out, or to the compressing threads.
enum Sink<'w> {
    /// Uncompressed: the digest is the diff id, so one hash does.
    Plain { out: &'w mut (dyn Write + Send) },
    Threaded {
        /// Blocks to compress, then the end. A channel closed without the end means
        /// the walk failed: the compressor stops at once.
        jobs: mpsc::SyncSender<Msg>,
        empty: mpsc::Receiver<Vec<u8>>,
        seq: u64,
        /// The last [`WINDOW`] bytes of the previous block, for gzip.
        tail: Option<Vec<u8>>,
    },
}

/// The tar stream of one layer being written.
pub struct TarOut<'w> {
    buf: Vec<u8>,
    sink: Sink<'w>,
    tar_digest: Sha256Digester,
    entries: u64,
    pax: Vec<u8>,
    pax_name: Vec<u8>,
    num: Vec<u8>,
    /// Named in errors about the output.
    out_path: PathBuf,
}

/// Runs `body` with a [`TarOut`] writing an OCI layer of the given compression to
/// `out`, and returns the layer's stats.
pub fn with_tar_out(
    out: &mut (dyn Write + Send),
    compression: Compression,
    level: Option<i32>,
    out_path: &Path,
    body: impl FnOnce(&mut TarOut<'_>) -> Result<()>,
) -> Result<DiffStats> {
    let new = |sink| TarOut {
        buf: Vec::with_capacity(CHUNK),
        sink,
        tar_digest: Sha256Digester::new(),
        entries: 0,
        pax: Vec::new(),
        pax_name: Vec::new(),
        num: Vec::new(),
        out_path: out_path.to_path_buf(),
    };
    if compression == Compression::None {
        let mut tar = new(Sink::Plain { out });
        body(&mut tar)?;
        let (tar_digest, entries) = tar.end()?;
        let Sink::Plain { out } = tar.sink else {
            unreachable!("plain sink")
        };
        out.flush().at(out_path)?;
        let size = tar_digest.len();
        let digest = tar_digest.clone().finalize();
        return Ok(stats(tar_digest, entries, size, digest));
    }
    let threads = match compression {
        Compression::Gzip => compressor::gzip_threads(),
        _ => 1,
    };
    // Enough blocks in flight to keep every compressing thread busy.
    let in_flight = threads + 2;
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Msg>(in_flight);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(in_flight + 1);
    for _ in 0..in_flight {
        empty_tx
            .send(Vec::with_capacity(CHUNK))
            .expect("receiver alive");
    }
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("skiff-diff-compress".into())
            .spawn_scoped(scope, move || {
                compressor::run(out, compression, level, threads, jobs_rx, empty_tx)
            })
            .map_err(|e| Error::io(out_path, e))?;
        let mut tar = new(Sink::Threaded {
            jobs: jobs_tx,
            empty: empty_rx,
            seq: 0,
            tail: (compression == Compression::Gzip).then(Vec::new),
        });
        let walked = body(&mut tar).and_then(|()| tar.end());
        // Without the end marker, closing the channel stops the compressor unfinished.
        drop(tar);
        let compressed = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (walked, compressed) {
            (Ok((tar_digest, entries)), Ok(c)) => Ok(stats(tar_digest, entries, c.size, c.digest)),
            // The compressor failed first (the walk then stopped for want of it).
            (_, Err(e)) if !compressor::is_aborted(&e) => Err(Error::io(out_path, e)),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(Error::io(out_path, e)),
        }
    })
}

fn stats(tar_digest: Sha256Digester, entries: u64, size: u64, digest: [u8; 32]) -> DiffStats {
    DiffStats {
        digest: oci_digest(&digest),
        size,
        uncompressed_size: tar_digest.len(),
        diff_id: oci_digest(&tar_digest.finalize()),
        entries,
    }
}

fn worker_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the layer compressor stopped")
}

impl TarOut<'_> {
    fn out_err(&self, e: io::Error) -> Error {
        Error::io(&self.out_path, e)
    }

    /// Hands the buffer on (hashing it as the diff id).
    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.tar_digest.update(&self.buf);
        let result = match &mut self.sink {
            Sink::Plain { out } => {
                let r = out.write_all(&self.buf);
                self.buf.clear();
                r
            }
            Sink::Threaded {
                jobs,
                empty,
                seq,
                tail,
            } => match empty.recv() {
                Ok(next) => {
                    let data = std::mem::replace(&mut self.buf, next);
                    let dict = match tail {
                        Some(tail) => {
                            let dict = std::mem::take(tail);
                            tail.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
                            dict
                        }
                        None => Vec::new(),
                    };
                    let block = Block {
                        seq: *seq,
                        data,
                        dict,
                    };
                    *seq += 1;
                    jobs.send(Msg::Block(block)).map_err(|_| worker_gone())
                }
                Err(_) => Err(worker_gone()),
            },
        };
        result.map_err(|e| self.out_err(e))
    }

    /// Appends bytes, flushing as the buffer fills.
    fn put(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = CHUNK - self.buf.len();
            if room == 0 {
                self.flush_buf()?;
                continue;
            }
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes an entry's header (and its PAX header when needed). Content, if any,
    /// follows with [`Self::content`].
    pub fn header(&mut self, h: &Header<'_>) -> Result<()> {
        let mut pax = std::mem::take(&mut self.pax);
        pax.clear();
        for (name, value) in h.xattrs {
            if name.contains(&b'=') {
                return Err(Error::InvalidArgument(format!(
                    "xattr name {:?} of {:?} cannot be stored in a tar",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(h.name)
                )));
            }
            pax_record(&mut pax, &[b"SCHILY.xattr.", name], value);
        }
        // Keys in byte order: uppercase SCHILY first, then these.
        let mut num = std::mem::take(&mut self.num);
        if h.gid > OCTAL8_MAX {
            num.clear();
            let _ = write!(num, "{}", h.gid);
            pax_record(&mut pax, &[b"gid"], &num);
        }
        if h.link.len() > 100 {
            pax_record(&mut pax, &[b"linkpath"], h.link);
        }
        let mtime_fits = h.mtime >= 0 && (h.mtime as u64) <= OCTAL12_MAX;
        // Whole seconds, as Docker writes layers (moby truncates mtimes): smaller
        // tars, and the same digest whatever the file system's timestamp precision.
        if !mtime_fits {
            num.clear();
            let _ = write!(num, "{}", h.mtime);
            pax_record(&mut pax, &[b"mtime"], &num);
        }
        if h.name.len() > 100 {
            pax_record(&mut pax, &[b"path"], h.name);
        }
        if h.size > OCTAL12_MAX {
            num.clear();
            let _ = write!(num, "{}", h.size);
            pax_record(&mut pax, &[b"size"], &num);
        }
        if h.uid > OCTAL8_MAX {
            num.clear();
            let _ = write!(num, "{}", h.uid);
            pax_record(&mut pax, &[b"uid"], &num);
        }
        self.num = num;

        let mut block = [0u8; BLOCK];
        if !pax.is_empty() {
            let mut pax_name = std::mem::take(&mut self.pax_name);
            pax_header_name(h.name, &mut pax_name);
            ustar(
                &mut block,
                &pax_name,
                PAX,
                0,
                0,
                0,
                pax.len() as u64,
                0,
                b"",
                None,
            );
            self.pax_name = pax_name;
            self.put(&block)?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.pax = pax;

        let fit = |v: u64, max: u64| if v > max { 0 } else { v };
        let name = if h.name.len() > 100 {
            // The PAX path is authoritative; keep a recognizable prefix.
            let mut end = 100;
            while end > 0 && (h.name[end - 1] & 0xc0) == 0x80 {
                end -= 1;
            }
            &h.name[..end]
        } else {
            h.name
        };
        let link = if h.link.len() > 100 {
            &h.link[..100]
        } else {
            h.link
        };
        let dev = matches!(h.typeflag, CHAR | BLOCKDEV).then_some((h.devmajor, h.devminor));
        ustar(
            &mut block,
            name,
            h.typeflag,
            h.mode & 0o7777,
            fit(h.uid, OCTAL8_MAX),
            fit(h.gid, OCTAL8_MAX),
            fit(h.size, OCTAL12_MAX),
            if mtime_fits { h.mtime as u64 } else { 0 },
            link,
            dev,
        );
        self.put(&block)?;
        self.entries += 1;
        Ok(())
    }

    /// Copies exactly `size` bytes of `fd` into the stream (straight into the output
    /// buffer) and pads to a block. A file that shrank since its header was written
    /// is an error: the header already promised `size` bytes.
    pub fn content(&mut self, fd: RawFd, size: u64, path: impl Fn() -> PathBuf) -> Result<()> {
        let mut left = size;
        while left > 0 {
            if self.buf.len() == CHUNK {
                self.flush_buf()?;
            }
            let start = self.buf.len();
            let want = ((CHUNK - start) as u64).min(left) as usize;
            self.buf.resize(start + want, 0);
            let n = match fs::read(fd, &mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(Error::io(path(), e));
                }
            };
            self.buf.truncate(start + n);
            if n == 0 {
                return Err(Error::Conflict(format!(
                    "{}: file shrank while it was being archived ({} of {size} bytes read)",
                    path().display(),
                    size - left
                )));
            }
            left -= n as u64;
        }
        self.pad(size)
    }

    /// Writes the end-of-archive marker and the last buffer.
    fn end(&mut self) -> Result<(Sha256Digester, u64)> {
        self.put(&[0u8; 2 * BLOCK])?;
        self.flush_buf()?;
        if let Sink::Threaded { jobs, seq, .. } = &self.sink {
            jobs.send(Msg::End(*seq))
                .map_err(|_| self.out_err(worker_gone()))?;
        }
        Ok((std::mem::take(&mut self.tar_digest), self.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for vlen in 0..1200 {
            let value = vec![b'a'; vlen];
            let mut out = Vec::new();
            pax_record(&mut out, &[b"path"], &value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value length {vlen}"
            );
        }
    }

    #[test]
    fn pax_header_names_follow_go() {
        let mut out = Vec::new();
        pax_header_name(b"a/b/c", &mut out);
        assert_eq!(out, b"a/b/PaxHeaders.0/c");
        pax_header_name(b"dir/", &mut out);
        assert_eq!(out, b"PaxHeaders.0/dir");
        pax_header_name(&[b'x'; 200], &mut out);
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn numeric_fields() {
        let mut f = [0u8; 8];
        octal(&mut f, 0o644);
        assert_eq!(&f, b"0000644\0");
        numeric(&mut f, 1 << 30);
        assert_eq!(f, [0x80, 0, 0, 0, 0x40, 0, 0, 0]);
    }
}
