//! NoticeResponse (B): a warning or informational message; the statement goes on.
use super::fields::diagnostic_message;

diagnostic_message!(
    /// A notice (`WARNING`, `NOTICE`, `INFO`, `LOG`, `DEBUG`).
    NoticeResponse = b'N'
);

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn round_trips() {
        let msg = NoticeResponse::new("WARNING", "01000", "statement logged by tollgate");
        assert_eq!(msg.severity(), Some("WARNING"));
        backend_roundtrip(msg);
        backend_roundtrip(NoticeResponse::default());
    }

    #[test]
    fn captured_bytes() {
        // `DROP TABLE IF EXISTS nope` (position-less notice).
        let body = Bytes::from_static(
            b"SNOTICE\0VNOTICE\0C00000\0Mtable \"nope\" does not exist, skipping\0\
Ftablecmds.c\0L1300\0RDropErrorMsgNonExistent\0\0",
        );
        let msg = NoticeResponse::decode(body).unwrap();
        assert_eq!(msg.sqlstate(), Some("00000"));
        assert_eq!(
            msg.message(),
            Some("table \"nope\" does not exist, skipping")
        );
        assert!(NoticeResponse::decode(Bytes::from_static(b"SNOTICE\0")).is_err());
    }
}
