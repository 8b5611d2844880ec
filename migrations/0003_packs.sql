-- The pack layer (docs/store-format.md "Packs and chunks"): files held as objects made of
-- content-addressed chunks, each distinct chunk kept once in an immutable pack file.
-- Pack files and dictionaries are written and renamed into place before the rows naming
-- them are committed, so no row ever names a file that was not whole on disk.

CREATE TABLE dictionaries (
    seq          INTEGER PRIMARY KEY,
    -- BLAKE3 (hex) of the dictionary's bytes, which also names dicts/<id>.dict
    id           TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL,
    -- how many cdc-lines objects the store held when it was trained
    trained_on   INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE packs (
    seq          INTEGER PRIMARY KEY,
    -- BLAKE3 (hex) of the whole pack file, which names packs/<ab>/<id>.pack
    id           TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL,
    format       INTEGER NOT NULL,
    dictionary   TEXT REFERENCES dictionaries(id),
    created_at   TEXT NOT NULL,
    -- live | condemned (prune: nothing in it is used; its file is about to go)
    state        TEXT NOT NULL DEFAULT 'live'
);

-- Where each block of a pack lies, so reading one object never reads a pack's index.
CREATE TABLE blocks (
    pack         INTEGER NOT NULL REFERENCES packs(seq),
    number       INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    length       INTEGER NOT NULL,
    plain_length INTEGER NOT NULL,
    -- 1 when the block was compressed with its pack's dictionary
    dictionary   INTEGER NOT NULL,
    PRIMARY KEY (pack, number)
) WITHOUT ROWID;

-- One row per distinct chunk, whatever refers to it: the 32-byte BLAKE3 of its bytes.
CREATE TABLE chunks (
    id           BLOB PRIMARY KEY,
    pack         INTEGER NOT NULL REFERENCES packs(seq),
    block        INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    length       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks(pack);

CREATE TABLE objects (
    -- BLAKE3 (hex) of the object's plain bytes
    id           TEXT PRIMARY KEY,
    length       INTEGER NOT NULL,
    -- sqlite-page | cdc-lines | whole
    chunker      TEXT NOT NULL,
    -- the chunk ids concatenated as 32-byte values, one zstd frame
    chunk_list   BLOB NOT NULL,
    created_at   TEXT NOT NULL
);

-- A backup entry held as an object instead of inside state.tar.zst.
CREATE TABLE backup_objects (
    backup_id    INTEGER NOT NULL REFERENCES backups(id),
    path         TEXT NOT NULL,
    object       TEXT NOT NULL REFERENCES objects(id),
    PRIMARY KEY (backup_id, path)
);
