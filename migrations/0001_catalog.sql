-- The catalog of codex-maint: every mutating invocation is a run, every change an op.
-- An op row is written (state 'prepared') before its change touches the disk, so a crash
-- always leaves enough here to finish the change or take it back.

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    command      TEXT NOT NULL,
    args         TEXT NOT NULL DEFAULT '[]',
    home         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    -- running | done | failed | interrupted (a crash, later recovered)
    status       TEXT NOT NULL,
    -- the run an undo reverts, when this run is an undo
    reverts_run  INTEGER REFERENCES runs(id)
);

CREATE TABLE ops (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    -- prepared | applied | rolled_back
    state        TEXT NOT NULL,
    src          TEXT NOT NULL,
    dst          TEXT,
    size         INTEGER,
    mode         INTEGER,
    mtime_ns     INTEGER,
    hash_before  TEXT,
    hash_after   TEXT,
    blob         TEXT REFERENCES blobs(hash),
    detail       TEXT NOT NULL DEFAULT '{}',
    reverts_op   INTEGER REFERENCES ops(id),
    reverted_by  INTEGER REFERENCES ops(id),
    prepared_at  TEXT NOT NULL,
    finished_at  TEXT,
    UNIQUE (run_id, seq)
);
CREATE INDEX ops_by_state ON ops(state);
-- verify asks whether a later op moved an item on from where an op left it
CREATE INDEX ops_by_src ON ops(src);

CREATE TABLE blobs (
    hash         TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    stored_size  INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE backups (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER REFERENCES runs(id),
    path         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    archive_hash TEXT NOT NULL,
    manifest_hash TEXT NOT NULL
);

CREATE TABLE backup_entries (
    backup_id    INTEGER NOT NULL REFERENCES backups(id),
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER,
    mode         INTEGER,
    hash         TEXT NOT NULL,
    PRIMARY KEY (backup_id, path)
);
