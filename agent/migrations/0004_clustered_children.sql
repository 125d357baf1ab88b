-- tollgate audit store (SQLite): `statements` and `requests` become WITHOUT ROWID tables.
--
-- Both are read and written by their primary key (connection_id, seq) only. As rowid tables they
-- kept every row twice, in the table and in the primary key's automatic index, so each insert
-- updated two B-trees. Clustered on the key, an insert updates one. Columns and meanings are
-- unchanged (see 0002 and 0003); existing rows are copied.

CREATE TABLE statements_clustered (
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
    -- The table is clustered on this key, in the order `sessions show` reads.
    PRIMARY KEY (connection_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO statements_clustered SELECT * FROM statements;
DROP TABLE statements;
ALTER TABLE statements_clustered RENAME TO statements;

CREATE TABLE requests_clustered (
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
) STRICT, WITHOUT ROWID;
INSERT INTO requests_clustered SELECT * FROM requests;
DROP TABLE requests;
ALTER TABLE requests_clustered RENAME TO requests;
