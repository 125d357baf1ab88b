-- tollgate audit store (SQLite): staging tables for the statement and request rows.
--
-- The writer appends each row to the staging table of its kind, which has no index, and moves
-- the staged rows into `statements` / `requests` every few thousand rows, when it starts and when
-- it stops, each move in one transaction. A commit then writes the few pages the new rows fill,
-- not a leaf of the primary key's index for every session in flight; the move writes each such
-- leaf once for many rows. Readers read both tables in one statement (one snapshot), so a row is
-- seen exactly once whether or not it has moved.
--
-- The foreign key is checked when a row is staged, as before; the primary key when it moves,
-- where a duplicate (connection_id, seq) is dropped with a warning.
CREATE TABLE statements_staged (
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_us   INTEGER,
    text          TEXT    NOT NULL,
    classes       TEXT    NOT NULL,
    tables        TEXT    NOT NULL,
    decision      TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    rows          INTEGER,
    error         TEXT,
    masked        TEXT
) STRICT;

CREATE TABLE requests_staged (
    connection_id TEXT    NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_us   INTEGER,
    method        TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    query         TEXT    NOT NULL,
    status        INTEGER,
    bytes_up      INTEGER NOT NULL,
    bytes_down    INTEGER NOT NULL,
    decision      TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    masked        TEXT,
    error         TEXT,
    body          TEXT
) STRICT;
