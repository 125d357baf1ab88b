//! CopyData (F and B): a chunk of COPY data stream.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtocolError;
use super::wire::{Redacted, put_message};

/// A chunk of COPY data; chunks need not align with rows. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct CopyData {
    /// The chunk.
    pub data: Bytes,
}

impl CopyData {
    /// The message type byte.
    pub const TAG: u8 = b'd';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "CopyData";

    /// Decodes the body (any bytes).
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        Ok(Self { data: body })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| b.put_slice(&self.data));
    }
}

impl fmt::Debug for CopyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyData")
            .field("data", &Redacted(&self.data))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::{backend_roundtrip, frontend_roundtrip};

    #[test]
    fn round_trips_both_ways() {
        let msg = CopyData {
            data: Bytes::from_static(b"1\talice\n2\tbob\n"),
        };
        let wire = frontend_roundtrip(msg.clone(), false);
        assert_eq!(&wire[..5], b"d\x00\x00\x00\x12");
        assert_eq!(backend_roundtrip(msg), wire);
        backend_roundtrip(CopyData { data: Bytes::new() });
    }
}
