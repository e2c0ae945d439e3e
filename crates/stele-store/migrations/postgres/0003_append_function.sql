-- One batch in one statement: the writer sequences a batch against the log sizes it has
-- cached and sends everything at once; this function locks the touched log rows (in the
-- order given: the writer sorts them by tenant, so nodes never deadlock), checks that no
-- other node appended since (else SQLSTATE SL001: the writer reloads those logs and
-- tries again), inserts the events, their ids and the tiles, drops the narrower tile rows
-- the new ones extend, and stores each log's new size. Called outside an explicit
-- transaction, the statement is its own transaction: one round trip per batch.
CREATE FUNCTION stele_append(
    log_ids   BIGINT[],
    expected  BIGINT[],
    sizes     BIGINT[],
    lasts     BIGINT[],
    e_logs    BIGINT[],
    e_seqs    BIGINT[],
    e_ids     UUID[],
    e_times   BIGINT[],
    e_hashes  BYTEA[],
    e_bodies  BYTEA[],
    t_logs    BIGINT[],
    t_levels  SMALLINT[],
    t_indexes BIGINT[],
    t_widths  SMALLINT[],
    t_hashes  BYTEA[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    found BIGINT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(log_ids, 1), 0) LOOP
        SELECT size INTO found FROM logs WHERE log_id = log_ids[i] FOR UPDATE;
        IF found IS DISTINCT FROM expected[i] THEN
            RAISE EXCEPTION 'stele: log % holds % events, the writer expected %',
                log_ids[i], found, expected[i] USING ERRCODE = 'SL001';
        END IF;
    END LOOP;

    INSERT INTO events (log_id, seq, id, received_at, leaf_hash, body)
    SELECT l, s, i, timestamptz 'epoch' + r * interval '1 microsecond', h, b
    FROM unnest(e_logs, e_seqs, e_ids, e_times, e_hashes, e_bodies) AS u(l, s, i, r, h, b);

    -- A server-chosen id that is already stored fails the batch here, as on SQLite.
    INSERT INTO event_ids (log_id, id, seq, received_at)
    SELECT l, i, s, timestamptz 'epoch' + r * interval '1 microsecond'
    FROM unnest(e_logs, e_ids, e_seqs, e_times) AS u(l, i, s, r);

    IF coalesce(array_length(t_logs, 1), 0) > 0 THEN
        INSERT INTO tiles (log_id, level, idx, width, hashes)
        SELECT * FROM unnest(t_logs, t_levels, t_indexes, t_widths, t_hashes);
        -- The rows these tiles extend are prefixes of them.
        DELETE FROM tiles t USING unnest(t_logs, t_levels, t_indexes, t_widths) AS n(l, lv, i, w)
        WHERE t.log_id = n.l AND t.level = n.lv AND t.idx = n.i AND t.width < n.w;
    END IF;

    UPDATE logs SET size = u.s, last_received_at = u.r
    FROM unnest(log_ids, sizes, lasts) AS u(l, s, r)
    WHERE logs.log_id = u.l;
END $$;
