//! A cache of compiled programs on disk, keyed by the profile.
//!
//! `<dir>/<sha256 hex>.bpf` holds, little-endian: the magic `SKIFFBPF`, the
//! format version (u32), the flags (u32), the instruction count (u32), the
//! instructions (8 bytes each: u16 code, u8 jt, u8 jf, u32 k), then the
//! SHA-256 of everything before it. Unreadable, short or corrupt files are
//! ignored and rewritten; failing to write the cache is not an error.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::arch::Arch;
use super::bpf::{validate, BPF_MAXINSNS};
use super::{compile_for, Program};
use crate::error::{Error, Result};
use crate::spec::Seccomp;

/// Bump when compiled output changes (code generation, tables, this format).
const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SKIFFBPF";
const HEADER_LEN: usize = 8 + 4 + 4 + 4;
const DIGEST_LEN: usize = 32;

/// [`compile`](super::compile), through a cache in `cache_dir` (created 0700
/// if missing).
pub fn compile_cached(profile: &Seccomp, cache_dir: &Path) -> Result<Program> {
    let native = Arch::native().ok_or_else(|| {
        Error::Config(format!(
            "seccomp is not supported on this architecture ({})",
            std::env::consts::ARCH
        ))
    })?;
    compile_cached_for(profile, cache_dir, native)
}

pub(super) fn compile_cached_for(
    profile: &Seccomp,
    cache_dir: &Path,
    native: Arch,
) -> Result<Program> {
    let path = cache_dir.join(format!("{}.bpf", key(profile, native)?));
    if let Some(program) = fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(program);
    }
    let program = compile_for(profile, native)?;
    // Best effort: the cache only saves time.
    let _ = store(cache_dir, &path, &program);
    Ok(program)
}

/// SHA-256 of the format version, the native architecture and the profile's JSON.
fn key(profile: &Seccomp, native: Arch) -> Result<String> {
    let json =
        serde_json::to_vec(profile).map_err(|e| Error::Config(format!("seccomp profile: {e}")))?;
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(FORMAT_VERSION.to_le_bytes());
    h.update(native.name().as_bytes());
    h.update([0]);
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

pub(super) fn encode(program: &Program) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + 8 * program.filter.len() + DIGEST_LEN);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&program.flags.to_le_bytes());
    b.extend_from_slice(&(program.filter.len() as u32).to_le_bytes());
    for i in &program.filter {
        b.extend_from_slice(&i.code.to_le_bytes());
        b.push(i.jt);
        b.push(i.jf);
        b.extend_from_slice(&i.k.to_le_bytes());
    }
    let digest = Sha256::digest(&b);
    b.extend_from_slice(&digest);
    b
}

pub(super) fn decode(b: &[u8]) -> Option<Program> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    if b.get(..8)? != MAGIC || u32_at(8)? != FORMAT_VERSION {
        return None;
    }
    let flags = u32_at(12)?;
    let count = u32_at(16)? as usize;
    if count == 0 || count > BPF_MAXINSNS || b.len() != HEADER_LEN + 8 * count + DIGEST_LEN {
        return None;
    }
    let (body, digest) = b.split_at(b.len() - DIGEST_LEN);
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let filter: Vec<libc::sock_filter> = body[HEADER_LEN..]
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    validate(&filter).ok()?;
    Some(Program { filter, flags })
}

/// Writes to a temporary name and renames into place, so readers see a
/// whole file or none.
fn store(dir: &Path, path: &Path, program: &Program) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension(format!(
        "bpf.tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&encode(program))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
