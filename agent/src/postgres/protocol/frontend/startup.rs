//! StartupMessage (F): protocol version and ordered `name=value` parameters.
use bytes::{BufMut, Bytes, BytesMut};

use crate::postgres::protocol::error::ProtocolError;
use crate::postgres::protocol::wire::{Reader, put_cstr, put_message};

/// A protocol version as sent in a StartupMessage: `major << 16 | minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// Major version (3 for every protocol this codec speaks).
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0, spoken by every PostgreSQL since 7.4.
    pub const V3_0: Self = Self { major: 3, minor: 0 };
    /// Protocol 3.2 (PostgreSQL 18: variable-length cancel keys).
    pub const V3_2: Self = Self { major: 3, minor: 2 };

    /// Splits a wire code.
    pub fn from_code(code: u32) -> Self {
        Self {
            major: (code >> 16) as u16,
            minor: (code & 0xffff) as u16,
        }
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        u32::from(self.major) << 16 | u32::from(self.minor)
    }
}

/// The first packet of a session.
///
/// Parameters keep their order; names are unique (a repeated name is refused on decode, since
/// the server keeps the last value and a reader that stops at the first would be fooled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Requested protocol version (major 3).
    pub version: ProtocolVersion,
    /// `(name, value)` pairs in wire order: `user`, `database`, `application_name`, `options`,
    /// `_pq_.*` protocol options, GUCs.
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The protocol name, for errors and logs.
    pub const NAME: &'static str = "StartupMessage";

    /// A protocol 3.0 startup for `user`.
    pub fn new(user: &str) -> Self {
        Self {
            version: ProtocolVersion::V3_0,
            params: vec![("user".to_owned(), user.to_owned())],
        }
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets parameter `name`, in place if present, else at the end.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.params.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Removes parameter `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.params.iter().position(|(n, _)| n == name)?;
        Some(self.params.remove(at).1)
    }

    /// The `user` parameter (PostgreSQL requires it).
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// The database PostgreSQL will open: `database`, defaulting to the user name.
    pub fn database(&self) -> Option<&str> {
        self.get("database").or_else(|| self.user())
    }

    /// Decodes the body (from the protocol version on).
    pub fn decode(body: Bytes) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(Self::NAME, body);
        let version = ProtocolVersion::from_code(r.u32("protocol version")?);
        if version.major != 3 {
            return Err(ProtocolError::UnsupportedVersion {
                major: version.major,
                minor: version.minor,
            });
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            let name = r.cstr("parameter name")?;
            if name.is_empty() {
                break;
            }
            let value = r.cstr("parameter value")?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(ProtocolError::DuplicateParameter {
                    message: Self::NAME,
                    name,
                });
            }
            params.push((name, value));
        }
        r.finish()?;
        Ok(Self { version, params })
    }

    /// Appends the packet, length word included. Parameters with an empty name are skipped.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_message(dst, None, |b| {
            b.put_u32(self.version.code());
            for (name, value) in self
                .params
                .iter()
                .filter(|(n, _)| !n.starts_with('\0') && !n.is_empty())
            {
                put_cstr(b, name.as_bytes());
                put_cstr(b, value.as_bytes());
            }
            b.put_u8(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::protocol::testing::frontend_roundtrip;

    /// `psql -U alice -d app` with an application name, as on the wire.
    const CAPTURED: &[u8] = b"\x00\x00\x00\x4c\x00\x03\x00\x00\
user\0alice\0database\0app\0application_name\0psql\0client_encoding\0UTF8\0\0";

    #[test]
    fn decodes_a_captured_startup() {
        let msg = StartupMessage::decode(Bytes::from_static(&CAPTURED[4..])).unwrap();
        assert_eq!(msg.version, ProtocolVersion::V3_0);
        assert_eq!(msg.user(), Some("alice"));
        assert_eq!(msg.database(), Some("app"));
        assert_eq!(msg.get("application_name"), Some("psql"));
        assert_eq!(msg.params.len(), 4);
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(&out[..], CAPTURED);
    }

    #[test]
    fn round_trip() {
        let mut msg = StartupMessage::new("bob");
        msg.version = ProtocolVersion::V3_2;
        msg.set("options", "-c search_path=app");
        msg.set("_pq_.test", "x");
        frontend_roundtrip(msg, true);
    }

    #[test]
    fn database_defaults_to_user() {
        let mut msg = StartupMessage::new("bob");
        assert_eq!(msg.database(), Some("bob"));
        msg.set("database", "db");
        msg.set("user", "carol");
        assert_eq!(msg.database(), Some("db"));
        assert_eq!(msg.params[0], ("user".into(), "carol".into()));
        assert_eq!(msg.remove("database").as_deref(), Some("db"));
        assert_eq!(msg.remove("database"), None);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[(&'static [u8], ProtocolError)] = &[
            (
                b"\x00\x03",
                ProtocolError::Truncated {
                    message: "StartupMessage",
                    field: "protocol version",
                    need: 4,
                    have: 2,
                },
            ),
            (
                b"\x00\x02\x00\x00user\0a\0\0",
                ProtocolError::UnsupportedVersion { major: 2, minor: 0 },
            ),
            (
                b"\x00\x03\x00\x00user\0alice\0",
                ProtocolError::MissingNul {
                    message: "StartupMessage",
                    field: "parameter name",
                },
            ),
            (
                b"\x00\x03\x00\x00user\0alice",
                ProtocolError::MissingNul {
                    message: "StartupMessage",
                    field: "parameter value",
                },
            ),
            (
                b"\x00\x03\x00\x00user\0a\0user\0postgres\0\0",
                ProtocolError::DuplicateParameter {
                    message: "StartupMessage",
                    name: "user".into(),
                },
            ),
            (
                b"\x00\x03\x00\x00user\0\xc3\x28\0\0",
                ProtocolError::InvalidUtf8 {
                    message: "StartupMessage",
                    field: "parameter value",
                },
            ),
            (
                b"\x00\x03\x00\x00user\0a\0\0extra",
                ProtocolError::TrailingBytes {
                    message: "StartupMessage",
                    count: 5,
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                StartupMessage::decode(Bytes::from_static(body)).as_ref(),
                Err(want),
                "{body:?}"
            );
        }
    }

    #[test]
    fn encode_cannot_smuggle_parameters() {
        let mut msg = StartupMessage::new("alice\0database\0postgres");
        msg.params.push((String::new(), "ignored".into()));
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        let back = StartupMessage::decode(out.freeze().slice(4..)).unwrap();
        assert_eq!(back.params, vec![("user".to_owned(), "alice".to_owned())]);
    }
}
