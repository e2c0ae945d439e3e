-- One row per log (tenant): its size and the last server time handed out in it.
CREATE TABLE logs (
    log_id           INTEGER PRIMARY KEY,
    tenant           TEXT    NOT NULL UNIQUE,
    size             INTEGER NOT NULL DEFAULT 0,
    last_received_at INTEGER NOT NULL DEFAULT 0
);

-- Events keyed by (log, seq) as their canonical bytes, plus the one lookup index (log, id).
-- Nothing else is indexed here: filters run on the derived search index.
CREATE TABLE events (
    log_id    INTEGER NOT NULL REFERENCES logs (log_id),
    seq       INTEGER NOT NULL,
    id        BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL,
    body      BLOB    NOT NULL,
    PRIMARY KEY (log_id, seq)
) WITHOUT ROWID;

CREATE UNIQUE INDEX events_by_id ON events (log_id, id);

-- Merkle tree hashes as C2SP tlog-tiles: level, index, and the (possibly partial) tile.
CREATE TABLE tiles (
    log_id INTEGER NOT NULL REFERENCES logs (log_id),
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hashes BLOB    NOT NULL,
    PRIMARY KEY (log_id, level, idx)
) WITHOUT ROWID;

-- Events are append-only: no statement may change or remove one. INSERT OR REPLACE would
-- delete the old row without firing the delete trigger, so inserts over an existing
-- position or id are refused too.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE log_id = NEW.log_id AND seq = NEW.seq)
  OR EXISTS (SELECT 1 FROM events WHERE log_id = NEW.log_id AND id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
