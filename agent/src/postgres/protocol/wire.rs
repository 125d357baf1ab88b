//! Bounds-checked reading and length-patched writing of message bodies.
//!
//! `Reader` never indexes past its buffer: every read checks the remaining length first and
//! returns [`ProtocolError::Truncated`] otherwise. Writers cannot fail; their documented
//! limits (NUL-truncated strings, at most `u16::MAX` list items) keep the output well-formed.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtocolError;

/// A cursor over one message body (the bytes after the length word).
pub(crate) struct Reader {
    message: &'static str,
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(message: &'static str, buf: Bytes) -> Self {
        Self {
            message,
            buf,
            pos: 0,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An [`ProtocolError::InvalidValue`] for this message.
    pub(crate) fn invalid(&self, field: &'static str, value: i64) -> ProtocolError {
        ProtocolError::InvalidValue {
            message: self.message,
            field,
            value,
        }
    }

    /// The next `n` bytes, sharing the underlying buffer.
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, ProtocolError> {
        let have = self.remaining();
        if n > have {
            return Err(ProtocolError::Truncated {
                message: self.message,
                field,
                need: n,
                have,
            });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let src = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&src);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, ProtocolError> {
        self.array(field).map(i8::from_be_bytes)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        self.array(field).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        self.array(field).map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        self.array(field).map(u32::from_be_bytes)
    }

    /// An Int16 item count; PostgreSQL reads these unsigned.
    pub(crate) fn count(&mut self, field: &'static str) -> Result<usize, ProtocolError> {
        self.array(field)
            .map(|b| usize::from(u16::from_be_bytes(b)))
    }

    /// A capacity for `count` items of at least `min_item` bytes each that the remaining body
    /// can actually hold, so a lying count cannot force a large allocation.
    pub(crate) fn capacity(&self, count: usize, min_item: usize) -> usize {
        count.min(self.remaining() / min_item.max(1))
    }

    /// A NUL-terminated string as raw bytes, without the NUL.
    pub(crate) fn cbytes(&mut self, field: &'static str) -> Result<Bytes, ProtocolError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(ProtocolError::MissingNul {
                message: self.message,
                field,
            });
        };
        let out = self.buf.slice(self.pos..self.pos + nul);
        self.pos += nul + 1;
        Ok(out)
    }

    /// A NUL-terminated string that must be valid UTF-8.
    pub(crate) fn cstr(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let raw = self.cbytes(field)?;
        std::str::from_utf8(&raw)
            .map(str::to_owned)
            .map_err(|_| ProtocolError::InvalidUtf8 {
                message: self.message,
                field,
            })
    }

    /// A NUL-terminated string, invalid UTF-8 replaced by U+FFFD.
    pub(crate) fn cstr_lossy(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let raw = self.cbytes(field)?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// An Int32 length followed by that many bytes; length -1 is SQL NULL.
    pub(crate) fn nullable(&mut self, field: &'static str) -> Result<Option<Bytes>, ProtocolError> {
        match self.i32(field)? {
            -1 => Ok(None),
            len => match usize::try_from(len) {
                Ok(n) => self.bytes(n, field).map(Some),
                Err(_) => Err(self.invalid(field, i64::from(len))),
            },
        }
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        out
    }

    /// Succeeds only if the whole body was read.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ProtocolError::TrailingBytes {
                message: self.message,
                count,
            }),
        }
    }
}

