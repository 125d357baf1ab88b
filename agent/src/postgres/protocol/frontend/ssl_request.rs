//! SSLRequest (F) and the single-byte answer to it.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_message};

/// Request code of an SSLRequest (1234 << 16 | 5679).
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// Server's unframed answer: go ahead with the TLS handshake.
pub const SSL_ACCEPTED: u8 = b'S';
/// Server's unframed answer: no TLS; the client may continue in cleartext.
pub const SSL_REFUSED: u8 = b'N';

/// A request to switch the connection to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslRequest;

impl SslRequest {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "SSLRequest";

    /// Decodes the body (the request code).
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let code = r.u32("request code")?;
        if code != SSL_REQUEST_CODE {
            return Err(r.invalid("request code", i64::from(code)));
        }
        r.finish()?;
        Ok(Self)
    }

    /// Appends the packet, length word included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, None, |b| b.put_u32(SSL_REQUEST_CODE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_bytes() {
        let mut out = BytesMut::new();
        SslRequest.encode(&mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
        frontend_roundtrip(SslRequest, true);
    }

    #[test]
    fn rejects_other_codes_and_trailing_bytes() {
        assert!(SslRequest::decode(Bytes::from_static(b"\x04\xd2\x16\x30")).is_err());
        assert!(SslRequest::decode(Bytes::from_static(b"\x04\xd2\x16\x2f\x00")).is_err());
        assert!(SslRequest::decode(Bytes::from_static(b"\x04\xd2")).is_err());
    }
}
