//! The compressing side of a layer write, on threads of its own.
//!
//! The tar arrives in blocks of exactly [`BLOCK_SIZE`] bytes (the last one shorter),
//! numbered in order. zstd (and anything else) goes through `compress::encoder` on
//! one thread. gzip is compressed in parallel, the way pigz does it: each block is a
//! raw deflate stream primed with the previous block's last 32 KiB as dictionary and
//! ended with a sync flush, so the blocks concatenate into one valid deflate stream;
//! a final empty block, one gzip header and a trailer with the combined CRC-32 make
//! it an ordinary single-member gzip file. Block boundaries depend only on the tar
//! bytes and each block only on its own input and dictionary, so the output is the
//! same whatever the number of threads (or their timing). Header: mtime 0, no name.
//!
//! At levels 2 to 6 each gzip block is first sampled (see [`choose_strategy`]): when
//! the full match search would shrink it by less than 2% more than run-length matching
//! alone does (random or already-compressed data, hex or base64 of random bytes), the
//! block is compressed with run-length matching only (zlib's `Z_RLE`), 2-4 times faster
//! and at most about 2% bigger. The choice depends on the block's bytes alone, so the
//! output stays deterministic.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Strategy};

use crate::compress::{self, Compression};
use crate::digest::Sha256Digester;

/// The size of every block but the last.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Deflate's window: the dictionary a gzip block is primed with.
pub const WINDOW: usize = 32 * 1024;

/// From the tar writer to the compressor.
pub enum Msg {
    Block(Block),
    /// The archive ended after this many blocks.
    End(u64),
}

pub struct Block {
    pub seq: u64,
    pub data: Vec<u8>,
    /// The last [`WINDOW`] bytes of the block before (gzip only; empty for the first).
    pub dict: Vec<u8>,
}

/// What was written.
pub struct Compressed {
    pub digest: [u8; 32],
    pub size: u64,
}

/// How many threads deflate in parallel.
pub fn gzip_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// The walk failed; the compressor stopped without finishing the stream.
pub fn aborted() -> io::Error {
    io::Error::other(AbortedWalk)
}

#[derive(Debug)]
struct AbortedWalk;

impl std::fmt::Display for AbortedWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the layer walk stopped")
    }
}

impl std::error::Error for AbortedWalk {}

pub fn is_aborted(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<AbortedWalk>())
}

/// Hashes and writes the compressed stream.
struct Out<'a> {
    out: &'a mut (dyn Write + Send),
    digest: Sha256Digester,
}

impl Out<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.digest.update(data);
        self.out.write_all(data)
    }

    fn finish(self) -> io::Result<Compressed> {
        self.out.flush()?;
        Ok(Compressed {
            size: self.digest.len(),
            digest: self.digest.finalize(),
        })
    }
}

/// Compresses what arrives on `jobs` into `out`, handing input buffers back on
/// `empty`. Returns when the stream is complete, or with [`aborted`] when the jobs
/// channel closes before its end.
pub fn run(
    out: &mut (dyn Write + Send),
    compression: Compression,
    level: Option<i32>,
    threads: usize,
    jobs: mpsc::Receiver<Msg>,
    empty: mpsc::SyncSender<Vec<u8>>,
) -> io::Result<Compressed> {
    let out = Out {
        out,
        digest: Sha256Digester::new(),
    };
    match compression {
        Compression::Gzip => gzip(out, level.unwrap_or(6), threads, jobs, empty),
        _ => sequential(out, compression, level, jobs, empty),
    }
}

