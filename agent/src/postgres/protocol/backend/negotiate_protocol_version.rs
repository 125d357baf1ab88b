//! NegotiateProtocolVersion (B): the server supports an older minor version or not all of
//! the requested `_pq_.` options.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// The server's counter-offer to a StartupMessage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiateProtocolVersion {
    /// Newest minor protocol version the server supports for the requested major version.
    pub newest_minor: i32,
    /// Protocol options (`_pq_.…`) the server did not recognize.
    pub unrecognized_options: Vec<String>,
}

impl NegotiateProtocolVersion {
    /// The message type byte.
    pub const TAG: u8 = b'v';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "NegotiateProtocolVersion";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let newest_minor = r.i32("minor version")?;
        let count = r.i32("option count")?;
        let count =
            usize::try_from(count).map_err(|_| r.invalid("option count", i64::from(count)))?;
        let mut unrecognized_options = Vec::with_capacity(r.capacity(count, 1));
        for _ in 0..count {
            unrecognized_options.push(r.cstr("option name")?);
        }
        r.finish()?;
        Ok(Self {
            newest_minor,
            unrecognized_options,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_i32(self.newest_minor);
            let n = i32::try_from(self.unrecognized_options.len()).unwrap_or(i32::MAX);
            b.put_i32(n);
            for name in self.unrecognized_options.iter().take(n as usize) {
                put_cstr(b, name.as_bytes());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"v\x00\x00\x00\x16\x00\x00\x00\x00\x00\x00\x00\x01_pq_.test\0";
        let msg = NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized_options: vec!["_pq_.test".into()],
        };
        assert_eq!(backend_roundtrip(msg), &wire[..]);
        backend_roundtrip(NegotiateProtocolVersion::default());
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[
            b"\x00\x00\x00\x00\xff\xff\xff\xff",
            b"\x00\x00\x00\x00\x7f\xff\xff\xff",
            b"\x00\x00\x00\x00\x00\x00\x00\x01_pq_.test",
            b"\x00\x00\x00\x00",
        ];
        for body in cases {
            assert!(
                NegotiateProtocolVersion::decode(Bytes::from_static(body)).is_err(),
                "{body:?}"
            );
        }
    }
}
