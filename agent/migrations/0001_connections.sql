-- tollgate audit store (SQLite): one row per proxied connection.
--
-- Times are INTEGER unix microseconds (UTC); the reader formats them as RFC 3339.
-- u64 counters are stored as INTEGER (i64), saturating at i64::MAX.
-- A row is "open" while end_reason IS NULL. When the agent starts, rows still open (a previous
-- agent crashed) get end_reason = 'agent-restart' and keep ended_at NULL: the real end is unknown.
CREATE TABLE connections (
    -- uuid v7, lowercase hyphenated text; sorts by creation time.
    id                TEXT    PRIMARY KEY NOT NULL,
    started_at        INTEGER NOT NULL,
    workload          TEXT,
    spiffe_id         TEXT,
    pid               INTEGER NOT NULL,
    uid               INTEGER NOT NULL,
    gid               INTEGER NOT NULL,
    exe               TEXT,
    cgroup            TEXT    NOT NULL,
    cgroup_id         INTEGER NOT NULL,
    systemd_unit      TEXT,
    -- original destination, "ip:port" ("[v6]:port").
    dst               TEXT    NOT NULL,
    target            TEXT,
    protocol          TEXT    NOT NULL,
    -- "allow" | "deny" | "approve" | "audit-deny"
    decision          TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    policy_generation INTEGER NOT NULL,
    ended_at          INTEGER,
    bytes_up          INTEGER,
    bytes_down        INTEGER,
    end_reason        TEXT
) STRICT;

CREATE INDEX connections_started_at ON connections (started_at);
CREATE INDEX connections_workload_started_at ON connections (workload, started_at);
-- Open rows only: keeps the crash recovery at start-up cheap on a large table.
CREATE INDEX connections_open ON connections (id) WHERE end_reason IS NULL;