/// Appends one message: the type byte (none for startup packets), a length word patched once
/// `body` has written its fields, and the body.
pub(crate) fn put_message(dst: &mut BytesMut, tag: Option<u8>, body: impl FnOnce(&mut BytesMut)) {
    if let Some(tag) = tag {
        dst.put_u8(tag);
    }
    let start = dst.len();
    dst.put_i32(0);
    body(dst);
    let len = i32::try_from(dst.len() - start).unwrap_or(i32::MAX);
    if let Some(word) = dst.get_mut(start..start + 4) {
        word.copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends a C string. A NUL inside `s` would end the field early and let the rest be read as
/// further fields, so the string is cut at its first NUL.
pub(crate) fn put_cstr(dst: &mut BytesMut, s: &[u8]) {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    dst.put_slice(s.get(..end).unwrap_or_default());
    dst.put_u8(0);
}

/// Appends an Int16 item count of at most `u16::MAX` and returns how many items to write.
pub(crate) fn put_count(dst: &mut BytesMut, n: usize) -> usize {
    let count = u16::try_from(n).unwrap_or(u16::MAX);
    dst.put_u16(count);
    usize::from(count)
}

/// Appends an Int32 length (-1 for NULL) and the bytes, at most `i32::MAX` of them.
pub(crate) fn put_nullable(dst: &mut BytesMut, value: Option<&Bytes>) {
    put_nullable_slice(dst, value.map(|v| &v[..]));
}

/// [`put_nullable`] of a borrowed value.
pub(crate) fn put_nullable_slice(dst: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => dst.put_i32(-1),
        Some(v) => {
            let len = i32::try_from(v.len()).unwrap_or(i32::MAX);
            dst.put_i32(len);
            dst.put_slice(v.get(..len as usize).unwrap_or_default());
        }
    }
}

/// Checks that a Bind/FunctionCall format code list has 0, 1 or `values` entries, as the server
/// requires.
pub(crate) fn check_format_count(
    message: &'static str,
    formats: usize,
    values: usize,
) -> Result<(), ProtocolError> {
    if formats <= 1 || formats == values {
        Ok(())
    } else {
        Err(ProtocolError::FormatCountMismatch {
            message,
            formats,
            values,
        })
    }
}

/// The format code that applies to value `i` under PostgreSQL's rule: no codes means text, one
/// code applies to all values, otherwise one code per value.
pub(crate) fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => super::FORMAT_TEXT,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(super::FORMAT_TEXT),
    }
}

/// Debug output for values that may be secret or unmasked: only their length.
pub(crate) struct Redacted<'a>(pub &'a [u8]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// Debug output for a list of nullable values: lengths only.
pub(crate) fn redacted_values(values: &[Option<Bytes>]) -> Vec<Option<Redacted<'_>>> {
    values.iter().map(|v| v.as_deref().map(Redacted)).collect()
}

/// Defines a message enum whose variants are named after their message types, with `From`
/// conversions and an `encode` that dispatches to each type.
macro_rules! message_enum {
    ($(#[$meta:meta])* $name:ident { $($ty:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $(
                #[doc = concat!("A [`", stringify!($ty), "`].")]
                $ty($ty),
            )*
        }

        $(
            impl From<$ty> for $name {
                fn from(m: $ty) -> Self {
                    Self::$ty(m)
                }
            }
        )*

        impl $name {
            /// Appends the message, header included, to `dst`.
            pub fn encode(&self, dst: &mut ::bytes::BytesMut) {
                match self {
                    $( Self::$ty(m) => m.encode(dst), )*
                }
            }

            /// The message's protocol name, for logs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$ty(_) => $ty::NAME, )*
                }
            }
        }
    };
}
pub(crate) use message_enum;

