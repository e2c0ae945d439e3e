-- Settings: mutable state kept beside the log, never audit evidence (which verifier key
-- the log belongs to; later API keys, policies, saved searches, alert state). Unlike the
-- log's tables these may change, so they carry no append-only triggers.
CREATE TABLE settings (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
