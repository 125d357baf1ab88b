//! CopyInResponse, CopyOutResponse and CopyBothResponse (B): the server enters a COPY mode.
//! Same body, different type byte.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_count, put_message};

fn decode(message: &'static str, body: Bytes) -> Result<(i8, Vec<i16>), ProtocolError> {
    let mut r = Reader::new(message, body);
    let format = r.i8("overall format")?;
    let count = r.count("column count")?;
    let mut column_formats = Vec::with_capacity(r.capacity(count, 2));
    for _ in 0..count {
        column_formats.push(r.i16("column format")?);
    }
    r.finish()?;
    Ok((format, column_formats))
}

fn encode(dst: &mut BytesMut, tag: u8, format: i8, column_formats: &[i16]) {
    put_message(dst, Some(tag), |b| {
        b.put_i8(format);
        let n = put_count(b, column_formats.len());
        for f in column_formats.iter().take(n) {
            b.put_i16(*f);
        }
    });
}

macro_rules! copy_response {
    ($(#[$meta:meta])* $name:ident = $tag:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            /// Overall format: 0 textual (all columns text), 1 binary.
            pub format: i8,
            /// Per-column format codes (all 0 when `format` is 0).
            pub column_formats: Vec<i16>,
        }

        impl $name {
            /// The message type byte.
            pub const TAG: u8 = $tag;
            /// The protocol name, for errors and logs.
            pub const NAME: &'static str = stringify!($name);

            /// Decodes the body.
            pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
                let (format, column_formats) = decode(Self::NAME, body)?;
                Ok(Self {
                    format,
                    column_formats,
                })
            }

            /// Appends the message, header included.
            pub fn encode(&self, dst: &mut BytesMut) {
                encode(dst, Self::TAG, self.format, &self.column_formats);
            }
        }
    };
}

copy_response!(
    /// The server expects COPY data from the client (`COPY … FROM STDIN`).
    CopyInResponse = b'G'
);
copy_response!(
    /// The server sends COPY data (`COPY … TO STDOUT`).
    CopyOutResponse = b'H'
);
copy_response!(
    /// Both directions carry COPY data (streaming replication).
    CopyBothResponse = b'W'
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let wire = b"H\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00";
        let out = CopyOutResponse {
            format: 0,
            column_formats: vec![0, 0],
        };
        assert_eq!(backend_roundtrip(out), &wire[..]);
        backend_roundtrip(CopyInResponse {
            format: 1,
            column_formats: vec![1, 1, 1],
        });
        backend_roundtrip(CopyBothResponse::default());
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[b"", b"\x00", b"\x00\x00\x01", b"\x00\x00\x00\x00"];
        for body in cases {
            assert!(
                CopyInResponse::decode(Bytes::from_static(body)).is_err(),
                "{body:?}"
            );
        }
    }
}