/// Defines a message whose body is empty: a type byte and a length word of 4.
macro_rules! empty_message {
    ($(#[$meta:meta])* $name:ident = $tag:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl $name {
            /// The message type byte.
            pub const TAG: u8 = $tag;
            /// The protocol name, for errors and logs.
            pub const NAME: &'static str = stringify!($name);

            /// Decodes the body (which must be empty).
            pub fn decode(body: ::bytes::Bytes) -> Result<Self, $crate::postgres::protocol::ProtocolError> {
                $crate::postgres::protocol::wire::Reader::new(Self::NAME, body).finish()?;
                Ok(Self)
            }

            /// Appends the message, header included, to `dst`.
            pub fn encode(&self, dst: &mut ::bytes::BytesMut) {
                $crate::postgres::protocol::wire::put_message(dst, Some(Self::TAG), |_| {});
            }
        }
    };
}
pub(crate) use empty_message;

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new("Test", Bytes::from_static(bytes))
    }

    #[test]
    fn reads_fixed_width_integers_big_endian() {
        let mut r = reader(b"\x01\xff\xfe\x00\x00\x01\x00\xff\xff\xff\xff");
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.i16("b").unwrap(), -2);
        assert_eq!(r.i32("c").unwrap(), 256);
        assert_eq!(r.u32("d").unwrap(), u32::MAX);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_reads_report_need_and_have() {
        let mut r = reader(b"\x00\x01");
        assert_eq!(
            r.i32("pid"),
            Err(ProtocolError::Truncated {
                message: "Test",
                field: "pid",
                need: 4,
                have: 2
            })
        );
    }

    #[test]
    fn cstr_requires_nul_and_utf8() {
        assert_eq!(reader(b"abc\0").cstr("name").unwrap(), "abc");
        assert_eq!(
            reader(b"abc").cstr("name"),
            Err(ProtocolError::MissingNul {
                message: "Test",
                field: "name"
            })
        );
        assert_eq!(
            reader(b"\xff\0").cstr("name"),
            Err(ProtocolError::InvalidUtf8 {
                message: "Test",
                field: "name"
            })
        );
        assert_eq!(reader(b"\xff\0").cstr_lossy("m").unwrap(), "\u{fffd}");
    }

    #[test]
    fn nullable_values() {
        type Want = Result<Option<&'static [u8]>, ProtocolError>;
        let cases: &[(&'static [u8], Want)] = &[
            (b"\xff\xff\xff\xff", Ok(None)),
            (b"\x00\x00\x00\x00", Ok(Some(b""))),
            (b"\x00\x00\x00\x02hi", Ok(Some(b"hi"))),
            (
                b"\xff\xff\xff\xfe",
                Err(ProtocolError::InvalidValue {
                    message: "Test",
                    field: "v",
                    value: -2,
                }),
            ),
            (
                b"\x00\x00\x00\x05hi",
                Err(ProtocolError::Truncated {
                    message: "Test",
                    field: "v",
                    need: 5,
                    have: 2,
                }),
            ),
        ];
        for (input, want) in cases {
            let got = reader(input).nullable("v");
            assert_eq!(
                got.as_ref().map(|v| v.as_deref()),
                want.as_ref().map(|v| *v),
                "{input:?}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut r = reader(b"a\0xy");
        r.cstr("s").unwrap();
        assert_eq!(
            r.finish(),
            Err(ProtocolError::TrailingBytes {
                message: "Test",
                count: 2
            })
        );
    }

    #[test]
    fn capacity_is_bounded_by_remaining_bytes() {
        let r = reader(b"12345678");
        assert_eq!(r.capacity(65_535, 4), 2);
        assert_eq!(r.capacity(1, 4), 1);
        assert_eq!(r.capacity(10, 0), 8);
    }

    #[test]
    fn put_message_patches_the_length() {
        let mut dst = BytesMut::new();
        put_message(&mut dst, Some(b'Q'), |b| put_cstr(b, b"x"));
        assert_eq!(&dst[..], b"Q\x00\x00\x00\x06x\0");
        let mut dst = BytesMut::new();
        put_message(&mut dst, None, |b| b.put_u32(7));
        assert_eq!(&dst[..], b"\x00\x00\x00\x08\x00\x00\x00\x07");
    }

    #[test]
    fn put_cstr_cuts_at_the_first_nul() {
        let mut dst = BytesMut::new();
        put_cstr(&mut dst, b"alice\0database\0postgres");
        assert_eq!(&dst[..], b"alice\0");
    }

    #[test]
    fn format_rule() {
        assert_eq!(format_of(&[], 3), 0);
        assert_eq!(format_of(&[1], 3), 1);
        assert_eq!(format_of(&[0, 1], 1), 1);
        assert_eq!(format_of(&[0, 1], 5), 0);
        assert!(check_format_count("Bind", 0, 3).is_ok());
        assert!(check_format_count("Bind", 1, 3).is_ok());
        assert!(check_format_count("Bind", 3, 3).is_ok());
        assert!(check_format_count("Bind", 2, 3).is_err());
    }
}
