//! A JSON body with a content coding, inflated as it streams for the scan: Express's
//! `body-parser` inflates `gzip`, `deflate` and `br` request bodies before a
//! `method-override` getter reads `req.body._method`, so the scan reads what it reads. The
//! upstream still gets the body as sent.
//!
//! Memory stays bounded whatever the ratio: the decoder hands its output to the JSON scan
//! piece by piece, and holds no more than its window: 32 KiB for `gzip` and `deflate`, and
//! for `br` the window the stream declares, at most [`MAX_BROTLI_WINDOW_BITS`] (a larger one,
//! or the large-window extension Node does not decode, is unreadable). At most
//! [`MAX_DECODED`] bytes are scanned; a body that inflates past that, or that does not
//! decode, is unreadable (as it is to `body-parser`, whose own limit is 100 kB by default).
use std::io::{self, Write};

use super::{Found, json::Json};

/// Decoded bytes scanned at most; past that the body is unreadable.
pub const MAX_DECODED: usize = 16 << 20;
/// Largest brotli window read (4 MiB: the default of Node's, Python's and Go's encoders).
pub const MAX_BROTLI_WINDOW_BITS: u8 = 22;

const TOO_LARGE: &str = "a coded JSON body larger than 16 MiB decoded";
const CORRUPT: &str = "a coded JSON body that does not decode";
const WIDE_WINDOW: &str = "a brotli JSON body with a window over 4 MiB";

/// What a request's `Content-Encoding` values name, `identity` aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// One coding decoded here.
    One(Coding),
    /// One coding not decoded here (`zstd`, `compress`, ...).
    Other,
    /// Several, which `body-parser` refuses and the others do not decode.
    Several,
}

impl Named {
    /// What the `Content-Encoding` values name; `None` for no coding at all.
    pub fn of<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Named> {
        let mut named = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        let one = named.next()?;
        if named.next().is_some() {
            return Some(Named::Several);
        }
        Some(match one.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Named::One(Coding::Gzip),
            "deflate" => Named::One(Coding::Deflate),
            "br" => Named::One(Coding::Brotli),
            _ => Named::Other,
        })
    }
}

/// The window a brotli stream declares in its first byte (RFC 7932, section 9.1), as a power of
/// two: `None` for the code the large-window extension (up to 1 GiB) takes, which plain brotli
/// reserves and Node does not decode.
pub fn brotli_window_bits(first: u8) -> Option<u8> {
    if first & 1 == 0 {
        return Some(16);
    }
    match ((first >> 1) & 7, (first >> 4) & 7) {
        (0, 0) => Some(17),
        (0, 1) => None,
        (0, m) => Some(8 + m),
        (n, _) => Some(17 + n),
    }
}

/// The content codings decoded for the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` or `x-gzip`, members concatenated or not.
    Gzip,
    /// `deflate`, zlib-wrapped (`body-parser` reads nothing else).
    Deflate,
    /// `br`.
    Brotli,
}

/// Where the decoder writes: the JSON scan, counting what it is given.
#[derive(Debug)]
struct Scan {
    json: Json,
    found: Vec<Found>,
    decoded: usize,
}

impl Write for Scan {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.decoded = self.decoded.saturating_add(buf.len());
        if self.decoded > MAX_DECODED {
            return Err(io::Error::other(TOO_LARGE));
        }
        self.json.feed(buf, &mut self.found);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Scan>),
    Deflate(flate2::write::ZlibDecoder<Scan>),
    Brotli(Box<brotli::DecompressorWriter<Scan>>),
}

impl Decoder {
    fn scan(&self) -> &Scan {
        match self {
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Deflate(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
        }
    }

    fn scan_mut(&mut self) -> &mut Scan {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }

    /// Decodes `data` and hands everything it yields to the scan.
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.write_all(data).and_then(|()| d.flush()),
            Decoder::Deflate(d) => d.write_all(data).and_then(|()| d.flush()),
            Decoder::Brotli(d) => d.write_all(data).and_then(|()| d.flush()),
        }
    }

    /// The stream must end here.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Brotli(d) => d.close(),
        }
    }
}

/// The streaming scan of a coded JSON body.
pub struct Inflating {
    decoder: Decoder,
    /// A brotli stream whose window is not checked yet (its first byte has not come).
    window_unchecked: bool,
    /// The decoder failed (reported once); later bytes are not read.
    failed: bool,
}

impl std::fmt::Debug for Inflating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflating")
            .field("scan", self.decoder.scan())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Inflating {
    /// A scan of a JSON body coded with `coding`.
    pub fn new(coding: Coding) -> Inflating {
        let scan = Scan {
            json: Json::new(),
            found: Vec::new(),
            decoded: 0,
        };
        let decoder = match coding {
            Coding::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(scan)),
            Coding::Deflate => Decoder::Deflate(flate2::write::ZlibDecoder::new(scan)),
            Coding::Brotli => {
                Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(scan, 4096)))
            }
        };
        Inflating {
            decoder,
            window_unchecked: coding == Coding::Brotli,
            failed: false,
        }
    }

    /// Scans the next chunk as sent; what it completes goes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Found>) {
        if self.failed {
            return;
        }
        if let (true, Some(&first)) = (self.window_unchecked, data.first()) {
            self.window_unchecked = false;
            if brotli_window_bits(first).is_none_or(|bits| bits > MAX_BROTLI_WINDOW_BITS) {
                self.failed = true;
                out.push(Found::Unreadable(WIDE_WINDOW));
                return;
            }
        }
        let result = self.decoder.write(data);
        self.settle(result, out);
    }

    /// The body ended: a stream cut short does not decode.
    pub fn finish(&mut self, out: &mut Vec<Found>) {
        if !self.failed {
            let result = self.decoder.finish();
            self.settle(result, out);
        }
    }

    /// Whether the scan is inside a `_method` value that the next bytes may go on with.
    pub fn holding(&self) -> bool {
        !self.failed && self.decoder.scan().json.holding()
    }

    fn settle(&mut self, result: io::Result<()>, out: &mut Vec<Found>) {
        let scan = self.decoder.scan_mut();
        out.append(&mut scan.found);
        if result.is_err() {
            self.failed = true;
            let why = if scan.decoded > MAX_DECODED {
                TOO_LARGE
            } else {
                CORRUPT
            };
            out.push(Found::Unreadable(why));
        }
    }
}
