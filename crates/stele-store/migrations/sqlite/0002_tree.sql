-- The Merkle tree as C2SP tlog-tiles. A tile only ever grows: each batch stores the new
-- width of the right edge's partial tiles as new rows, and may then drop narrower rows of
-- the same tile, whose hashes are a prefix of the wider one. No hash is ever changed.
DROP TABLE tiles;
CREATE TABLE tiles (
    log_id INTEGER NOT NULL REFERENCES logs (log_id),
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    width  INTEGER NOT NULL,
    hashes BLOB    NOT NULL,
    PRIMARY KEY (log_id, level, idx, width)
) WITHOUT ROWID;

CREATE TRIGGER tiles_no_update BEFORE UPDATE ON tiles
BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END;
CREATE TRIGGER tiles_no_delete BEFORE DELETE ON tiles
WHEN NOT EXISTS (SELECT 1 FROM tiles t WHERE t.log_id = OLD.log_id AND t.level = OLD.level
                 AND t.idx = OLD.idx AND t.width > OLD.width)
BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END;
CREATE TRIGGER tiles_no_replace BEFORE INSERT ON tiles
WHEN EXISTS (SELECT 1 FROM tiles t WHERE t.log_id = NEW.log_id AND t.level = NEW.level
             AND t.idx = NEW.idx AND t.width = NEW.width)
BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END;

-- A log row only grows: never deleted (that would orphan a whole log's rows), never
-- renamed, its size and last time never decrease.
CREATE TRIGGER logs_no_delete BEFORE DELETE ON logs
BEGIN SELECT RAISE(ABORT, 'stele: logs are append-only'); END;
CREATE TRIGGER logs_only_grow BEFORE UPDATE ON logs
WHEN NEW.log_id != OLD.log_id OR NEW.tenant != OLD.tenant OR NEW.size < OLD.size
  OR NEW.last_received_at < OLD.last_received_at
BEGIN SELECT RAISE(ABORT, 'stele: logs are append-only'); END;

-- Every signed checkpoint issued, as its C2SP signed-note text.
CREATE TABLE checkpoints (
    checkpoint_id INTEGER PRIMARY KEY,
    log_id        INTEGER NOT NULL REFERENCES logs (log_id),
    size          INTEGER NOT NULL,
    signed_at     INTEGER NOT NULL,
    note          TEXT    NOT NULL
);
CREATE INDEX checkpoints_by_size ON checkpoints (log_id, size);

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'stele: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'stele: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints
WHEN EXISTS (SELECT 1 FROM checkpoints WHERE checkpoint_id = NEW.checkpoint_id)
BEGIN SELECT RAISE(ABORT, 'stele: checkpoints are append-only'); END;
