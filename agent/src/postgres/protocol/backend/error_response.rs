//! ErrorResponse (B): a statement or the session failed.
use super::fields::diagnostic_message;

diagnostic_message!(
    /// An error; FATAL and PANIC end the session.
    ErrorResponse = b'E'
);

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::fields::field;
    use super::*;
    use crate::postgres::protocol::error::ProtocolError;
    use crate::postgres::protocol::testing::backend_roundtrip;

    /// `SELECT * FROM nope` against PostgreSQL 16.
    const CAPTURED: &[u8] = b"E\x00\x00\x00\x67SERROR\0VERROR\0C42P01\0\
Mrelation \"nope\" does not exist\0P15\0Fparse_relation.c\0L1392\0RparserOpenTable\0\0";

    #[test]
    fn decodes_a_captured_error() {
        let msg = ErrorResponse::decode(Bytes::from_static(&CAPTURED[5..])).unwrap();
        assert_eq!(msg.severity(), Some("ERROR"));
        assert_eq!(msg.sqlstate(), Some("42P01"));
        assert_eq!(msg.message(), Some("relation \"nope\" does not exist"));
        assert_eq!(msg.get(field::POSITION), Some("15"));
        assert_eq!(msg.fields.len(), 8);
        assert_eq!(backend_roundtrip(msg), CAPTURED);
    }

    #[test]
    fn builder_emits_s_v_c_m() {
        let msg = ErrorResponse::new("FATAL", "28000", "access denied by tollgate policy")
            .with(field::HINT, "ask for a grant")
            .with(field::MESSAGE, "denied");
        let codes: Vec<u8> = msg.fields.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, b"SVCMH");
        assert_eq!(msg.message(), Some("denied"));
        let wire = backend_roundtrip(msg);
        assert!(wire.starts_with(b"E\x00\x00\x00"));
        assert!(wire.ends_with(b"Hask for a grant\0\0"));
    }

    #[test]
    fn values_are_decoded_lossily() {
        let msg = ErrorResponse::decode(Bytes::from_static(b"Mbad \xff byte\0\0")).unwrap();
        assert_eq!(msg.message(), Some("bad \u{fffd} byte"));
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[(&'static [u8], ProtocolError)] = &[
            (
                b"",
                ProtocolError::Truncated {
                    message: "ErrorResponse",
                    field: "field code",
                    need: 1,
                    have: 0,
                },
            ),
            (
                b"SERROR\0",
                ProtocolError::Truncated {
                    message: "ErrorResponse",
                    field: "field code",
                    need: 1,
                    have: 0,
                },
            ),
            (
                b"SERROR",
                ProtocolError::MissingNul {
                    message: "ErrorResponse",
                    field: "field value",
                },
            ),
            (
                b"\0x",
                ProtocolError::TrailingBytes {
                    message: "ErrorResponse",
                    count: 1,
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                ErrorResponse::decode(Bytes::from_static(body)).as_ref(),
                Err(want),
                "{body:?}"
            );
        }
    }
}
