//! The admin protocol: one JSON object per line, one request → one response.
use std::{collections::BTreeMap, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::{SessionRow, StatementRow};

/// A request from the CLI to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Readiness, attached programs, policy generation and counters.
    Status,
    /// Audited sessions matching a filter, newest first.
    Sessions {
        /// Which sessions.
        #[serde(default)]
        filter: SessionQuery,
    },
    /// One audited session by id.
    Session {
        /// Session id as printed by `sessions list`.
        id: String,
    },
    /// Create a cgroup for `tollgate run` that classifies its tasks as `workload`.
    RunEnroll {
        /// Workload name from policy.
        workload: String,
    },
    /// The `tollgate run` command has exited: its cgroup may go.
    RunRelease {
        /// Absolute directory of the cgroup returned by `RunEnroll`.
        cgroup: String,
    },
}

impl Request {
    /// The request's `op` tag, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Sessions { .. } => "sessions",
            Self::Session { .. } => "session",
            Self::RunEnroll { .. } => "run_enroll",
            Self::RunRelease { .. } => "run_release",
        }
    }
}

/// Filter of `Request::Sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionQuery {
    /// Only sessions of this workload.
    pub workload: Option<String>,
    /// Only sessions started at or after this time: RFC 3339 or a duration ago ("1h").
    pub since: Option<String>,
    /// Only sessions started before this time: RFC 3339 or a duration ago ("10m").
    pub until: Option<String>,
    /// At most this many sessions.
    pub limit: Option<u32>,
}

impl SessionQuery {
    /// `since` as a time, relative durations counted back from `now`.
    pub fn since_time(&self, now: SystemTime) -> Result<Option<SystemTime>, TimeError> {
        self.since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
    }

    /// `until` as a time, relative durations counted back from `now`.
    pub fn until_time(&self, now: SystemTime) -> Result<Option<SystemTime>, TimeError> {
        self.until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
    }
}

/// A time that is neither RFC 3339 nor a duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid time {0:?}: expected RFC 3339 (2024-05-01T12:00:00Z) or a duration ago (1h, 30m)")]
pub struct TimeError(pub String);

/// Parses an RFC 3339 UTC time ("2024-05-01T12:00:00Z", fractional seconds allowed) or a
/// humantime duration counted back from `now` ("90s", "1h 30m", "2days").
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, TimeError> {
    let text = text.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).map_err(|_| TimeError(text.to_owned()))?;
    now.checked_sub(ago)
        .ok_or_else(|| TimeError(text.to_owned()))
}

/// Field of a `Response::Session` session holding its statements (`store::StatementRow` values).
pub const STATEMENTS: &str = "statements";
/// Field of a `Response::Session` session set to `true` when statements were left out.
pub const STATEMENTS_OMITTED: &str = "statements_omitted";
/// Most statements in a `Response::Session`.
pub const MAX_SESSION_STATEMENTS: u32 = 10_000;
/// Most bytes of statement text in a `Response::Session`: with [`MAX_SESSION_STATEMENTS`], keeps
/// the answer well below [`super::MAX_RESPONSE_LINE`], JSON escapes included.
pub const MAX_SESSION_STATEMENT_TEXT: usize = 8 * 1024 * 1024;

/// The `session` of a `Response::Session`: `row` and, unless there are none, the first of
/// `statements` (in `seq` order) within [`MAX_SESSION_STATEMENTS`] and
/// [`MAX_SESSION_STATEMENT_TEXT`], with [`STATEMENTS_OMITTED`] set when some did not fit.
pub fn session_json(
    row: SessionRow,
    mut statements: Vec<StatementRow>,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut text = 0;
    let fits = statements
        .iter()
        .take(MAX_SESSION_STATEMENTS as usize)
        .take_while(|s| {
            text += s.text.len();
            text <= MAX_SESSION_STATEMENT_TEXT
        })
        .count();
    let omitted = statements.len() > fits;
    statements.truncate(fits);
    let mut session = serde_json::to_value(row)?;
    if let Some(obj) = session.as_object_mut() {
        if !statements.is_empty() {
            obj.insert(STATEMENTS.into(), serde_json::to_value(statements)?);
        }
        if omitted {
            obj.insert(STATEMENTS_OMITTED.into(), true.into());
        }
    }
    Ok(session)
}

