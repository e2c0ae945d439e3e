-- Only Stele's writer inserts events. Its connection defines the SQL function
-- `stele_writer()`; on any other connection that function does not exist, so an INSERT
-- into events (INSERT OR REPLACE included, which would otherwise delete the event it
-- replaces without firing the delete trigger) fails before touching a row. The writer
-- itself only ever runs plain INSERTs, which fail on the key over an existing position or
-- id, so it no longer pays two index lookups per event for the check this replaces.
DROP TRIGGER events_no_replace;
CREATE TRIGGER events_writer_only BEFORE INSERT ON events
WHEN NOT stele_writer()
BEGIN SELECT RAISE(ABORT, 'stele: only the Stele writer appends events'); END;
