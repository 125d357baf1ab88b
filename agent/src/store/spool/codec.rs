//! The bytes of one spooled record: a kind byte, then the record's fields in declaration order.
//!
//! Integers are little-endian; a string is its byte length (`u32`) and its UTF-8 bytes; an
//! `Option` is a byte (0 none, 1 some) and the value; a list is its length (`u32`) and its items;
//! a time is seconds (`u64`) and nanoseconds (`u32`) since the Unix epoch; a socket address and a
//! JSON value are their text. Pure: no I/O.
use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::oneshot;

use crate::store::{ConnectionEnd, ConnectionRecord, RequestRecord, StatementRecord, backend::Op};

const BEGIN: u8 = 1;
const RECORD: u8 = 2;
const FINISH: u8 = 3;
const STATEMENT: u8 = 4;
/// A request as spooled before its headers were recorded: read as one without headers.
const REQUEST_NO_HEADERS: u8 = 5;
const REQUEST: u8 = 6;

/// Why spooled bytes are not a record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The bytes end inside a field.
    #[error("record cut short")]
    Short,
    /// A kind byte no version of the spool wrote.
    #[error("unknown record kind {0}")]
    Kind(u8),
    /// A field holds a value its type cannot have.
    #[error("bad {0}")]
    Field(&'static str),
    /// Bytes left after the record.
    #[error("{0} bytes after the record")]
    Trailing(usize),
}

/// Appends `op` to `out`.
pub(crate) fn encode(op: &Op, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    match op {
        Op::Begin { rec, .. } => {
            w.u8(BEGIN);
            w.connection(rec);
        }
        Op::Record(rec, end) => {
            w.u8(RECORD);
            w.connection(rec);
            w.end(end);
        }
        Op::Finish(id, end) => {
            w.u8(FINISH);
            w.uuid(id);
            w.end(end);
        }
        Op::Statement(rec) => {
            w.u8(STATEMENT);
            w.statement(rec);
        }
        Op::Request(rec) => {
            w.u8(REQUEST);
            w.request(rec);
        }
    }
}

