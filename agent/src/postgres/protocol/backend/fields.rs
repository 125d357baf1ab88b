//! The `(code, value)` field list shared by ErrorResponse and NoticeResponse.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr};

/// Field codes of ErrorResponse and NoticeResponse.
pub mod field {
    /// Localized severity.
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (`ERROR`, `FATAL`, `PANIC`, `WARNING`, `NOTICE`, …).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Detail.
    pub const DETAIL: u8 = b'D';
    /// Hint.
    pub const HINT: u8 = b'H';
    /// Cursor position in the query string.
    pub const POSITION: u8 = b'P';
    /// Source file in the server.
    pub const FILE: u8 = b'F';
    /// Source line in the server.
    pub const LINE: u8 = b'L';
    /// Source routine in the server.
    pub const ROUTINE: u8 = b'R';
}

/// Reads fields up to the terminating zero byte. Values are decoded lossily (see the module
/// documentation).
pub(crate) fn decode_fields(
    message: &'static str,
    body: Bytes,
) -> Result<Vec<(u8, String)>, ProtocolError> {
    let mut r = Reader::new(message, body);
    let mut fields = Vec::new();
    loop {
        let code = r.u8("field code")?;
        if code == 0 {
            break;
        }
        fields.push((code, r.cstr_lossy("field value")?));
    }
    r.finish()?;
    Ok(fields)
}

/// Writes fields and the terminator; fields with code 0 are skipped (0 ends the list).
pub(crate) fn encode_fields(b: &mut BytesMut, fields: &[(u8, String)]) {
    for (code, value) in fields.iter().filter(|(c, _)| *c != 0) {
        b.put_u8(*code);
        put_cstr(b, value.as_bytes());
    }
    b.put_u8(0);
}

/// Defines ErrorResponse or NoticeResponse: same body, different type byte.
macro_rules! diagnostic_message {
    ($(#[$meta:meta])* $name:ident = $tag:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            /// `(code, value)` pairs in wire order; codes are in [`field`](super::field).
            pub fields: Vec<(u8, String)>,
        }

        impl $name {
            /// The message type byte.
            pub const TAG: u8 = $tag;
            /// The protocol name, for errors and logs.
            pub const NAME: &'static str = stringify!($name);

            /// A message with severity (`S` and `V`), SQLSTATE (`C`) and text (`M`).
            pub fn new(severity: &str, sqlstate: &str, message: &str) -> Self {
                use super::fields::field;
                Self {
                    fields: vec![
                        (field::SEVERITY, severity.to_owned()),
                        (field::SEVERITY_NONLOCALIZED, severity.to_owned()),
                        (field::CODE, sqlstate.to_owned()),
                        (field::MESSAGE, message.to_owned()),
                    ],
                }
            }

            /// Sets field `code`, in place if present, else at the end.
            pub fn with(mut self, code: u8, value: &str) -> Self {
                match self.fields.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => *v = value.to_owned(),
                    None => self.fields.push((code, value.to_owned())),
                }
                self
            }

            /// The value of field `code`.
            pub fn get(&self, code: u8) -> Option<&str> {
                self.fields
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map(|(_, v)| v.as_str())
            }

            /// Severity: the non-localized one if present, else the localized one.
            pub fn severity(&self) -> Option<&str> {
                use super::fields::field;
                self.get(field::SEVERITY_NONLOCALIZED)
                    .or_else(|| self.get(field::SEVERITY))
            }

            /// SQLSTATE code.
            pub fn sqlstate(&self) -> Option<&str> {
                self.get(super::fields::field::CODE)
            }

            /// Primary message.
            pub fn message(&self) -> Option<&str> {
                self.get(super::fields::field::MESSAGE)
            }

            /// Decodes the body.
            pub fn decode(
                body: ::bytes::Bytes,
            ) -> Result<Self, $crate::postgres::protocol::ProtocolError> {
                super::fields::decode_fields(Self::NAME, body).map(|fields| Self { fields })
            }

            /// Appends the message, header included.
            pub fn encode(&self, dst: &mut ::bytes::BytesMut) {
                $crate::postgres::protocol::wire::put_message(dst, Some(Self::TAG), |b| {
                    super::fields::encode_fields(b, &self.fields)
                });
            }
        }
    };
}
pub(crate) use diagnostic_message;
