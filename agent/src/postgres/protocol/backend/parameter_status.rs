//! ParameterStatus (B): the current value of a reported run-time parameter.
use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// A reported parameter (`server_version`, `client_encoding`, `TimeZone`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    /// Parameter name.
    pub name: String,
    /// Its current value.
    pub value: String,
}

impl ParameterStatus {
    /// The message type byte.
    pub const TAG: u8 = b'S';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "ParameterStatus";

    /// A status for `name = value`.
    pub fn new(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let name = r.cstr("name")?;
        let value = r.cstr("value")?;
        r.finish()?;
        Ok(Self { name, value })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_cstr(b, self.name.as_bytes());
            put_cstr(b, self.value.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_bytes() {
        let wire = b"S\x00\x00\x00\x19client_encoding\0UTF8\0";
        let msg = ParameterStatus::new("client_encoding", "UTF8");
        assert_eq!(backend_roundtrip(msg), &wire[..]);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[b"", b"name\0", b"name\0value", b"a\0b\0c"];
        for body in cases {
            assert!(
                ParameterStatus::decode(Bytes::from_static(body)).is_err(),
                "{body:?}"
            );
        }
    }
}
