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
//!
//! Work stays bounded too: a few bytes sent can inflate to megabytes, so a chunk is scanned in
//! steps of about [`STEP`] decoded bytes ([`Inflating::feed_step`]), and the body's watcher
//! yields to the agent's other connections between steps.
use std::io::{self, Write};

use brotli::{BrotliDecompressStream, BrotliResult, BrotliState, enc::StandardAlloc};

use super::{Fed, Found, json::Json};

/// Decoded bytes scanned at most; past that the body is unreadable.
pub const MAX_DECODED: usize = 16 << 20;
/// Largest brotli window read (4 MiB: the default of Node's, Python's and Go's encoders).
pub const MAX_BROTLI_WINDOW_BITS: u8 = 22;
/// Decoded bytes one step hands to the JSON scan before it stops, give or take a decoder's
/// buffer (32 KiB): some 60 µs of work at the rate measured (16 MiB in 1.8 ms), few enough
/// steps that the yields between them cost little.
pub const STEP: usize = 512 << 10;
/// The brotli decoder's output buffer.
const BROTLI_OUT: usize = 4096;

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
    Brotli(Box<Brotli>),
}

impl Decoder {
    fn scan(&self) -> &Scan {
        match self {
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Deflate(d) => d.get_ref(),
            Decoder::Brotli(d) => &d.scan,
        }
    }

    fn scan_mut(&mut self) -> &mut Scan {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => &mut d.scan,
        }
    }

    /// Decodes `data` and hands what it yields to the scan, until [`STEP`] bytes were handed
    /// over in this call.
    fn step(&mut self, data: &[u8]) -> io::Result<Fed> {
        match self {
            Decoder::Gzip(d) => flate_step(d, |d| d.get_ref().decoded, data),
            Decoder::Deflate(d) => flate_step(d, |d| d.get_ref().decoded, data),
            Decoder::Brotli(d) => d.step(data),
        }
    }

    /// The stream must end here.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Brotli(d) => d.finish(),
        }
    }
}

/// One step of a `flate2` decoder: each `write` inflates at most its 32 KiB buffer, handing the
/// previous one to the scan, so the step checks how far it went between writes.
fn flate_step<D: Write>(d: &mut D, decoded: fn(&D) -> usize, data: &[u8]) -> io::Result<Fed> {
    let start = decoded(d);
    let mut taken = 0;
    while taken < data.len() {
        if decoded(d).saturating_sub(start) >= STEP {
            return Ok(Fed::Partly(taken));
        }
        match d.write(&data[taken..])? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => taken += n,
        }
    }
    // What the last write inflated is still in the decoder's buffer.
    d.flush()?;
    Ok(Fed::All)
}

/// A brotli stream decoded by steps (`brotli::DecompressorWriter` goes on until its input is
/// spent, however much it yields).
struct Brotli {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    out: Box<[u8]>,
    total_out: usize,
    scan: Scan,
    /// The stream's last meta-block is decoded.
    ended: bool,
}

impl Brotli {
    fn new(scan: Scan) -> Brotli {
        Brotli {
            // The large-window extension is refused at the first byte, before any decoding.
            state: BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            out: vec![0; BROTLI_OUT].into_boxed_slice(),
            total_out: 0,
            scan,
            ended: false,
        }
    }

    /// One call of the decoder on `data` from `taken`, its output (how many bytes: the second)
    /// handed to the scan.
    fn decode(&mut self, data: &[u8], taken: &mut usize) -> io::Result<(BrotliResult, usize)> {
        let mut available_in = data.len() - *taken;
        let mut available_out = self.out.len();
        let mut written = 0;
        let result = BrotliDecompressStream(
            &mut available_in,
            taken,
            data,
            &mut available_out,
            &mut written,
            &mut self.out,
            &mut self.total_out,
            &mut self.state,
        );
        self.scan.write_all(&self.out[..written])?;
        Ok((result, written))
    }

    fn step(&mut self, data: &[u8]) -> io::Result<Fed> {
        let start = self.scan.decoded;
        let mut taken = 0;
        loop {
            if self.ended {
                // Bytes after the end of the stream do not decode.
                return if taken < data.len() {
                    Err(io::Error::other(CORRUPT))
                } else {
                    Ok(Fed::All)
                };
            }
            if self.scan.decoded.saturating_sub(start) >= STEP {
                return Ok(Fed::Partly(taken));
            }
            match self.decode(data, &mut taken)? {
                // Its input spent, the decoder still hands out what it decoded one buffer at a
                // time: the chunk is scanned once a call yields nothing more.
                (BrotliResult::NeedsMoreInput, 0) => return Ok(Fed::All),
                (BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput, _) => {}
                (BrotliResult::ResultSuccess, _) => self.ended = true,
                (BrotliResult::ResultFailure, _) => return Err(io::Error::other(CORRUPT)),
            }
        }
    }

