-- tollgate audit store (SQLite): one row per HTTP request of an L7 session, linked to the
-- connection row of its session (as `statements` for PostgreSQL).
--
-- The connection row is committed by `AuditSink::begin` before the session forwards anything, so
-- every request finds its parent. Times are INTEGER unix microseconds (UTC); durations INTEGER
-- microseconds; u64 counts INTEGER (i64, saturating at i64::MAX).
-- Never stored: header values (Authorization, Cookie, Set-Cookie, Proxy-Authorization and the
-- injected credential header included), query values, unmasked bodies.
CREATE TABLE requests (
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- 1, 2, ... in the order the session received the requests.
    seq           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    -- until the response ended (or the exchange failed); unset if it never ended.
    duration_us   INTEGER,
    -- "" when the request could not be parsed.
    method        TEXT    NOT NULL,
    -- Host / :authority without port, lowercase.
    host          TEXT    NOT NULL,
    -- path without the query, normalized when it could be (as policy saw it).
    path          TEXT    NOT NULL,
    -- query parameter names (never values), comma-separated; "" for none.
    query         TEXT    NOT NULL,
    -- response status sent to the client (403 for a denial); unset if none was sent.
    status        INTEGER,
    -- request body bytes forwarded upstream, response body bytes sent to the client.
    bytes_up      INTEGER NOT NULL,
    bytes_down    INTEGER NOT NULL,
    -- "allow" | "deny" | "approve" | "audit-deny"
    decision      TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    -- JSON object: masked values by json key or detector, e.g. {"by_detector": {"card": 2}}.
    masked        TEXT,
    error         TEXT,
    -- request body, only when the target sets record_bodies: capped and masked.
    body          TEXT,
    PRIMARY KEY (connection_id, seq)
) STRICT;