/// A 'static sink for `compress::encoder` (which wants one): compressed bytes wait
/// here until the loop moves them on.
#[derive(Clone, Default)]
struct Spool(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for Spool {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sequential(
    mut out: Out<'_>,
    compression: Compression,
    level: Option<i32>,
    jobs: mpsc::Receiver<Msg>,
    empty: mpsc::SyncSender<Vec<u8>>,
) -> io::Result<Compressed> {
    let spool = Spool::default();
    let mut encoder = compress::encoder(spool.clone(), compression, level)?;
    let drain = |out: &mut Out<'_>| -> io::Result<()> {
        let mut pending = spool.0.borrow_mut();
        if !pending.is_empty() {
            out.write(&pending)?;
            pending.clear();
        }
        Ok(())
    };
    loop {
        match jobs.recv() {
            Ok(Msg::Block(mut block)) => {
                encoder.write_all(&block.data)?;
                drain(&mut out)?;
                block.data.clear();
                // The walker may be gone (it failed): nothing to hand back then.
                let _ = empty.send(block.data);
            }
            Ok(Msg::End(_)) => break,
            Err(_) => return Err(aborted()),
        }
    }
    encoder.finish()?;
    drain(&mut out)?;
    out.finish()
}

/// A compressed block, from a deflate thread to the writer.
enum Done {
    Block {
        seq: u64,
        deflated: Vec<u8>,
        crc: flate2::Crc,
    },
    End(u64),
}

fn gzip(
    mut out: Out<'_>,
    level: i32,
    threads: usize,
    jobs: mpsc::Receiver<Msg>,
    empty: mpsc::SyncSender<Vec<u8>>,
) -> io::Result<Compressed> {
    let level = flate2::Compression::new(level.clamp(0, 9) as u32);
    let jobs = Arc::new(Mutex::new(jobs));
    let (done_tx, done_rx) = mpsc::sync_channel::<io::Result<Done>>(threads * 2);
    std::thread::scope(|scope| {
        for i in 0..threads {
            let (jobs, done, empty) = (jobs.clone(), done_tx.clone(), empty.clone());
            std::thread::Builder::new()
                .name(format!("skiff-deflate-{i}"))
                .spawn_scoped(scope, move || deflate_loop(level, &jobs, &done, &empty))?;
        }
        // Only the deflate threads hold senders now: if they all stop, recv fails.
        drop(done_tx);
        drop(empty);
        drop(jobs);
        let xfl = match level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        out.write(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff])?;
        let mut crc = flate2::Crc::new();
        let mut next = 0u64;
        let mut end = None;
        let mut waiting = BTreeMap::new();
        while end != Some(next) {
            match done_rx.recv() {
                Ok(Ok(Done::Block {
                    seq,
                    deflated,
                    crc: c,
                })) => {
                    waiting.insert(seq, (deflated, c));
                    while let Some((deflated, c)) = waiting.remove(&next) {
                        out.write(&deflated)?;
                        crc.combine(&c);
                        next += 1;
                    }
                }
                Ok(Ok(Done::End(n))) => end = Some(n),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(aborted()),
            }
        }
        // An empty final block (fixed Huffman: BFINAL, BTYPE 01, end-of-block).
        out.write(&[0x03, 0x00])?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&crc.amount().to_le_bytes());
        out.write(&trailer)?;
        out.finish()
    })
}

/// One deflate thread: takes blocks until the jobs channel closes.
fn deflate_loop(
    level: flate2::Compression,
    jobs: &Mutex<mpsc::Receiver<Msg>>,
    done: &mpsc::SyncSender<io::Result<Done>>,
    empty: &mpsc::SyncSender<Vec<u8>>,
) {
    loop {
        let msg = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let result = match msg {
            Ok(Msg::Block(mut block)) => {
                let result = deflate_block(level, &block.dict, &block.data);
                let mut crc = flate2::Crc::new();
                crc.update(&block.data);
                block.data.clear();
                let _ = empty.send(block.data);
                result.map(|deflated| Done::Block {
                    seq: block.seq,
                    deflated,
                    crc,
                })
            }
            Ok(Msg::End(n)) => Ok(Done::End(n)),
            Err(_) => return,
        };
        let failed = result.is_err();
        // The writer is gone (it failed): stop.
        if done.send(result).is_err() || failed {
            return;
        }
    }
}

/// Raw deflate of `input` primed with `dict`, ended with a sync flush (byte-aligned,
/// not final), so that the next block can follow it, at the strategy its samples call
/// for.
fn deflate_block(level: flate2::Compression, dict: &[u8], input: &[u8]) -> io::Result<Vec<u8>> {
    let level = level.level() as i32;
    let mut out = Vec::new();
    let strategy = choose_strategy(level, dict, input, &mut out)?;
    raw_deflate(level, strategy, dict, input, &mut out)?;
    Ok(out)
}

/// Bytes sampled per block, in [`SAMPLES`] slices.
const SAMPLE: usize = 8 * 1024;
const SAMPLES: usize = 4;

