//! CommandComplete (B): a statement finished; its tag names the command and row count.
use bytes::{Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// Completion of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandComplete {
    /// Command tag: `SELECT 5`, `INSERT 0 3`, `CREATE TABLE`, …
    pub tag: String,
}

impl CommandComplete {
    /// The message type byte.
    pub const TAG: u8 = b'C';
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "CommandComplete";

    /// A completion with tag `tag`.
    pub fn new(tag: impl Into<String>) -> Self {
        Self { tag: tag.into() }
    }

    /// The command word(s) before any count: `INSERT`, `CREATE TABLE`.
    pub fn command(&self) -> &str {
        let end = self
            .tag
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(self.tag.len());
        self.tag.get(..end).unwrap_or_default().trim_end()
    }

    /// Rows affected or returned, for the tags that carry a count: `SELECT n`, `INSERT oid n`,
    /// `UPDATE n`, `DELETE n`, `MERGE n`, `FETCH n`, `MOVE n`, `COPY n`. `None` otherwise or
    /// if the tag is malformed.
    pub fn rows(&self) -> Option<u64> {
        let words: Vec<&str> = self.tag.split(' ').collect();
        let count = match words.as_slice() {
            ["INSERT", oid, n] if oid.parse::<u32>().is_ok() => n,
            [
                "SELECT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY",
                n,
            ] => n,
            _ => return None,
        };
        count.parse().ok()
    }

    /// Decodes the body.
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let tag = r.cstr("command tag")?;
        r.finish()?;
        Ok(Self { tag })
    }

    /// Appends the message, header included.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, Some(Self::TAG), |b| put_cstr(b, self.tag.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::backend_roundtrip;

    #[test]
    fn captured_bytes() {
        let wire = b"C\x00\x00\x00\x0dSELECT 5\0";
        assert_eq!(
            backend_roundtrip(CommandComplete::new("SELECT 5")),
            &wire[..]
        );
        backend_roundtrip(CommandComplete::new("CREATE TABLE"));
    }

    #[test]
    fn row_counts() {
        let cases = [
            ("SELECT 5", Some(5)),
            ("INSERT 0 3", Some(3)),
            ("UPDATE 2", Some(2)),
            ("DELETE 0", Some(0)),
            ("MERGE 7", Some(7)),
            ("FETCH 100", Some(100)),
            ("MOVE 1", Some(1)),
            ("COPY 10", Some(10)),
            ("SELECT 18446744073709551615", Some(u64::MAX)),
            ("CREATE TABLE", None),
            ("BEGIN", None),
            ("INSERT 3", None),
            ("UPDATE x", None),
            ("SELECT -1", None),
            ("SELECT  5", None),
            ("", None),
        ];
        for (tag, want) in cases {
            assert_eq!(CommandComplete::new(tag).rows(), want, "{tag}");
        }
    }

    #[test]
    fn command_words() {
        let cases = [
            ("INSERT 0 3", "INSERT"),
            ("CREATE TABLE", "CREATE TABLE"),
            ("SELECT 5", "SELECT"),
            ("", ""),
        ];
        for (tag, want) in cases {
            assert_eq!(CommandComplete::new(tag).command(), want, "{tag}");
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        assert!(CommandComplete::decode(Bytes::from_static(b"SELECT 5")).is_err());
        assert!(CommandComplete::decode(Bytes::from_static(b"SELECT 5\0\0")).is_err());
    }
}
