-- Compacted journals (docs/store-format.md "Compacted journals"). A forgotten run's ops
-- that nothing in force reads any more (no op in force is shadowed by them, none refers to
-- them) leave `ops` for one row here: their lines as they stood, one zstd frame of JSON
-- lines, written in the same transaction that deletes their rows. `log` reads both.
CREATE TABLE forgotten_journals (
    run_id        INTEGER PRIMARY KEY REFERENCES forgotten_runs(run_id),
    -- the layout of `lines` (1: one JSON object per op, every `ops` column but run_id)
    format        INTEGER NOT NULL,
    ops           INTEGER NOT NULL,
    -- the lowest and highest op id held: where a lookup by op id looks
    first_op      INTEGER NOT NULL,
    last_op       INTEGER NOT NULL,
    -- the run's counts `log` shows, so listing runs never decompresses a record
    applied       INTEGER NOT NULL,
    rolled_back   INTEGER NOT NULL,
    reverted      INTEGER NOT NULL,
    applied_bytes INTEGER NOT NULL,
    plain_bytes   INTEGER NOT NULL,
    lines         BLOB NOT NULL,
    compacted_at  TEXT NOT NULL
);

-- Deleting an op row makes SQLite look for rows naming it (the foreign keys `reverts_op`
-- and `reverted_by`): without an index each look was a scan of every op, and compacting
-- a first run of 16,000 ops took 131 s. Few ops name another, so the indexes are small.
CREATE INDEX ops_by_reverts_op ON ops(reverts_op) WHERE reverts_op IS NOT NULL;
CREATE INDEX ops_by_reverted_by ON ops(reverted_by) WHERE reverted_by IS NOT NULL;
