//! PasswordMessage (F) and the other `'p'` messages: SASLInitialResponse, SASLResponse,
//! GSSResponse.
//!
//! All share type byte `'p'`; which one a frame is depends on the authentication request the
//! server sent last, so framing yields a raw [`PasswordMessage`] and the session reads it with
//! [`PasswordMessage::password`] or [`PasswordMessage::sasl_initial`] as the state requires.
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, Redacted, put_cstr, put_message, put_nullable};

const TAG: u8 = b'p';

/// The raw payload of a `'p'` message. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordMessage {
    /// Everything after the length word.
    pub payload: Bytes,
}

impl PasswordMessage {
    /// The message type byte.
    pub const TAG: u8 = TAG;
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "PasswordMessage";

    /// A cleartext (or already MD5-hashed, `md5…`) password message. The password is cut at
    /// its first NUL.
    pub fn from_password(password: &[u8]) -> Self {
        let mut payload = BytesMut::with_capacity(password.len() + 1);
        put_cstr(&mut payload, password);
        Self {
            payload: payload.freeze(),
        }
    }

    /// Reads the payload as a password: one NUL-terminated string, no trailing bytes.
    pub fn password(&self) -> Result<Bytes, ProtocolError> {
        let mut r = Reader::new(Self::NAME, self.payload.clone());
        let password = r.cbytes("password")?;
        r.finish()?;
        Ok(password)
    }

    /// Reads the payload as a SASLInitialResponse.
    pub fn sasl_initial(&self) -> Result<SaslInitialResponse, ProtocolError> {
        SaslInitialResponse::decode(self.payload.clone())
    }

    /// Reads the payload as a SASLResponse (or GSSResponse): opaque mechanism data.
    pub fn sasl_response(&self) -> SaslResponse {
        SaslResponse {
            data: self.payload.clone(),
        }
    }

    /// Decodes the body; no structure is checked until the payload is read as one kind.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        Ok(Self { payload: body })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(TAG), |b| b.put_slice(&self.payload));
    }
}

impl fmt::Debug for PasswordMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordMessage")
            .field("payload", &Redacted(&self.payload))
            .finish()
    }
}

/// The first SASL message: the chosen mechanism and its optional initial data (the SCRAM
/// client-first-message).
#[derive(Clone, PartialEq, Eq)]
pub struct SaslInitialResponse {
    /// Mechanism chosen from the server's AuthenticationSASL list, e.g. `SCRAM-SHA-256`.
    pub mechanism: String,
    /// Initial response; `None` is sent as length -1.
    pub data: Option<Bytes>,
}

impl SaslInitialResponse {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "SASLInitialResponse";

    /// Decodes a `'p'` body as a SASLInitialResponse.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let mechanism = r.cstr("mechanism")?;
        let data = r.nullable("initial response")?;
        r.finish()?;
        Ok(Self { mechanism, data })
    }

    /// Appends the `'p'` message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(TAG), |b| {
            put_cstr(b, self.mechanism.as_bytes());
            put_nullable(b, self.data.as_ref());
        });
    }
}

impl fmt::Debug for SaslInitialResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslInitialResponse")
            .field("mechanism", &self.mechanism)
            .field("data", &self.data.as_deref().map(Redacted))
            .finish()
    }
}

/// A later SASL message (SCRAM client-final-message), or a GSSResponse: opaque data.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslResponse {
    /// Mechanism data.
    pub data: Bytes,
}

impl SaslResponse {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "SASLResponse";

    /// Appends the `'p'` message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(TAG), |b| b.put_slice(&self.data));
    }
}

impl fmt::Debug for SaslResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslResponse")
            .field("data", &Redacted(&self.data))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::frontend::FrontendMessage;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    fn as_password(encoded: Bytes) -> PasswordMessage {
        let mut buf = BytesMut::from(&encoded[..]);
        let frame = crate::postgres::protocol::next_frontend(&mut buf, false, 1 << 20)
            .unwrap()
            .unwrap();
        match frame.decode().unwrap() {
            FrontendMessage::PasswordMessage(m) => m,
            other => panic!("not a password message: {other:?}"),
        }
    }

    #[test]
    fn cleartext_password_round_trip() {
        let wire = b"p\x00\x00\x00\x0csecret1\0";
        let msg = PasswordMessage::from_password(b"secret1");
        assert_eq!(frontend_roundtrip(msg.clone(), false), &wire[..]);
        assert_eq!(&msg.password().unwrap()[..], b"secret1");
    }

    #[test]
    fn password_requires_one_terminated_string() {
        for payload in [&b"secret"[..], b"secret\0x"] {
            let msg = PasswordMessage {
                payload: Bytes::copy_from_slice(payload),
            };
            assert!(msg.password().is_err(), "{payload:?}");
        }
    }

    #[test]
    fn sasl_initial_response_round_trip() {
        // SCRAM client-first-message as psql sends it.
        let wire: &[u8] =
            b"p\x00\x00\x00\x36SCRAM-SHA-256\0\x00\x00\x00\x20n,,n=,r=rOprNGfwEbeRWgbNEkqO%hvY";
        let msg = SaslInitialResponse {
            mechanism: "SCRAM-SHA-256".into(),
            data: Some(Bytes::from_static(b"n,,n=,r=rOprNGfwEbeRWgbNEkqO%hvY")),
        };
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(&out[..], wire);
        assert_eq!(as_password(out.freeze()).sasl_initial().unwrap(), msg);

        let none = SaslInitialResponse {
            mechanism: "SCRAM-SHA-256-PLUS".into(),
            data: None,
        };
        let mut out = BytesMut::new();
        none.encode(&mut out);
        assert_eq!(as_password(out.freeze()).sasl_initial().unwrap(), none);
    }

    #[test]
    fn sasl_response_round_trip() {
        let msg = SaslResponse {
            data: Bytes::from_static(b"c=biws,r=abc,p=proof"),
        };
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(as_password(out.freeze()).sasl_response(), msg);
    }

    #[test]
    fn sasl_initial_rejects_malformed_payloads() {
        let cases: &[&'static [u8]] = &[
            b"SCRAM-SHA-256",
            b"SCRAM-SHA-256\0\x00\x00",
            b"SCRAM-SHA-256\0\x00\x00\x00\x05abc",
            b"SCRAM-SHA-256\0\xff\xff\xff\xfd",
            b"SCRAM-SHA-256\0\xff\xff\xff\xffextra",
        ];
        for payload in cases {
            let msg = PasswordMessage {
                payload: Bytes::from_static(payload),
            };
            assert!(msg.sasl_initial().is_err(), "{payload:?}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!(
            "{:?} {:?} {:?}",
            PasswordMessage::from_password(b"hunter2"),
            SaslResponse {
                data: Bytes::from_static(b"hunter2")
            },
            SaslInitialResponse {
                mechanism: "PLAIN".into(),
                data: Some(Bytes::from_static(b"hunter2"))
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
