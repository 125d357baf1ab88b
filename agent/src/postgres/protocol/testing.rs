//! Test helpers: encode → frame → decode must give back the message and the same bytes.
use bytes::{Bytes, BytesMut};

use super::backend::BackendMessage;
use super::frame::{MAX_MESSAGE_LEN, next_backend, next_frontend};
use super::frontend::FrontendMessage;

/// Round-trips a client message; returns its encoding.
pub(crate) fn frontend_roundtrip(msg: impl Into<FrontendMessage>, startup_phase: bool) -> Bytes {
    let msg = msg.into();
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    let encoded = buf.clone().freeze();
    // A trailing byte of the next message must stay in the buffer.
    buf.extend_from_slice(b"Q");
    let frame = next_frontend(&mut buf, startup_phase, MAX_MESSAGE_LEN)
        .expect("frames")
        .expect("whole");
    assert_eq!(&buf[..], b"Q", "frame consumed exactly one message");
    assert_eq!(frame.raw(), &encoded);
    assert_eq!(frame.decode().expect("decodes"), msg);
    encoded
}

/// Round-trips a server message; returns its encoding.
pub(crate) fn backend_roundtrip(msg: impl Into<BackendMessage>) -> Bytes {
    let msg = msg.into();
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    let encoded = buf.clone().freeze();
    buf.extend_from_slice(b"Z");
    let frame = next_backend(&mut buf, MAX_MESSAGE_LEN)
        .expect("frames")
        .expect("whole");
    assert_eq!(&buf[..], b"Z", "frame consumed exactly one message");
    assert_eq!(frame.raw(), &encoded);
    assert_eq!(frame.decode().expect("decodes"), msg);
    encoded
}
