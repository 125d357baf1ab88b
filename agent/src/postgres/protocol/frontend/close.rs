//! Close (F): close a prepared statement or portal.
use bytes::{BufMut, Bytes, BytesMut};

use super::describe::ObjectKind;
use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// A request to close a statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Statement or portal.
    pub kind: ObjectKind,
    /// Its name; empty for the unnamed one.
    pub name: String,
}

impl Close {
    /// The message type byte.
    pub const TAG: u8 = b'C';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Close";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let kind = ObjectKind::read(&mut r)?;
        let name = r.cstr("name")?;
        r.finish()?;
        Ok(Self { kind, name })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_u8(self.kind.byte());
            put_cstr(b, self.name.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        let wire = b"C\x00\x00\x00\x06P\0";
        let msg = Close {
            kind: ObjectKind::Portal,
            name: String::new(),
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
        frontend_roundtrip(
            Close {
                kind: ObjectKind::Statement,
                name: "s1".into(),
            },
            false,
        );
    }

    #[test]
    fn rejects_unknown_kind() {
        assert_eq!(
            Close::decode(Bytes::from_static(b"X\0")),
            Err(ProtocolError::InvalidValue {
                message: "Close",
                field: "object kind",
                value: i64::from(b'X'),
            })
        );
        assert!(Close::decode(Bytes::new()).is_err());
    }
}
