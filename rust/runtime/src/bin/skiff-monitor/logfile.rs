//! The container's log in Docker's json-file format, and the line splitting in
//! front of it.
//!
//! One JSON object per line, fields in Docker's order:
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-28T11:07:09.085123456Z"}`.
//! Output is split at newlines, each entry keeping its `\n`; a line still without
//! one when [`LINE_MAX`] bytes are pending is written as an entry of its own (a
//! "partial" entry, no `\n`), as Docker's copier does. Rotation follows json-file's
//! `max-size`/`max-file`: before an entry that would take the file past max-size,
//! `log.(n-2)` → `log.(n-1)` … `log` → `log.1` and a fresh `log` is started (with
//! max-file 1 the file is just truncated).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::json;
use crate::sys;

/// The longest line kept waiting for its newline (Docker's 16 KiB).
pub const LINE_MAX: usize = 16 * 1024;

/// Room for one maximal entry: every byte escaped to 6, plus the fields.
const OUT_CAP: usize = 6 * LINE_MAX + 128;

pub struct LogFile {
    fd: Option<OwnedFd>,
    path: PathBuf,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Whole entries not yet written (written once per poll round).
    buf: Vec<u8>,
}

impl LogFile {
    /// Opens (appending to) the log. `max_size` 0 means no rotation.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<LogFile> {
        let fd = open_log(path, libc::O_APPEND)?;
        // SAFETY: a zeroed stat is valid; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is valid for writes.
        let size = if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0 {
            st.st_size as u64
        } else {
            0
        };
        Ok(LogFile {
            fd: Some(fd),
            path: path.to_path_buf(),
            size,
            max_size,
            max_files: max_files.max(1),
            buf: Vec::with_capacity(OUT_CAP),
        })
    }

    /// Queues one entry; `data` is at most [`LINE_MAX`] bytes.
    pub fn entry(&mut self, stream: &[u8], data: &[u8], time: &[u8; json::RFC3339_LEN]) {
        let data = &data[..data.len().min(LINE_MAX)];
        if self.buf.len() + 6 * data.len() + 96 > self.buf.capacity() {
            self.flush();
        }
        let start = self.buf.len();
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"log\":\"");
        json::escape_into(b, data);
        b.extend_from_slice(b"\",\"stream\":\"");
        b.extend_from_slice(stream);
        b.extend_from_slice(b"\",\"time\":\"");
        b.extend_from_slice(time);
        b.extend_from_slice(b"\"}\n");
        let before = self.size + start as u64;
        if self.max_size > 0 && before > 0 && before + (b.len() - start) as u64 > self.max_size {
            self.write_out(start);
            self.rotate();
            self.buf.copy_within(start.., 0);
            self.buf.truncate(self.buf.len() - start);
        }
    }

    /// Writes the queued entries. A failing disk loses log lines, never blocks or
    /// stops the container.
    pub fn flush(&mut self) {
        self.write_out(self.buf.len());
        self.buf.clear();
    }

    fn write_out(&mut self, len: usize) {
        if let Some(fd) = &self.fd {
            if sys::write_all(fd.as_raw_fd(), &self.buf[..len]).is_ok() {
                self.size += len as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.fd = None;
        if self.max_files > 1 {
            let name = |i: u32| {
                let mut p = self.path.clone().into_os_string();
                p.push(".");
                p.push(i.to_string());
                PathBuf::from(p)
            };
            for i in (2..self.max_files).rev() {
                let _ = std::fs::rename(name(i - 1), name(i));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        self.fd = open_log(&self.path, libc::O_TRUNC).ok();
        self.size = 0;
    }
}

fn open_log(path: &Path, extra: libc::c_int) -> io::Result<OwnedFd> {
    sys::open(
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | extra,
        0o640,
    )
}

/// Collects a stream's output until whole lines (or [`LINE_MAX`] bytes) are there.
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            buf: Vec::with_capacity(LINE_MAX),
        }
    }

    /// Reads once from `fd` straight into the free room; returns the bytes read
    /// (0 at end of file) and the new data, which `emit` has not seen yet.
    pub fn read(&mut self, fd: RawFd) -> io::Result<(usize, usize)> {
        let start = self.buf.len();
        let n = sys::read_spare(fd, &mut self.buf)?;
        Ok((n, start))
    }

    /// The bytes from `start` on (the chunk just read).
    pub fn chunk(&self, start: usize) -> &[u8] {
        &self.buf[start..]
    }

    /// Hands every complete line (and a full buffer without a newline) to `emit`
    /// and keeps the rest. `start` is where the new data begins.
    pub fn split(&mut self, start: usize, mut emit: impl FnMut(&[u8])) {
        let len = self.buf.len();
        let mut done = 0;
        let mut scan = start;
        while let Some(i) = self.buf[scan..len].iter().position(|&b| b == b'\n') {
            let end = scan + i + 1;
            emit(&self.buf[done..end]);
            done = end;
            scan = end;
        }
        if done == 0 && len == self.buf.capacity() {
            emit(&self.buf[..len]);
            done = len;
        }
        self.buf.copy_within(done..len, 0);
        self.buf.truncate(len - done);
    }

    /// At end of stream: hands over what is left.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("skiff-monitor-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const T: &[u8; json::RFC3339_LEN] = b"2026-11-28T11:07:09.085123456Z";

    #[test]
    fn splits_lines_and_flushes_long_partials() {
        let dir = temp("lines");
        let path = dir.join("data");
        let mut data = b"a\nbc\n\nno newline yet".to_vec();
        data.extend(std::iter::repeat_n(b'x', LINE_MAX + 10));
        data.extend_from_slice(b"\ntail");
        std::fs::write(&path, &data).unwrap();
        let fd = sys::open(&path, libc::O_RDONLY, 0).unwrap();
        let mut lines = Lines::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        loop {
            let (n, start) = lines.read(fd.as_raw_fd()).unwrap();
            if n == 0 {
                lines.finish(|l| got.push(l.to_vec()));
                break;
            }
            lines.split(start, |l| got.push(l.to_vec()));
        }
        let mut long = b"no newline yet".to_vec();
        long.extend(std::iter::repeat_n(b'x', LINE_MAX - long.len()));
        let rest = std::iter::repeat_n(b'x', 14 + 10)
            .chain(*b"\n")
            .collect::<Vec<u8>>();
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[..3],
            [b"a\n".to_vec(), b"bc\n".to_vec(), b"\n".to_vec()]
        );
        assert_eq!(got[3], long);
        assert_eq!(got[4], rest);
        assert_eq!(got[5], b"tail");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn entries_in_json_file_format() {
        let dir = temp("entries");
        let path = dir.join("log");
        std::fs::write(&path, "old\n").unwrap();
        let mut log = LogFile::open(&path, 0, 1).unwrap();
        log.entry(b"stdout", b"hi \"there\"\n", T);
        log.entry(b"stderr", b"\x1b[1m\xff", T);
        log.flush();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "old\n\
             {\"log\":\"hi \\\"there\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-28T11:07:09.085123456Z\"}\n\
             {\"log\":\"\\u001b[1m\\ufffd\",\"stream\":\"stderr\",\"time\":\"2026-11-28T11:07:09.085123456Z\"}\n"
        );
        // A maximal, fully escaped entry fits the buffer in one piece.
        log.entry(b"stdout", &[0u8; LINE_MAX], T);
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().last().unwrap().len(), 6 * LINE_MAX + 68);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotates_like_json_file() {
        let dir = temp("rotate");
        let path = dir.join("log");
        let entry_len = 72; // {"log":"N\n",...}\n with a one-digit N
        let mut log = LogFile::open(&path, 3 * entry_len, 3).unwrap();
        for i in 0..10u8 {
            log.entry(b"stdout", &[b'0' + i, b'\n'], T);
        }
        log.flush();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let first = |name: &str| {
            read(name)
                .lines()
                .map(|l| l.as_bytes()[8])
                .collect::<Vec<u8>>()
        };
        // 3 entries a file, 3 files: the oldest are gone.
        assert_eq!(first("log"), b"9");
        assert_eq!(first("log.1"), b"678");
        assert_eq!(first("log.2"), b"345");
        assert!(!dir.join("log.3").exists());
        assert_eq!(read("log.1").len() as u64, 3 * entry_len);
        // max-file 1: truncate in place.
        let path1 = dir.join("one");
        let mut log = LogFile::open(&path1, 2 * entry_len, 1).unwrap();
        for i in 0..5u8 {
            log.entry(b"stdout", &[b'0' + i, b'\n'], T);
        }
        log.flush();
        assert_eq!(first("one"), b"4");
        assert!(!dir.join("one.1").exists());
        // An entry bigger than max-size still gets written, alone.
        let mut log = LogFile::open(&dir.join("big"), 10, 2).unwrap();
        log.entry(b"stdout", b"this is longer than ten bytes\n", T);
        log.entry(b"stdout", b"again\n", T);
        log.flush();
        assert_eq!(read("big").lines().count(), 1);
        assert!(read("big").contains("again"));
        assert!(read("big.1").contains("longer"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
