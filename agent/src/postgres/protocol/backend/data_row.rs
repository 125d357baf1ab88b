//! DataRow (B): one row of a result set.
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{
    Reader, put_count, put_message, put_nullable, redacted_values,
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

    #[test]
    fn debug_hides_values() {
        let row = DataRow {
            values: vec![Some(Bytes::from_static(b"4111-1111-1111-1111"))],
        };
        let shown = format!("{row:?}");
        assert!(!shown.contains("4111"), "{shown}");
    }
}