/// The strategy for a block: [`Strategy::Rle`] when, on [`SAMPLES`] slices spread over
/// it (each primed with the 32 KiB before it, as in the real run), the full match search
/// saves less than 2% over run-length matching; else the default. Only at levels 2 to
/// 6 (1 has its own fast mode, 7 to 9 ask for the smallest output) and for blocks big
/// enough to sample.
fn choose_strategy(
    level: i32,
    dict: &[u8],
    input: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<Strategy> {
    if !(2..=6).contains(&level) || input.len() < 4 * SAMPLES * SAMPLE {
        return Ok(Strategy::Default);
    }
    let (mut full, mut rle) = (0usize, 0usize);
    for i in 0..SAMPLES {
        let at = i * (input.len() - SAMPLE) / (SAMPLES - 1);
        let before = if at == 0 {
            dict
        } else {
            &input[at.saturating_sub(WINDOW)..at]
        };
        let sample = &input[at..at + SAMPLE];
        raw_deflate(level, Strategy::Default, before, sample, scratch)?;
        full += scratch.len();
        raw_deflate(level, Strategy::Rle, before, sample, scratch)?;
        rle += scratch.len();
    }
    Ok(if full * 100 >= rle * 98 {
        Strategy::Rle
    } else {
        Strategy::Default
    })
}

/// Raw deflate of `input` after `dict` into `out` (replaced), ended with a sync flush.
/// A fresh deflater each time: a reset one does not always produce the same bytes as a
/// new one (zlib-rs level 1), and the output must not depend on which thread
/// compressed what before.
fn raw_deflate(
    level: i32,
    strategy: Strategy,
    dict: &[u8],
    input: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let failed = |e: zlib_rs::DeflateError| io::Error::other(format!("deflate: {}", e.as_str()));
    let mut c = Deflate::new_with_config(DeflateConfig {
        level,
        window_bits: -15,
        strategy,
        ..DeflateConfig::default()
    });
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(failed)?;
    }
    out.clear();
    out.reserve(zlib_rs::compress_bound(input.len()) + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_uninit(
            &input[consumed..],
            out.spare_capacity_mut(),
            DeflateFlush::SyncFlush,
        )
        .map_err(failed)?;
        // SAFETY: the deflater wrote total_out bytes from the start of `out`, which was
        // empty (each call appends after the previous one's output).
        unsafe { out.set_len(c.total_out() as usize) };
        // The flush is complete once all input is in and there was room left over.
        if c.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress_with(threads: usize, level: i32, data: &[u8]) -> Vec<u8> {
        compress_in(threads, level, data, 100_000)
    }

    fn compress_in(threads: usize, level: i32, data: &[u8], chunk: usize) -> Vec<u8> {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel(1024);
        let (empty_tx, _empty_rx) = mpsc::sync_channel(1024);
        let mut prev: &[u8] = &[];
        let mut n = 0;
        // Block size does not matter to the compressor; small ones keep this quick.
        for (seq, chunk) in data.chunks(chunk).enumerate() {
            let dict = prev[prev.len().saturating_sub(WINDOW)..].to_vec();
            jobs_tx
                .send(Msg::Block(Block {
                    seq: seq as u64,
                    data: chunk.to_vec(),
                    dict,
                }))
                .unwrap();
            prev = chunk;
            n += 1;
        }
        jobs_tx.send(Msg::End(n)).unwrap();
        drop(jobs_tx);
        let mut out = Vec::new();
        let done = run(
            &mut out,
            Compression::Gzip,
            Some(level),
            threads,
            jobs_rx,
            empty_tx,
        )
        .unwrap();
        assert_eq!(done.size, out.len() as u64);
        out
    }

    #[test]
    fn parallel_gzip_is_standard_and_independent_of_threads() {
        let data: Vec<u8> = (0..512_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 28) as u8 + b'a')
            .collect();
        for level in [0, 1, 2, 4, 6, 9] {
            let one = compress_with(1, level, &data);
            let three = compress_with(3, level, &data);
            assert_eq!(one, three, "level {level}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
        // Nothing in, still a valid gzip of nothing.
        let empty = compress_with(3, 6, &[]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    /// Pseudo-random bytes (xorshift), the same on every run.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn blocks_without_long_matches_use_run_length_matching() {
        let mut scratch = Vec::new();
        let random = noise(BLOCK_SIZE);
        // Hex of random bytes, with runs of zeros between (a tar of such files).
        let mut hex = Vec::new();
        for chunk in random.chunks(514) {
            hex.extend(chunk.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
            hex.resize(hex.len().div_ceil(512) * 512 + 512, 0);
        }
        hex.truncate(BLOCK_SIZE);
        let words: Vec<u8> = (0..BLOCK_SIZE / 8)
            .flat_map(|i| format!("{:07} ", (i * 7919) % 100_000).into_bytes())
            .collect();
        let choose = |level, data: &[u8], scratch: &mut Vec<u8>| {
            choose_strategy(level, &[], data, scratch).unwrap()
        };
        assert_eq!(choose(6, &random, &mut scratch), Strategy::Rle);
        assert_eq!(choose(6, &hex, &mut scratch), Strategy::Rle);
        assert_eq!(choose(6, &words, &mut scratch), Strategy::Default);
        // Not at the levels that ask for the smallest output or have their own fast
        // mode, and not for blocks too small to sample.
        assert_eq!(choose(9, &random, &mut scratch), Strategy::Default);
        assert_eq!(choose(1, &random, &mut scratch), Strategy::Default);
        assert_eq!(
            choose(6, &random[..100_000], &mut scratch),
            Strategy::Default
        );
        // Whatever the strategy, the blocks decode to their input.
        let mut all = random.clone();
        all.extend_from_slice(&hex);
        all.extend_from_slice(&words);
        all.extend_from_slice(&random[..300_000]);
        for data in [&random, &hex, &words, &all] {
            let out = compress_in(2, 6, data, BLOCK_SIZE);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, data);
        }
    }

    #[test]
    fn a_closed_channel_without_end_aborts() {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Msg>(4);
        let (empty_tx, _empty_rx) = mpsc::sync_channel(4);
        jobs_tx
            .send(Msg::Block(Block {
                seq: 0,
                data: vec![1; 10],
                dict: Vec::new(),
            }))
            .unwrap();
        drop(jobs_tx);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let (tx, rx) = mpsc::sync_channel::<Msg>(1);
            drop(tx);
            let err = run(&mut Vec::new(), compression, None, 2, rx, empty_tx.clone())
                .err()
                .unwrap();
            assert!(is_aborted(&err));
        }
        let err = run(
            &mut Vec::new(),
            Compression::Gzip,
            None,
            2,
            jobs_rx,
            empty_tx,
        )
        .err()
        .unwrap();
        assert!(is_aborted(&err));
    }
}
