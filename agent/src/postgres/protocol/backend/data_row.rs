//! DataRow (B): one row of a result set.
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{
    Reader, put_count, put_message, put_nullable, put_nullable_slice, redacted_values,
};

/// One row; values in RowDescription order. `Debug` shows only value lengths (values are
/// unmasked data).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DataRow {
    /// Column values in the format the RowDescription announced; `None` is SQL NULL.
    pub values: Vec<Option<Bytes>>,
}

impl DataRow {
    /// The message type byte.
    pub const TAG: u8 = b'D';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "DataRow";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let count = r.count("column count")?;
        let mut values = Vec::with_capacity(r.capacity(count, 4));
        for _ in 0..count {
            values.push(r.nullable("column value")?);
        }
        r.finish()?;
        Ok(Self { values })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            let n = put_count(b, self.values.len());
            for value in self.values.iter().take(n) {
                put_nullable(b, value.as_ref());
            }
        });
    }
}

/// The values of a DataRow body, borrowed from the received bytes: what the masking path reads
/// (every value of every row) without a [`DataRow`]'s vector and reference-counted slices. It
/// accepts exactly the bodies [`DataRow::decode`] accepts.
#[derive(Clone, Copy)]
pub struct RowValues<'a> {
    body: &'a [u8],
    count: usize,
}

impl<'a> RowValues<'a> {
    /// Checks the whole body once; a malformed one gets [`DataRow::decode`]'s error.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let well_formed = || -> Option<usize> {
            let (count, mut rest) = body.split_first_chunk::<2>()?;
            let count = usize::from(u16::from_be_bytes(*count));
            for _ in 0..count {
                let (len, after) = rest.split_first_chunk::<4>()?;
                rest = match i32::from_be_bytes(*len) {
                    -1 => after,
                    n => after.get(usize::try_from(n).ok()?..)?,
                };
            }
            rest.is_empty().then_some(count)
        };
        match well_formed() {
            Some(count) => Ok(Self { body, count }),
            // The exact error, from the decoder (rare: a server does not send these).
            // (Never `Ok`: both read the same layout; were it, the row is still refused.)
            None => DataRow::decode(Bytes::copy_from_slice(body)).and(Err(
                ProtocolError::TrailingBytes {
                    message: DataRow::NAME,
                    count: 0,
                },
            )),
        }
    }

    /// The values in order; `None` is SQL NULL.
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + use<'a> {
        let mut rest = self.body.get(2..).unwrap_or_default();
        (0..self.count).map(move |_| {
            let (len, after) = rest.split_first_chunk::<4>()?;
            let (value, next) = match usize::try_from(i32::from_be_bytes(*len)) {
                Ok(n) => after
                    .split_at_checked(n)
                    .map_or((None, &[][..]), |(v, r)| (Some(v), r)),
                Err(_) => (None, after),
            };
            rest = next;
            value
        })
    }

    /// Appends a DataRow with these values, value `i` replaced by `with(i)` where that is `Some`.
    pub fn encode_replacing<'r>(
        &self,
        dst: &mut BytesMut,
        mut with: impl FnMut(usize) -> Option<&'r [u8]>,
    ) {
        put_message(dst, Some(DataRow::TAG), |b| {
            let n = put_count(b, self.count);
            for (i, value) in self.iter().enumerate().take(n) {
                put_nullable_slice(b, with(i).or(value));
            }
        });
    }
}

