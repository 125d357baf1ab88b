//! ParameterDescription (B): the parameter types of a described statement.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_count, put_message};

/// Parameter type OIDs of a prepared statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterDescription {
    /// One type OID per parameter.
    pub param_types: Vec<u32>,
}

impl ParameterDescription {
    /// The message type byte.
    pub const TAG: u8 = b't';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "ParameterDescription";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let count = r.count("parameter count")?;
        let mut param_types = Vec::with_capacity(r.capacity(count, 4));
        for _ in 0..count {
            param_types.push(r.u32("parameter type")?);
        }
        r.finish()?;
        Ok(Self { param_types })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
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
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19";
        let msg = ParameterDescription {
            param_types: vec![23, 25],
        };
        assert_eq!(backend_roundtrip(msg), &wire[..]);
        backend_roundtrip(ParameterDescription::default());
        assert!(ParameterDescription::decode(Bytes::from_static(b"\x00\x01\x00\x00")).is_err());
    }
}
