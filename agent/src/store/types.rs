//! What the proxy hands to the store and what the reader hands back.
use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

/// A connection as known when it is accepted and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Session id, uuid v7.
    pub id: uuid::Uuid,
    /// When the connection was accepted.
    pub started_at: SystemTime,
    /// Workload name from policy, if the task was classified.
    pub workload: Option<String>,
    /// SPIFFE ID of the workload.
    pub spiffe_id: Option<String>,
    /// Process id of the connecting task.
    pub pid: u32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its executable path, if readable.
    pub exe: Option<String>,
    /// Its cgroup v2 path.
    pub cgroup: String,
    /// Its cgroup id (inode of the cgroup directory).
    pub cgroup_id: u64,
    /// Its systemd unit, if any.
    pub systemd_unit: Option<String>,
    /// Original destination.
    pub dst: SocketAddr,
    /// Policy target name the destination matched.
    pub target: Option<String>,
    /// Protocol handler ("tcp", "postgres", ...).
    pub protocol: String,
    /// "allow" | "deny" | "approve" | "audit-deny".
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Generation of the policy that decided.
    pub policy_generation: u64,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEnd {
    /// When it ended.
    pub ended_at: SystemTime,
    /// Bytes from the workload to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the workload.
    pub bytes_down: u64,
    /// "closed", "denied", "idle-timeout", "upstream-refused", "error: ...", "agent-shutdown".
    pub end_reason: String,
}

/// Counters of the writer (monotonic since open) and the current queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreStats {
    /// Operations (begin, record, finish, statement) committed.
    pub written: u64,
    /// Operations whose write failed and that are lost: refused by the database (a constraint),
    /// or not spooled when the write failed as such.
    pub failed: u64,
    /// Writes that failed as such (a lock past the busy timeout, a full disk); the spooled
    /// records among them are tried again.
    #[serde(default)]
    pub write_errors: u64,
    /// Operations refused because the queue was full.
    pub queue_full: u64,
    /// Times a statement, request or connection waited for room in the queue (see
    /// [`super::AuditSink::hold`]).
    #[serde(default)]
    pub room_waits: u64,
    /// Times a session waited for results of its own, at its cap of slots held (see
    /// [`super::SessionBudget`]).
    #[serde(default)]
    pub session_waits: u64,
    /// Holds whose wait ran out and that let the work through without a place for its record
    /// (`audit_failure = "open"`; see [`super::AuditSink::hold`]): statements and requests, and
    /// also a Parse's check and requests denied after it.
    #[serde(default)]
    pub unheld: u64,
    /// Records that found no room in the spool (both segments hold records not yet committed:
    /// the writer is far behind or failing), queued without it: a `begin` among them waited for
    /// its commit, the others can be lost in a crash of the agent until they are committed.
    #[serde(default)]
    pub unspooled: u64,
    /// Transactions committed (several operations each under load).
    pub commits: u64,
    /// Operations waiting in the queue now.
    pub queued: usize,
    /// Operations not yet committed now: those in the queue and those in the writer's batch
    /// (which gathers for up to 50 ms while its records are spooled).
    #[serde(default)]
    pub pending: usize,
    /// Slots held now for records to come: one per open connection (its end) and one per
    /// statement or request running.
    #[serde(default)]
    pub in_flight: usize,
}

/// Selection of sessions for [`super::StoreReader::list`]; the default selects all, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this workload.
    pub workload: Option<String>,
    /// Only sessions started at or after this time.
    pub since: Option<SystemTime>,
    /// Only sessions started before this time.
    pub until: Option<SystemTime>,
    /// At most this many sessions (the newest); all if unset.
    pub limit: Option<u32>,
}

/// One session as stored, for the CLI and the admin socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRow {
    /// Session id (uuid v7, hyphenated).
    pub id: String,
    /// Workload name.
    pub workload: Option<String>,
    /// SPIFFE ID of the workload.
    pub spiffe_id: Option<String>,
    /// Process id of the connecting task.
    pub pid: u32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its executable path.
    pub exe: Option<String>,
    /// Its cgroup v2 path.
    pub cgroup: String,
    /// Its systemd unit.
    pub systemd_unit: Option<String>,
    /// Original destination, "ip:port".
    pub dst: String,
    /// Policy target name.
    pub target: Option<String>,
    /// Protocol handler.
    pub protocol: String,
    /// Policy decision.
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Generation of the policy that decided.
    pub policy_generation: u64,
    /// Bytes from the workload to the upstream; unset while open.
    pub bytes_up: Option<u64>,
    /// Bytes from the upstream to the workload; unset while open.
    pub bytes_down: Option<u64>,
    /// Start, RFC 3339 UTC with microseconds.
    pub started_at: String,
    /// End, RFC 3339 UTC with microseconds; unset while open or if the agent crashed.
    pub ended_at: Option<String>,
    /// Duration in milliseconds, when the end is known.
    pub duration_ms: Option<u64>,
    /// Why it ended; unset while open, "agent-restart" if the agent crashed meanwhile.
    pub end_reason: Option<String>,
}

