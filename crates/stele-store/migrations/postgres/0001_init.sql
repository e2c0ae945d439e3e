-- One row per log (tenant): its size and the last server time handed out in it. A writer
-- locks the row for the length of a batch, so several nodes can append to one log.
CREATE TABLE logs (
    log_id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           TEXT   NOT NULL UNIQUE,
    size             BIGINT NOT NULL DEFAULT 0,
    last_received_at BIGINT NOT NULL DEFAULT 0
);

-- Events as their canonical bytes, partitioned by month of received_at (partitions are
-- created ahead by the writer). A unique key must include the partition key, so the
-- uniqueness of (log, seq) is kept by the writers' lock on the log row, and that of
-- (log, id) by `event_ids`.
CREATE TABLE events (
    log_id      BIGINT      NOT NULL,
    seq         BIGINT      NOT NULL,
    id          UUID        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    leaf_hash   BYTEA       NOT NULL,
    body        BYTEA       NOT NULL,
    PRIMARY KEY (log_id, seq, received_at)
) PARTITION BY RANGE (received_at);

-- Every id ever stored in a log, with where its event is: ids are unique per log (a
-- retried client id is answered from here), and a lookup by id reads one partition.
CREATE TABLE event_ids (
    log_id      BIGINT      NOT NULL,
    id          UUID        NOT NULL,
    seq         BIGINT      NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (log_id, id)
);

-- The Merkle tree as C2SP tlog-tiles; a tile only grows (see the SQLite schema).
CREATE TABLE tiles (
    log_id BIGINT   NOT NULL REFERENCES logs (log_id),
    level  SMALLINT NOT NULL,
    idx    BIGINT   NOT NULL,
    width  SMALLINT NOT NULL,
    hashes BYTEA    NOT NULL,
    PRIMARY KEY (log_id, level, idx, width)
);

-- Every signed checkpoint issued, as its C2SP signed-note text.
CREATE TABLE checkpoints (
    checkpoint_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    log_id        BIGINT NOT NULL REFERENCES logs (log_id),
    size          BIGINT NOT NULL,
    signed_at     BIGINT NOT NULL,
    note          TEXT   NOT NULL
);
CREATE INDEX checkpoints_by_size ON checkpoints (log_id, size);

CREATE FUNCTION stele_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stele: % are append-only', TG_TABLE_NAME;
END $$;

-- A partial tile row may go once a wider row of the same tile exists: its hashes are a
-- prefix of that row. Nothing else may change or leave.
CREATE FUNCTION stele_tiles_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM tiles t WHERE t.log_id = OLD.log_id AND t.level = OLD.level
        AND t.idx = OLD.idx AND t.width > OLD.width) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'stele: tree hashes are append-only';
END $$;

-- A log row only grows: never deleted, never renamed, its size and time never decrease.
CREATE FUNCTION stele_logs_only_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.log_id = OLD.log_id AND NEW.tenant = OLD.tenant
        AND NEW.size >= OLD.size AND NEW.last_received_at >= OLD.last_received_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'stele: logs are append-only';
END $$;

CREATE TRIGGER logs_only_grow BEFORE UPDATE OR DELETE ON logs
    FOR EACH ROW EXECUTE FUNCTION stele_logs_only_grow();
CREATE TRIGGER logs_no_truncate BEFORE TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER event_ids_append_only BEFORE UPDATE OR DELETE ON event_ids
    FOR EACH ROW EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER event_ids_no_truncate BEFORE TRUNCATE ON event_ids
    FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER tiles_append_only BEFORE UPDATE OR DELETE ON tiles
    FOR EACH ROW EXECUTE FUNCTION stele_tiles_append_only();
CREATE TRIGGER tiles_no_truncate BEFORE TRUNCATE ON tiles
    FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION stele_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only();

-- Creates the partition of `events` for the month starting at `month_start`, if missing.
-- SECURITY DEFINER: a runtime role that may only insert and select can still roll the
-- partitions forward.
CREATE FUNCTION stele_create_partition(month_start DATE) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    name TEXT := 'events_' || to_char(month_start, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(495874042981);
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            name, month_start::text || ' 00:00:00+00',
            (month_start + interval '1 month')::date::text || ' 00:00:00+00');
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION stele_append_only()', name || '_no_truncate', name);
    END IF;
END $$;
