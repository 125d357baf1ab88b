//! FunctionCallResponse (B): the result of a FunctionCall.
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, Redacted, put_message, put_nullable};

/// A fast-path function result. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FunctionCallResponse {
    /// The result; `None` is SQL NULL.
    pub value: Option<Bytes>,
}

impl FunctionCallResponse {
    /// The message type byte.
    pub const TAG: u8 = b'V';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "FunctionCallResponse";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let value = r.nullable("result value")?;
        r.finish()?;
        Ok(Self { value })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_nullable(b, self.value.as_ref())
        });
    }
}

impl fmt::Debug for FunctionCallResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCallResponse")
            .field("value", &self.value.as_deref().map(Redacted))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"V\x00\x00\x00\x0c\x00\x00\x00\x04\x00\x00\x00\x00";
        let msg = FunctionCallResponse {
            value: Some(Bytes::from_static(b"\x00\x00\x00\x00")),
        };
        assert_eq!(backend_roundtrip(msg), &wire[..]);
        backend_roundtrip(FunctionCallResponse { value: None });
        assert!(FunctionCallResponse::decode(Bytes::from_static(b"\x00\x00\x00\x04\x00")).is_err());
    }
}
