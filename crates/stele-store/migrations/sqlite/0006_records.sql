-- Records: documents kept beside the log by kind and id (API keys, and later policies,
-- saved searches, alert rules), as JSON text. Like settings they may change and are
-- never audit evidence: every change to them is recorded in the log by the server.
CREATE TABLE records (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
