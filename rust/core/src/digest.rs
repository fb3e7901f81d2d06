//! Content hashing: streaming sha256 (the OCI content digest) and xxh3-128 (a fast,
//! non-cryptographic hash for caches and change detection).
//!
//! `sha2` picks the x86 SHA extensions at run time where the CPU has them. Files are
//! hashed by path with one reusable buffer, so a caller never loops over chunks.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, IoContext, Result};

/// Read size for hashing files: large enough that syscalls do not matter, small
/// enough to stay in L2 while the hash runs over it.
const CHUNK: usize = 1 << 20;

/// The algorithm prefix of an OCI digest string (`sha256:<hex>`).
pub const SHA256_PREFIX: &str = "sha256:";

/// A streaming sha256 digester.
#[derive(Clone, Default)]
pub struct Sha256Digester {
    inner: Sha256,
    bytes: u64,
}

impl Sha256Digester {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.bytes += data.len() as u64;
    }

    /// How many bytes have gone in so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The digest of what went in so far; the digester can keep going.
    pub fn peek(&self) -> [u8; 32] {
        self.inner.clone().finalize().into()
    }

    pub fn finalize(self) -> [u8; 32] {
        self.inner.finalize().into()
    }
}

/// A streaming xxh3-128 hasher.
#[derive(Clone, Default)]
pub struct Xxh3Hasher {
    inner: Xxh3,
}

impl Xxh3Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    pub fn digest128(&self) -> u128 {
        self.inner.digest128()
    }
}

/// xxh3-128 of a byte slice in one call.
pub fn xxh3_128(data: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(data)
}

/// Feeds everything `reader` yields to `sink`, in chunks of [`CHUNK`] bytes.
fn drain(mut reader: impl Read, mut sink: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                sink(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn open_sequential(path: &Path) -> Result<File> {
    let file = File::open(path).at(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Advice only: a failure changes nothing but read-ahead.
        // SAFETY: the fd is valid for the lifetime of `file`.
        unsafe { libc_fadvise_sequential(file.as_raw_fd()) };
    }
    Ok(file)
}

#[cfg(target_os = "linux")]
unsafe fn libc_fadvise_sequential(fd: i32) {
    extern "C" {
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }
    const POSIX_FADV_SEQUENTIAL: i32 = 2;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

/// sha256 of a file's contents, and its length.
pub fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let file = open_sequential(path)?;
    let mut digester = Sha256Digester::new();
    let n = drain(file, |chunk| digester.update(chunk)).at(path)?;
    Ok((digester.finalize(), n))
}

/// xxh3-128 of a file's contents, and its length.
pub fn xxh3_128_file(path: &Path) -> Result<(u128, u64)> {
    let file = open_sequential(path)?;
    let mut hasher = Xxh3Hasher::new();
    let n = drain(file, |chunk| hasher.update(chunk)).at(path)?;
    Ok((hasher.digest128(), n))
}

/// Formats a sha256 as an OCI digest string, `sha256:<64 hex>`.
pub fn oci_digest(sum: &[u8; 32]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(sum))
}

/// Parses an OCI sha256 digest string into its 32 bytes; anything else is an
/// [`Error::InvalidArgument`] naming what was wrong.
pub fn parse_sha256_digest(digest: &str) -> Result<[u8; 32]> {
    let hexpart = digest.strip_prefix(SHA256_PREFIX).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "invalid digest {digest:?}: expected sha256:<64 hex digits>"
        ))
    })?;
    if hexpart.len() != 64
        || !hexpart
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Error::InvalidArgument(format!(
            "invalid digest {digest:?}: expected 64 lowercase hex digits"
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hexpart, &mut out)
        .map_err(|e| Error::InvalidArgument(format!("invalid digest {digest:?}: {e}")))?;
    Ok(out)
}

/// Checks a file against an expected OCI digest.
pub fn verify_file(path: &Path, expected: &str) -> Result<u64> {
    let want = parse_sha256_digest(expected)?;
    let (got, n) = sha256_file(path)?;
    if got != want {
        return Err(Error::DigestMismatch {
            expected: expected.to_string(),
            actual: oci_digest(&got),
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn sha256_known_vectors_streamed() {
        assert_eq!(hex::encode(Sha256Digester::new().finalize()), EMPTY_SHA256);
        let mut d = Sha256Digester::new();
        d.update(b"a");
        d.update(b"");
        d.update(b"bc");
        assert_eq!(hex::encode(d.peek()), ABC_SHA256);
        assert_eq!(d.len(), 3);
        assert_eq!(hex::encode(d.finalize()), ABC_SHA256);
    }

    #[test]
    fn xxh3_streaming_matches_oneshot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Xxh3Hasher::new();
        for part in data.chunks(977) {
            h.update(part);
        }
        assert_eq!(h.digest128(), xxh3_128(&data));
        assert_ne!(xxh3_128(b"a"), xxh3_128(b"b"));
    }

    #[test]
    fn file_hashing_across_chunk_boundaries() {
        let dir = std::env::temp_dir().join(format!("skiff-core-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blob");
        let data: Vec<u8> = (0..(CHUNK * 2 + 13)).map(|i| (i % 253) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();

        let (sum, n) = sha256_file(&path).unwrap();
        let mut d = Sha256Digester::new();
        d.update(&data);
        assert_eq!(sum, d.finalize());
        assert_eq!(n, data.len() as u64);
        assert_eq!(xxh3_128_file(&path).unwrap().0, xxh3_128(&data));

        let digest = oci_digest(&sum);
        assert_eq!(verify_file(&path, &digest).unwrap(), data.len() as u64);
        let wrong = format!("sha256:{EMPTY_SHA256}");
        assert!(matches!(
            verify_file(&path, &wrong),
            Err(Error::DigestMismatch { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_io_error_with_path() {
        let err = sha256_file(Path::new("/nonexistent/skiff")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert!(err.to_string().contains("/nonexistent/skiff"));
    }

    #[test]
    fn digest_strings_are_validated() {
        let ok = format!("sha256:{ABC_SHA256}");
        assert_eq!(hex::encode(parse_sha256_digest(&ok).unwrap()), ABC_SHA256);
        for bad in [
            "",
            "sha256:",
            "md5:abc",
            "sha256:XYZ",
            &format!("sha256:{}", &ABC_SHA256[1..]),
        ] {
            assert_eq!(
                parse_sha256_digest(bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument
            );
        }
        let upper = format!("sha256:{}", ABC_SHA256.to_uppercase());
        assert!(parse_sha256_digest(&upper).is_err());
    }
}