/// One statement of an L7 session (PostgreSQL), recorded after its connection's `begin`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementRecord {
    /// Session id: the [`ConnectionRecord::id`] of the connection, already begun.
    pub connection_id: uuid::Uuid,
    /// Position in the session, from 1; unique per session.
    pub seq: u32,
    /// When the session received the statement.
    pub started_at: SystemTime,
    /// Until its result was complete; unset if it never ran (denied) or never finished.
    pub duration: Option<Duration>,
    /// Statement text with literals already redacted by the caller; never bind values. Longer
    /// than [`super::MAX_STATEMENT_TEXT`] bytes, it is cut and marked.
    pub text: String,
    /// Statement classes (snake_case names), one per statement of the message.
    pub classes: Vec<String>,
    /// Tables read or written.
    pub tables: Vec<String>,
    /// "allow" | "deny" | "approve" | "audit-deny".
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Rows returned or affected, when known.
    pub rows: Option<u64>,
    /// Error returned to the client (the denial or the server's error), if any.
    pub error: Option<String>,
    /// Masked values counted by column or detector, a JSON object (`{"card_number": 12}`).
    pub masked: Option<serde_json::Value>,
}

/// One statement as stored, for the CLI and the admin socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementRow {
    /// Position in the session, from 1.
    pub seq: u32,
    /// When the session received it, RFC 3339 UTC with microseconds.
    pub started_at: String,
    /// Duration in milliseconds (microsecond precision), when known.
    pub duration_ms: Option<f64>,
    /// Statement text, literals redacted.
    pub text: String,
    /// Statement classes.
    pub classes: Vec<String>,
    /// Tables read or written.
    pub tables: Vec<String>,
    /// Policy decision.
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Rows returned or affected.
    pub rows: Option<u64>,
    /// Error returned to the client.
    pub error: Option<String>,
    /// Masked values counted by column or detector.
    pub masked: Option<serde_json::Value>,
}

/// One HTTP request of an L7 session, recorded after its connection's `begin`. Holds no header
/// value, no query value and no unmasked body.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Session id: the [`ConnectionRecord::id`] of the connection, already begun.
    pub connection_id: uuid::Uuid,
    /// Position in the session, from 1; unique per session.
    pub seq: u32,
    /// When the session received the request head.
    pub started_at: SystemTime,
    /// Until the response ended or the exchange failed; unset if it never ended.
    pub duration: Option<Duration>,
    /// Method as sent; empty when the request could not be parsed.
    pub method: String,
    /// Host (or `:authority`) without port, lowercase.
    pub host: String,
    /// Path without the query (normalized when it could be).
    pub path: String,
    /// Names of the query parameters, in order (never their values).
    pub query: Vec<String>,
    /// Status sent to the client (403 for a denial); unset when none was sent.
    pub status: Option<u16>,
    /// Request body bytes forwarded upstream.
    pub bytes_up: u64,
    /// Response body bytes sent to the client.
    pub bytes_down: u64,
    /// "allow" | "deny" | "approve" | "audit-deny".
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Masked values counted by JSON key or detector, a JSON object.
    pub masked: Option<serde_json::Value>,
    /// What went wrong (the denial, an upstream failure, a refused response), if anything.
    pub error: Option<String>,
    /// The request body, capped and masked, when the target records bodies. Longer than
    /// [`super::MAX_REQUEST_BODY`] bytes, it is cut and marked.
    pub body: Option<String>,
    /// The request headers as the client sent them (names lowercase, in order), sensitive
    /// values redacted and the rest masked (`policy::recorded_headers`); `None` when the target
    /// records none.
    pub headers: Option<Vec<(String, String)>>,
}

/// One HTTP request as stored, for the CLI and the admin socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRow {
    /// Position in the session, from 1.
    pub seq: u32,
    /// When the session received it, RFC 3339 UTC with microseconds.
    pub started_at: String,
    /// Duration in milliseconds (microsecond precision), when known.
    pub duration_ms: Option<f64>,
    /// Method.
    pub method: String,
    /// Host without port.
    pub host: String,
    /// Path without the query.
    pub path: String,
    /// Query parameter names.
    pub query: Vec<String>,
    /// Status sent to the client.
    pub status: Option<u16>,
    /// Request body bytes forwarded upstream.
    pub bytes_up: u64,
    /// Response body bytes sent to the client.
    pub bytes_down: u64,
    /// Policy decision.
    pub decision: String,
    /// Rule that decided.
    pub rule: String,
    /// Masked values counted by JSON key or detector.
    pub masked: Option<serde_json::Value>,
    /// What went wrong.
    pub error: Option<String>,
    /// Recorded request body (capped, masked).
    pub body: Option<String>,
    /// Recorded request headers (sensitive values redacted), `[name, value]` in order; none
    /// when the target recorded none (or the row predates header recording).
    pub headers: Option<Vec<(String, String)>>,
}