/// The agent's answer.
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived response per request; the variant shape is the documented API"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to `Request::Status`.
    Status(StatusReport),
    /// Answer to `Request::Sessions`: session rows as the store serialises them.
    Sessions {
        /// Matching sessions, newest first.
        sessions: Vec<serde_json::Value>,
    },
    /// Answer to `Request::Session`.
    Session {
        /// The session, if it exists: a session row as the store serialises it, plus, for a
        /// session with recorded statements (PostgreSQL), [`STATEMENTS`]: an array of statement
        /// rows in `seq` order, and [`STATEMENTS_OMITTED`]`: true` when the agent sent only the
        /// first ones.
        session: Option<serde_json::Value>,
    },
    /// Answer to `Request::RunEnroll`.
    RunEnrolled {
        /// Absolute directory path of the new cgroup.
        cgroup: String,
    },
    /// Done (e.g. `Request::RunRelease`).
    Ok,
    /// The request failed or was refused.
    Error {
        /// Why, for a human.
        message: String,
    },
}

impl Response {
    /// An `Error` response.
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }
}

/// The agent's state as shown by `tollgate status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// Programs attached, policy loaded, proxy listening, store open.
    pub ready: bool,
    /// The eBPF programs are attached.
    pub attached: bool,
    /// Names of the attached eBPF programs.
    pub programs: Vec<String>,
    /// `open` or `closed`.
    pub fail_mode: String,
    /// Addresses the proxy listens on.
    pub listen: Vec<String>,
    /// cgroup v2 mount point.
    pub cgroup_root: String,
    /// cgroup (below the root) the programs are attached to.
    pub attach_cgroup: String,
    /// Number of the policy in force, 1 for the first load.
    pub policy_generation: u64,
    /// Fingerprint of the policy in force.
    pub policy_fingerprint: String,
    /// When the policy in force was loaded (RFC 3339).
    pub policy_loaded_at: String,
    /// Why the last reload failed, if it did (the previous policy stays in force).
    pub last_reload_error: Option<String>,
    /// Names of the workloads in the policy.
    pub workloads: Vec<String>,
    /// Counters by name (connections, denials, audit drops, ...).
    pub counters: BTreeMap<String, u64>,
    /// Agent version.
    pub version: String,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let cases = [
            (Request::Status, json!({"op": "status"})),
            (
                Request::Sessions {
                    filter: SessionQuery {
                        workload: Some("billing".into()),
                        limit: Some(5),
                        ..Default::default()
                    },
                },
                json!({"op": "sessions", "filter": {"workload": "billing", "since": null, "until": null, "limit": 5}}),
            ),
            (
                Request::Session { id: "s1".into() },
                json!({"op": "session", "id": "s1"}),
            ),
            (
                Request::RunEnroll {
                    workload: "w".into(),
                },
                json!({"op": "run_enroll", "workload": "w"}),
            ),
            (
                Request::RunRelease {
                    cgroup: "/sys/fs/cgroup/x".into(),
                },
                json!({"op": "run_release", "cgroup": "/sys/fs/cgroup/x"}),
            ),
        ];
        for (req, wire) in cases {
            assert_eq!(serde_json::to_value(&req).unwrap(), wire);
            assert_eq!(serde_json::from_value::<Request>(wire).unwrap(), req);
        }
    }

    #[test]
    fn sessions_filter_may_be_omitted_or_partial() {
        let r: Request = serde_json::from_str(r#"{"op":"sessions"}"#).unwrap();
        assert_eq!(
            r,
            Request::Sessions {
                filter: SessionQuery::default()
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"op":"sessions","filter":{"since":"1h"}}"#).unwrap();
        assert_eq!(
            r,
            Request::Sessions {
                filter: SessionQuery {
                    since: Some("1h".into()),
                    ..Default::default()
                }
            }
        );
    }

    #[test]
    fn bad_requests_are_rejected() {
        for bad in [
            r#"{"op":"reboot"}"#,
            r#"{"workload":"w"}"#,
            r#"{"op":"run_enroll"}"#,
            r#"{"op":"run_enroll","workload":"w","extra":1}"#,
            r#"{"op":"sessions","filter":{"bogus":1}}"#,
            r#""status""#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let mut counters = BTreeMap::new();
        counters.insert("connections".to_owned(), 3);
        let cases = [
            Response::Status(StatusReport {
                ready: true,
                programs: vec!["connect4".into()],
                counters,
                ..Default::default()
            }),
            Response::Sessions {
                sessions: vec![json!({"id": "a", "bytes_up": 1})],
            },
            Response::Session { session: None },
            Response::Session {
                session: Some(json!({
                    "id": "a",
                    STATEMENTS: [{"seq": 1, "text": "select 1", "duration_ms": 0.25}],
                    STATEMENTS_OMITTED: true,
                })),
            },
            Response::RunEnrolled {
                cgroup: "/sys/fs/cgroup/tollgate.slice/run-1".into(),
            },
            Response::Ok,
            Response::error("nope"),
        ];
        for resp in cases {
            let line = serde_json::to_string(&resp).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), resp);
        }
        assert_eq!(
            serde_json::to_value(Response::error("x")).unwrap(),
            json!({"result": "error", "message": "x"})
        );
        assert_eq!(
            serde_json::to_value(Response::Ok).unwrap(),
            json!({"result": "ok"})
        );
    }

    fn row() -> SessionRow {
        SessionRow {
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            workload: Some("etl".into()),
            spiffe_id: None,
            pid: 1,
            uid: 2,
            gid: 3,
            exe: None,
            cgroup: "/x".into(),
            systemd_unit: None,
            dst: "127.0.0.1:5432".into(),
            target: Some("orders-db".into()),
            protocol: "postgres".into(),
            decision: "allow".into(),
            rule: "etl".into(),
            policy_generation: 1,
            bytes_up: None,
            bytes_down: None,
            started_at: "2024-05-01T12:00:00.000000Z".into(),
            ended_at: None,
            duration_ms: None,
            end_reason: None,
        }
    }

    fn statement(seq: u32, text: String) -> StatementRow {
        StatementRow {
            seq,
            started_at: "2024-05-01T12:00:01.000000Z".into(),
            duration_ms: Some(0.5),
            text,
            classes: vec!["select".into()],
            tables: vec![],
            decision: "allow".into(),
            rule: "etl".into(),
            rows: Some(1),
            error: None,
            masked: None,
        }
    }

    fn statements(n: u32, text_len: usize) -> Vec<StatementRow> {
        (1..=n)
            .map(|i| statement(i, "x".repeat(text_len)))
            .collect()
    }

    #[test]
    fn session_json_carries_the_statements_that_fit() {
        let half = MAX_SESSION_STATEMENT_TEXT / 2;
        // (statements, how many are sent, omitted)
        let cases = [
            (vec![], 0, false),
            (statements(3, 8), 3, false),
            (
                statements(MAX_SESSION_STATEMENTS, 1),
                MAX_SESSION_STATEMENTS,
                false,
            ),
            (
                statements(MAX_SESSION_STATEMENTS + 1, 1),
                MAX_SESSION_STATEMENTS,
                true,
            ),
            (statements(2, half), 2, false),
            (statements(3, half), 2, true),
            (statements(1, MAX_SESSION_STATEMENT_TEXT + 1), 0, true),
        ];
        for (list, sent, omitted) in cases {
            let n = list.len();
            let session = session_json(row(), list).unwrap();
            let obj = session.as_object().unwrap();
            assert_eq!(obj["id"], json!(row().id));
            assert_eq!(obj["protocol"], json!("postgres"));
            let got: Vec<StatementRow> = obj
                .get(STATEMENTS)
                .map(|v| serde_json::from_value(v.clone()).unwrap())
                .unwrap_or_default();
            let seqs: Vec<u32> = got.iter().map(|s| s.seq).collect();
            assert_eq!(seqs, (1..=sent).collect::<Vec<_>>(), "{n} statements");
            assert_eq!(obj.contains_key(STATEMENTS), sent > 0, "{n} statements");
            assert_eq!(
                obj.get(STATEMENTS_OMITTED) == Some(&json!(true)),
                omitted,
                "{n} statements"
            );
            // Everything else is the session row itself.
            let mut rest = obj.clone();
            rest.remove(STATEMENTS);
            rest.remove(STATEMENTS_OMITTED);
            let back: SessionRow = serde_json::from_value(rest.into()).unwrap();
            assert_eq!(back, row());
        }
    }

    #[test]
    fn times_parse_as_rfc3339_or_duration_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cases: [(&str, Option<SystemTime>); 7] = [
            ("1h", Some(now - Duration::from_secs(3600))),
            (" 90s ", Some(now - Duration::from_secs(90))),
            ("1h 30m", Some(now - Duration::from_secs(5400))),
            (
                "2023-11-14T22:13:20Z",
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            ),
            (
                "2023-11-14T22:13:20.5Z",
                Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)),
            ),
            ("yesterday", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text, now).ok(), want, "{text:?}");
        }
        let q = SessionQuery {
            since: Some("10s".into()),
            until: Some("soon".into()),
            ..Default::default()
        };
        assert_eq!(
            q.since_time(now).unwrap(),
            Some(now - Duration::from_secs(10))
        );
        assert!(q.until_time(now).is_err());
    }
}
