//! Framing tests: captured packets, partial buffering, bogus lengths on every path.
use bytes::{BufMut, BytesMut};

use super::*;
use crate::postgres::protocol::{
    Bind, DataRow, Execute, FrontendMessage, Parse, PasswordMessage, Query, Sync,
};

/// `psql -U alice -d app` startup packet.
const STARTUP: &[u8] = b"\x00\x00\x00\x21\x00\x03\x00\x00user\0alice\0database\0app\0\0";
const SSL: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
const GSSENC: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x30";
const CANCEL: &[u8] = b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x30\x39\xde\xad\xbe\xef";

fn frontend(bytes: &[u8], startup: bool) -> Result<Option<FrontendFrame>, ProtocolError> {
    next_frontend(&mut BytesMut::from(bytes), startup, MAX_MESSAGE_LEN)
}

fn backend(bytes: &[u8]) -> Result<Option<BackendFrame>, ProtocolError> {
    next_backend(&mut BytesMut::from(bytes), MAX_MESSAGE_LEN)
}

/// Feeds `wire` one byte at a time: no frame until the last byte, nothing consumed before.
fn assert_waits_for_whole(wire: &[u8], mut next: impl FnMut(&mut BytesMut) -> Option<Bytes>) {
    let mut buf = BytesMut::new();
    for (i, byte) in wire.iter().enumerate() {
        buf.put_u8(*byte);
        let got = next(&mut buf);
        if i + 1 < wire.len() {
            assert_eq!(got, None, "frame after {} of {} bytes", i + 1, wire.len());
            assert_eq!(
                buf.len(),
                i + 1,
                "bytes consumed before the frame was whole"
            );
        } else {
            assert_eq!(got.as_deref(), Some(wire));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn startup_packets_are_classified() {
    let cases: &[(&[u8], FrontendKind)] = &[
        (STARTUP, FrontendKind::Startup(ProtocolVersion::V3_0)),
        (SSL, FrontendKind::SslRequest),
        (GSSENC, FrontendKind::GssEncRequest),
        (CANCEL, FrontendKind::CancelRequest),
        (
            b"\x00\x00\x00\x09\x00\x03\x00\x02\0",
            FrontendKind::Startup(ProtocolVersion::V3_2),
        ),
    ];
    for (wire, kind) in cases {
        let frame = frontend(wire, true).unwrap().unwrap();
        assert_eq!(frame.kind(), *kind);
        assert_eq!(&frame.raw()[..], *wire);
        frame.decode().unwrap();
    }
}

#[test]
fn captured_startup_decodes() {
    let frame = frontend(STARTUP, true).unwrap().unwrap();
    assert_eq!(frame.name(), "StartupMessage");
    let FrontendMessage::StartupMessage(msg) = frame.decode().unwrap() else {
        panic!("not a startup message");
    };
    assert_eq!(msg.user(), Some("alice"));
    assert_eq!(msg.database(), Some("app"));
}

#[test]
fn startup_waits_for_the_whole_packet() {
    for wire in [STARTUP, SSL, CANCEL] {
        assert_waits_for_whole(wire, |buf| {
            next_frontend(buf, true, MAX_MESSAGE_LEN)
                .unwrap()
                .map(FrontendFrame::into_raw)
        });
    }
}

#[test]
fn startup_bogus_lengths() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (
            b"\x00\x00\x00\x00",
            ProtocolError::BadLength {
                message: "startup packet",
                len: 0,
            },
        ),
        (
            b"\x00\x00\x00\x07\x00\x03\x00",
            ProtocolError::BadLength {
                message: "startup packet",
                len: 7,
            },
        ),
        (
            b"\xff\xff\xff\xff",
            ProtocolError::BadLength {
                message: "startup packet",
                len: -1,
            },
        ),
        (
            // Refused from the length word alone, before the body arrives.
            b"\x00\x00\x27\x11",
            ProtocolError::TooLong {
                message: "startup packet",
                len: 10_001,
                max: MAX_STARTUP_LEN,
            },
        ),
        (
            b"\x00\x00\x00\x0c\x04\xd2\x16\x2f\x00\x00\x00\x00",
            ProtocolError::BadLength {
                message: "SSLRequest",
                len: 12,
            },
        ),
        (
            b"\x00\x00\x00\x0c\x04\xd2\x16\x30\x00\x00\x00\x00",
            ProtocolError::BadLength {
                message: "GSSENCRequest",
                len: 12,
            },
        ),
        (
            b"\x00\x00\x00\x0f\x04\xd2\x16\x2e\x00\x00\x30\x39\xde\xad\xbe",
            ProtocolError::BadLength {
                message: "CancelRequest",
                len: 15,
            },
        ),
        (
            b"\x00\x00\x00\x08\x04\xd2\x27\x0f",
            ProtocolError::UnknownRequestCode { code: 80_881_423 },
        ),
        (
            b"\x00\x00\x00\x09\x00\x02\x00\x00\0",
            ProtocolError::UnsupportedVersion { major: 2, minor: 0 },
        ),
        (b"\x16\x03\x01\x02\x00", ProtocolError::DirectSsl),
    ];
    for (wire, want) in cases {
        assert_eq!(frontend(wire, true).as_ref(), Err(want), "{wire:?}");
    }
}

#[test]
fn caller_limit_applies_in_startup_too() {
    let err = next_frontend(&mut BytesMut::from(STARTUP), true, 16).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::TooLong {
            message: "startup packet",
            len: STARTUP.len(),
            max: 16
        }
    );
}

