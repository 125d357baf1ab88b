//! NotificationResponse (B): a NOTIFY on a channel this session LISTENs to.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// An asynchronous notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationResponse {
    /// Process id of the notifying backend.
    pub pid: i32,
    /// Channel name.
    pub channel: String,
    /// Payload (may be empty).
    pub payload: String,
}

impl NotificationResponse {
    /// The message type byte.
    pub const TAG: u8 = b'A';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "NotificationResponse";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let pid = r.i32("process id")?;
        let channel = r.cstr("channel")?;
        let payload = r.cstr("payload")?;
        r.finish()?;
        Ok(Self {
            pid,
            channel,
            payload,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_i32(self.pid);
            put_cstr(b, self.channel.as_bytes());
            put_cstr(b, self.payload.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"A\x00\x00\x00\x10\x00\x00\x04\xd2jobs\0hi\0";
        let msg = NotificationResponse {
            pid: 1234,
            channel: "jobs".into(),
            payload: "hi".into(),
        };
        assert_eq!(backend_roundtrip(msg), &wire[..]);
        assert!(
            NotificationResponse::decode(Bytes::from_static(b"\x00\x00\x04\xd2jobs\0")).is_err()
        );
    }
}
