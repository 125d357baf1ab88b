//! Authentication (B): the server's authentication requests and results, all type `'R'`.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

const OK: i32 = 0;
const CLEARTEXT: i32 = 3;
const MD5: i32 = 5;
const SASL: i32 = 10;
const SASL_CONTINUE: i32 = 11;
const SASL_FINAL: i32 = 12;

/// An authentication request or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// AuthenticationOk (0).
    Ok,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5) with its salt.
    Md5Password {
        /// Salt to hash the password with.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10): mechanisms in the server's order of preference.
    Sasl {
        /// Mechanism names, e.g. `SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue (11): SCRAM server-first-message.
    SaslContinue {
        /// Mechanism data.
        data: Bytes,
    },
    /// AuthenticationSASLFinal (12): SCRAM server-final-message.
    SaslFinal {
        /// Mechanism data.
        data: Bytes,
    },
    /// Any other request (Kerberos 2, SCM 6, GSS 7, GSSContinue 8, SSPI 9, …), kept raw.
    Unsupported {
        /// Request code.
        code: i32,
        /// Everything after the code.
        data: Bytes,
    },
}

impl Authentication {
    /// The message type byte.
    pub const TAG: u8 = b'R';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "Authentication";

    /// The request code.
    pub fn code(&self) -> i32 {
        match self {
            Self::Ok => OK,
            Self::CleartextPassword => CLEARTEXT,
            Self::Md5Password { .. } => MD5,
            Self::Sasl { .. } => SASL,
            Self::SaslContinue { .. } => SASL_CONTINUE,
            Self::SaslFinal { .. } => SASL_FINAL,
            Self::Unsupported { code, .. } => *code,
        }
    }

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let msg = match r.i32("request code")? {
            OK => Self::Ok,
            CLEARTEXT => Self::CleartextPassword,
            MD5 => Self::Md5Password {
                salt: r.array("salt")?,
            },
            SASL => {
                let mut mechanisms = Vec::new();
                loop {
                    let name = r.cstr("mechanism")?;
                    if name.is_empty() {
                        break;
                    }
                    mechanisms.push(name);
                }
                Self::Sasl { mechanisms }
            }
            SASL_CONTINUE => Self::SaslContinue { data: r.rest() },
            SASL_FINAL => Self::SaslFinal { data: r.rest() },
            code => Self::Unsupported {
                code,
                data: r.rest(),
            },
        };
        r.finish()?;
        Ok(msg)
    }

    /// Appends the message, header included. Empty mechanism names are skipped (an empty name
    /// ends the list).
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| {
            b.put_i32(self.code());
            match self {
                Self::Ok | Self::CleartextPassword => {}
                Self::Md5Password { salt } => b.put_slice(salt),
                Self::Sasl { mechanisms } => {
                    for m in mechanisms
                        .iter()
                        .filter(|m| !m.is_empty() && !m.starts_with('\0'))
                    {
                        put_cstr(b, m.as_bytes());
                    }
                    b.put_u8(0);
                }
                Self::SaslContinue { data } | Self::SaslFinal { data } => b.put_slice(data),
                Self::Unsupported { data, .. } => b.put_slice(data),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_sasl_request() {
        let wire: &[u8] = b"R\x00\x00\x00\x2a\x00\x00\x00\x0aSCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0";
        let msg = Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-256-PLUS".into()],
        };
        assert_eq!(backend_roundtrip(msg.clone()), wire);
        assert_eq!(
            Authentication::decode(Bytes::copy_from_slice(&wire[5..])),
            Ok(msg)
        );
    }

    #[test]
    fn captured_ok_and_md5() {
        assert_eq!(
            backend_roundtrip(Authentication::Ok),
            &b"R\x00\x00\x00\x08\x00\x00\x00\x00"[..]
        );
        assert_eq!(
            backend_roundtrip(Authentication::Md5Password {
                salt: *b"\x01\x02\x03\x04"
            }),
            &b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"[..]
        );
    }

    #[test]
    fn round_trips() {
        for msg in [
            Authentication::CleartextPassword,
            Authentication::Sasl { mechanisms: vec![] },
            Authentication::SaslContinue {
                data: Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096"),
            },
            Authentication::SaslFinal {
                data: Bytes::from_static(b"v=c2lnbmF0dXJl"),
            },
            Authentication::Unsupported {
                code: 7,
                data: Bytes::new(),
            },
            Authentication::Unsupported {
                code: 8,
                data: Bytes::from_static(b"gss token"),
            },
        ] {
            backend_roundtrip(msg);
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&'static [u8]] = &[
            b"\x00\x00",
            b"\x00\x00\x00\x00x",
            b"\x00\x00\x00\x03x",
            b"\x00\x00\x00\x05\x01\x02",
            b"\x00\x00\x00\x05\x01\x02\x03\x04\x05",
            b"\x00\x00\x00\x0aSCRAM-SHA-256\0",
            b"\x00\x00\x00\x0aSCRAM-SHA-256\0\0x",
            b"\x00\x00\x00\x0aSCRAM\xff\0\0",
        ];
        for body in cases {
            assert!(
                Authentication::decode(Bytes::from_static(body)).is_err(),
                "{body:?}"
            );
        }
    }
}
