//! ReadyForQuery (B): the server waits for the next query; carries the transaction status.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_message};

/// Transaction status reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `'I'`: not in a transaction block.
    Idle,
    /// `'T'`: in a transaction block.
    InTransaction,
    /// `'E'`: in a failed transaction block; queries are rejected until it ends.
    Failed,
}

impl TransactionStatus {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// The server is ready for a new query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// Current transaction status.
    pub status: TransactionStatus,
}

impl ReadyForQuery {
    /// The message type byte.
    pub const TAG: u8 = b'Z';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "ReadyForQuery";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let status = match r.u8("transaction status")? {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            other => return Err(r.invalid("transaction status", i64::from(other))),
        };
        r.finish()?;
        Ok(Self { status })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| b.put_u8(self.status.byte()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_bytes() {
        let cases = [
            (TransactionStatus::Idle, b"Z\x00\x00\x00\x05I"),
            (TransactionStatus::InTransaction, b"Z\x00\x00\x00\x05T"),
            (TransactionStatus::Failed, b"Z\x00\x00\x00\x05E"),
        ];
        for (status, wire) in cases {
            assert_eq!(backend_roundtrip(ReadyForQuery { status }), &wire[..]);
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[b"", b"X", b"II"];
        for body in cases {
            assert!(
                ReadyForQuery::decode(Bytes::from_static(body)).is_err(),
                "{body:?}"
            );
        }
    }
}