#[test]
fn cancel_with_a_long_key_is_accepted_up_to_256_bytes() {
    for (key_len, ok) in [(32, true), (256, true), (257, false)] {
        let msg = CancelRequest {
            pid: 1,
            secret_key: Bytes::from(vec![1u8; key_len]),
        };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        let got = next_frontend(&mut buf, true, MAX_MESSAGE_LEN);
        assert_eq!(got.is_ok(), ok, "{key_len}: {got:?}");
    }
}

#[test]
fn tagged_frontend_messages_wait_for_the_whole_message() {
    let mut wire = BytesMut::new();
    Query::new("SELECT 1").encode(&mut wire);
    assert_waits_for_whole(&wire, |buf| {
        next_frontend(buf, false, MAX_MESSAGE_LEN)
            .unwrap()
            .map(FrontendFrame::into_raw)
    });
}

#[test]
fn tagged_frontend_bogus_lengths_and_types() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (
            b"Q\x00\x00\x00\x03",
            ProtocolError::BadLength {
                message: "Query",
                len: 3,
            },
        ),
        (
            b"Q\x80\x00\x00\x00",
            ProtocolError::BadLength {
                message: "Query",
                len: i64::from(i32::MIN),
            },
        ),
        (
            b"Q\x04\x00\x00\x01",
            ProtocolError::TooLong {
                message: "Query",
                len: 0x0400_0001,
                max: MAX_MESSAGE_LEN,
            },
        ),
        (
            // Sync is small: PostgreSQL's own limit applies below the caller's.
            b"S\x00\x00\x4e\x20",
            ProtocolError::TooLong {
                message: "Sync",
                len: 20_000,
                max: MAX_SMALL_MESSAGE_LEN,
            },
        ),
        (
            b"p\x00\x01\x11\x70",
            ProtocolError::TooLong {
                message: "PasswordMessage",
                len: 70_000,
                max: MAX_AUTH_MESSAGE_LEN,
            },
        ),
        (
            b"Z\x00\x00\x00\x05I",
            ProtocolError::UnknownType {
                side: Side::Frontend,
                tag: b'Z',
            },
        ),
        (
            // A startup packet after the startup phase is not a message.
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            ProtocolError::UnknownType {
                side: Side::Frontend,
                tag: 0,
            },
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(frontend(wire, false).as_ref(), Err(want), "{wire:?}");
    }
}

