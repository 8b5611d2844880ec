-- Forget and prune (docs/store-format.md "Forget and prune"). Independent of the pack
-- tables: a run forgotten here is undo history ended, whatever the store holds it in.

-- A forgotten run keeps its rows in `runs` and `ops` (so `log` still reads it); its ops
-- are no longer in force for undo, restore or verify, and prune may free what only it
-- referenced.
CREATE TABLE forgotten_runs (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id),
    forgotten_at TEXT NOT NULL,
    -- the `forget` run (or scheduled run) that forgot it
    by_run       INTEGER REFERENCES runs(id),
    reason       TEXT NOT NULL
);

-- Prune's decision, written before anything is deleted: each row is a stored thing no
-- longer referenced. The catalog rows that named it are dropped in the same transaction,
-- so nothing reads it once it is here; the sweep deletes its file, then this row. A prune
-- killed in between leaves rows here that the next prune sweeps.
CREATE TABLE prune_condemned (
    kind         TEXT NOT NULL,  -- blob | backup | plan | orphan-backup (packs later)
    name         TEXT NOT NULL,  -- the blob's hash, the backup's id, the plan's id, ...
    path         TEXT NOT NULL,  -- what the sweep removes (a file or a folder)
    bytes        INTEGER NOT NULL,
    condemned_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- Prune clears a freed blob from the ops of forgotten runs, and the blobs table's foreign
-- key is checked against ops on each delete: both look ops up by blob.
CREATE INDEX ops_by_blob ON ops(blob);
