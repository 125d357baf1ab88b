//! Bind (F): bind parameter values to a prepared statement, creating a portal.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{
    Reader, check_format_count, format_of, put_count, put_cstr, put_message, put_nullable,
    redacted_values,
};

/// A request to create portal `portal` from statement `statement` with these parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    /// Destination portal; empty for the unnamed portal.
    pub portal: String,
    /// Source prepared statement; empty for the unnamed statement.
    pub statement: String,
    /// Parameter format codes: none (all text), one (for all), or one per parameter.
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL.
    pub params: Vec<Option<Bytes>>,
    /// Result column format codes, with the same 0/1/n rule.
    pub result_formats: Vec<i16>,
}

impl Bind {
    /// The message type byte.
    pub const TAG: u8 = b'B';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Bind";

    /// The format code of parameter `i` (0 text, 1 binary).
    pub fn param_format(&self, i: usize) -> i16 {
        format_of(&self.param_formats, i)
    }

    /// The format code requested for result column `i`.
    pub fn result_format(&self, i: usize) -> i16 {
        format_of(&self.result_formats, i)
    }

    /// Decodes the body. The number of parameter format codes must be 0, 1 or the number of
    /// parameters, as the server requires.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let portal = r.cstr("portal name")?;
        let statement = r.cstr("statement name")?;
        let param_formats = read_formats(&mut r, "parameter format")?;
        let count = r.count("parameter count")?;
        let mut params = Vec::with_capacity(r.capacity(count, 4));
        for _ in 0..count {
            params.push(r.nullable("parameter value")?);
        }
        check_format_count(Self::NAME, param_formats.len(), params.len())?;
        let result_formats = read_formats(&mut r, "result format")?;
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            put_cstr(b, self.portal.as_bytes());
            put_cstr(b, self.statement.as_bytes());
            put_formats(b, &self.param_formats);
            let n = put_count(b, self.params.len());
            for value in self.params.iter().take(n) {
                put_nullable(b, value.as_ref());
            }
            put_formats(b, &self.result_formats);
        });
    }
}

/// A count-prefixed list of Int16 format codes.
pub(crate) fn read_formats(r: &mut Reader, field: &'static str) -> Result<Vec<i16>, ProtocolError> {
    let count = r.count(field)?;
    let mut formats = Vec::with_capacity(r.capacity(count, 2));
    for _ in 0..count {
        formats.push(r.i16(field)?);
    }
    Ok(formats)
}

pub(crate) fn put_formats(b: &mut BytesMut, formats: &[i16]) {
    let n = put_count(b, formats.len());
    for f in formats.iter().take(n) {
        b.put_i16(*f);
    }
}

impl fmt::Debug for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bind")
            .field("portal", &self.portal)
            .field("statement", &self.statement)
            .field("param_formats", &self.param_formats)
            .field("params", &redacted_values(&self.params))
            .field("result_formats", &self.result_formats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    fn sample() -> Bind {
        Bind {
            portal: "p1".into(),
            statement: "s1".into(),
            param_formats: vec![0, 1],
            params: vec![Some(Bytes::from_static(b"42")), None],
            result_formats: vec![1],
        }
    }

    #[test]
    fn captured_bytes() {
        // Unnamed portal and statement, one text parameter "7", no result formats.
        let wire = b"B\x00\x00\x00\x11\0\0\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00";
        let msg = Bind {
            portal: String::new(),
            statement: String::new(),
            param_formats: vec![],
            params: vec![Some(Bytes::from_static(b"7"))],
            result_formats: vec![],
        };
        assert_eq!(frontend_roundtrip(msg, false), &wire[..]);
    }

    #[test]
    fn round_trips() {
        frontend_roundtrip(sample(), false);
        frontend_roundtrip(
            Bind {
                params: vec![Some(Bytes::new()), None, Some(Bytes::from(vec![0u8; 300]))],
                param_formats: vec![1],
                ..sample()
            },
            false,
        );
    }

    #[test]
    fn format_rule() {
        let msg = sample();
        assert_eq!(msg.param_format(0), 0);
        assert_eq!(msg.param_format(1), 1);
        assert_eq!(msg.result_format(5), 1);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[(&'static [u8], ProtocolError)] = &[
            (
                // Two format codes for one parameter.
                b"\0\0\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00",
                ProtocolError::FormatCountMismatch {
                    message: "Bind",
                    formats: 2,
                    values: 1,
                },
            ),
            (
                // Value length -2.
                b"\0\0\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00",
                ProtocolError::InvalidValue {
                    message: "Bind",
                    field: "parameter value",
                    value: -2,
                },
            ),
            (
                // Value announces 9 bytes, 1 present.
                b"\0\0\x00\x00\x00\x01\x00\x00\x00\x097",
                ProtocolError::Truncated {
                    message: "Bind",
                    field: "parameter value",
                    need: 9,
                    have: 1,
                },
            ),
            (
                // Result format count missing.
                b"\0\0\x00\x00\x00\x00",
                ProtocolError::Truncated {
                    message: "Bind",
                    field: "result format",
                    need: 2,
                    have: 0,
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                Bind::decode(Bytes::from_static(body)).as_ref(),
                Err(want),
                "{body:?}"
            );
        }
    }

    #[test]
    fn debug_hides_values() {
        let mut msg = sample();
        msg.params = vec![Some(Bytes::from_static(b"hunter2"))];
        let shown = format!("{msg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<7 bytes>"), "{shown}");
    }
}
