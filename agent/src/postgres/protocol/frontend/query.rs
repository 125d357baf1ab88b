//! Query (F): a simple-protocol query string, possibly several statements.
use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// A simple-protocol query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// SQL text (UTF-8).
    pub query: String,
}

impl Query {
    /// The message type byte.
    pub const TAG: u8 = b'Q';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Query";

    /// A query for `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self { query: sql.into() }
    }

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let query = r.cstr("query")?;
        r.finish()?;
        Ok(Self { query })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| put_cstr(b, self.query.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        let wire = b"Q\x00\x00\x00\x0dSELECT 1\0";
        let mut out = BytesMut::new();
        Query::new("SELECT 1").encode(&mut out);
        assert_eq!(&out[..], wire);
        assert_eq!(frontend_roundtrip(Query::new("SELECT 1"), false), &wire[..]);
    }

    #[test]
    fn round_trips() {
        for sql in ["", "SELECT 'é'; SELECT 2", "COPY t FROM STDIN"] {
            frontend_roundtrip(Query::new(sql), false);
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[b"", b"SELECT 1", b"SELECT 1\0x", b"SELECT \xff\0"];
        for body in cases {
            assert!(Query::decode(Bytes::from_static(body)).is_err(), "{body:?}");
        }
    }
}
