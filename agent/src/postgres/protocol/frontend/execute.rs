//! Execute (F): run a portal.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// A request to run portal `portal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// Portal name; empty for the unnamed portal.
    pub portal: String,
    /// Maximum number of rows to return; 0 means no limit.
    pub max_rows: i32,
}

impl Execute {
    /// The message type byte.
    pub const TAG: u8 = b'E';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Execute";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let portal = r.cstr("portal name")?;
        let max_rows = r.i32("row limit")?;
        r.finish()?;
        Ok(Self { portal, max_rows })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_cstr(b, self.portal.as_bytes());
            b.put_i32(self.max_rows);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        let wire = b"E\x00\x00\x00\x09\0\x00\x00\x00\x00";
        let msg = Execute {
            portal: String::new(),
            max_rows: 0,
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
        frontend_roundtrip(
            Execute {
                portal: "c1".into(),
                max_rows: 100,
            },
            false,
        );
    }

    #[test]
    fn rejects_truncated_limit() {
        assert_eq!(
            Execute::decode(Bytes::from_static(b"\0\x00\x00")),
            Err(ProtocolError::Truncated {
                message: "Execute",
                field: "row limit",
                need: 4,
                have: 2,
            })
        );
    }
}
