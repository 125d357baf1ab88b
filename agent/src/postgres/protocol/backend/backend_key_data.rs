//! BackendKeyData (B): the key a client needs to cancel this session's queries.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::frontend::CancelRequest;
use crate::postgres::protocol::wire::{Reader, Redacted, put_message};

/// Cancellation key of a session. `Debug` hides the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendKeyData {
    /// Process id of the backend.
    pub pid: i32,
    /// Secret key: 4 bytes up to protocol 3.0, up to 256 bytes from 3.2.
    pub secret_key: Bytes,
}

impl BackendKeyData {
    /// The message type byte.
    pub const TAG: u8 = b'K';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "BackendKeyData";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let pid = r.i32("process id")?;
        let secret_key = r.rest();
        if !CancelRequest::KEY_LEN.contains(&secret_key.len()) {
            return Err(ProtocolError::InvalidValue {
                message: Self::NAME,
                field: "secret key length",
                value: secret_key.len() as i64,
            });
        }
        Ok(Self { pid, secret_key })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_i32(self.pid);
            b.put_slice(&self.secret_key);
        });
    }
}

impl fmt::Debug for BackendKeyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendKeyData")
            .field("pid", &self.pid)
            .field("secret_key", &Redacted(&self.secret_key))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_bytes_and_long_keys() {
        let wire = b"K\x00\x00\x00\x0c\x00\x00\x30\x39\xde\xad\xbe\xef";
        let msg = BackendKeyData {
            pid: 12345,
            secret_key: Bytes::from_static(b"\xde\xad\xbe\xef"),
        };
        assert_eq!(backend_roundtrip(msg), &wire[..]);
        backend_roundtrip(BackendKeyData {
            pid: 1,
            secret_key: Bytes::from(vec![7u8; 256]),
        });
        let shown = format!(
            "{:?}",
            BackendKeyData::decode(Bytes::from_static(&wire[5..]))
        );
        assert!(
            shown.contains("<4 bytes>") && !shown.contains("xde"),
            "{shown}"
        );
    }

    #[test]
    fn rejects_bad_key_lengths() {
        assert!(BackendKeyData::decode(Bytes::from_static(b"\x00\x00\x00\x01abc")).is_err());
        assert!(BackendKeyData::decode(Bytes::from(vec![0u8; 4 + 257])).is_err());
        assert!(BackendKeyData::decode(Bytes::from_static(b"\x00\x00")).is_err());
    }
}
