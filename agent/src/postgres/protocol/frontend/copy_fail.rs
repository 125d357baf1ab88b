//! CopyFail (F): the client aborts a COPY FROM STDIN.
use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// The client's reason for aborting a COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFail {
    /// Error message (UTF-8).
    pub message: String,
}

impl CopyFail {
    /// The message type byte.
    pub const TAG: u8 = b'f';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "CopyFail";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let message = r.cstr("message")?;
        r.finish()?;
        Ok(Self { message })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_cstr(b, self.message.as_bytes())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"f\x00\x00\x00\x0babort!\0";
        let msg = CopyFail {
            message: "abort!".into(),
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
        assert!(CopyFail::decode(Bytes::from_static(b"abort!")).is_err());
    }
}