#[test]
fn short_headers_wait() {
    for wire in [&b""[..], b"Q", b"Q\x00\x00\x00", b"Q\x00\x00\x00\x06x"] {
        assert_eq!(frontend(wire, false), Ok(None));
    }
    for wire in [&b""[..], b"D", b"D\x00\x00\x00", b"D\x00\x00\x00\x06\x00"] {
        assert_eq!(backend(wire), Ok(None));
    }
    for wire in [&b""[..], b"\x00", b"\x00\x00\x00"] {
        assert_eq!(frontend(wire, true), Ok(None));
    }
}

#[test]
fn a_pipeline_frames_message_by_message() {
    let messages: Vec<FrontendMessage> = vec![
        Parse {
            name: String::new(),
            query: "SELECT $1".into(),
            param_types: vec![23],
        }
        .into(),
        Bind {
            portal: String::new(),
            statement: String::new(),
            param_formats: vec![],
            params: vec![Some(Bytes::from_static(b"7"))],
            result_formats: vec![],
        }
        .into(),
        Execute {
            portal: String::new(),
            max_rows: 0,
        }
        .into(),
        Sync.into(),
    ];
    let mut buf = BytesMut::new();
    for m in &messages {
        m.encode(&mut buf);
    }
    let mut got = Vec::new();
    while let Some(frame) = next_frontend(&mut buf, false, MAX_MESSAGE_LEN).unwrap() {
        got.push(frame.decode().unwrap());
    }
    assert_eq!(got, messages);
    assert!(buf.is_empty());
}

#[test]
fn backend_frames() {
    let wire = b"Z\x00\x00\x00\x05I";
    let frame = backend(wire).unwrap().unwrap();
    assert_eq!(frame.tag(), b'Z');
    assert_eq!(frame.name(), "ReadyForQuery");
    assert_eq!(&frame.body()[..], b"I");
    assert_waits_for_whole(wire, |buf| {
        next_backend(buf, MAX_MESSAGE_LEN)
            .unwrap()
            .map(BackendFrame::into_raw)
    });
}

#[test]
fn backend_bogus_lengths_and_types() {
    let cases: &[(&[u8], usize, ProtocolError)] = &[
        (
            b"D\x00\x00\x00\x00",
            MAX_MESSAGE_LEN,
            ProtocolError::BadLength {
                message: "DataRow",
                len: 0,
            },
        ),
        (
            b"D\xff\xff\xff\xfc",
            MAX_MESSAGE_LEN,
            ProtocolError::BadLength {
                message: "DataRow",
                len: -4,
            },
        ),
        (
            b"D\x04\x00\x00\x01",
            MAX_MESSAGE_LEN,
            ProtocolError::TooLong {
                message: "DataRow",
                len: MAX_MESSAGE_LEN + 1,
                max: MAX_MESSAGE_LEN,
            },
        ),
        (
            b"C\x00\x00\x00\x0dSELECT 5\0",
            12,
            ProtocolError::TooLong {
                message: "CommandComplete",
                len: 13,
                max: 12,
            },
        ),
        (
            b"Q\x00\x00\x00\x04",
            MAX_MESSAGE_LEN,
            ProtocolError::UnknownType {
                side: Side::Backend,
                tag: b'Q',
            },
        ),
    ];
    for (wire, max, want) in cases {
        assert_eq!(
            next_backend(&mut BytesMut::from(*wire), *max).as_ref(),
            Err(want),
            "{wire:?}"
        );
    }
}

#[test]
fn large_data_rows_frame_within_the_limit() {
    let row = DataRow {
        values: vec![Some(Bytes::from(vec![b'x'; 1 << 20]))],
    };
    let mut buf = BytesMut::new();
    row.encode(&mut buf);
    let frame = next_backend(&mut buf, MAX_MESSAGE_LEN).unwrap().unwrap();
    assert_eq!(frame.decode().unwrap(), row.into());
}

#[test]
fn frame_debug_hides_payload() {
    let mut buf = BytesMut::new();
    PasswordMessage::from_password(b"hunter2").encode(&mut buf);
    let frame = next_frontend(&mut buf, false, MAX_MESSAGE_LEN)
        .unwrap()
        .unwrap();
    let shown = format!("{frame:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(frame.name(), "PasswordMessage");
}
