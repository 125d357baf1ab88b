//! GSSENCRequest (F) and the single-byte answer to it.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_message};

/// Request code of a GSSENCRequest (1234 << 16 | 5680).
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// Server's unframed answer: go ahead with GSSAPI encryption.
pub const GSSENC_ACCEPTED: u8 = b'S';
/// Server's unframed answer: no GSSAPI encryption; the client may continue in cleartext.
pub const GSSENC_REFUSED: u8 = b'N';

/// A request to switch the connection to GSSAPI encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GssEncRequest;

impl GssEncRequest {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "GSSENCRequest";

    /// Decodes the body (the request code).
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let code = r.u32("request code")?;
        if code != GSSENC_REQUEST_CODE {
            return Err(r.invalid("request code", i64::from(code)));
        }
        r.finish()?;
        Ok(Self)
    }

    /// Appends the packet, length word included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, None, |b| b.put_u32(GSSENC_REQUEST_CODE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        let mut out = BytesMut::new();
        GssEncRequest.encode(&mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x08\x04\xd2\x16\x30");
        frontend_roundtrip(GssEncRequest, true);
    }

    #[test]
    fn rejects_other_codes_and_trailing_bytes() {
        assert!(GssEncRequest::decode(Bytes::from_static(b"\x04\xd2\x16\x2f")).is_err());
        assert!(GssEncRequest::decode(Bytes::from_static(b"\x04\xd2\x16\x30\x00")).is_err());
        assert!(GssEncRequest::decode(Bytes::from_static(b"\x04\xd2")).is_err());
    }
}
