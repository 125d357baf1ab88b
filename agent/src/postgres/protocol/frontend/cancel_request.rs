//! CancelRequest (F): sent on a fresh connection to cancel another session's query.
use std::fmt;
use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, Redacted, put_message};

/// Request code of a CancelRequest (1234 << 16 | 5678).
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// A request to cancel the query running in session `pid`, proven by its secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Process id of the target backend, from its BackendKeyData.
    pub pid: i32,
    /// Secret key from the same BackendKeyData: 4 bytes up to protocol 3.0, up to 256 bytes
    /// from 3.2 (PostgreSQL 18).
    pub secret_key: Bytes,
}

impl CancelRequest {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "CancelRequest";
    /// Allowed secret key lengths.
    pub const KEY_LEN: RangeInclusive<usize> = 4..=256;
    /// Allowed packet lengths (length word, code, pid, key).
    pub const PACKET_LEN: RangeInclusive<usize> = 16..=268;

    /// Decodes the body (from the request code on).
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let code = r.u32("request code")?;
        if code != CANCEL_REQUEST_CODE {
            return Err(r.invalid("request code", i64::from(code)));
        }
        let pid = r.i32("process id")?;
        let secret_key = r.rest();
        if !Self::KEY_LEN.contains(&secret_key.len()) {
            return Err(ProtocolError::InvalidValue {
                message: Self::NAME,
                field: "secret key length",
                value: secret_key.len() as i64,
            });
        }
        Ok(Self { pid, secret_key })
    }

    /// Appends the packet, length word included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, None, |b| {
            b.put_u32(CANCEL_REQUEST_CODE);
            b.put_i32(self.pid);
            b.put_slice(&self.secret_key);
        });
    }
}

impl fmt::Debug for CancelRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelRequest")
            .field("pid", &self.pid)
            .field("secret_key", &Redacted(&self.secret_key))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn captured_protocol_3_0_bytes() {
        let wire = b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x30\x39\xde\xad\xbe\xef";
        let msg = CancelRequest::decode(Bytes::from_static(&wire[4..])).unwrap();
        assert_eq!(msg.pid, 12345);
        assert_eq!(&msg.secret_key[..], b"\xde\xad\xbe\xef");
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(&out[..], wire);
    }

    #[test]
    fn round_trip_short_and_long_keys() {
        for len in [4, 32, 256] {
            frontend_roundtrip(
                CancelRequest {
                    pid: 7,
                    secret_key: Bytes::from(vec![0xab; len]),
                },
                true,
            );
        }
    }

    #[test]
    fn rejects_bad_key_lengths() {
        let mut body = BytesMut::new();
        body.put_u32(CANCEL_REQUEST_CODE);
        body.put_i32(1);
        body.put_slice(b"abc");
        let short = body.clone().freeze();
        body.put_slice(&[0; 254]);
        let long = body.freeze();
        for (body, len) in [(short, 3), (long, 257)] {
            assert_eq!(
                CancelRequest::decode(body),
                Err(ProtocolError::InvalidValue {
                    message: "CancelRequest",
                    field: "secret key length",
                    value: len,
                })
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let msg = CancelRequest {
            pid: 1,
            secret_key: Bytes::from_static(b"SECRETKEY"),
        };
        assert!(!format!("{msg:?}").contains("SECRET"));
    }
}
