//! FunctionCall (F): the legacy fast-path call of a function by OID.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::bind::{put_formats, read_formats};
use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{
    Reader, check_format_count, put_count, put_message, put_nullable, redacted_values,
};

/// A fast-path function call (used by libpq's large-object API). It bypasses SQL, so statement
/// rules cannot see it; the session layer decides whether to allow it at all.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// OID of the function to call.
    pub function_oid: u32,
    /// Argument format codes, with Bind's 0/1/n rule.
    pub arg_formats: Vec<i16>,
    /// Argument values; `None` is SQL NULL.
    pub args: Vec<Option<Bytes>>,
    /// Format code of the result.
    pub result_format: i16,
}

impl FunctionCall {
    /// The message type byte.
    pub const TAG: u8 = b'F';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "FunctionCall";

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let function_oid = r.u32("function oid")?;
        let arg_formats = read_formats(&mut r, "argument format")?;
        let count = r.count("argument count")?;
        let mut args = Vec::with_capacity(r.capacity(count, 4));
        for _ in 0..count {
            args.push(r.nullable("argument value")?);
        }
        check_format_count(Self::NAME, arg_formats.len(), args.len())?;
        let result_format = r.i16("result format")?;
        r.finish()?;
        Ok(Self {
            function_oid,
            arg_formats,
            args,
            result_format,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_u32(self.function_oid);
            put_formats(b, &self.arg_formats);
            let n = put_count(b, self.args.len());
            for arg in self.args.iter().take(n) {
                put_nullable(b, arg.as_ref());
            }
            b.put_i16(self.result_format);
        });
    }
}

impl fmt::Debug for FunctionCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCall")
            .field("function_oid", &self.function_oid)
            .field("arg_formats", &self.arg_formats)
            .field("args", &redacted_values(&self.args))
            .field("result_format", &self.result_format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    #[test]
    fn round_trips() {
        // lo_open(16403, INV_READ) as libpq sends it: binary int4 arguments.
        let msg = FunctionCall {
            function_oid: 952,
            arg_formats: vec![1],
            args: vec![
                Some(Bytes::copy_from_slice(&16403i32.to_be_bytes())),
                Some(Bytes::copy_from_slice(&0x40000i32.to_be_bytes())),
            ],
            result_format: 1,
        };
        frontend_roundtrip(msg, false);
    }

    #[test]
    fn rejects_malformed_bodies() {
        // Missing result format.
        let body = Bytes::from_static(b"\x00\x00\x03\xb8\x00\x00\x00\x00");
        assert!(FunctionCall::decode(body).is_err());
        // Two format codes for one argument.
        let body = Bytes::from_static(
            b"\x00\x00\x03\xb8\x00\x02\x00\x01\x00\x01\x00\x01\xff\xff\xff\xff\x00\x01",
        );
        assert_eq!(
            FunctionCall::decode(body),
            Err(ProtocolError::FormatCountMismatch {
                message: "FunctionCall",
                formats: 2,
                values: 1
            })
        );
    }
}
