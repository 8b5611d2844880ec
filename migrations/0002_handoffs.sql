-- Handoff documents written for sessions (SPEC.md "Handoff Docs"). A long, useful session
-- may be archived only once it has one.
CREATE TABLE handoffs (
    id              INTEGER PRIMARY KEY,
    thread_id       TEXT NOT NULL,
    path            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    doc_hash        TEXT NOT NULL,
    transcript_hash TEXT,
    transcript_size INTEGER
);
CREATE INDEX handoffs_by_thread ON handoffs(thread_id);
