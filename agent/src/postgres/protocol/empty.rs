//! Messages with an empty body, both directions: just a type byte and a length word of 4.
use super::wire::empty_message;

empty_message!(
    /// Sync (F): end of an extended-protocol batch; the server answers ReadyForQuery.
    Sync = b'S'
);
empty_message!(
    /// Flush (F): ask the server to send what it has buffered.
    Flush = b'H'
);
empty_message!(
    /// Terminate (F): the client is closing the connection.
    Terminate = b'X'
);
empty_message!(
    /// CopyDone (F and B): end of COPY data.
    CopyDone = b'c'
);
empty_message!(
    /// ParseComplete (B).
    ParseComplete = b'1'
);
empty_message!(
    /// BindComplete (B).
    BindComplete = b'2'
);
empty_message!(
    /// CloseComplete (B).
    CloseComplete = b'3'
);
empty_message!(
    /// NoData (B): the described statement returns no rows.
    NoData = b'n'
);
empty_message!(
    /// PortalSuspended (B): Execute's row limit was reached.
    PortalSuspended = b's'
);
empty_message!(
    /// EmptyQueryResponse (B): the query string was empty.
    EmptyQueryResponse = b'I'
);

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::postgres::protocol::error::ProtocolError;
    use crate::postgres::protocol::testing::{backend_roundtrip, frontend_roundtrip};

    #[test]
    fn frontend_round_trips() {
        assert_eq!(frontend_roundtrip(Sync, false), &b"S\x00\x00\x00\x04"[..]);
        assert_eq!(frontend_roundtrip(Flush, false), &b"H\x00\x00\x00\x04"[..]);
        assert_eq!(
            frontend_roundtrip(Terminate, false),
            &b"X\x00\x00\x00\x04"[..]
        );
        assert_eq!(
            frontend_roundtrip(CopyDone, false),
            &b"c\x00\x00\x00\x04"[..]
        );
    }

    #[test]
    fn backend_round_trips() {
        assert_eq!(backend_roundtrip(CopyDone), &b"c\x00\x00\x00\x04"[..]);
        assert_eq!(backend_roundtrip(ParseComplete), &b"1\x00\x00\x00\x04"[..]);
        assert_eq!(backend_roundtrip(BindComplete), &b"2\x00\x00\x00\x04"[..]);
        assert_eq!(backend_roundtrip(CloseComplete), &b"3\x00\x00\x00\x04"[..]);
        assert_eq!(backend_roundtrip(NoData), &b"n\x00\x00\x00\x04"[..]);
        assert_eq!(
            backend_roundtrip(PortalSuspended),
            &b"s\x00\x00\x00\x04"[..]
        );
        assert_eq!(
            backend_roundtrip(EmptyQueryResponse),
            &b"I\x00\x00\x00\x04"[..]
        );
    }

    #[test]
    fn a_body_is_refused() {
        assert_eq!(
            Sync::decode(Bytes::from_static(b"x")),
            Err(ProtocolError::TrailingBytes {
                message: "Sync",
                count: 1
            })
        );
        let mut out = BytesMut::new();
        NoData.encode(&mut out);
        assert_eq!(out.len(), 5);
    }
}
