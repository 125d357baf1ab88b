//! Parse (F): prepare a statement in the extended protocol.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_count, put_cstr, put_message};

/// A request to prepare `query` as statement `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    /// Statement name; empty for the unnamed statement.
    pub name: String,
    /// SQL text (UTF-8), one statement.
    pub query: String,
    /// Declared parameter type OIDs; 0 leaves a type unspecified.
    pub param_types: Vec<u32>,
}

impl Parse {
    /// The message type byte.
    pub const TAG: u8 = b'P';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Parse";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let name = r.cstr("statement name")?;
        let query = r.cstr("query")?;
        let count = r.count("parameter count")?;
        let mut param_types = Vec::with_capacity(r.capacity(count, 4));
        for _ in 0..count {
            param_types.push(r.u32("parameter type")?);
        }
        r.finish()?;
        Ok(Self {
            name,
            query,
            param_types,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_cstr(b, self.name.as_bytes());
            put_cstr(b, self.query.as_bytes());
            let n = put_count(b, self.param_types.len());
            for oid in self.param_types.iter().take(n) {
                b.put_u32(*oid);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        // Parse of "SELECT $1" as the unnamed statement with one int4 (OID 23) parameter.
        let wire = b"P\x00\x00\x00\x15\0SELECT $1\0\x00\x01\x00\x00\x00\x17";
        let msg = Parse {
            name: String::new(),
            query: "SELECT $1".into(),
            param_types: vec![23],
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
    }

    #[test]
    fn round_trips() {
        frontend_roundtrip(
            Parse {
                name: "s1".into(),
                query: "INSERT INTO t VALUES ($1, $2)".into(),
                param_types: vec![0, 25],
            },
            false,
        );
    }

    #[test]
    fn rejects_truncated_parameter_types() {
        let body = Bytes::from_static(b"\0SELECT $1\0\x00\x02\x00\x00\x00\x17");
        assert_eq!(
            Parse::decode(body),
            Err(ProtocolError::Truncated {
                message: "Parse",
                field: "parameter type",
                need: 4,
                have: 0,
            })
        );
    }
}
