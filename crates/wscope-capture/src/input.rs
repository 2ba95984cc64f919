//! Opening an input: a path or `-` for stdin, decompressed when it is gzip
//! or zstd, and recognised by its first bytes (never by its name) as a
//! classic pcap, a pcapng, or something else (a record file, for the
//! caller to read).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// What the first bytes of an input say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap: either byte order, micro- or nanosecond stamps.
    Pcap,
    /// pcapng: a section header block first.
    PcapNg,
    /// Not a capture (a wscope record file starts with `{`).
    Other,
}

/// How the input was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// An opened input, decompressed, with its format known.
pub struct Input {
    pub format: Format,
    pub compression: Compression,
    /// The (decompressed) bytes, nothing consumed yet.
    pub reader: Box<dyn BufRead + Send>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Recognises a capture from its first bytes.
pub fn sniff(head: &[u8]) -> Format {
    match head.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::PcapNg,
        // Microsecond and nanosecond magics, written in either byte order.
        Some([0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0xc3, 0xd4])
        | Some([0x4d, 0x3c, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d]) => Format::Pcap,
        _ => Format::Other,
    }
}

/// Opens `path` (`-` is stdin), undoing gzip or zstd compression.
pub fn open(path: &Path) -> io::Result<Input> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    from_reader(raw)
}

/// As [`open`], for any reader.
pub fn from_reader(raw: Box<dyn Read + Send>) -> io::Result<Input> {
    let (head, raw) = peek(raw, 4)?;
    let (compression, inner): (Compression, Box<dyn Read + Send>) = if head.starts_with(&GZIP_MAGIC)
    {
        // Multi-member, as `cat a.gz b.gz` and pigz produce.
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, raw));
        (Compression::Gzip, Box::new(gz))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let zstd = ruzstd::decoding::StreamingDecoder::new(BufReader::with_capacity(1 << 16, raw))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
        (Compression::Zstd, Box::new(zstd))
    } else {
        (Compression::None, raw)
    };
    let (head, inner) = if compression == Compression::None {
        (head, inner)
    } else {
        peek(inner, 4)?
    };
    Ok(Input {
        format: sniff(&head),
        compression,
        reader: Box::new(BufReader::with_capacity(1 << 16, inner)),
    })
}

/// Reads the first `n` bytes (fewer at the end of the input: a pipe may
/// hand them out one at a time) and gives back a reader that starts with
/// them again.
fn peek(mut reader: Box<dyn Read + Send>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(read) => got += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    head.truncate(got);
    let again = io::Cursor::new(head.clone()).chain(reader);
    Ok((head, Box::new(again)))
}