/// The record in `bytes` (all of them). A `begin` comes back with nobody waiting on it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Op, DecodeError> {
    let mut r = Reader(bytes);
    let op = match r.u8()? {
        BEGIN => Op::Begin {
            rec: r.connection()?,
            done: oneshot::channel().0,
        },
        RECORD => Op::Record(r.connection()?, r.end()?),
        FINISH => Op::Finish(r.uuid()?, r.end()?),
        STATEMENT => Op::Statement(r.statement()?),
        REQUEST_NO_HEADERS => Op::Request(Box::new(r.request(false)?)),
        REQUEST => Op::Request(Box::new(r.request(true)?)),
        kind => return Err(DecodeError::Kind(kind)),
    };
    match r.0.len() {
        0 => Ok(op),
        n => Err(DecodeError::Trailing(n)),
    }
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        // Records are capped far below 4 GiB (texts and bodies at 64 KiB); saturating keeps a
        // record that is not from being misread: its decode fails, it is never replayed wrong.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A string written by `put` in place, its length filled in after: no text allocated.
    fn text(&mut self, put: impl FnOnce(&mut Vec<u8>)) {
        let at = self.0.len();
        self.u32(0);
        put(self.0);
        let n = self.0.len() - at - 4;
        let n = u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        self.0[at..at + 4].copy_from_slice(&n);
    }

    fn opt<T>(&mut self, v: Option<&T>, put: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }

    fn opt_str(&mut self, s: Option<&String>) {
        self.opt(s, |w, s| w.str(s));
    }

    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        v.iter().for_each(|s| self.str(s));
    }

    fn uuid(&mut self, id: &uuid::Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }

    fn duration(&mut self, d: &Duration) {
        self.u64(d.as_secs());
        self.u32(d.subsec_nanos());
    }

    fn time(&mut self, t: SystemTime) {
        self.duration(&t.duration_since(UNIX_EPOCH).unwrap_or_default());
    }

    fn json(&mut self, v: Option<&serde_json::Value>) {
        self.opt(v, |w, v| {
            w.text(|out| serde_json::to_writer(out, v).expect("a Value always serializes"));
        });
    }

    fn connection(&mut self, c: &ConnectionRecord) {
        self.uuid(&c.id);
        self.time(c.started_at);
        self.opt_str(c.workload.as_ref());
        self.opt_str(c.spiffe_id.as_ref());
        self.u32(c.pid);
        self.u32(c.uid);
        self.u32(c.gid);
        self.opt_str(c.exe.as_ref());
        self.str(&c.cgroup);
        self.u64(c.cgroup_id);
        self.opt_str(c.systemd_unit.as_ref());
        self.text(|out| {
            use std::io::Write as _;
            write!(out, "{}", c.dst).expect("writing to a Vec cannot fail");
        });
        self.opt_str(c.target.as_ref());
        self.str(&c.protocol);
        self.str(&c.decision);
        self.str(&c.rule);
        self.u64(c.policy_generation);
    }

    fn end(&mut self, e: &ConnectionEnd) {
        self.time(e.ended_at);
        self.u64(e.bytes_up);
        self.u64(e.bytes_down);
        self.str(&e.end_reason);
    }

    fn statement(&mut self, s: &StatementRecord) {
        self.uuid(&s.connection_id);
        self.u32(s.seq);
        self.time(s.started_at);
        self.opt(s.duration.as_ref(), Self::duration);
        self.str(&s.text);
        self.strs(&s.classes);
        self.strs(&s.tables);
        self.str(&s.decision);
        self.str(&s.rule);
        self.opt(s.rows.as_ref(), |w, n| w.u64(*n));
        self.opt_str(s.error.as_ref());
        self.json(s.masked.as_ref());
    }

    fn request(&mut self, q: &RequestRecord) {
        self.uuid(&q.connection_id);
        self.u32(q.seq);
        self.time(q.started_at);
        self.opt(q.duration.as_ref(), Self::duration);
        self.str(&q.method);
        self.str(&q.host);
        self.str(&q.path);
        self.strs(&q.query);
        self.opt(q.status.as_ref(), |w, s| w.u16(*s));
        self.u64(q.bytes_up);
        self.u64(q.bytes_down);
        self.str(&q.decision);
        self.str(&q.rule);
        self.json(q.masked.as_ref());
        self.opt_str(q.error.as_ref());
        self.opt_str(q.body.as_ref());
        self.opt(q.headers.as_ref(), |w, pairs| {
            w.len(pairs.len());
            for (name, value) in pairs {
                w.str(name);
                w.str(value);
            }
        });
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take gave N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.u32()?).map_err(|_| DecodeError::Field("length"))
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Field("text"))
    }

    fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            _ => Err(DecodeError::Field("option tag")),
        }
    }

    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        self.opt(Self::str)
    }

    fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.len()?;
        // Each item takes at least its length: a count the bytes cannot hold is refused before
        // anything is allocated for it.
        if n > self.0.len() / 4 {
            return Err(DecodeError::Short);
        }
        (0..n).map(|_| self.str()).collect()
    }

    fn pairs(&mut self) -> Result<Vec<(String, String)>, DecodeError> {
        let n = self.len()?;
        // As in `strs`: each pair takes at least its two lengths.
        if n > self.0.len() / 8 {
            return Err(DecodeError::Short);
        }
        (0..n).map(|_| Ok((self.str()?, self.str()?))).collect()
    }

    fn uuid(&mut self) -> Result<uuid::Uuid, DecodeError> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }

    fn duration(&mut self) -> Result<Duration, DecodeError> {
        let secs = self.u64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(DecodeError::Field("nanoseconds"));
        }
        Ok(Duration::new(secs, nanos))
    }

    fn time(&mut self) -> Result<SystemTime, DecodeError> {
        UNIX_EPOCH
            .checked_add(self.duration()?)
            .ok_or(DecodeError::Field("time"))
    }

    fn json(&mut self) -> Result<Option<serde_json::Value>, DecodeError> {
        self.opt(|r| serde_json::from_str(&r.str()?).map_err(|_| DecodeError::Field("json")))
    }

    fn connection(&mut self) -> Result<ConnectionRecord, DecodeError> {
        Ok(ConnectionRecord {
            id: self.uuid()?,
            started_at: self.time()?,
            workload: self.opt_str()?,
            spiffe_id: self.opt_str()?,
            pid: self.u32()?,
            uid: self.u32()?,
            gid: self.u32()?,
            exe: self.opt_str()?,
            cgroup: self.str()?,
            cgroup_id: self.u64()?,
            systemd_unit: self.opt_str()?,
            dst: self
                .str()?
                .parse::<SocketAddr>()
                .map_err(|_| DecodeError::Field("address"))?,
            target: self.opt_str()?,
            protocol: self.str()?,
            decision: self.str()?,
            rule: self.str()?,
            policy_generation: self.u64()?,
        })
    }

    fn end(&mut self) -> Result<ConnectionEnd, DecodeError> {
        Ok(ConnectionEnd {
            ended_at: self.time()?,
            bytes_up: self.u64()?,
            bytes_down: self.u64()?,
            end_reason: self.str()?,
        })
    }

    fn statement(&mut self) -> Result<StatementRecord, DecodeError> {
        Ok(StatementRecord {
            connection_id: self.uuid()?,
            seq: self.u32()?,
            started_at: self.time()?,
            duration: self.opt(Self::duration)?,
            text: self.str()?,
            classes: self.strs()?,
            tables: self.strs()?,
            decision: self.str()?,
            rule: self.str()?,
            rows: self.opt(Self::u64)?,
            error: self.opt_str()?,
            masked: self.json()?,
        })
    }

    /// A request; `headers`: spooled with its headers ([`REQUEST`]).
    fn request(&mut self, headers: bool) -> Result<RequestRecord, DecodeError> {
        Ok(RequestRecord {
            connection_id: self.uuid()?,
            seq: self.u32()?,
            started_at: self.time()?,
            duration: self.opt(Self::duration)?,
            method: self.str()?,
            host: self.str()?,
            path: self.str()?,
            query: self.strs()?,
            status: self.opt(Self::u16)?,
            bytes_up: self.u64()?,
            bytes_down: self.u64()?,
            decision: self.str()?,
            rule: self.str()?,
            masked: self.json()?,
            error: self.opt_str()?,
            body: self.opt_str()?,
            headers: if headers {
                self.opt(Self::pairs)?
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::tests::{at, end, rec, request, stmt};

    // The store's fixtures, with the codec's edge values: the largest integers, an empty string
    // in a list, an empty list, non-ASCII text, the last nanosecond of a second, the epoch.
    fn connection() -> ConnectionRecord {
        ConnectionRecord {
            cgroup_id: u64::MAX,
            exe: None,
            ..rec(uuid::Uuid::now_v7(), Some("etl"), SystemTime::now())
        }
    }

    fn statement() -> StatementRecord {
        StatementRecord {
            duration: Some(Duration::new(1, 999_999_999)),
            classes: vec!["select".into(), String::new()],
            tables: vec![],
            masked: Some(serde_json::json!({"card_number": 12})),
            ..stmt(uuid::Uuid::now_v7(), 3, "select é from t where a = $1")
        }
    }

    fn http_request() -> RequestRecord {
        RequestRecord {
            started_at: UNIX_EPOCH,
            duration: None,
            masked: None,
            bytes_down: u64::MAX,
            error: Some("upstream reset".into()),
            body: Some("{}".into()),
            headers: Some(vec![
                ("host".into(), "api.example".into()),
                ("x-é".into(), String::new()),
            ]),
            ..request(uuid::Uuid::now_v7(), 1)
        }
    }

    /// A request spooled before headers were recorded (kind 5, nothing after its body) is
    /// read as one without headers: a spool left by the previous version is replayed. The
    /// bytes are written out field by field, as that version wrote them.
    #[test]
    fn a_request_spooled_without_headers_is_read() {
        let mut b = vec![REQUEST_NO_HEADERS];
        let s = |b: &mut Vec<u8>, text: &str| {
            b.extend_from_slice(&(text.len() as u32).to_le_bytes());
            b.extend_from_slice(text.as_bytes());
        };
        b.extend_from_slice(&[7; 16]); // connection id
        b.extend_from_slice(&3_u32.to_le_bytes()); // seq
        b.extend_from_slice(&10_u64.to_le_bytes()); // started_at: seconds
        b.extend_from_slice(&5_u32.to_le_bytes()); // and nanoseconds
        b.push(0); // no duration
        s(&mut b, "GET");
        s(&mut b, "api.example");
        s(&mut b, "/v1/x");
        b.extend_from_slice(&1_u32.to_le_bytes()); // one query name
        s(&mut b, "q");
        b.push(1); // a status
        b.extend_from_slice(&200_u16.to_le_bytes());
        b.extend_from_slice(&4_u64.to_le_bytes()); // bytes up
        b.extend_from_slice(&9_u64.to_le_bytes()); // bytes down
        s(&mut b, "allow");
        s(&mut b, "r");
        b.extend_from_slice(&[0, 0, 1]); // no masked, no error, a body
        s(&mut b, "{}");
        let Op::Request(got) = decode(&b).expect("decodes") else {
            panic!("not a request");
        };
        let want = RequestRecord {
            connection_id: uuid::Uuid::from_bytes([7; 16]),
            seq: 3,
            started_at: UNIX_EPOCH + Duration::new(10, 5),
            duration: None,
            method: "GET".into(),
            host: "api.example".into(),
            path: "/v1/x".into(),
            query: vec!["q".into()],
            status: Some(200),
            bytes_up: 4,
            bytes_down: 9,
            decision: "allow".into(),
            rule: "r".into(),
            masked: None,
            error: None,
            body: Some("{}".into()),
            headers: None,
        };
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }

    /// Every kind comes back as it went in.
    #[test]
    fn round_trip_every_kind() {
        let ops = [
            Op::Begin {
                rec: connection(),
                done: oneshot::channel().0,
            },
            Op::Record(connection(), end(at(1, 0), "closed")),
            Op::Finish(uuid::Uuid::now_v7(), end(at(2, 999_999), "agent-shutdown")),
            Op::Statement(statement()),
            Op::Request(Box::new(http_request())),
            Op::Request(Box::new(RequestRecord {
                headers: None,
                ..http_request()
            })),
        ];
        for op in ops {
            let mut bytes = Vec::new();
            encode(&op, &mut bytes);
            let back = decode(&bytes).expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{op:?}"));
        }
    }

    /// A record cut anywhere, or followed by anything, is refused; so is an unknown kind.
    #[test]
    fn cut_or_padded_records_are_refused() {
        let mut bytes = Vec::new();
        encode(&Op::Statement(statement()), &mut bytes);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode(&padded).unwrap_err(), DecodeError::Trailing(1));
        bytes[0] = 99;
        assert_eq!(decode(&bytes).unwrap_err(), DecodeError::Kind(99));
    }

    /// A list count the bytes cannot hold is refused without allocating for it.
    #[test]
    fn a_huge_count_is_refused() {
        let mut bytes = vec![STATEMENT];
        bytes.extend_from_slice(&[0; 16]); // connection id
        bytes.extend_from_slice(&1_u32.to_le_bytes()); // seq
        bytes.extend_from_slice(&[0; 12]); // started_at
        bytes.push(0); // no duration
        bytes.extend_from_slice(&0_u32.to_le_bytes()); // empty text
        bytes.extend_from_slice(&u32::MAX.to_le_bytes()); // classes
        assert_eq!(decode(&bytes).unwrap_err(), DecodeError::Short);
    }
}
