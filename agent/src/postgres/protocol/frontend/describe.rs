//! Describe (F): ask for the description of a prepared statement or portal.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// What a Describe or Close refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A prepared statement (`'S'`).
    Statement,
    /// A portal (`'P'`).
    Portal,
}

impl ObjectKind {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            ObjectKind::Statement => b'S',
            ObjectKind::Portal => b'P',
        }
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Self, ProtocolError> {
        match r.u8("object kind")? {
            b'S' => Ok(ObjectKind::Statement),
            b'P' => Ok(ObjectKind::Portal),
            other => Err(r.invalid("object kind", i64::from(other))),
        }
    }
}

/// A request to describe a statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// Statement or portal.
    pub kind: ObjectKind,
    /// Its name; empty for the unnamed one.
    pub name: String,
}

impl Describe {
    /// The message type byte.
    pub const TAG: u8 = b'D';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Describe";

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
        let wire = b"D\x00\x00\x00\x06P\0";
        let msg = Describe {
            kind: ObjectKind::Portal,
            name: String::new(),
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
        frontend_roundtrip(
            Describe {
                kind: ObjectKind::Statement,
                name: "s1".into(),
            },
            false,
        );
    }

    #[test]
    fn rejects_unknown_kind() {
        assert_eq!(
            Describe::decode(Bytes::from_static(b"X\0")),
            Err(ProtocolError::InvalidValue {
                message: "Describe",
                field: "object kind",
                value: i64::from(b'X'),
            })
        );
        assert!(Describe::decode(Bytes::new()).is_err());
    }
}
