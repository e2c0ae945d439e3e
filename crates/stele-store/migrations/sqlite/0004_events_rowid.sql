-- Events move to a rowid table, in the order they were appended. Keyed WITHOUT ROWID by
-- (log_id, seq), the events were a B-tree holding only a few rows per page (each row is an
-- event's bytes), and every commit rebalanced its right edge: a commit of a dozen events
-- wrote some seventeen pages. In a rowid table an append fills the last page and starts
-- the next; (log_id, seq) and (log_id, id) are small unique indexes beside it.
CREATE TABLE events_v4 (
    log_id    INTEGER NOT NULL REFERENCES logs (log_id),
    seq       INTEGER NOT NULL,
    id        BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL,
    body      BLOB    NOT NULL
);
INSERT INTO events_v4 (log_id, seq, id, leaf_hash, body)
    SELECT log_id, seq, id, leaf_hash, body FROM events ORDER BY log_id, seq;
-- Dropping a table fires none of its triggers; they and its index go with it.
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
CREATE UNIQUE INDEX events_by_seq ON events (log_id, seq);
CREATE UNIQUE INDEX events_by_id ON events (log_id, id);

-- The same guards as before (migrations 0001 and 0003).
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER events_writer_only BEFORE INSERT ON events
WHEN NOT stele_writer()
BEGIN SELECT RAISE(ABORT, 'stele: only the Stele writer appends events'); END;