    /// A step leaves no output behind unless it says so, and the caller steps on until the
    /// chunk is scanned: what is left to decode here is the stream's end, or nothing.
    fn finish(&mut self) -> io::Result<()> {
        let mut taken = 0;
        while !self.ended {
            match self.decode(&[], &mut taken)?.0 {
                BrotliResult::NeedsMoreOutput => {}
                BrotliResult::ResultSuccess => self.ended = true,
                BrotliResult::NeedsMoreInput | BrotliResult::ResultFailure => {
                    return Err(io::Error::other(CORRUPT));
                }
            }
        }
        Ok(())
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
            Coding::Brotli => Decoder::Brotli(Box::new(Brotli::new(scan))),
        };
        Inflating {
            decoder,
            window_unchecked: coding == Coding::Brotli,
            failed: false,
        }
    }

    /// Scans a step of the next chunk as sent (see [`STEP`]); what it completes goes to `out`.
    pub fn feed_step(&mut self, data: &[u8], out: &mut Vec<Found>) -> Fed {
        if self.failed {
            return Fed::All;
        }
        if let (true, Some(&first)) = (self.window_unchecked, data.first()) {
            self.window_unchecked = false;
            if brotli_window_bits(first).is_none_or(|bits| bits > MAX_BROTLI_WINDOW_BITS) {
                self.failed = true;
                out.push(Found::Unreadable(WIDE_WINDOW));
                return Fed::All;
            }
        }
        let result = self.decoder.step(data);
        let fed = *result.as_ref().unwrap_or(&Fed::All);
        self.settle(result.map(drop), out);
        fed
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

#[cfg(test)]
mod tests {
    use super::*;

    /// How many bytes `prefix` of a brotli stream decodes to: one call, with room for it all.
    fn decodable(prefix: &[u8], room: usize) -> usize {
        let mut state = BrotliState::new(
            StandardAlloc::default(),
            StandardAlloc::default(),
            StandardAlloc::default(),
        );
        let mut out = vec![0; room];
        let (mut available_in, mut taken) = (prefix.len(), 0);
        let (mut available_out, mut written, mut total) = (room, 0, 0);
        BrotliDecompressStream(
            &mut available_in,
            &mut taken,
            prefix,
            &mut available_out,
            &mut written,
            &mut out,
            &mut total,
            &mut state,
        );
        written
    }

    /// Words from a small vocabulary, `n` bytes: compressible, not trivially.
    fn words(n: usize, seed: &mut u64) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "th",
        ];
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(WORDS[(*seed >> 61) as usize].as_bytes());
            out.push(b' ');
        }
        out
    }

    /// Each chunk of a brotli body is scanned as far as the stream up to it decodes before the
    /// chunk is done (its step says `All`): the decoder hands out what it holds one buffer at a
    /// time, so a step asks until it has nothing more. A `_method` is found in the chunk that
    /// completes it, not some chunks later (those would have gone upstream unread).
    #[test]
    fn a_brotli_chunk_is_scanned_as_far_as_it_decodes() {
        let mut seed = 7;
        let mut body = b"{\"a\": \"".to_vec();
        body.extend(words(100 << 10, &mut seed));
        body.resize(body.len() + (2 << 20), b'0');
        body.extend_from_slice(br#"", "_method": "DELETE", "b": ""#);
        body.extend(words(100 << 10, &mut seed));
        body.resize(body.len() + (2 << 20), b'1');
        body.extend_from_slice(b"\"}");
        let mut sent = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut sent, 4096, 5, 22);
            w.write_all(&body).unwrap();
        }
        let mut scan = Inflating::new(Coding::Brotli);
        let mut out = Vec::new();
        let mut end = 0;
        for (i, chunk) in sent.chunks(64).enumerate() {
            end += chunk.len();
            let mut at = 0;
            while let Fed::Partly(n) = scan.feed_step(&chunk[at..], &mut out) {
                at += n;
            }
            let want = decodable(&sent[..end], body.len() + 1);
            assert_eq!(scan.decoder.scan().decoded, want, "after chunk {i}");
        }
        scan.finish(&mut out);
        assert_eq!(out, [Found::Method("DELETE".into())]);
    }
}