impl fmt::Debug for DataRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataRow")
            .field("values", &redacted_values(&self.values))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_bytes() {
        // Row ('1', NULL, '') in text format.
        let wire: &[u8] =
            b"D\x00\x00\x00\x13\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00\x00\x00\x00";
        let msg = DataRow {
            values: vec![Some(Bytes::from_static(b"1")), None, Some(Bytes::new())],
        };
        assert_eq!(backend_roundtrip(msg), wire);
    }

    #[test]
    fn round_trips() {
        backend_roundtrip(DataRow::default());
        backend_roundtrip(DataRow {
            values: vec![Some(Bytes::from(vec![b'x'; 70_000])); 3],
        });
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[(&'static [u8], ProtocolError)] = &[
            (
                b"\x00",
                ProtocolError::Truncated {
                    message: "DataRow",
                    field: "column count",
                    need: 2,
                    have: 1,
                },
            ),
            (
                b"\x00\x02\xff\xff\xff\xff",
                ProtocolError::Truncated {
                    message: "DataRow",
                    field: "column value",
                    need: 4,
                    have: 0,
                },
            ),
            (
                b"\x00\x01\x80\x00\x00\x00",
                ProtocolError::InvalidValue {
                    message: "DataRow",
                    field: "column value",
                    value: i64::from(i32::MIN),
                },
            ),
            (
                b"\x00\x01\x7f\xff\xff\xffabc",
                ProtocolError::Truncated {
                    message: "DataRow",
                    field: "column value",
                    need: i32::MAX as usize,
                    have: 3,
                },
            ),
            (
                b"\x00\x00\x00",
                ProtocolError::TrailingBytes {
                    message: "DataRow",
                    count: 1,
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                DataRow::decode(Bytes::from_static(body)).as_ref(),
                Err(want),
                "{body:?}"
            );
        }
    }

    /// `RowValues` reads what `DataRow::decode` reads, refuses what it refuses (with its
    /// error), and re-encodes with replacements.
    #[test]
    fn row_values_agree_with_the_decoder() {
        let bodies: &[&[u8]] = &[
            b"\x00\x00",
            b"\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00\x00\x00\x00",
            b"\x00\x02\x00\x00\x00\x03abc\x00\x00\x00\x02de",
            // Malformed: truncated count, missing value, bad length, short value, trailing.
            b"\x00",
            b"\x00\x02\xff\xff\xff\xff",
            b"\x00\x01\x80\x00\x00\x00",
            b"\x00\x01\xff\xff\xff\xfe",
            b"\x00\x01\x7f\xff\xff\xffabc",
            b"\x00\x01\x00\x00\x00\x04abc",
            b"\x00\x00\x00",
            b"\x00\x01\x00\x00\x00\x01ab",
        ];
        for body in bodies {
            let decoded = DataRow::decode(Bytes::from_static(body));
            let viewed = RowValues::parse(body);
            match (&decoded, &viewed) {
                (Ok(row), Ok(view)) => {
                    let values: Vec<Option<&[u8]>> = view.iter().collect();
                    let want: Vec<Option<&[u8]>> =
                        row.values.iter().map(|v| v.as_deref()).collect();
                    assert_eq!(values, want, "{body:?}");
                    assert_eq!(view.iter().count(), want.len());
                    // Unchanged re-encoding gives the same bytes.
                    let mut same = BytesMut::new();
                    view.encode_replacing(&mut same, |_| None);
                    let mut direct = BytesMut::new();
                    row.encode(&mut direct);
                    assert_eq!(same, direct, "{body:?}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{body:?}"),
                _ => panic!("{body:?}: decoder {decoded:?}, view {}", viewed.is_ok()),
            }
        }

        // Value 0 and the NULL at 1 replaced, 2 kept: lengths rebuilt.
        let body = b"\x00\x03\x00\x00\x00\x03abc\xff\xff\xff\xff\x00\x00\x00\x01z";
        let view = RowValues::parse(body).expect("well formed");
        let mut out = BytesMut::new();
        view.encode_replacing(&mut out, |i| match i {
            0 => Some(&b"**c**"[..]),
            1 => Some(&b""[..]),
            _ => None,
        });
        let want = DataRow {
            values: vec![
                Some(Bytes::from_static(b"**c**")),
                Some(Bytes::new()),
                Some(Bytes::from_static(b"z")),
            ],
        };
        let mut direct = BytesMut::new();
        want.encode(&mut direct);
        assert_eq!(out, direct);
    }

    #[test]
    fn debug_hides_values() {
        let row = DataRow {
            values: vec![Some(Bytes::from_static(b"4111-1111-1111-1111"))],
        };
        let shown = format!("{row:?}");
        assert!(!shown.contains("4111"), "{shown}");
    }
}
