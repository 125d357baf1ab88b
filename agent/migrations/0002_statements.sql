-- tollgate audit store (SQLite): one row per statement of an L7 session (PostgreSQL today),
-- linked to the connection row of its session.
--
-- The connection row is committed by `AuditSink::begin` before the session can send anything, so
-- every statement finds its parent (foreign keys are enforced on every store connection).
-- Times are INTEGER unix microseconds (UTC); durations INTEGER microseconds; u64 counts INTEGER
-- (i64, saturating at i64::MAX).
CREATE TABLE statements (
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- 1, 2, ... in the order the session received the statements.
    seq           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    -- unset when the statement never completed (denied, or the session ended first).
    duration_us   INTEGER,
    -- statement text as recorded by the session: literals already redacted, no bind values.
    text          TEXT    NOT NULL,
    -- statement classes (snake_case), comma-separated; "" for none.
    classes       TEXT    NOT NULL,
    -- tables read or written, comma-separated; "" for none.
    tables        TEXT    NOT NULL,
    -- "allow" | "deny" | "approve" | "audit-deny"
    decision      TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    rows          INTEGER,
    error         TEXT,
    -- JSON object: masked values by column or detector, e.g. {"card_number": 12}.
    masked        TEXT,
    -- Its automatic unique index is the (connection_id, seq) index that `sessions show` reads.
    PRIMARY KEY (connection_id, seq)
) STRICT;
