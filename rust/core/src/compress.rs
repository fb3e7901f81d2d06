//! Compression of layers: gzip, zstd or none, detected from the magic bytes of the
//! stream (never from a media type or a file name), and encoders for writing them.

use std::io::{self, BufRead, BufReader, Read, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The suffix of the OCI layer media type (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub fn media_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "" | "none" | "uncompressed" => Some(Compression::None),
            "gzip" | "gz" => Some(Compression::Gzip),
            "zstd" | "zst" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The format a stream starting with `head` is in.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Buffer size for decoders: big reads keep the per-call overhead out of the way.
const BUF: usize = 256 * 1024;

/// Wraps `r` in the decoder its first bytes call for.
pub fn decoder<'a, R: Read + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(BUF, r);
    let kind = detect(buffered.fill_buf()?);
    let reader: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buffered),
        // Layers may be several gzip members back to back (pigz, some tools).
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((kind, reader))
}

/// A writer that must be told when the stream ends (to write trailers).
pub trait FinishWrite: Write {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W: Write>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> FinishWrite for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> FinishWrite for flate2::write::GzEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

impl<W: Write> FinishWrite for zstd::stream::write::Encoder<'static, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// An encoder writing `kind` into `w`; `level` None means the format's default
/// (gzip 6, zstd 3). Gzip output carries no name and mtime 0, so equal input gives
/// equal bytes (and digests).
pub fn encoder<W: Write + 'static>(
    w: W,
    kind: Compression,
    level: Option<i32>,
) -> io::Result<Box<dyn FinishWrite>> {
    Ok(match kind {
        Compression::None => Box::new(Plain(w)),
        Compression::Gzip => {
            let level = flate2::Compression::new(level.unwrap_or(6).clamp(0, 9) as u32);
            Box::new(flate2::GzBuilder::new().mtime(0).write(w, level))
        }
        Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(w, level.unwrap_or(3))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(kind: Compression) {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        // The encoder owns its sink: share a buffer to read the output back.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut enc = encoder(Sink(shared.clone()), kind, None).unwrap();
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        let bytes = shared.lock().unwrap().clone();
        let (found, mut dec) = decoder(&bytes[..]).unwrap();
        assert_eq!(found, kind);
        let mut out = Vec::new();
        dec.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn roundtrips_and_detection() {
        roundtrip(Compression::None);
        roundtrip(Compression::Gzip);
        roundtrip(Compression::Zstd);
        assert_eq!(detect(b"ustar"), Compression::None);
        assert_eq!(Compression::parse("gzip"), Some(Compression::Gzip));
        assert_eq!(Compression::parse("lz4"), None);
    }
}
