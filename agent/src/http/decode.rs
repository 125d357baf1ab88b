//! Decoding of compressed response bodies (`Content-Encoding: gzip | deflate | br`) before
//! masking, bounded: a body that would inflate past the limit is refused, not buffered, and so
//! is a `br` body in the large-window extension (a window up to 1 GiB, which Node and browsers
//! do not decode either).
use std::io::Read;

use hyper::header::HeaderValue;

use crate::policy::{BodyCoding, NamedCodings};

/// A body's content coding, as tollgate handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding (absent, or `identity`).
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped as the RFC says, raw deflate as some servers send.
    Deflate,
    /// `br`.
    Brotli,
}

/// Why a body cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A coding tollgate does not decode (or several stacked codings).
    #[error("unsupported content encoding {0:?}")]
    Unsupported(String),
    /// The decoded body is larger than the limit.
    #[error("decoded body larger than {0} bytes")]
    TooLarge(usize),
    /// The bytes are not a valid stream of that coding.
    #[error("corrupt {coding:?} body: {source}")]
    Corrupt {
        /// The coding.
        coding: Coding,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
}

impl Coding {
    /// The coding named by a `Content-Encoding` header (`None`: identity).
    pub fn of(header: Option<&HeaderValue>) -> Result<Self, DecodeError> {
        let Some(value) = header else {
            return Ok(Self::Identity);
        };
        let text = value.to_str().map_err(|_| {
            DecodeError::Unsupported(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        // One parse of the header for requests and responses (`policy::NamedCodings`).
        match NamedCodings::of([text]) {
            None => Ok(Self::Identity),
            Some(NamedCodings::One(BodyCoding::Gzip)) => Ok(Self::Gzip),
            Some(NamedCodings::One(BodyCoding::Deflate)) => Ok(Self::Deflate),
            Some(NamedCodings::One(BodyCoding::Brotli)) => Ok(Self::Brotli),
            Some(NamedCodings::Other | NamedCodings::Several) => {
                Err(DecodeError::Unsupported(text.to_owned()))
            }
        }
    }
}

/// Decodes `data` coded with `coding`, at most `limit` bytes of output.
pub fn decode(coding: Coding, data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |source| DecodeError::Corrupt { coding, source };
    match coding {
        Coding::Identity => {
            if data.len() > limit {
                return Err(DecodeError::TooLarge(limit));
            }
            Ok(data.to_vec())
        }
        Coding::Gzip => {
            read_limited(flate2::read::MultiGzDecoder::new(data), limit).map_err(|e| match e {
                Limited::TooLarge => DecodeError::TooLarge(limit),
                Limited::Io(e) => corrupt(e),
            })
        }
        Coding::Deflate => {
            match read_limited(flate2::read::ZlibDecoder::new(data), limit) {
                Ok(out) => Ok(out),
                Err(Limited::TooLarge) => Err(DecodeError::TooLarge(limit)),
                // Not zlib-wrapped: raw deflate.
                Err(Limited::Io(_)) => read_limited(flate2::read::DeflateDecoder::new(data), limit)
                    .map_err(|e| match e {
                        Limited::TooLarge => DecodeError::TooLarge(limit),
                        Limited::Io(e) => corrupt(e),
                    }),
            }
        }
        Coding::Brotli => {
            // The large-window extension's windows reach 1 GiB, held before any output.
            if data
                .first()
                .is_some_and(|&b| crate::policy::brotli_window_bits(b).is_none())
            {
                return Err(DecodeError::Unsupported("br with a large window".into()));
            }
            read_limited(brotli::Decompressor::new(data, 4096), limit).map_err(|e| match e {
                Limited::TooLarge => DecodeError::TooLarge(limit),
                Limited::Io(e) => corrupt(e),
            })
        }
    }
}

enum Limited {
    TooLarge,
    Io(std::io::Error),
}

fn read_limited(r: impl Read, limit: usize) -> Result<Vec<u8>, Limited> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut out).map_err(Limited::Io)?;
    if out.len() > limit {
        return Err(Limited::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn codings() {
        let cases: &[(Option<&str>, Option<Coding>)] = &[
            (None, Some(Coding::Identity)),
            (Some("identity"), Some(Coding::Identity)),
            (Some("gzip"), Some(Coding::Gzip)),
            (Some("X-GZIP"), Some(Coding::Gzip)),
            (Some("deflate"), Some(Coding::Deflate)),
            (Some("br"), Some(Coding::Brotli)),
            (Some("gzip, identity"), Some(Coding::Gzip)),
            (Some("gzip, br"), None),
            (Some("zstd"), None),
            (Some("compress"), None),
        ];
        for (header, want) in cases {
            let h = header.map(HeaderValue::from_static);
            let got = Coding::of(h.as_ref()).ok();
            assert_eq!(got, *want, "{header:?}");
        }
    }

    #[test]
    fn gzip_round_trip_and_limit() {
        let body = br#"{"card":"4111111111111111"}"#.repeat(100);
        let z = gzip(&body);
        assert!(z.len() < body.len());
        assert_eq!(decode(Coding::Gzip, &z, body.len()).unwrap(), body);
        assert!(matches!(
            decode(Coding::Gzip, &z, body.len() - 1),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(matches!(
            decode(Coding::Gzip, b"not gzip at all", 1000),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let body = b"hello hello hello hello".to_vec();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body).unwrap();
        assert_eq!(
            decode(Coding::Deflate, &z.finish().unwrap(), 100).unwrap(),
            body
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&body).unwrap();
        assert_eq!(
            decode(Coding::Deflate, &raw.finish().unwrap(), 100).unwrap(),
            body
        );
    }

    #[test]
    fn brotli_round_trip() {
        let body = b"brotli body with 4111111111111111 inside".repeat(10);
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(&body).unwrap();
        }
        assert_eq!(decode(Coding::Brotli, &out, body.len()).unwrap(), body);
        assert!(matches!(
            decode(Coding::Brotli, &out, 10),
            Err(DecodeError::TooLarge(10))
        ));
        // The large-window extension's code in the first byte: refused before decoding.
        assert!(matches!(
            decode(Coding::Brotli, b"\x11\x3c\x00", 1 << 20),
            Err(DecodeError::Unsupported(_))
        ));
    }

    #[test]
    fn identity_limit() {
        assert_eq!(decode(Coding::Identity, b"abc", 3).unwrap(), b"abc");
        assert!(decode(Coding::Identity, b"abcd", 3).is_err());
    }
}
