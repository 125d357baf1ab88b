//! RowDescription (B): the columns of the rows that follow.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_count, put_cstr, put_message};

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name (or alias).
    pub name: String,
    /// OID of the source table, 0 if the column is not a plain table column.
    pub table_oid: u32,
    /// Attribute number of the column in that table, 0 if none.
    pub column_attr: i16,
    /// OID of the column's data type.
    pub type_oid: u32,
    /// Data type size (`pg_type.typlen`); negative for variable-width types.
    pub type_size: i16,
    /// Type modifier (`pg_attribute.atttypmod`), e.g. varchar length + 4; -1 if none.
    pub type_modifier: i32,
    /// Format code: 0 text, 1 binary (0 in a Describe answer, where it is not yet known).
    pub format: i16,
}

impl FieldDescription {
    /// A text-format column of type `type_oid` not tied to a table.
    pub fn new(name: &str, type_oid: u32) -> Self {
        Self {
            name: name.to_owned(),
            table_oid: 0,
            column_attr: 0,
            type_oid,
            type_size: -1,
            type_modifier: -1,
            format: 0,
        }
    }
}

/// The shape of a result set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowDescription {
    /// Columns in order.
    pub fields: Vec<FieldDescription>,
}

impl RowDescription {
    /// The message type byte.
    pub const TAG: u8 = b'T';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "RowDescription";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let count = r.count("field count")?;
        // Smallest field: empty name (1) + 18 bytes of attributes.
        let mut fields = Vec::with_capacity(r.capacity(count, 19));
        for _ in 0..count {
            fields.push(FieldDescription {
                name: r.cstr("field name")?,
                table_oid: r.u32("table oid")?,
                column_attr: r.i16("column attribute number")?,
                type_oid: r.u32("type oid")?,
                type_size: r.i16("type size")?,
                type_modifier: r.i32("type modifier")?,
                format: r.i16("format code")?,
            });
        }
        r.finish()?;
        Ok(Self { fields })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            let n = put_count(b, self.fields.len());
            for f in self.fields.iter().take(n) {
                put_cstr(b, f.name.as_bytes());
                b.put_u32(f.table_oid);
                b.put_i16(f.column_attr);
                b.put_u32(f.type_oid);
                b.put_i16(f.type_size);
                b.put_i32(f.type_modifier);
                b.put_i16(f.format);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_select_one() {
        // `SELECT 1` from psql: one int4 column named "?column?".
        let wire: &[u8] = b"T\x00\x00\x00\x21\x00\x01?column?\0\
\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00";
        let mut field = FieldDescription::new("?column?", 23);
        field.type_size = 4;
        let msg = RowDescription {
            fields: vec![field],
        };
        assert_eq!(backend_roundtrip(msg), wire);
    }

    #[test]
    fn round_trips() {
        backend_roundtrip(RowDescription::default());
        backend_roundtrip(RowDescription {
            fields: vec![
                FieldDescription {
                    name: "email".into(),
                    table_oid: 16_385,
                    column_attr: 2,
                    type_oid: 1043,
                    type_size: -1,
                    type_modifier: 259,
                    format: 1,
                },
                FieldDescription::new("", 25),
            ],
        });
    }

    #[test]
    fn rejects_truncated_fields() {
        let body = Bytes::from_static(
            b"\x00\x02a\0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
        );
        assert_eq!(
            RowDescription::decode(body),
            Err(ProtocolError::MissingNul {
                message: "RowDescription",
                field: "field name"
            })
        );
        let body = Bytes::from_static(b"\x00\x01a\0\x00\x00");
        assert!(RowDescription::decode(body).is_err());
    }
}
